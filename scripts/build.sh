#!/usr/bin/env bash
# Configures and builds into build/ (or $BUILD_DIR): everything, or the targets given;
# installs the PostgreSQL extension once it is built.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j"$(nproc)" "${targets[@]}"
# The PostgreSQL extension goes into PostgreSQL's own directories (CREATE EXTENSION finds it
# there only): deltasync.so into pg_config --pkglibdir, control and script into --sharedir.
if [ -f "$BUILD_DIR/pg_ext/deltasync.so" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO cmake --install "$BUILD_DIR" --component pg >/dev/null
fi
