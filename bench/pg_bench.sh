#!/usr/bin/env bash
# PostgreSQL benchmark (SPEC section 7): the same 100,000-row workload as the SQLite one,
# into t(id text PRIMARY KEY, a text, b integer), tracked by deltasync versus plain, in the
# same run and the same cluster, and the apply rate into an empty PostgreSQL database.
# Each measure is the median of REPS runs (server-side clock_timestamp, no client time).
#   insert (one statement):  INSERT INTO t SELECT ... FROM generate_series  (one transaction)
#   insert (row by row):     100,000 single-row INSERT statements in one transaction
#   update one column:       UPDATE t SET b = b + 1 (all rows, one statement)
#   apply:                   deltasync_apply of the tracked table's 200,000 column changes
# It starts a throwaway cluster with pg_virtualenv unless PGHOST/PGPORT already point at
# one. Prints ratios; fails only if the data does not arrive. COUNTER=1: b is a counter column
# (docs/policies.md; NOT NULL in both the plain and the tracked table). PARTITIONED=1: t is
# partitioned by hash of id into 4 partitions (in both databases), and two more workloads run:
#   update row by row:       ROWS/10 single-row UPDATE statements in one transaction
#   merge (update every row): MERGE INTO t USING t's keys ... WHEN MATCHED THEN UPDATE
# Usage: [COUNTER=1] [PARTITIONED=1] bench/pg_bench.sh [ROWS] [REPS]   (defaults 100000 and 5)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DELTASYNC_PG_BENCH_INSIDE:-}" ]; then
  export DELTASYNC_PG_BENCH_INSIDE=1
  exec pg_virtualenv -t -- "$0" "$@"
fi
ROWS=${1:-100000}
REPS=${2:-5}
BCOL="b integer"
ENABLE="SELECT deltasync_enable('t');"
if [ "${COUNTER:-0}" = 1 ]; then
  BCOL="b integer NOT NULL"
  ENABLE="SELECT deltasync_enable('t', '{\"columns\": {\"b\": \"counter\"}}');"
fi
CREATE_T="CREATE TABLE t (id text PRIMARY KEY, a text, $BCOL)"
EXTRA=""
if [ "${PARTITIONED:-0}" = 1 ]; then
  CREATE_T="$CREATE_T PARTITION BY HASH (id);"
  for r in 0 1 2 3; do CREATE_T="$CREATE_T CREATE TABLE t_$r PARTITION OF t FOR VALUES WITH (MODULUS 4, REMAINDER $r);"; done
  EXTRA="rowupd merge"
