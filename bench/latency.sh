#!/usr/bin/env bash
# Live-sync latency (issue 13; SPEC section 10: p50 <= 100 ms, p99 <= 1 s): three SQLite files
# kept in sync by one `deltasync agent` running their stored schedules, and one PostgreSQL
# database (a throwaway cluster from pg_virtualenv) kept in sync by the extension's schedule
# workers, all through one `deltasync serve` on loopback. Then the hub is stopped for OUTAGE_S
# seconds while every site keeps writing, restarted, and the time until every site holds
# every row is printed. Prints numbers, never fails on them.
# Usage: bench/latency.sh [WRITES] (default 1000: each site writes a quarter, in turn)
#        OUTAGE_S=60 (SPEC's outage; 0 skips it), NO_PG=1 (SQLite sites only)
#        UPSTREAM=1: c.db syncs with a second hub ("hq"), which the first hub's node keeps in
#        sync as its upstream (docs/live-sync.md, "Hub upstream"): c.db's figures cross both
#        hubs; the outage stops the first hub only
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NO_PG:-}" ] && [ -z "${DELTASYNC_LATENCY_INSIDE:-}" ]; then
  export DELTASYNC_LATENCY_INSIDE=1
  exec pg_virtualenv -t -- "$0" "$@"
fi
WRITES=${1:-1000}
OUTAGE_S=${OUTAGE_S:-60}
B="$(pwd)/${BUILD_DIR:-build}"
EXT="$B/sqlite_ext/deltasync.so"
CLI="$B/server/deltasync"
PROBE="$B/bench/deltasync_bench_latency"
[ -f "$EXT" ] && [ -x "$CLI" ] && [ -x "$PROBE" ] || {
  echo "build first: cmake --build build --target deltasync_cli deltasync_sqlite deltasync_bench_latency" >&2; exit 1; }
DIR=$(mktemp -d)
PID_hub=""
PID_hq=""
AGENT_PID=""
cleanup() {
  [ -z "${NO_PG:-}" ] && psql -XAtq -d lat_pg -c "SELECT deltasync_unschedule('${URL:-}')" >/dev/null 2>&1 || true
  kill $PID_hub $PID_hq $AGENT_PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"
}
trap cleanup EXIT

# Starts `deltasync serve` NAME on PORT_NAME's port (a free one the first time), extra
# arguments passed on; sets that port variable and the PID variable PID_NAME.
serve() {
  local name=$1 pv="PORT_$1" before
  shift
  before=$(grep -c "listening on" "$DIR/$name.log" 2>/dev/null || true)
  "$CLI" serve --db "$DIR/$name.db" --listen "127.0.0.1:${!pv:-0}" --auto-create-nodes "$@" >> "$DIR/$name.log" 2>&1 &
  printf -v "PID_$name" %s $!
  for _ in $(seq 100); do
    [ "$(grep -c "listening on" "$DIR/$name.log" 2>/dev/null || true)" -gt "${before:-0}" ] && break
    sleep 0.1
  done
  printf -v "$pv" %s "$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/$name.log" | tail -1)"
  [ -n "${!pv}" ] || { cat "$DIR/$name.log" >&2; exit 1; }
}
URL_C=""
HUB_ARGS=()
if [ "${UPSTREAM:-0}" = 1 ]; then
  serve hq
  URL_C="http://127.0.0.1:$PORT_hq/nodes/hq"
  echo "{\"nodes\": {\"shop\": {\"upstream\": {\"url\": \"$URL_C\"}}}}" > "$DIR/shop.json"
  HUB_ARGS=(--config "$DIR/shop.json")
fi
serve hub "${HUB_ARGS[@]}"
URL="http://127.0.0.1:$PORT_hub/nodes/shop"

SITES=()
for s in a b c; do
  sqlite3 -bail -cmd ".load ${EXT%.so}" "$DIR/$s.db" \
    "PRAGMA journal_mode=WAL;" \
    "CREATE TABLE t(id TEXT PRIMARY KEY, site TEXT NOT NULL, n INTEGER NOT NULL); SELECT deltasync_enable('t');" \
    "SELECT deltasync_schedule('$( [ "$s" = c ] && [ -n "$URL_C" ] && echo "$URL_C" || echo "$URL")', '{\"interval_ms\": 10000}');" > /dev/null
  SITES+=("$DIR/$s.db")
done
"$CLI" agent --db "$DIR/a.db" --db "$DIR/b.db" --db "$DIR/c.db" --log-level warn 2> "$DIR/agent.log" &
AGENT_PID=$!
WHAT="3 SQLite files (one agent)$( [ -n "$URL_C" ] && echo ", c.db on a second hub, the first one's upstream")"
if [ -z "${NO_PG:-}" ]; then
  psql -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE lat_pg" >/dev/null
  psql -XAtq -v ON_ERROR_STOP=1 -d lat_pg -c "SET client_min_messages = warning; CREATE EXTENSION deltasync;" \
    -c "CREATE TABLE t(id text PRIMARY KEY, site text NOT NULL, n bigint NOT NULL)" \
    -c "SELECT deltasync_enable('t')" -c "SELECT deltasync_schedule('$URL', '{\"interval_ms\": 10000}')" >/dev/null
  SITES+=("pg:lat_pg")
  WHAT="$WHAT + 1 PostgreSQL database (schedule workers)"
fi
sleep 1  # the first push and long-poll of each site
echo "deltasync live-sync latency: $WRITES single-row commits, each site in turn; $WHAT; hub on loopback"
"$PROBE" latency "$WRITES" "${SITES[@]}"

if [ "$OUTAGE_S" -gt 0 ]; then
  n=${#SITES[@]}
  per=$(( OUTAGE_S * 1000 / (10 * n) / 2 ))  # about half the outage spent writing, ~10 ms a row
  [ "$per" -gt 0 ] || per=1
  echo "hub stopped for ${OUTAGE_S} s; each site writes $per rows meanwhile"
  kill -TERM $PID_hub; wait $PID_hub 2>/dev/null || true
  t0=$(date +%s)
  "$PROBE" write out "$per" "${SITES[@]}"
  rest=$(( OUTAGE_S - ($(date +%s) - t0) ))
  [ "$rest" -gt 0 ] && sleep "$rest"
  serve hub "${HUB_ARGS[@]}"
  "$PROBE" await $(( WRITES + per * n )) 120 "${SITES[@]}"
fi
