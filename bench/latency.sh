#!/usr/bin/env bash
# Live-sync latency (issue 13, SPEC target p50 <= 100 ms, p99 <= 1 s): three SQLite files,
# each with a stored schedule and its own `deltasync agent`, one `deltasync serve` on
# loopback. One row at a time is committed on the first file; the time until it is visible
# on the other two is printed as p50/p90/p99/max. Prints numbers, never fails on them.
# Usage: bench/latency.sh [WRITES]   (default 200)
# UPSTREAM=1: c.db syncs with a second hub ("hq"), which the first hub's node keeps in sync
# as its upstream (docs/live-sync.md, "Hub upstream"): c.db's figure crosses both hubs.
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

# Starts `deltasync serve` on a free port (extra arguments passed on); sets SERVED_PORT.
serve() {
  local name=$1; shift
  "$CLI" serve --db "$DIR/$name.db" --listen 127.0.0.1:0 --auto-create-nodes "$@" > "$DIR/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$DIR/$name.log" && break; sleep 0.1; done
  SERVED_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/$name.log" | head -1)
  [ -n "$SERVED_PORT" ] || { cat "$DIR/$name.log" >&2; exit 1; }
}
URL_C=""
if [ "${UPSTREAM:-0}" = 1 ]; then
  serve hq
  URL_C="http://127.0.0.1:$SERVED_PORT/nodes/hq"
  echo "{\"nodes\": {\"shop\": {\"upstream\": {\"url\": \"$URL_C\"}}}}" > "$DIR/shop.json"
  serve hub --config "$DIR/shop.json"
else
  serve hub
fi
PORT=$SERVED_PORT
URL="http://127.0.0.1:$PORT/nodes/shop"

for s in a b c; do
  sqlite3 -bail -cmd ".load ${EXT%.so}" "$DIR/$s.db" \
    "PRAGMA journal_mode=WAL;" \
    "CREATE TABLE t(id TEXT PRIMARY KEY, site TEXT NOT NULL, n INTEGER NOT NULL); SELECT deltasync_enable('t');" \
    "SELECT deltasync_schedule('$( [ "$s" = c ] && [ -n "$URL_C" ] && echo "$URL_C" || echo "$URL")', '{\"interval_ms\": 10000}');" > /dev/null
  "$CLI" agent --db "$DIR/$s.db" --log-level warn 2> "$DIR/agent_$s.log" &
  PIDS+=($!)
done
sleep 1  # the agents' first push and long-poll
echo "deltasync live-sync latency: $WRITES single-row commits on a.db, 3 agents (poll 25 ms), hub on loopback$( [ -n "$URL_C" ] && echo "; c.db on a second hub, the first one's upstream")"
"$PROBE" "$WRITES" "$DIR/a.db" "$DIR/b.db" "$DIR/c.db"
