#!/usr/bin/env bash
# Runs the PostgreSQL suites (pgTAP and the C++ tests) against a server running under
# valgrind memcheck (every backend traced), then lists valgrind errors whose stacks touch
# deltasync. Not part of ctest (it takes minutes); run it after changes to pg_ext/.
# PostgreSQL's own known reports (uninitialised WAL padding passed to write/pwrite64) do not
# name deltasync and are not counted. Needs root (it runs the server as user postgres).
# Usage: tests/pg/valgrind.sh   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(pg_config --bindir)
D=$(mktemp -d /tmp/ds_vg.XXXXXX)  # a name without "deltasync", which the error search looks for
chown postgres "$D"
PORT=5498
su postgres -c "$BIN/initdb -D $D/data -A trust >/dev/null"
su postgres -c "cd $D && nohup valgrind --quiet --trace-children=yes --num-callers=30 --log-file=$D/vg.%p.log \
  $BIN/postgres -D $D/data -p $PORT -k $D -c max_connections=20 > $D/server.log 2>&1 &"
stop() { pkill -f "postgres -D $D/data" || true; }
trap stop EXIT
for _ in $(seq 90); do psql -h "$D" -p $PORT -U postgres -XAtc "SELECT 1" >/dev/null 2>&1 && break; sleep 2; done
export PGHOST=$D PGPORT=$PORT PGUSER=postgres
tests/pg/run_pgtap.sh "${BUILD_DIR:-build}/server/deltasync"
"${BUILD_DIR:-build}/tests/deltasync_pg_tests" --gtest_filter=-PgHubs.*  # those restart a pg_virtualenv cluster
stop
sleep 3
bad=$(grep -l "deltasync" "$D"/vg.*.log || true)
echo "valgrind logs: $(ls "$D"/vg.*.log | wc -l) processes; with deltasync in an error stack: ${bad:-none}"
[ -z "$bad" ]
