#!/usr/bin/env bash
# Fails when a file under common/ includes an engine header (SQLite or PostgreSQL).
set -u
dir=${1:?usage: no_engine_headers.sh DIR}
hits=$(grep -rnE '#\s*include\s*[<"](sqlite3|sqlite3ext|postgres|fmgr|executor/|utils/|access/|catalog/|libpq)' "$dir")
if [ -n "$hits" ]; then
  echo "engine headers in $dir:"; echo "$hits"; exit 1
fi
echo "common/ includes no engine header"
