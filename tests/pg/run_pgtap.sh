#!/usr/bin/env bash
# Runs the pgTAP suites against a throwaway cluster: call it under pg_virtualenv (ctest
# does), which sets PGHOST/PGPORT/PGUSER/PGPASSWORD for a fresh cluster. It creates three
# databases with the extension (ds_a runs the tests; ds_b and ds_c are other sites, reached
# with dblink), starts a real hub (`deltasync serve`) on 127.0.0.1 and a listener that accepts
# connections and never answers, and passes their URLs to the suites as psql variables.
# Usage: run_pgtap.sh <path of the deltasync CLI> [suite.sql ...]
set -euo pipefail
CLI=$1
shift
DIR=$(cd "$(dirname "$0")" && pwd)
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=("$DIR"/*.sql)
TMP=$(mktemp -d)
cleanup() {
  kill "${HUB_PID:-}" "${BH_PID:-}" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

for db in ds_a ds_b ds_c; do
  psql -Xq -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
  psql -Xq -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION pgtap; CREATE EXTENSION dblink; CREATE EXTENSION deltasync;"
done

"$CLI" serve --db "$TMP/hub.db" --listen 127.0.0.1:0 --auto-create-nodes >"$TMP/hub.log" 2>&1 &
HUB_PID=$!
perl -MIO::Socket::INET -e '$| = 1; my $s = IO::Socket::INET->new(Listen => 16, LocalAddr => "127.0.0.1:0") or die;
  print $s->sockport, "\n"; my @held; while (my $c = $s->accept) { push @held, $c }' >"$TMP/blackhole.port" &
BH_PID=$!
for _ in $(seq 100); do
  grep -q "listening on" "$TMP/hub.log" 2>/dev/null && [ -s "$TMP/blackhole.port" ] && break
  sleep 0.1
done
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/hub.log" | head -1)
BH=$(head -1 "$TMP/blackhole.port")
[ -n "$PORT" ] && [ -n "$BH" ] || { echo "hub or listener did not start"; cat "$TMP/hub.log"; exit 1; }

OTHER="host=${PGHOST:-localhost} port=${PGPORT:-5432} dbname=ds_b user=${PGUSER:-postgres} password=${PGPASSWORD:-}"
pg_prove --shuffle -d ds_a --set "hub=http://127.0.0.1:$PORT" --set "blackhole=http://127.0.0.1:$BH" --set "other=$OTHER" \
  "${SUITES[@]}"
