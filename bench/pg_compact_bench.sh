#!/usr/bin/env bash
# Metadata of a PostgreSQL site on a churn workload before and after compaction
# (docs/operations.md, "Compaction on sites"): ROWS inserts into t(id text PRIMARY KEY, a
# text, b integer), 90% of them deleted, then deltasync_compact('{"direct_up_to": V}') (the
# bound a hub's frontier gives is tested elsewhere; here only the bytes). Prints the shadow
# table's bytes (heap and primary key, pg_total_relation_size after VACUUM FULL) per live row
# before the deletes, per deleted row before compaction (a tombstone) and after (a grave),
# and the time the compaction took. It starts a throwaway cluster with pg_virtualenv unless
# DELTASYNC_PG_BENCH_INSIDE is set (PGHOST/PGPORT then point at one).
# Usage: bench/pg_compact_bench.sh [ROWS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DELTASYNC_PG_BENCH_INSIDE:-}" ]; then
  export DELTASYNC_PG_BENCH_INSIDE=1
  exec pg_virtualenv -t -- "$0" "$@"
fi
ROWS=${1:-1000000}
DELETED=$((ROWS * 9 / 10))
LIVE=$((ROWS - DELETED))
q() { psql -XAtq -v ON_ERROR_STOP=1 -d bench_compact "$@"; }
psql -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE bench_compact"
q -c "CREATE EXTENSION deltasync"
q -c "SET client_min_messages = warning; CREATE TABLE t (id text PRIMARY KEY, a text, b integer); SELECT deltasync_enable('t')" >/dev/null
META="deltasync.meta_$(q -c "SELECT id FROM deltasync.tables WHERE name = 't'")"
bytes() { q -c "VACUUM FULL $META" && q -c "SELECT pg_total_relation_size('$META')"; }
per() { echo "scale=1; $1 / $2" | bc; }

echo "deltasync PostgreSQL compaction benchmark: $ROWS inserts, $DELETED deletes ($LIVE live rows)"
q -c "INSERT INTO t SELECT 'id-' || lpad(g::text, 8, '0'), 'kotare mubi' || g, g FROM generate_series(1, $ROWS) AS g"
live=$(bytes)
q -c "DELETE FROM t WHERE substr(id, 4)::int % 10 <> 0"
before=$(bytes)
V=$(q -c "SELECT deltasync_db_version()")
t0=$(date +%s%3N)
answer=$(q -c "SELECT deltasync_compact('{\"direct_up_to\": $V}')")
t1=$(date +%s%3N)
after=$(bytes)
graves=$(q -c "SELECT count(*) FROM $META WHERE ver IS NULL")
[ "$graves" = "$DELETED" ] || { echo "$graves graves, expected $DELETED: $answer"; exit 1; }
[ "$(q -c "SELECT count(*) FROM t")" = "$LIVE" ] || { echo "live rows changed"; exit 1; }
live_row=$(per "$live" "$ROWS")
printf '%-44s %12s %12s\n' "shadow table meta_N (heap + primary key)" "before" "after"
printf '%-44s %12s %12s\n' "total bytes" "$before" "$after"
printf '%-44s %12s %12s\n' "per deleted row (live rows at $live_row each)" \
  "$(per "$((before - LIVE * live / ROWS))" "$DELETED")" "$(per "$((after - LIVE * live / ROWS))" "$DELETED")"
printf '%-44s %12s %12s\n' "per live row, all of it counted" "$(per "$before" "$LIVE")" "$(per "$after" "$LIVE")"
echo "a live row alone (before the deletes): $live_row bytes"
echo "compaction of $DELETED tombstones: $((t1 - t0)) ms ($answer)"
