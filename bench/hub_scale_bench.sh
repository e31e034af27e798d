#!/usr/bin/env bash
# Hub throughput side by side (issue: hub on PostgreSQL): column changes per second into and
# out of the hub with 16 and 64 concurrent SQLite clients, on three setups in one run:
# the embedded SQLite store, one hub on a PostgreSQL store, and two hubs sharing that
# PostgreSQL store (clients alternate between them). Every client writes ROWS rows per round
# into its own keys and syncs, ROUNDS rounds, then all sync once more and must converge.
# All clients share one node, except in the "8 nodes" lines (issue 16): the same clients
# spread over 8 nodes (client c on node c % 8), on one hub over PostgreSQL and on the SQLite
# store — nodes share no lock, so 8 nodes should not be slower than 1.
# Starts a throwaway cluster with pg_virtualenv. Fails only if the data does not arrive.
# Usage: bench/hub_scale_bench.sh [ROWS] [ROUNDS]   (defaults 200 and 3)
# SETUPS (environment) picks lines: any of sqlite pg pg2 sqlite8 pg8 (default: all);
# CLIENTS the client counts (default "16 64"); BASELINE_16 an earlier 16-client SQLite-store
# "in" figure to print ratios against (default: this run's own); MODE=push times pushes only
# (clients push in the timed rounds, pull after: "in" is the hub's ingest, not a whole sync).
# MODE=load measures the hub alone (issue 16): no sqlite3 clients, but the native load
# generator (bench/hub_load.cpp, build target deltasync_bench_hub_load) pushing bodies it
# encoded before the clock started (binary codec + zstd, as sites send them; each client
# its own site and keys, 3 tables x 4 columns), CLIENTS threads at once; then ROWS is the
# rows per push (default 200: 800 changes) and ROUNDS the pushes per client (default 10).
# It prints changes/s accepted, the CPU time per 1,000 changes of the hub process and (PG
# store) of the PostgreSQL server (the postmaster and its backends, from /proc), and the
# ratio to the 16-client figures measured before issue 16's push-path work (22,700 changes/s
# SQLite store, 16,100 PostgreSQL store; override with BASELINE_16 / BASELINE_16_PG).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DELTASYNC_SCALE_BENCH_INSIDE:-}" ]; then
  export DELTASYNC_SCALE_BENCH_INSIDE=1
  exec pg_virtualenv -t -- "$0" "$@"
fi
ROWS=${1:-200}
if [ "${MODE:-}" = load ]; then ROUNDS=${2:-10}; else ROUNDS=${2:-3}; fi
EXT="$(pwd)/${BUILD_DIR:-build}/sqlite_ext/deltasync"
CLI="${HUB_BIN:-$(pwd)/${BUILD_DIR:-build}/server/deltasync}"  # HUB_BIN: another build of the hub, to compare
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
ms() { date +%s%3N; }
site() { local db=$1; shift; sqlite3 -bail -cmd ".load $EXT" "$db" "$@"; }
SCHEMA="CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER); SELECT deltasync_enable('t');"

# Starts a hub on store $1 and sets HUB_PORT (not in a subshell: PIDS must keep its pid, so
# that stop_hubs and the exit trap stop it).
start_hub() {
  local log="$DIR/hub$RANDOM.log"
  "$CLI" serve --db "$1" --listen 127.0.0.1:0 --auto-create-nodes >"$log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.1; done
  local port
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] || { echo "hub on $1 did not start: $(cat "$log")" >&2; exit 1; }
  HUB_PORT=$port
}
stop_hubs() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

