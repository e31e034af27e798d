#!/usr/bin/env bash
# Peak memory of a large push (issue 11, "push in bounded memory"): ROWS rows in a SQLite
# file pushed by the sqlite3 shell (the extension loaded) to a real `deltasync serve` on
# 127.0.0.1. Prints the pushing process's peak RSS growth over a baseline run of the same
# shell that loads the extension and reads the table, and the hub's peak RSS growth over its
# RSS before the push. Fails only if the rows do not arrive.
# With a PostgreSQL server reachable through the PG* environment (for example under
# `pg_virtualenv`, the extension installed), the same push from a PostgreSQL backend too:
# its peak RSS (VmHWM of the backend, read from /proc) over its RSS before the push.
# Usage: bench/push_memory.sh [ROWS] [BATCH_ROWS]   (defaults 1000000 and 1000)
#   BUILD_DIR (default build) names the build to measure.
#   flock /tmp/deltasync-pg.lock pg_virtualenv -t -- bench/push_memory.sh   (with PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
BATCH=${2:-1000}
B=${BUILD_DIR:-build}
case $B in /*) ;; *) B="$(pwd)/$B" ;; esac
EXT="$B/sqlite_ext/deltasync"
CLI="$B/server/deltasync"
[ -f "$EXT.so" ] && [ -x "$CLI" ] || { echo "build first (deltasync_sqlite, deltasync_cli)" >&2; exit 1; }
DIR=$(mktemp -d)
HUB_PID=
cleanup() { [ -z "$HUB_PID" ] || kill "$HUB_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

"$CLI" serve --db "$DIR/hub.db" --listen 127.0.0.1:0 --auto-create-nodes > "$DIR/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$DIR/hub.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/hub.log" | head -1)
[ -n "$PORT" ] || { cat "$DIR/hub.log"; exit 1; }
URL="http://127.0.0.1:$PORT/nodes/mem"
site() { local db=$1; shift; sqlite3 -bail -cmd ".load $EXT" "$db" "$@"; }
# Peak RSS (kB) of one sqlite3 run, from /usr/bin/time -v.
peak() { /usr/bin/time -v -o "$DIR/time.txt" sqlite3 -bail -cmd ".load $EXT" "$DIR/a.db" "$@" > "$DIR/out.txt";
         sed -n 's/.*Maximum resident set size (kbytes): //p' "$DIR/time.txt"; }
kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$HUB_PID/status"; }

echo "push memory: $ROWS rows, batch_rows $BATCH, hub on SQLite ($DIR)"
site "$DIR/a.db" "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER NOT NULL);
  SELECT deltasync_enable('t');" > /dev/null
site "$DIR/a.db" "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<$ROWS)
  INSERT INTO t SELECT x, 'kotare mubi ' || x, x * 7 FROM c; COMMIT;"
base=$(peak "SELECT count(*), sum(length(a)) FROM t;")
hub_before=$(kb VmRSS)
t0=$(date +%s%3N)
push_peak=$(peak "SELECT deltasync_push('$URL', '{\"batch_rows\": $BATCH, \"timeout_ms\": 600000}');")
t1=$(date +%s%3N)
hub_peak=$(kb VmHWM)
result=$(cat "$DIR/out.txt")
rows=$(curl -s "http://127.0.0.1:$PORT/nodes/mem/status" | sed -n 's/.*"rows":\([0-9]*\).*/\1/p')
[ "$rows" = "$ROWS" ] || { echo "the hub holds $rows rows, not $ROWS: $result"; exit 1; }
echo "push: $((t1 - t0)) ms  $result"
echo "pushing sqlite3: peak RSS $((push_peak / 1024)) MB, baseline $((base / 1024)) MB, growth $(((push_peak - base) / 1024)) MB"
echo "hub: RSS before $((hub_before / 1024)) MB, peak $((hub_peak / 1024)) MB, growth $(((hub_peak - hub_before) / 1024)) MB"

if [ -n "${PGHOST:-}" ] && psql -XAtq -c "SELECT 1" >/dev/null 2>&1; then
  psql -XAtq -c "DROP DATABASE IF EXISTS ds_push_mem" -c "CREATE DATABASE ds_push_mem" >/dev/null
  pg() { psql -XAtq -v ON_ERROR_STOP=1 -d ds_push_mem "$@"; }
  pg -c "CREATE EXTENSION deltasync" -c "CREATE TABLE t(id bigint PRIMARY KEY, a text NOT NULL, b bigint NOT NULL)" \
     -c "SELECT deltasync_enable('t')" > /dev/null
  pg -c "INSERT INTO t SELECT x, 'kotare mubi ' || x, x * 7 FROM generate_series(1, $ROWS) AS x" > /dev/null
  hub_before=$(kb VmRSS)
  # One session: a sampler watches the backend's private memory (RssAnon: the shared
  # buffers a scan touches count in its RSS but are not the push's) while it pushes.
  cat > "$DIR/sample.sh" <<'SH'
pid=$1; out=$2; max=0; first=
while [ -e "$out.on" ]; do
  v=$(sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || echo 0)
  [ -n "$first" ] || first=$v
  [ "${v:-0}" -gt "$max" ] && max=$v
  sleep 0.05
done
echo "$first $max" > "$out"
SH
  touch "$DIR/pg.on"
  result=$(pg <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv BACKEND :pid
\! sh $DIR/sample.sh \$BACKEND $DIR/pg > /dev/null 2>&1 &
SELECT pg_sleep(0.3);
SELECT deltasync_push('${URL}_pg', '{"batch_rows": $BATCH, "timeout_ms": 600000}');
SQL
)
  rm -f "$DIR/pg.on"
  for _ in $(seq 50); do [ -s "$DIR/pg" ] && break; sleep 0.1; done
  read -r before after < "$DIR/pg"
  hub_peak=$(kb VmHWM)
  echo "push from PostgreSQL: $(echo "$result" | tail -1)"
  [ "${after:-0}" -gt 0 ] || { echo "could not sample the backend's memory"; exit 1; }
  echo "PostgreSQL backend: private RSS (RssAnon) before $((before / 1024)) MB, peak $((after / 1024)) MB, growth $(((after - before) / 1024)) MB"
  echo "hub: peak since start $((hub_peak / 1024)) MB, growth $(((hub_peak - hub_before) / 1024)) MB over its RSS before this push"
  psql -XAtq -c "DROP DATABASE ds_push_mem" > /dev/null
fi
