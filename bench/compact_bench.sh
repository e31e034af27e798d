#!/usr/bin/env bash
# Metadata on a churn workload before and after compaction (docs/operations.md): ROWS
# inserts on one SQLite site, 90% of them deleted, synced through `deltasync serve`
# (embedded SQLite store) with a second site, then the hub compacted, then both sites sync
# until their frontier marks cover the deletes and each compacts by itself after a pull
# (deltasync_compact, docs/operations.md "Compaction on sites"). Prints metadata bytes per
# live row and per deleted row on the hub and on a site, before and after. Bytes are b-tree
# pages (dbstat), so they include SQLite's own overhead.
# Usage: bench/compact_bench.sh [ROWS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
DELETED=$((ROWS * 9 / 10))
LIVE=$((ROWS - DELETED))
EXT="$(pwd)/${BUILD_DIR:-build}/sqlite_ext/deltasync"
CLI="$(pwd)/${BUILD_DIR:-build}/server/deltasync"
[ -f "$EXT.so" ] && [ -x "$CLI" ] || { echo "build first (deltasync_sqlite, deltasync_cli)" >&2; exit 1; }
DIR=$(mktemp -d)
HUB_PID=
cleanup() { [ -z "$HUB_PID" ] || kill "$HUB_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
ADMIN=bench-admin
echo "{\"admin_token\": \"$ADMIN\", \"compact_interval_s\": 0}" > "$DIR/hub.json"
"$CLI" serve --db "$DIR/hub.db" --listen 127.0.0.1:0 --auto-create-nodes --config "$DIR/hub.json" > "$DIR/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$DIR/hub.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/hub.log" | head -1)
[ -n "$PORT" ] || { cat "$DIR/hub.log"; exit 1; }
URL="http://127.0.0.1:$PORT/nodes/churn"
site() { local db=$1; shift; sqlite3 -bail -cmd ".load $EXT" "$db" "$@"; }
OPTS='{"batch_rows": 10000, "timeout_ms": 600000}'
SCHEMA="CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT, b INTEGER); SELECT deltasync_enable('t');"
# Bytes of the b-tree pages of the named tables and indexes of a database file.
pages() { sqlite3 "$1" "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ($2);"; }
HUB_META="'hub_rows', 'hub_rows_seq', 'hub_graves'"
SITE_META="'t__deltasync_meta'"

echo "deltasync compaction benchmark: $ROWS inserts, $DELETED deletes ($LIVE live rows)"
site "$DIR/a.db" "$SCHEMA" >/dev/null
site "$DIR/b.db" "$SCHEMA" >/dev/null
site "$DIR/a.db" "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<$ROWS)
  INSERT INTO t SELECT printf('id-%08d', x), 'kotare mubi' || x, x FROM c; COMMIT;"
