#!/bin/sh
ROOT=$(cd "$(dirname "$0")/../.." && pwd); BUILD=${BUILD:-$ROOT/build}
createdb a; createdb x
psql -X -d a -c "CREATE ROLE dsowner SUPERUSER NOLOGIN"
cd /tmp/rv && rm -f hub.db*
$BUILD/server/deltasync serve --db /tmp/rv/hub.db --listen 127.0.0.1:0 --auto-create-nodes > /tmp/rv/hub.log 2>&1 &
echo $! > /tmp/rv/hub.pid
sleep 1
PORT=$(grep -o '127.0.0.1:[0-9]*' /tmp/rv/hub.log | head -1)
URL="http://$PORT/nodes/n1"
PGOPTIONS="-c my.url=$URL" psql -X -d a -v url="$URL" -f "$(dirname "$0")/pg_health_workers.sql" 2>&1
grep -c "not permitted to log in" /var/log/postgresql/*regress*.log
grep -v "not permitted\|exited with exit code 1" /var/log/postgresql/*regress*.log | tail -20
