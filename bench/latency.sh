#!/usr/bin/env bash
# Live-sync latency (issue 13, SPEC target p50 <= 100 ms, p99 <= 1 s): three SQLite files,
# each with a stored schedule and its own `deltasync agent`, one `deltasync serve` on
# loopback. One row at a time is committed on the first file; the time until it is visible
# on the other two is printed as p50/p90/p99/max. Prints numbers, never fails on them.
# Usage: bench/latency.sh [WRITES]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
WRITES=${1:-200}
B="$(pwd)/${BUILD_DIR:-build}"
EXT="$B/sqlite_ext/deltasync.so"
CLI="$B/server/deltasync"
PROBE="$B/bench/deltasync_bench_latency"
[ -f "$EXT" ] && [ -x "$CLI" ] && [ -x "$PROBE" ] || {
  echo "build first: cmake --build build --target deltasync_cli deltasync_sqlite deltasync_bench_latency" >&2; exit 1; }
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

"$CLI" serve --db "$DIR/hub.db" --listen 127.0.0.1:0 --auto-create-nodes > "$DIR/hub.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$DIR/hub.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/hub.log" | head -1)
[ -n "$PORT" ] || { cat "$DIR/hub.log"; exit 1; }
URL="http://127.0.0.1:$PORT/nodes/shop"

for s in a b c; do
  sqlite3 -bail -cmd ".load ${EXT%.so}" "$DIR/$s.db" \
    "PRAGMA journal_mode=WAL;" \
    "CREATE TABLE t(id TEXT PRIMARY KEY, site TEXT NOT NULL, n INTEGER NOT NULL); SELECT deltasync_enable('t');" \
    "SELECT deltasync_schedule('$URL', '{\"interval_ms\": 10000}');" > /dev/null
  "$CLI" agent --db "$DIR/$s.db" --log-level warn 2> "$DIR/agent_$s.log" &
  PIDS+=($!)
done
sleep 1  # the agents' first push and long-poll
echo "deltasync live-sync latency: $WRITES single-row commits on a.db, 3 agents (poll 25 ms), hub on loopback"
"$PROBE" "$WRITES" "$DIR/a.db" "$DIR/b.db" "$DIR/c.db"
