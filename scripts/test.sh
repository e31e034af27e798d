#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs every test (ctest).
# DELTASYNC_PROPERTY_CASES raises the number of random cases of the property tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)"
