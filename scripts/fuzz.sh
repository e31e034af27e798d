#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of tests/fuzz (docs/fuzzing.md).
#   scripts/fuzz.sh build                  configure and build them with clang 14 (ASan + UBSan)
#   scripts/fuzz.sh list                   the target names
#   scripts/fuzz.sh run <target> [secs]    fuzz one target for secs (default $FUZZ_SECONDS, 60)
#   scripts/fuzz.sh all [secs]             build, then fuzz every target in turn
#   scripts/fuzz.sh seeds                  rewrite the seed corpora in tests/fuzz/corpus
# The build lives in $FUZZ_BUILD_DIR (default build-fuzz), apart from the g++ build. Each run
# reads the committed seeds (tests/fuzz/corpus/<target>, never written to) and keeps what it
# finds in $FUZZ_BUILD_DIR/corpus/<target>; a crashing input lands in
# $FUZZ_BUILD_DIR/artifacts/<target>/ and the run fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
SECONDS_DEFAULT=${FUZZ_SECONDS:-60}
CC_BIN=${FUZZ_CC:-clang-14}
CXX_BIN=${FUZZ_CXX:-clang++-14}

targets() {
  for f in "$ROOT"/tests/fuzz/targets/fuzz_*.cpp; do
    f=${f##*/fuzz_}
    echo "${f%.cpp}"
  done
}

build() {
  if ! command -v "$CXX_BIN" >/dev/null; then
    echo "fuzz: $CXX_BIN not found; scripts/install-deps.sh installs clang-14 and libclang-rt-14-dev" >&2
    exit 1
  fi
  cmake -S "$ROOT/tests/fuzz/targets" -B "$BUILD" -DCMAKE_BUILD_TYPE=Fuzz \
    -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" >/dev/null
  cmake --build "$BUILD" -j"${FUZZ_JOBS:-$(nproc)}"
}

run() {
  local target=$1 secs=${2:-$SECONDS_DEFAULT}
  local bin="$BUILD/fuzz_$target" seeds="$ROOT/tests/fuzz/corpus/$target"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is not built (scripts/fuzz.sh build)" >&2
    exit 1
  fi
  local dict=()
  case "$target" in
    payload_json | hub_request | hub_answer) dict=(-dict="$ROOT/tests/fuzz/dict/json.dict") ;;
    sync_options) dict=(-dict="$ROOT/tests/fuzz/dict/sync_options.dict") ;;
  esac
  mkdir -p "$BUILD/corpus/$target" "$BUILD/artifacts/$target"
  echo "fuzz: $target for ${secs}s"
  # Leaks, UB and crashes fail the run; an input taking over 10 s is a hang.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="${FUZZ_MAX_LEN:-65536}" \
      -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$target/" "${dict[@]}" \
      "$BUILD/corpus/$target" "$seeds"
}

cmd=${1:-}
case "$cmd" in
  build) build ;;
  list) targets ;;
  run)
    [ $# -ge 2 ] || { echo "usage: scripts/fuzz.sh run <target> [seconds]" >&2; exit 2; }
    run "$2" "${3:-}" ;;
  all)
    build
    for t in $(targets); do run "$t" "${2:-}"; done ;;
  seeds)
    build
    cmake --build "$BUILD" --target make_seeds
    "$BUILD/make_seeds" "$ROOT/tests/fuzz/corpus" ;;
  *)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2 ;;
esac
