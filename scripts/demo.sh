#!/usr/bin/env bash
# The main job, end to end: sets everything up, builds deltasync, starts a hub on 127.0.0.1
# with its embedded SQLite store, and has three SQLite shops edit the same table offline
# (the same column on two shops, a delete racing an update), sync through the hub, and
# print their tables, identical. Then it stops the hub.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh >/dev/null
./scripts/build.sh deltasync_sqlite deltasync_cli >/dev/null
ROOT=$(pwd)
EXT="$ROOT/${BUILD_DIR:-build}/sqlite_ext/deltasync"
CLI="$ROOT/${BUILD_DIR:-build}/server/deltasync"
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

# Runs SQL on one shop (a SQLite file) with the extension loaded.
site() { local db=$1; shift; sqlite3 -bail -cmd ".load $EXT" "$db.db" "$@"; }
sync() { printf '%s syncs: %s\n' "$1" "$(site "$1" "SELECT deltasync_sync('$URL');")"; }
show() {
  for s in shop_a shop_b shop_c; do
    printf -- '-- %s\n' "$s"
    site "$s" -header -column "SELECT sku, name, qty, price FROM inventory ORDER BY sku;"
  done
}

say "Three shops create the same table and start tracking it"
for s in shop_a shop_b shop_c; do
  site "$s" "CREATE TABLE inventory(sku TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', qty INTEGER, price REAL);
             SELECT 'site ' || deltasync_site_id() || ' tracks ' || json_extract(deltasync_enable('inventory'), '\$.table');"
done

say "Shop A stocks three products; everyone syncs"
site shop_a "INSERT INTO inventory VALUES ('apple', 'Apple', 10, 0.5), ('bread', 'Bread', 5, 2.25), ('cheese', 'Cheese', 2, 7.0);"
sync shop_a; sync shop_b; sync shop_c
show

say "Offline, all three edit at once"
site shop_a "UPDATE inventory SET qty = 8 WHERE sku = 'apple';"            && echo "A: sells two apples (qty 10 -> 8)"
site shop_b "UPDATE inventory SET price = 0.55 WHERE sku = 'apple';"       && echo "B: reprices apples (another column: both edits survive)"
site shop_a "UPDATE inventory SET name = 'Bread (white)' WHERE sku = 'bread';" && echo "A: renames bread"
sleep 0.01
site shop_c "UPDATE inventory SET name = 'Sourdough' WHERE sku = 'bread';" && echo "C: renames bread a moment later (same column: the later write wins)"
site shop_b "DELETE FROM inventory WHERE sku = 'cheese';"                  && echo "B: delists cheese"
site shop_c "UPDATE inventory SET qty = 20 WHERE sku = 'cheese';"          && echo "C: restocks cheese without having seen the delete (the delete wins)"
site shop_c "INSERT INTO inventory VALUES ('dates', 'Dates', 3, 4.5);"     && echo "C: adds dates"
show

say "Back online: each shop syncs (push its changes, pull the others'), twice round"
for round in 1 2; do sync shop_a; sync shop_b; sync shop_c; done

say "After the sync"
show
a=$(site shop_a "SELECT * FROM inventory ORDER BY sku;")
b=$(site shop_b "SELECT * FROM inventory ORDER BY sku;")
c=$(site shop_c "SELECT * FROM inventory ORDER BY sku;")
if [ "$a" = "$b" ] && [ "$b" = "$c" ]; then
  echo; echo "All three shops hold identical tables."
else
  echo; echo "MISMATCH: the shops differ" >&2; exit 1
fi
say "The hub's view of node 'shops'"
curl -s "http://127.0.0.1:$PORT/nodes/shops/status" 2>/dev/null || site shop_a "SELECT deltasync_status();"
echo
kill -TERM $HUB_PID; wait $HUB_PID 2>/dev/null || true
trap - EXIT
echo "hub stopped"
