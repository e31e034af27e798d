#!/bin/sh
ROOT=$(cd "$(dirname "$0")/../.." && pwd); BUILD=${BUILD:-$ROOT/build}
X=$BUILD/sqlite_ext/deltasync
q() { db=$1; shift; sqlite3 -cmd ".load $X" $db "$@" 2>&1 | cut -c1-300; }
$BUILD/server/deltasync serve --db /tmp/rv/lim/hub.db --listen 127.0.0.1:0 --auto-create-nodes > hub.log 2>&1 &
HP=$!; sleep 1
PORT=$(grep -o '127.0.0.1:[0-9]*' hub.log | head -1); URL="http://$PORT/nodes/lag"
for d in a b; do q $d.db "create table t (id integer primary key, v text)"; q $d.db "select deltasync_enable('t')" >/dev/null; done
q a.db "insert into t values (1, 'one')"; q a.db "select deltasync_sync('$URL')" >/dev/null; q b.db "select deltasync_sync('$URL')" >/dev/null
echo "-- B migrates first: ADD COLUMN w, RENAME v -> name"
q b.db "alter table t add column w text"; q b.db "update t set w = 'from B' where id = 1"
q b.db "alter table t rename column v to name"; q b.db "update t set name = 'renamed on B' where id = 1"
q b.db "select deltasync_sync('$URL')"
q a.db "select deltasync_sync('$URL')"
echo "-- A migrates a day later"
q a.db "alter table t add column w text"; q a.db "alter table t rename column v to name"
q a.db "select deltasync_sync('$URL')"; q b.db "select deltasync_sync('$URL')"
echo "A:"; q a.db "select * from t"; echo "B:"; q b.db "select * from t"
kill $HP
