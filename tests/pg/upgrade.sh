#!/usr/bin/env bash
# ALTER EXTENSION deltasync UPDATE from every earlier version PostgreSQL has scripts for:
# a site's data and metadata survive (its changes read back the same), the upgraded
# database has exactly the objects of a fresh install (tests/pg/catalog.psql), and it keeps
# capturing and syncing. Run under pg_virtualenv (ctest does).
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
current=$(q -d postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'deltasync'")
olds=$(q -d postgres -c "SELECT version FROM pg_available_extension_versions WHERE name = 'deltasync' AND version <> '$current' ORDER BY 1")
[ -n "$olds" ] || { echo "no earlier version of deltasync is installed"; exit 1; }

q -d postgres -c "CREATE DATABASE up_fresh"
q -d up_fresh -c "CREATE EXTENSION deltasync"
q -d up_fresh -f "$DIR/catalog.psql" >"$TMP/fresh.catalog"

fail=0
for old in $olds; do
  db="up_from_${old//./_}"
  echo "# from $old to $current"
  q -d postgres -c "CREATE DATABASE $db"
  q -d "$db" -c "CREATE EXTENSION deltasync VERSION '$old'"
  # What a site of the old version holds: tracked tables with NOT NULL and composite keys,
  # updates, deletes, a re-insert.
  q -d "$db" >/dev/null <<'SQL'
CREATE TABLE product (id bigint PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL, price numeric(8, 2), stock int NOT NULL);
CREATE TABLE line (order_id text NOT NULL, n int NOT NULL, qty int NOT NULL, PRIMARY KEY (order_id, n));
SELECT deltasync_enable('product');
SELECT deltasync_enable('line');
INSERT INTO product VALUES (1, 'A-1', 'apple', 1.50, 10), (2, 'B-2', 'banana', 0.25, 20), (3, 'C-3', 'cherry', NULL, 0);
INSERT INTO line VALUES ('o1', 1, 2), ('o1', 2, 5);
UPDATE product SET stock = stock - 2 WHERE id = 1;
DELETE FROM line WHERE n = 2;
DELETE FROM product WHERE id = 3;
INSERT INTO product VALUES (3, 'C-3', 'cranberry', 2.00, 7);
SQL
  # That ran in the window between installing the new module and updating the catalog: the
  # application's writes and DDL keep working there; functions that need the new catalog say
  # what to run.
  q -d "$db" -c "CREATE TABLE scratch (id int PRIMARY KEY); ALTER TABLE scratch ADD COLUMN v text; DROP TABLE scratch"
  for f in "deltasync_status()" "deltasync_apply(deltasync_changes(0))"; do
    if out=$(q -d "$db" -c "SELECT $f" 2>&1); then echo "not ok: $f on the old catalog: $out"; fail=1;
    elif [[ "$out" == *"run ALTER EXTENSION deltasync UPDATE"* ]]; then echo "ok: $f on the old catalog says to update";
    else echo "not ok: $f on the old catalog failed with: $out"; fail=1; fi
  done
  before=$(q -d "$db" -c "SELECT deltasync_changes(0)")
  q -d "$db" -c "ALTER EXTENSION deltasync UPDATE"
  got=$(q -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'deltasync'")
  [ "$got" = "$current" ] || { echo "not ok: version after the update is $got"; fail=1; }
  after=$(q -d "$db" -c "SELECT deltasync_changes(0)")
  if [ "$before" = "$after" ]; then echo "ok: every change reads back the same"; else
    echo "not ok: changes differ after the update"; echo "before: $before"; echo "after:  $after"; fail=1; fi
  q -d "$db" -f "$DIR/catalog.psql" >"$TMP/$db.catalog"
  if diff -u "$TMP/fresh.catalog" "$TMP/$db.catalog"; then echo "ok: the objects of a fresh install"; else
    echo "not ok: the upgraded catalog differs from a fresh install's (-fresh +upgraded): add the change to sql/deltasync--$old--$current.sql"
    fail=1
  fi
  # The shadow tables left the extension, so pg_dump dumps them (docs/operations.md, "Backups").
  n=$(q -d "$db" -c "SELECT count(*) FROM pg_depend WHERE deptype = 'e' AND classid = 'pg_class'::regclass
    AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'deltasync') AND objid::regclass::text LIKE 'deltasync.meta\_%'")
  if [ "$n" = "0" ]; then echo "ok: no shadow table is an extension member"; else echo "not ok: $n shadow tables are still members"; fail=1; fi
  # It keeps working: status, capture on top, and a sync into a fresh database.
  q -d "$db" -c "SELECT deltasync_status()" >/dev/null
  q -d "$db" -c "UPDATE product SET name = 'crab apple' WHERE id = 1; INSERT INTO line VALUES ('o2', 1, 1)"
  q -d up_fresh -c "SET client_min_messages = warning; DROP TABLE IF EXISTS product, line"
  q -d up_fresh >/dev/null <<'SQL'
CREATE TABLE product (id bigint PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL, price numeric(8, 2), stock int NOT NULL);
CREATE TABLE line (order_id text NOT NULL, n int NOT NULL, qty int NOT NULL, PRIMARY KEY (order_id, n));
SELECT deltasync_enable('product');
SELECT deltasync_enable('line');
SQL
  payload=$(q -d "$db" -c "SELECT deltasync_changes(0)")
  echo "SELECT deltasync_apply(:'p')" | q -d up_fresh -v p="$payload" >/dev/null
  for t in "product ORDER BY id" "line ORDER BY order_id, n"; do
    a=$(q -d "$db" -c "SELECT * FROM $t"); b=$(q -d up_fresh -c "SELECT * FROM $t")
    if [ "$a" = "$b" ]; then echo "ok: ${t%% *} synced"; else echo "not ok: ${t%% *} differs"; echo "$a"; echo "--"; echo "$b"; fail=1; fi
  done
  # The shadow tables the old version made have the columns (and NOT NULLs) of new ones:
  # a grave's version and clock are NULL (docs/operations.md, "Compaction on sites").
  meta_cols() { q -d "$1" -c "SELECT t.name || ' ' || string_agg(a.attname || ':' || a.attnotnull, ',' ORDER BY a.attnum)
    FROM deltasync.tables AS t JOIN pg_attribute AS a ON a.attrelid = ('deltasync.meta_' || t.id)::regclass
    AND a.attnum > 0 AND NOT a.attisdropped GROUP BY t.name ORDER BY t.name"; }
  a=$(meta_cols "$db"); b=$(meta_cols up_fresh)
  if [ "$a" = "$b" ]; then echo "ok: shadow tables as a fresh enable makes them"; else
    echo "not ok: shadow tables differ"; echo "$a"; echo "--"; echo "$b"; fail=1; fi
  r=$(q -d "$db" -c "DELETE FROM line WHERE order_id = 'o2'; SELECT deltasync_compact(format('{\"direct_up_to\": %s}', deltasync_db_version())::jsonb)->>'graves'")
  if [ "$r" = "2" ]; then echo "ok: an upgraded site compacts"; else echo "not ok: an upgraded site compacted $r tombstones, expected 2"; fail=1; fi
  q -d up_fresh -c "SELECT deltasync_disable('product'); SELECT deltasync_disable('line')" >/dev/null
done
exit "$fail"
