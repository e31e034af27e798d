#!/usr/bin/env bash
# Hub throughput side by side (issue: hub on PostgreSQL): column changes per second into and
# out of the hub with 16 and 64 concurrent SQLite clients, on three setups in one run:
# the embedded SQLite store, one hub on a PostgreSQL store, and two hubs sharing that
# PostgreSQL store (clients alternate between them). Every client writes ROWS rows per round
# into its own keys and syncs, ROUNDS rounds, then all sync once more and must converge.
# Starts a throwaway cluster with pg_virtualenv. Fails only if the data does not arrive.
# Usage: bench/hub_scale_bench.sh [ROWS] [ROUNDS]   (defaults 200 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DELTASYNC_SCALE_BENCH_INSIDE:-}" ]; then
  export DELTASYNC_SCALE_BENCH_INSIDE=1
  exec pg_virtualenv -t -- "$0" "$@"
fi
ROWS=${1:-200}
ROUNDS=${2:-3}
EXT="$(pwd)/${BUILD_DIR:-build}/sqlite_ext/deltasync"
CLI="$(pwd)/${BUILD_DIR:-build}/server/deltasync"
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
ms() { date +%s%3N; }
site() { local db=$1; shift; sqlite3 -bail -cmd ".load $EXT" "$db" "$@"; }
SCHEMA="CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER); SELECT deltasync_enable('t');"

# Starts a hub on store $1, prints its port.
start_hub() {
  local log="$DIR/hub$RANDOM.log"
  "$CLI" serve --db "$1" --listen 127.0.0.1:0 --auto-create-nodes >"$log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.1; done
  local port
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] || { echo "hub on $1 did not start: $(cat "$log")" >&2; exit 1; }
  echo "$port"
}
stop_hubs() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

# run CLIENTS PORT...: prints "in/s out/s"
run() {
  local clients=$1; shift
  local ports=("$@") d="$DIR/run$RANDOM"
  mkdir -p "$d"
  for c in $(seq "$clients"); do site "$d/c$c.db" "$SCHEMA" >/dev/null; done
  local t0 t1
  t0=$(ms)
  for c in $(seq "$clients"); do
    local port=${ports[$((c % ${#ports[@]}))]}
    (
      for r in $(seq "$ROUNDS"); do
        site "$d/c$c.db" "BEGIN; WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM k WHERE x<$ROWS)
          INSERT INTO t SELECT printf('c%03d-r%02d-%05d', $c, $r, x), 'v' || x, x FROM k; COMMIT;
          SELECT deltasync_sync('http://127.0.0.1:$port/nodes/load', '{\"batch_rows\": 5000, \"timeout_ms\": 120000}');" >/dev/null
      done
    ) &
  done
  wait $(jobs -p | grep -v -x -F -f <(printf '%s\n' "${PIDS[@]}")) 2>/dev/null || true
  t1=$(ms)
  for c in $(seq "$clients"); do
    local port=${ports[$((c % ${#ports[@]}))]}
    site "$d/c$c.db" "SELECT deltasync_sync('http://127.0.0.1:$port/nodes/load', '{\"batch_rows\": 5000, \"timeout_ms\": 120000}');" >/dev/null
  done
  local expected=$((clients * ROUNDS * ROWS))
  for c in 1 "$clients"; do
    n=$(site "$d/c$c.db" "SELECT count(*) FROM t;")
    [ "$n" = "$expected" ] || { echo "client $c holds $n rows, expected $expected" >&2; exit 1; }
  done
  awk -v ms=$((t1 - t0)) -v n=$((expected * 2)) -v c="$clients" 'BEGIN { printf "%9.0f %9.0f", n / (ms / 1000), n * (c - 1) / (ms / 1000) }'
  rm -rf "$d"
}

echo "deltasync hub throughput: $ROWS rows x $ROUNDS rounds per client, column changes/s (in = pushed into the hub, out = pulled from it)"
printf '%-34s %-8s %9s %9s\n' setup clients "in/s" "out/s"
line() {  # setup clients ports...: one row of the table; a failed run stops the benchmark
  local name=$1 clients=$2 result
  shift 2
  result=$(run "$clients" "$@") || exit 1
  printf '%-34s %-8s %s\n' "$name" "$clients" "$result"
}
for clients in 16 64; do
  port=$(start_hub "$DIR/hub_$clients.db")
  line "SQLite store, 1 hub" "$clients" "$port"
  stop_hubs
  createdb "bench_hub_$clients"
  port=$(start_hub "postgresql:///bench_hub_$clients")
  line "PostgreSQL store, 1 hub" "$clients" "$port"
  stop_hubs
  createdb "bench_hub2_$clients"
  p1=$(start_hub "postgresql:///bench_hub2_$clients")
  p2=$(start_hub "postgresql:///bench_hub2_$clients")
  line "PostgreSQL store, 2 hubs" "$clients" "$p1" "$p2"
  stop_hubs
done
