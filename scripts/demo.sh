#!/usr/bin/env bash
# The main job, end to end: sets everything up, builds deltasync, then has three SQLite
# files edit the same table concurrently, exchange payloads, and print identical tables.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh >/dev/null
./scripts/build.sh deltasync_sqlite >/dev/null
EXT="$(pwd)/${BUILD_DIR:-build}/sqlite_ext/deltasync"
OUT=${DEMO_DIR:-$(pwd)/demo-out}
rm -rf "$OUT" && mkdir -p "$OUT" && cd "$OUT"

# Runs SQL on one site (a SQLite file) with the extension loaded.
site() { local db=$1; shift; sqlite3 -bail -cmd ".load $EXT" "$db.db" "$@"; }
say() { printf '\n== %s\n' "$*"; }
show() {
  for s in shop_a shop_b shop_c; do
    printf -- '-- %s\n' "$s"
    site "$s" -header -column "SELECT sku, name, qty, price FROM inventory ORDER BY sku;"
  done
}
# Sends everything site $1 holds to site $2, as a payload file.
send() {
  site "$1" "SELECT deltasync_changes(0);" > "$1.payload.json"
  printf '%s -> %s (%s bytes): %s\n' "$1" "$2" "$(stat -c %s "$1.payload.json")" \
    "$(site "$2" "SELECT deltasync_apply(readfile('$1.payload.json'));")"
}

say "Three shops create the same table and start tracking it"
for s in shop_a shop_b shop_c; do
  site "$s" "CREATE TABLE inventory(sku TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', qty INTEGER, price REAL);
             SELECT 'site ' || deltasync_site_id() || ': ' || deltasync_enable('inventory');"
done

say "Shop A stocks three products and the other shops receive them"
site shop_a "INSERT INTO inventory VALUES ('apple', 'Apple', 10, 0.5), ('bread', 'Bread', 5, 2.25), ('cheese', 'Cheese', 2, 7.0);"
send shop_a shop_b
send shop_a shop_c
show

say "Offline, all three edit at once"
site shop_a "UPDATE inventory SET qty = 8 WHERE sku = 'apple';"            && echo "A: sells two apples (qty 10 -> 8)"
site shop_b "UPDATE inventory SET price = 0.55 WHERE sku = 'apple';"       && echo "B: reprices apples (different column: both edits survive)"
site shop_a "UPDATE inventory SET name = 'Bread (white)' WHERE sku = 'bread';" && echo "A: renames bread"
sleep 0.01
site shop_c "UPDATE inventory SET name = 'Sourdough' WHERE sku = 'bread';" && echo "C: renames bread a moment later (same column: the later write wins)"
site shop_b "DELETE FROM inventory WHERE sku = 'cheese';"                  && echo "B: delists cheese"
site shop_c "UPDATE inventory SET qty = 20 WHERE sku = 'cheese';"          && echo "C: restocks cheese, not having seen the delete (the delete wins)"
site shop_c "INSERT INTO inventory VALUES ('dates', 'Dates', 3, 4.5);"     && echo "C: adds dates"
show

say "They meet: every shop sends its payload to every other"
for from in shop_a shop_b shop_c; do
  for to in shop_a shop_b shop_c; do
    [ "$from" = "$to" ] || send "$from" "$to"
  done
done

say "After the exchange"
show
a=$(site shop_a "SELECT * FROM inventory ORDER BY sku;")
b=$(site shop_b "SELECT * FROM inventory ORDER BY sku;")
c=$(site shop_c "SELECT * FROM inventory ORDER BY sku;")
if [ "$a" = "$b" ] && [ "$b" = "$c" ]; then
  echo; echo "All three shops hold identical tables."
else
  echo; echo "MISMATCH: the shops differ" >&2; exit 1
fi