fi
q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE DATABASE bench_src" -c "CREATE DATABASE bench_dst"
for db in bench_src bench_dst; do q -d "$db" -c "CREATE EXTENSION deltasync"; done
q -d bench_src <<SQL
CREATE FUNCTION bench_ms(sql text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN EXECUTE sql; RETURN extract(epoch FROM clock_timestamp() - t0) * 1000; END \$\$;
CREATE FUNCTION bench_rows(n int) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN FOR i IN 1..n LOOP INSERT INTO t VALUES ('id-' || lpad(i::text, 8, '0'), 'kotare mubi' || i, i); END LOOP; END \$\$;
CREATE FUNCTION bench_updates(n int) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN FOR i IN 1..n LOOP UPDATE t SET b = b + 1 WHERE id = 'id-' || lpad(i::text, 8, '0'); END LOOP; END \$\$;
SQL

# One measurement: recreate t (tracked or not), run the workload in one transaction, print ms.
measure() {
  local tracked=$1 workload=$2
  local setup="DROP TABLE IF EXISTS t; $CREATE_T;"
  [ "$tracked" = 1 ] && setup="$setup $ENABLE"
  case $workload in
    bulk) sql="INSERT INTO t SELECT 'id-' || lpad(g::text, 8, '0'), 'kotare mubi' || g, g FROM generate_series(1, $ROWS) g" ;;
    rows) sql="SELECT bench_rows($ROWS)" ;;
    update) setup="$setup INSERT INTO t SELECT 'id-' || lpad(g::text, 8, '0'), 'kotare mubi' || g, g FROM generate_series(1, $ROWS) g; CHECKPOINT;"
            sql="UPDATE t SET b = b + 1" ;;
    rowupd) setup="$setup INSERT INTO t SELECT 'id-' || lpad(g::text, 8, '0'), 'kotare mubi' || g, g FROM generate_series(1, $ROWS) g; CHECKPOINT;"
            sql="SELECT bench_updates($((ROWS / 10)))" ;;
    merge) setup="$setup INSERT INTO t SELECT 'id-' || lpad(g::text, 8, '0'), 'kotare mubi' || g, g FROM generate_series(1, $ROWS) g; CHECKPOINT;"
           sql="MERGE INTO t USING (SELECT id FROM t) AS s ON t.id = s.id WHEN MATCHED THEN UPDATE SET b = t.b + 1" ;;
  esac
  q -d bench_src -c "SET client_min_messages = warning; $setup" >/dev/null
  q -d bench_src -c "VACUUM ANALYZE" >/dev/null 2>&1 || true
  q -d bench_src -c "BEGIN" -c "SELECT bench_ms(\$q\$$sql\$q\$)" -c "COMMIT" | grep -E '^[0-9.]+$'
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "deltasync PostgreSQL benchmark: $ROWS rows, median of $REPS runs ($(psql -XAtc 'SHOW server_version'))$([ "${COUNTER:-0}" = 1 ] && echo ', b a counter')$([ "${PARTITIONED:-0}" = 1 ] && echo ', t partitioned by hash into 4')"
printf '%-26s %12s %12s %8s\n' workload "plain ms" "tracked ms" ratio
for w in bulk rows update $EXTRA; do
  plain=(); tracked=()
  for _ in $(seq "$REPS"); do
    plain+=("$(measure 0 $w)")
    tracked+=("$(measure 1 $w)")
  done
  p=$(printf '%s\n' "${plain[@]}" | median)
  t=$(printf '%s\n' "${tracked[@]}" | median)
  case $w in bulk) name="insert (one statement)";; rows) name="insert (row by row)";; update) name="update one column";;
    rowupd) name="update row by row";; merge) name="merge (update every row)";; esac
  printf '%-26s %12.1f %12.1f %8.2f\n' "$name" "$p" "$t" "$(echo "$t / $p" | bc -l)"
done

# Apply: the tracked table as it stands after the update, into an empty database. The
# payload goes through a file the server reads, so no client or argv limit is involved.
PAYLOAD=$(mktemp /tmp/deltasync_pg_bench.XXXXXX.json)
chmod 644 "$PAYLOAD"
q -d bench_src -c "SELECT deltasync_changes(0)" > "$PAYLOAD"
rates=()
for _ in $(seq "$REPS"); do
  q -d bench_dst -c "SET client_min_messages = warning; DROP TABLE IF EXISTS t; $CREATE_T; $ENABLE" >/dev/null
  out=$(q -d bench_dst <<SQL
CREATE TEMP TABLE p AS SELECT pg_read_file('$PAYLOAD') AS payload;
SELECT clock_timestamp() AS t0 \gset
SELECT deltasync_apply(payload)->>'applied' AS applied FROM p \gset
SELECT :applied || ' ' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000;
SQL
)
  read -r applied ms <<<"$out"
  [ "$applied" -eq $((2 * ROWS)) ] || { echo "apply applied $applied changes, expected $((2 * ROWS))"; exit 1; }
  rates+=("$(echo "$applied / ($ms / 1000)" | bc -l)")
done
rm -f "$PAYLOAD"
printf 'apply into an empty database: %.0f column changes/s (%d changes, JSON decode included)\n' \
  "$(printf '%s\n' "${rates[@]}" | median)" $((2 * ROWS))
