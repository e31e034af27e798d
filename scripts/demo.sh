#!/usr/bin/env bash
# The main job, end to end: sets everything up, builds deltasync, starts a hub on 127.0.0.1
# with its embedded SQLite store, and has three SQLite shops and one PostgreSQL shop (a
# throwaway cluster started by pg_virtualenv) edit the same table offline (the same column on
# two shops, a delete racing an update, two shops selling the same stock: qty is a counter,
# so both sales count), sync through the hub, and print their tables, identical. Then the same shops are kept in sync live, with no sync call: an agent runs the
# SQLite shops' stored schedules, the PostgreSQL shop's background workers run its own; a
# write on one shop appears on the others, the hub is stopped while the shops keep selling,
# restarted, and they converge. Then it stops everything (and pg_virtualenv the cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DELTASYNC_DEMO_INSIDE:-}" ]; then
  ./scripts/install-deps.sh >/dev/null
  ./scripts/build.sh deltasync_sqlite deltasync_cli deltasync_pg >/dev/null
  export DELTASYNC_DEMO_INSIDE=1
  exec pg_virtualenv -t -- "$0" "$@"
fi
ROOT=$(pwd)
B=${BUILD_DIR:-build}
case $B in /*) ;; *) B="$ROOT/$B" ;; esac
EXT="$B/sqlite_ext/deltasync"
CLI="$B/server/deltasync"
OUT=${DEMO_DIR:-$ROOT/demo-out}
rm -rf "$OUT" && mkdir -p "$OUT" && cd "$OUT"

say() { printf '\n== %s\n' "$*"; }

say "Starting the hub: deltasync serve --db hub.db --listen 127.0.0.1:0 (a free port)"
"$CLI" serve --db hub.db --listen 127.0.0.1:0 --auto-create-nodes > hub.log 2>&1 &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "listening on" hub.log 2>/dev/null && break
  sleep 0.1
done
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' hub.log | head -1)
[ -n "$PORT" ] || { echo "the hub did not start:"; cat hub.log; exit 1; }
URL="http://127.0.0.1:$PORT/nodes/shops"
echo "hub up; the shops sync with $URL"

# Runs SQL on one shop: a SQLite file with the extension loaded, or (shop_pg) the
# PostgreSQL database.
site() {
  local db=$1; shift
  if [ "$db" = shop_pg ]; then psql -XAtq -v ON_ERROR_STOP=1 -d shop_pg -c "$*"
  else sqlite3 -bail -cmd ".load $EXT" "$db.db" "$@"; fi
}
sync() { printf '%s syncs: %s\n' "$1" "$(site "$1" "SELECT deltasync_sync('$URL');")"; }
SHOPS="shop_a shop_b shop_c shop_pg"
show() {
  for s in $SHOPS; do
    printf -- '-- %s\n' "$s"
    if [ "$s" = shop_pg ]; then psql -Xq -d shop_pg -c "SELECT sku, name, qty, price FROM inventory ORDER BY sku;"
    else site "$s" -header -column "SELECT sku, name, qty, price FROM inventory ORDER BY sku;"; fi
  done
}
# The same rows on both engines: prices compared in cents.
canonical() {
  if [ "$1" = shop_pg ]; then site shop_pg "SELECT string_agg(sku || '|' || name || '|' || coalesce(qty::text, '') || '|' || round(price * 100)::bigint, ',' ORDER BY sku COLLATE \"C\") FROM inventory;"
  else site "$1" "SELECT group_concat(sku || '|' || name || '|' || coalesce(qty, '') || '|' || CAST(round(price * 100) AS INTEGER), ',') FROM (SELECT * FROM inventory ORDER BY sku);"; fi
}

# qty merges as a counter (docs/policies.md): each shop's sales and restocks add up.
COUNTER='{"columns": {"qty": "counter"}}'
# Checks that every shop holds qty $2 for sku $1.
qty_everywhere() {
  local s q
  for s in $SHOPS; do
    q=$(site "$s" "SELECT qty FROM inventory WHERE sku = '$1';")
    [ "$q" = "$2" ] || { echo "MISMATCH: $s holds qty $q of $1, not $2" >&2; exit 1; }
  done
  echo "every shop holds qty $2 of $1: $3"
}

say "Three SQLite shops and a PostgreSQL shop create the same table and start tracking it"
for s in shop_a shop_b shop_c; do
  site "$s" "CREATE TABLE inventory(sku TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', qty INTEGER NOT NULL DEFAULT 0, price REAL);
             SELECT 'site ' || deltasync_site_id() || ' tracks ' || json_extract(deltasync_enable('inventory', '$COUNTER'), '\$.table') || ' (qty: a counter)';"
done
psql -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE shop_pg"
site shop_pg "SET client_min_messages = warning; CREATE EXTENSION deltasync;
  CREATE TABLE inventory(sku text PRIMARY KEY, name text NOT NULL DEFAULT '', qty integer NOT NULL DEFAULT 0, price double precision);
  SELECT 'site ' || deltasync_site_id() || ' (PostgreSQL) tracks ' || (deltasync_enable('inventory', '$COUNTER')->>'table') || ' (qty: a counter)';"

say "Shop A stocks three products; everyone syncs"
site shop_a "INSERT INTO inventory VALUES ('apple', 'Apple', 10, 0.5), ('bread', 'Bread', 5, 2.25), ('cheese', 'Cheese', 2, 7.0);"
for s in $SHOPS; do sync "$s"; done
show

say "Offline, all three edit at once"
site shop_a "UPDATE inventory SET qty = qty - 2 WHERE sku = 'apple';"      && echo "A: sells two apples (qty 10 -> 8 on A)"
site shop_b "UPDATE inventory SET qty = qty - 3 WHERE sku = 'apple';"      && echo "B: sells three apples at the same time (qty 10 -> 7 on B)"
site shop_b "UPDATE inventory SET price = 0.55 WHERE sku = 'apple';"       && echo "B: reprices apples (another column: every edit survives)"
site shop_a "UPDATE inventory SET name = 'Bread (white)' WHERE sku = 'bread';" && echo "A: renames bread"
sleep 0.01
site shop_c "UPDATE inventory SET name = 'Sourdough' WHERE sku = 'bread';" && echo "C: renames bread a moment later (same column: the later write wins)"
site shop_b "DELETE FROM inventory WHERE sku = 'cheese';"                  && echo "B: delists cheese"
site shop_c "UPDATE inventory SET qty = 20 WHERE sku = 'cheese';"          && echo "C: restocks cheese without having seen the delete (the delete wins)"
site shop_c "INSERT INTO inventory VALUES ('dates', 'Dates', 3, 4.5);"     && echo "C: adds dates"
site shop_pg "UPDATE inventory SET qty = qty - 1 WHERE sku = 'bread';"     && echo "PG: sells a loaf (bread qty 5 -> 4; C's rename of the same row survives)"
site shop_pg "INSERT INTO inventory VALUES ('eggs', 'Eggs', 12, 3.2);"     && echo "PG: adds eggs"
show

say "Back online: each shop syncs (push its changes, pull the others'), twice round"
for round in 1 2; do for s in $SHOPS; do sync "$s"; done; done

say "After the sync"
show
a=$(canonical shop_a); b=$(canonical shop_b); c=$(canonical shop_c); p=$(canonical shop_pg)
if [ "$a" = "$b" ] && [ "$b" = "$c" ] && [ "$c" = "$p" ]; then
  echo; echo "All four shops, three on SQLite and one on PostgreSQL, hold identical tables."
  qty_everywhere apple 5 "qty is a counter, so both offline sales count (10 - 2 - 3), where last-writer-wins would keep 8 or 7"
else
  echo; echo "MISMATCH: the shops differ" >&2; printf '%s\n' "$a" "$b" "$c" "$p" >&2; exit 1
fi

# ---- Live sync: nobody calls deltasync_sync from here on ----
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
same_everywhere() {
  local a b c p
  a=$(canonical shop_a); b=$(canonical shop_b); c=$(canonical shop_c); p=$(canonical shop_pg)
  [ "$a" = "$b" ] && [ "$b" = "$c" ] && [ "$c" = "$p" ]
}
# Waits (up to $2 seconds) until every shop holds identical rows; prints how long it took.
await_convergence() {
  local what=$1 limit=$2 t0 t
  t0=$(now_ms)
  while ! same_everywhere; do
    t=$(now_ms)
    if [ $((t - t0)) -gt $((limit * 1000)) ]; then
      echo "MISMATCH: $what did not converge within ${limit}s" >&2
      for s in $SHOPS; do printf '%s: %s\n' "$s" "$(canonical "$s")" >&2; done
      exit 1
    fi
    sleep 0.02
  done
  echo "$what: all four shops identical after $(( $(now_ms) - t0 )) ms, with no sync call"
}
start_hub() {
  "$CLI" serve --db hub.db --listen "127.0.0.1:$PORT" --auto-create-nodes >> hub.log 2>&1 &
  HUB_PID=$!
}

say "Live sync: each SQLite shop stores a schedule and one 'deltasync agent' runs them; the PostgreSQL shop stores one too (its background workers run it)"
for s in shop_a shop_b shop_c; do
  site "$s" "PRAGMA journal_mode=WAL;" "SELECT deltasync_schedule('$URL', '{\"interval_ms\": 5000}');" >/dev/null
done
"$CLI" agent --db shop_a.db --db shop_b.db --db shop_c.db --log-level warn 2> agent.log &
AGENT_PID=$!
trap 'kill $HUB_PID $AGENT_PID 2>/dev/null || true' EXIT
site shop_pg "SELECT deltasync_schedule('$URL', '{\"interval_ms\": 5000}');" >/dev/null
echo "agent running (pid $AGENT_PID); PostgreSQL workers: $(psql -XAtq -d shop_pg -c "SELECT string_agg(backend_type, ', ' ORDER BY backend_type) FROM pg_stat_activity WHERE backend_type LIKE 'deltasync%'")"
sleep 1

say "A sells an apple, PG adds figs: the others see it by themselves"
site shop_a "UPDATE inventory SET qty = qty - 1 WHERE sku = 'apple';" && echo "A: apple qty -1"
site shop_pg "INSERT INTO inventory VALUES ('figs', 'Figs', 6, 5.0);" && echo "PG: adds figs"
await_convergence "live" 30

say "The hub goes down; the shops keep selling offline"
kill -TERM $HUB_PID; wait $HUB_PID 2>/dev/null || true
echo "hub stopped"
site shop_b "UPDATE inventory SET qty = qty - 2 WHERE sku = 'dates';"    && echo "B: sells two dates"
site shop_a "UPDATE inventory SET qty = qty - 1 WHERE sku = 'dates';"    && echo "A: sells the last date (3 - 2 - 1)"
site shop_c "INSERT INTO inventory VALUES ('grapes', 'Grapes', 9, 3.0);" && echo "C: adds grapes"
site shop_pg "UPDATE inventory SET price = 3.5 WHERE sku = 'eggs';"      && echo "PG: reprices eggs"
site shop_a "DELETE FROM inventory WHERE sku = 'figs';"                  && echo "A: delists figs"
sleep 2
if same_everywhere; then echo "MISMATCH: the shops converged without a hub?" >&2; exit 1; fi
echo "the shops differ while the hub is down"

say "The hub comes back (same store, same port): agents and workers retry with backoff and converge"
start_hub
await_convergence "after the outage" 60
show
qty_everywhere dates 0 "both sales made while the hub was down count (3 - 2 - 1)"

say "The hub's view of node 'shops'"
curl -s "http://127.0.0.1:$PORT/nodes/shops/status" 2>/dev/null || site shop_a "SELECT deltasync_status();"
echo
site shop_pg "SELECT deltasync_unschedule('$URL');" >/dev/null
kill -TERM $AGENT_PID; wait $AGENT_PID 2>/dev/null || true
kill -TERM $HUB_PID; wait $HUB_PID 2>/dev/null || true
trap - EXIT
echo "agent and hub stopped"
