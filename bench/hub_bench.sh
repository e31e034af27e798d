#!/usr/bin/env bash
# End-to-end benchmark through a real hub (SPEC section 7): 100,000 rows from one SQLite
# site through `deltasync serve` (embedded SQLite store) into another, then hub throughput
# with 16 concurrent clients syncing. Prints times, rates and wire bytes; fails only if the
# data does not arrive.
# Usage: bench/hub_bench.sh [ROWS] [CLIENTS]   (defaults 100000 and 16)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-100000}
CLIENTS=${2:-16}
EXT="$(pwd)/${BUILD_DIR:-build}/sqlite_ext/deltasync"
CLI="$(pwd)/${BUILD_DIR:-build}/server/deltasync"
[ -f "$EXT.so" ] && [ -x "$CLI" ] || { echo "build first (scripts/build.sh)" >&2; exit 1; }
DIR=$(mktemp -d)
HUB_PID=
cleanup() { [ -z "$HUB_PID" ] || kill "$HUB_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

"$CLI" serve --db "$DIR/hub.db" --listen 127.0.0.1:0 --auto-create-nodes > "$DIR/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$DIR/hub.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/hub.log" | head -1)
[ -n "$PORT" ] || { cat "$DIR/hub.log"; exit 1; }
URL="http://127.0.0.1:$PORT/nodes"
ms() { date +%s%3N; }
site() { local db=$1; shift; sqlite3 -bail -cmd ".load $EXT" "$db" "$@"; }
SCHEMA="CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER); SELECT deltasync_enable('t');"

echo "deltasync hub benchmark: $ROWS rows, $CLIENTS concurrent clients, hub store on SQLite ($DIR)"
site "$DIR/a.db" "$SCHEMA" >/dev/null
site "$DIR/b.db" "$SCHEMA" >/dev/null
site "$DIR/a.db" "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<$ROWS)
  INSERT INTO t SELECT printf('id-%08d', x), 'kotare mubi' || x, x FROM c; COMMIT;"
OPTS='{"batch_rows": 10000}'
t0=$(ms); push=$(site "$DIR/a.db" "SELECT deltasync_push('$URL/e2e', '$OPTS');"); t1=$(ms)
pull=$(site "$DIR/b.db" "SELECT deltasync_pull('$URL/e2e', '$OPTS');"); t2=$(ms)
src=$(site "$DIR/a.db" "SELECT count(*), sum(length(a)), sum(b) FROM t;")
dst=$(site "$DIR/b.db" "SELECT count(*), sum(length(a)), sum(b) FROM t;")
[ "$src" = "$dst" ] || { echo "replica differs: $src vs $dst"; exit 1; }
echo "push:  $((t1 - t0)) ms  $push"
echo "pull:  $((t2 - t1)) ms  $pull"
printf 'end to end (push + pull) %d rows: %.2f s (target <= 3 s); replica equals source: yes\n' "$ROWS" \
  "$(awk -v a=$((t2 - t0)) 'BEGIN { print a / 1000 }')"

# Throughput: every client writes 500 rows per round into its own key range and syncs,
# 5 rounds; then each syncs once more so all converge.
ROUNDS=5
PER_ROUND=500
for c in $(seq "$CLIENTS"); do site "$DIR/c$c.db" "$SCHEMA" >/dev/null; done
t0=$(ms)
for c in $(seq "$CLIENTS"); do
  (
    for r in $(seq "$ROUNDS"); do
      site "$DIR/c$c.db" "BEGIN; WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM k WHERE x<$PER_ROUND)
        INSERT INTO t SELECT printf('c%02d-r%02d-%05d', $c, $r, x), 'v' || x, x FROM k; COMMIT;
        SELECT deltasync_sync('$URL/load', '{\"batch_rows\": 5000}');" >/dev/null
    done
  ) &
done
wait_clients() { for job in $(jobs -p); do [ "$job" = "$HUB_PID" ] || wait "$job"; done; }
wait_clients
t1=$(ms)
for c in $(seq "$CLIENTS"); do site "$DIR/c$c.db" "SELECT deltasync_sync('$URL/load', '{\"batch_rows\": 5000}');" >/dev/null; done
expected=$((CLIENTS * ROUNDS * PER_ROUND))
for c in 1 "$CLIENTS"; do
  n=$(site "$DIR/c$c.db" "SELECT count(*) FROM t;")
  [ "$n" = "$expected" ] || { echo "client $c holds $n rows, expected $expected"; exit 1; }
done
in_changes=$((expected * 2))
awk -v ms=$((t1 - t0)) -v n="$in_changes" -v c="$CLIENTS" -v rows="$expected" 'BEGIN {
  printf "%d clients, %d rounds each: %d rows (%d column changes) pushed and pulled by every client in %.2f s\n", c, 5, rows, n, ms / 1000;
  printf "hub throughput: %.0f column changes/s in, %.0f/s out (each client pulls the others)\n", n / (ms / 1000), n * (c - 1) / (ms / 1000) }'
echo "all $CLIENTS clients converged on $expected rows"