# run CLIENTS NODES PORT...: prints "in/s out/s"
run() {
  local clients=$1 nodes=$2; shift 2
  local ports=("$@") d="$DIR/run$RANDOM"
  mkdir -p "$d"
  for c in $(seq "$clients"); do site "$d/c$c.db" "$SCHEMA" >/dev/null; done
  local t0 t1
  t0=$(ms)
  for c in $(seq "$clients"); do
    local port=${ports[$((c % ${#ports[@]}))]} node="load$((c % nodes))"
    (
      for r in $(seq "$ROUNDS"); do
        site "$d/c$c.db" "BEGIN; WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM k WHERE x<$ROWS)
          INSERT INTO t SELECT printf('c%03d-r%02d-%05d', $c, $r, x), 'v' || x, x FROM k; COMMIT;
          SELECT deltasync_${MODE:-sync}('http://127.0.0.1:$port/nodes/$node', '{\"batch_rows\": 5000, \"timeout_ms\": 120000}');" >/dev/null
      done
    ) &
  done
  wait $(jobs -p | grep -v -x -F -f <(printf '%s\n' "${PIDS[@]}")) 2>/dev/null || true
  t1=$(ms)
  for c in $(seq "$clients"); do
    local port=${ports[$((c % ${#ports[@]}))]}
    site "$d/c$c.db" "SELECT deltasync_sync('http://127.0.0.1:$port/nodes/load$((c % nodes))', '{\"batch_rows\": 5000, \"timeout_ms\": 120000}');" >/dev/null
  done
  local total=$((clients * ROUNDS * ROWS))
  for c in 1 "$clients"; do  # a client holds the rows of every client on its node
    local peers=0
    for o in $(seq "$clients"); do [ $((o % nodes)) = $((c % nodes)) ] && peers=$((peers + 1)); done
    local expected=$((peers * ROUNDS * ROWS))
    n=$(site "$d/c$c.db" "SELECT count(*) FROM t;")
    [ "$n" = "$expected" ] || { echo "client $c holds $n rows, expected $expected" >&2; exit 1; }
  done
  # out: each change reaches the other clients of its node (m clients on a node: m(m-1) pairs)
  local pairs=0
  for k in $(seq 0 $((nodes - 1))); do
    local m=0
    for o in $(seq "$clients"); do [ $((o % nodes)) = "$k" ] && m=$((m + 1)); done
    pairs=$((pairs + m * (m - 1)))
  done
  awk -v ms=$((t1 - t0)) -v n=$((total * 2)) -v c="$clients" -v pairs="$pairs" -v push="${MODE:-sync}" \
    'BEGIN { if (push == "push") printf "%9.0f %9s", n / (ms / 1000), "-"; else printf "%9.0f %9.0f", n / (ms / 1000), n / c * pairs / (ms / 1000) }'
  rm -rf "$d"
}

# MODE=load: one generator run against the hub(s) just started; prints one table row.
HUB_PIDS=()
load_line() {  # setup clients nodes store(sqlite|pg) port
  local name=$1 clients=$2 nodes=$3 store=$4 port=$5 pids=("${HUB_PIDS[@]}") out
  [ "$store" = pg ] && pids+=("$(head -1 "$(psql -XAtc 'SHOW data_directory' postgres)/postmaster.pid")")
  out=$("$LOAD" "http://127.0.0.1:$port" "$clients" "$nodes" "$ROUNDS" "$ROWS" "${pids[@]}") || exit 1
  local rate hub pg="-" client base
  rate=$(awk '{print $2}' <<<"$out")
  hub=$(awk '{print $8}' <<<"$out" | cut -d: -f2)
  [ "$store" = pg ] && pg=$(awk '{print $9}' <<<"$out" | cut -d: -f2)
  client=$(awk '{print $NF}' <<<"$out")
  if [ "$store" = pg ]; then base=${BASELINE_16_PG:-16100}; else base=${BASELINE_16:-22700}; fi
  printf '%-34s %-8s %10s %12s %12s %12s %8s\n' "$name" "$clients" "$rate" "$hub" "$pg" "$client" \
    "$(awk -v a="$rate" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
}
if [ "${MODE:-}" = load ]; then
  LOAD="$(pwd)/${BUILD_DIR:-build}/bench/deltasync_bench_hub_load"
  [ -x "$LOAD" ] || { echo "build the load generator first: cmake --build build --target deltasync_bench_hub_load" >&2; exit 1; }
  echo "deltasync hub ingest (load generator): $ROWS rows x 4 columns per push, $ROUNDS pushes per client; CPU in ms per 1,000 changes"
  printf '%-34s %-8s %10s %12s %12s %12s %8s\n' setup clients "changes/s" "hub cpu" "pg cpu" "client cpu" "ratio"
  SETUPS=${SETUPS:-sqlite sqlite8 pg pg8}
  for clients in ${CLIENTS:-16 64}; do
    for s in $SETUPS; do
      case $s in
        sqlite | sqlite8) nodes=1; [ "$s" = sqlite8 ] && nodes=8
          start_hub "$DIR/load_${s}_$clients.db"; HUB_PIDS=("${PIDS[-1]}")
          load_line "SQLite store, $nodes node(s)" "$clients" "$nodes" sqlite "$HUB_PORT" ;;
        pg | pg8) nodes=1; [ "$s" = pg8 ] && nodes=8
          createdb "load_${s}_$clients"
          start_hub "postgresql:///load_${s}_$clients"; HUB_PIDS=("${PIDS[-1]}")
          load_line "PostgreSQL store, 1 hub, $nodes node(s)" "$clients" "$nodes" pg "$HUB_PORT" ;;
        *) echo "MODE=load: unknown setup $s (sqlite sqlite8 pg pg8)" >&2; exit 1 ;;
      esac
      stop_hubs
    done
  done
  exit 0
fi

echo "deltasync hub throughput: $ROWS rows x $ROUNDS rounds per client, column changes/s (in = pushed into the hub, out = pulled from it)"
printf '%-34s %-8s %9s %9s %s\n' setup clients "in/s" "out/s" "in ÷ 16-client SQLite baseline"
BASE=${BASELINE_16:-}
line() {  # setup clients nodes ports...: one row of the table; a failed run stops the benchmark
  local name=$1 clients=$2 nodes=$3 result
  shift 3
  result=$(run "$clients" "$nodes" "$@") || exit 1
  local in
  read -r in _ <<<"$result"
  if [ -z "$BASE" ] && [ "$name" = "SQLite store, 1 hub" ] && [ "$clients" = 16 ]; then BASE=$in; fi
  local ratio="-"
  [ -n "$BASE" ] && ratio=$(awk -v a="$in" -v b="$BASE" 'BEGIN { printf "%.2f", a / b }')
  printf '%-34s %-8s %s %s\n' "$name" "$clients" "$result" "$ratio"
}
SETUPS=${SETUPS:-sqlite pg pg2 sqlite8 pg8}
want() { [[ " $SETUPS " == *" $1 "* ]]; }
for clients in ${CLIENTS:-16 64}; do
  if want sqlite; then
    start_hub "$DIR/hub_$clients.db"; port=$HUB_PORT
    line "SQLite store, 1 hub" "$clients" 1 "$port"
    stop_hubs
  fi
  if want sqlite8; then
    start_hub "$DIR/hub8_$clients.db"; port=$HUB_PORT
    line "SQLite store, 1 hub, 8 nodes" "$clients" 8 "$port"
    stop_hubs
  fi
  if want pg; then
    createdb "bench_hub_$clients"
    start_hub "postgresql:///bench_hub_$clients"; port=$HUB_PORT
    line "PostgreSQL store, 1 hub" "$clients" 1 "$port"
    stop_hubs
  fi
  if want pg8; then
    createdb "bench_hub8_$clients"
    start_hub "postgresql:///bench_hub8_$clients"; port=$HUB_PORT
    line "PostgreSQL store, 1 hub, 8 nodes" "$clients" 8 "$port"
    stop_hubs
  fi
  if want pg2; then
    createdb "bench_hub2_$clients"
    start_hub "postgresql:///bench_hub2_$clients"; p1=$HUB_PORT
    start_hub "postgresql:///bench_hub2_$clients"; p2=$HUB_PORT
    line "PostgreSQL store, 2 hubs" "$clients" 1 "$p1" "$p2"
    stop_hubs
  fi
done