site "$DIR/a.db" "SELECT deltasync_sync('$URL', '$OPTS');" >/dev/null
site "$DIR/b.db" "SELECT deltasync_sync('$URL', '$OPTS');" >/dev/null
# Live metadata alone, for reference: before any delete.
hub_live=$(pages "$DIR/hub.db" "$HUB_META")
site "$DIR/b.db" "VACUUM INTO '$DIR/b_live.db';" >/dev/null
site_live=$(pages "$DIR/b_live.db" "$SITE_META")
site "$DIR/a.db" "DELETE FROM t WHERE CAST(substr(id, 4) AS INTEGER) % 10 != 0;"
site "$DIR/a.db" "SELECT deltasync_sync('$URL', '$OPTS');" >/dev/null
# The sites' tombstones before compaction: b has pulled the deletes, neither can compact
# yet (b has not reported its cursor past them).
site "$DIR/b.db" "SELECT deltasync_pull('$URL', '$OPTS');" >/dev/null
for s in a b; do site "$DIR/$s.db" "VACUUM INTO '$DIR/${s}_before.db';" >/dev/null; done
site_before=$(pages "$DIR/b_before.db" "$SITE_META")
a_before=$(pages "$DIR/a_before.db" "$SITE_META")
# Both sites pull twice: the second pull reports the cursor past the deletes (the frontier).
for s in a b a; do site "$DIR/$s.db" "SELECT deltasync_pull('$URL', '$OPTS');" >/dev/null; done
live=$(site "$DIR/b.db" "SELECT count(*) FROM t;")
[ "$live" = "$LIVE" ] || { echo "site b holds $live rows, expected $LIVE"; exit 1; }
sqlite3 "$DIR/hub.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
hub_before=$(pages "$DIR/hub.db" "$HUB_META")
t0=$(date +%s%3N)
answer=$(curl -s -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Length: 0' "http://127.0.0.1:$PORT/nodes/churn/compact")
t1=$(date +%s%3N)
# Then full syncs until a pull of b compacts by itself (a may have already).
site_auto=""
for round in 1 2 3 4; do
  for s in a b; do
    t2=$(date +%s%3N)
    r=$(site "$DIR/$s.db" "SELECT deltasync_sync('$URL', '$OPTS');")
    t3=$(date +%s%3N)
    if [ "$s" = b ] && [ -z "$site_auto" ] && echo "$r" | grep -q '"compacted"'; then
      site_auto="round $round: $(echo "$r" | sed 's/.*"compacted":\({[^}]*}[^}]*}\).*/\1/'), sync with it $((t3 - t2)) ms"
    fi
  done
done
[ -n "$site_auto" ] || { echo "site b never compacted by itself"; exit 1; }
explicit=$(site "$DIR/b.db" "SELECT deltasync_compact();")
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=
sqlite3 "$DIR/hub.db" "VACUUM;"
hub_after=$(pages "$DIR/hub.db" "$HUB_META")
graves=$(pages "$DIR/hub.db" "'hub_graves'")
site "$DIR/b.db" "VACUUM;" >/dev/null
site_meta=$(pages "$DIR/b.db" "$SITE_META")
site "$DIR/a.db" "VACUUM;" >/dev/null
a_after=$(pages "$DIR/a.db" "$SITE_META")
live=$(site "$DIR/b.db" "SELECT count(*) FROM t;")
[ "$live" = "$LIVE" ] || { echo "site b holds $live rows after compaction, expected $LIVE"; exit 1; }

per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }
echo "compact: $((t1 - t0)) ms  $answer"
echo "hub metadata (hub_rows, its sequence index, hub_graves), bytes:"
echo "  $LIVE live rows only (before the deletes):  $hub_live  = $(per "$hub_live" "$ROWS") per row of $ROWS"
echo "  before compaction: $hub_before  = $(per "$hub_before" "$LIVE") per live row;" \
     "$(per "$((hub_before - hub_live * LIVE / ROWS))" "$DELETED") per deleted row"
echo "  after compaction (VACUUM):  $hub_after  = $(per "$hub_after" "$LIVE") per live row;" \
     "$(per "$((hub_after - hub_live * LIVE / ROWS))" "$DELETED") per deleted row"
echo "  after / before: $(awk -v a="$hub_after" -v b="$hub_before" 'BEGIN { printf "%.3f", a / b }')"
echo "  of which graves (key and causal length of each dropped tombstone): $graves = $(per "$graves" "$DELETED") per deleted row"
echo "site b metadata (t__deltasync_meta, VACUUMed; b received the deletes), bytes:"
echo "  $ROWS live rows (before the deletes): $site_live = $(per "$site_live" "$ROWS") per live row"
echo "  before compaction: $site_before = $(per "$site_before" "$LIVE") per live row;" \
     "$(per "$((site_before - site_live * LIVE / ROWS))" "$DELETED") per deleted row (a tombstone)"
echo "  after compaction:  $site_meta = $(per "$site_meta" "$LIVE") per live row;" \
     "$(per "$((site_meta - site_live * LIVE / ROWS))" "$DELETED") per deleted row (a grave)"
echo "  after / before: $(awk -v a="$site_meta" -v b="$site_before" 'BEGIN { printf "%.3f", a / b }')"
echo "  compacted by itself after a pull, $site_auto"
echo "  deltasync_compact() afterwards: $explicit"
echo "site a metadata (a made the deletes: its tombstones carry their clock), bytes:"
echo "  before compaction: $a_before = $(per "$a_before" "$LIVE") per live row;" \
     "$(per "$((a_before - site_live * LIVE / ROWS))" "$DELETED") per deleted row"
echo "  after compaction:  $a_after = $(per "$a_after" "$LIVE") per live row;" \
     "$(per "$((a_after - site_live * LIVE / ROWS))" "$DELETED") per deleted row"
echo "  after / before: $(awk -v a="$a_after" -v b="$a_before" 'BEGIN { printf "%.3f", a / b }')"
