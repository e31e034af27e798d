#!/usr/bin/env bash
# Deterministic companion to deltasync_bench_sqlite: the CPU cost of tracking counted in
# instructions (valgrind --tool=callgrind), which does not move with disk or neighbours.
# Each workload runs in the sqlite3 shell with the extension loaded in both cases, as one
# statement in one transaction; the shell's start-up is measured alone and subtracted.
# Usage: bench/instructions.sh [ROWS]   (default 20000; needs valgrind and sqlite3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-20000}
EXT="$(pwd)/${BUILD_DIR:-build}/sqlite_ext/deltasync"
[ -f "$EXT.so" ] || { echo "build first: $EXT.so is missing" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

GEN="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<$ROWS)"
INSERT="BEGIN; $GEN INSERT INTO t SELECT printf('id-%08d', x), 'kotare mubi' || x, x FROM c; COMMIT;"
UPDATE="BEGIN; UPDATE t SET b = b + 1; COMMIT;"

# the table with a json column c (docs/policies.md): a small document per row, one member updated
JSON_TABLE="CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER, c TEXT NOT NULL DEFAULT '{}');"
JSON_INSERT="BEGIN; $GEN INSERT INTO t SELECT printf('id-%08d', x), 'kotare mubi' || x, x, json_object('n', x, 'tags', json_array('a', 'b')) FROM c; COMMIT;"
JSON_UPDATE="BEGIN; UPDATE t SET c = json_set(c, '\$.n', b + 1); COMMIT;"

# count SETUP_SQL WORKLOAD_SQL [PREPARE_SQL]: instructions of the workload statement's process
# (TABLE_SQL, when set, creates the table instead of the default one)
count() {
  rm -f "$DIR/db"
  sqlite3 -cmd ".load $EXT" "$DIR/db" "${TABLE_SQL:-CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER);} $1" >/dev/null
  [ -z "${3:-}" ] || sqlite3 -cmd ".load $EXT" "$DIR/db" "$3" >/dev/null
  valgrind --tool=callgrind --callgrind-out-file="$DIR/cg" sqlite3 -cmd ".load $EXT" "$DIR/db" "$2" 2>&1 >/dev/null |
    awk '/Collected/ {print $4}'
}
base=$(count "" "SELECT 1;")
plain_ins=$(( $(count "" "$INSERT") - base ))
tracked_ins=$(( $(count "SELECT deltasync_enable('t');" "$INSERT") - base ))
plain_upd=$(( $(count "" "$UPDATE" "$INSERT") - base ))
tracked_upd=$(( $(count "SELECT deltasync_enable('t');" "$UPDATE" "$INSERT") - base ))
# the same table with b as a counter column (docs/policies.md): the update is then a sale
COUNTER="SELECT deltasync_enable('t', '{\"columns\": {\"b\": \"counter\"}}');"
counter_ins=$(( $(count "$COUNTER" "$INSERT") - base ))
counter_upd=$(( $(count "$COUNTER" "$UPDATE" "$INSERT") - base ))
JSON="SELECT deltasync_enable('t', '{\"columns\": {\"c\": \"json\"}}');"
json_plain_ins=$(( $(TABLE_SQL="$JSON_TABLE" count "" "$JSON_INSERT") - base ))
json_ins=$(( $(TABLE_SQL="$JSON_TABLE" count "$JSON" "$JSON_INSERT") - base ))
json_plain_upd=$(( $(TABLE_SQL="$JSON_TABLE" count "" "$JSON_UPDATE" "$JSON_INSERT") - base ))
json_upd=$(( $(TABLE_SQL="$JSON_TABLE" count "$JSON" "$JSON_UPDATE" "$JSON_INSERT") - base ))
# apply: the payload of ROWS inserted rows merged into an empty tracked table (decode included),
# against the same rows inserted into a plain table by SQL
sqlite3 -cmd ".load $EXT" "$DIR/src" "CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER);
  SELECT deltasync_enable('t'); $INSERT SELECT writefile('$DIR/payload.json', deltasync_changes(0));" >/dev/null
tracked_apply=$(( $(count "SELECT deltasync_enable('t');" "SELECT length(deltasync_apply(readfile('$DIR/payload.json')));") - base ))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
per_row() { awk -v a="$1" -v n="$ROWS" 'BEGIN { printf "%.0f", a / n }'; }
printf 'instructions for %s rows into t(id TEXT PRIMARY KEY, a TEXT, b INTEGER), one transaction\n' "$ROWS"
printf '%-28s %14s %14s %8s\n' measure plain tracked ratio
printf '%-28s %14s %14s %8s\n' "insert (per row)" "$(per_row $plain_ins)" "$(per_row $tracked_ins)" "$(ratio $tracked_ins $plain_ins)"
printf '%-28s %14s %14s %8s\n' "update one column (per row)" "$(per_row $plain_upd)" "$(per_row $tracked_upd)" "$(ratio $tracked_upd $plain_upd)"
printf '%-28s %14s %14s %8s\n' "insert, b counter" "$(per_row $plain_ins)" "$(per_row $counter_ins)" "$(ratio $counter_ins $plain_ins)"
printf '%-28s %14s %14s %8s\n' "update b, b counter" "$(per_row $plain_upd)" "$(per_row $counter_upd)" "$(ratio $counter_upd $plain_upd)"
printf '%-28s %14s %14s %8s\n' "insert, c json" "$(per_row $json_plain_ins)" "$(per_row $json_ins)" "$(ratio $json_ins $json_plain_ins)"
printf '%-28s %14s %14s %8s\n' "update c member, c json" "$(per_row $json_plain_upd)" "$(per_row $json_upd)" "$(ratio $json_upd $json_plain_upd)"
printf '%-28s %14s %14s %8s\n' "apply into empty (per row)" "$(per_row $plain_ins)" "$(per_row $tracked_apply)" "$(ratio $tracked_apply $plain_ins)"
