#!/usr/bin/env bash
# PostgreSQL's own regression suite with every table auto-tracked (issue 12), against a run
# without deltasync. Optional and heavy (not run by ctest): about 2 x 10 minutes here.
#
# 1. Fetches Debian's postgresql-15 source package with apt-get source through a private
#    deb-src list (nothing under /etc/apt changes): the installed server's version, else the
#    nearest version the archive still serves.
# 2. Builds the suite's C helpers (regress.so, and autoinc.so / refint.so from contrib/spi).
# 3. Runs src/test/regress/parallel_schedule serially (--max-connections=1), with pg_regress
#    of postgresql-server-dev-15, twice in one throwaway cluster (pg_virtualenv):
#    - "plain": a database as pg_regress makes it;
#    - "tracked": the same with CREATE EXTENSION deltasync and an event trigger that calls
#      deltasync_enable for every new table with a primary key (each attempt is logged:
#      tracked, or refused with deltasync's message).
# 4. Prints: tests whose output differs between the runs (with the diff in the work
#    directory), tables tracked and refused (by reason), tables broken at the end, and the
#    time of each run.
#
# The extension must be installed (cmake --install build --component pg, under the PG lock
# of the preamble); the runs themselves do not need the lock, but another checkout installing
# meanwhile replaces the .so under a running suite, so the script says whether the installed
# module is still the one it started with.
# Usage: tests/review/pg_regress_suite.sh [WORKDIR]   (default /tmp/deltasync_pg_regress)
set -euo pipefail
WORK=${1:-/tmp/deltasync_pg_regress}
if [ -z "${DELTASYNC_REGRESS_INSIDE:-}" ]; then
  mkdir -p "$WORK"
  WORK=$(cd "$WORK" && pwd)
  PKG=postgresql-15
  SRC=$(ls -d "$WORK"/postgresql-15.*/ 2>/dev/null | head -1 || true)
  if [ -z "$SRC" ]; then
    APT=(-o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache")
    mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial"
    printf '%s\n' 'deb-src http://deb.debian.org/debian bookworm main' \
      'deb-src http://deb.debian.org/debian-security bookworm-security main' \
      'deb-src http://deb.debian.org/debian bookworm-updates main' > "$WORK/sources.list"
    apt-get "${APT[@]}" update >"$WORK/apt-update.log" 2>&1
    WANT=$(dpkg-query -W -f '${Version}' "$PKG" 2>/dev/null || true)
    # The installed version first, then the others nearest to it (newest first).
    mapfile -t VERSIONS < <(apt-cache "${APT[@]}" showsrc "$PKG" | sed -n 's/^Version: //p' | sort -uVr)
    ORDER=()
    for v in "${VERSIONS[@]}"; do [ "$v" = "$WANT" ] && ORDER+=("$v"); done
    for v in "${VERSIONS[@]}"; do [ "$v" != "$WANT" ] && ORDER+=("$v"); done
    for v in "${ORDER[@]}"; do
      echo "fetching $PKG $v (installed: ${WANT:-none})"
      if (cd "$WORK" && apt-get "${APT[@]}" source --download-only "$PKG=$v" >"$WORK/apt-source.log" 2>&1); then
        tar -C "$WORK" -xjf "$WORK/${PKG}_${v%%-*}.orig.tar.bz2"
        break
      fi
      echo "  not served: $(grep -m1 -o '404.*' "$WORK/apt-source.log" || tail -1 "$WORK/apt-source.log")"
    done
    SRC=$(ls -d "$WORK"/postgresql-15.*/ | head -1)
  fi
  SRC=${SRC%/}
  echo "source: $SRC"
  # The suite's C functions, built against the installed server's headers.
  DL="$WORK/dl"
  mkdir -p "$DL"
  INC=$(pg_config --includedir-server)
  for c in "$SRC/src/test/regress/regress.c" "$SRC/contrib/spi/autoinc.c" "$SRC/contrib/spi/refint.c"; do
    n=$(basename "$c" .c)
    [ -f "$DL/$n.so" ] || cc -O2 -fPIC -shared -I"$INC" -o "$DL/$n.so" "$c"
  done
  export DELTASYNC_REGRESS_INSIDE=1 DELTASYNC_REGRESS_SRC=$SRC DELTASYNC_REGRESS_DL=$DL
  exec pg_virtualenv -t -- "$0" "$WORK"
fi

SRC=$DELTASYNC_REGRESS_SRC
DL=$DELTASYNC_REGRESS_DL
REGRESS=$(pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress
BIN=$(pg_config --bindir)
MODULE=$(pg_config --pkglibdir)/deltasync.so
SUM0=$(md5sum "$MODULE" | cut -d' ' -f1)
LOG=$(ls "${PG_CLUSTER_CONF_ROOT%/*}"/log/*.log | head -1)
q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }

# The database pg_regress would create (pg_regress.c, create_database), made here so the
# tracked run can add deltasync before the first test.
make_db() {
  q -d postgres -c "DROP DATABASE IF EXISTS regression" -c "CREATE DATABASE regression TEMPLATE=template0 ENCODING='UTF8'"
  q -d regression -c "ALTER DATABASE regression SET lc_messages TO 'C'" -c "ALTER DATABASE regression SET lc_monetary TO 'C'" \
    -c "ALTER DATABASE regression SET lc_numeric TO 'C'" -c "ALTER DATABASE regression SET lc_time TO 'C'" \
    -c "ALTER DATABASE regression SET bytea_output TO 'hex'" -c "ALTER DATABASE regression SET timezone_abbreviations TO 'Default'"
}

# Both runs write into $WORK/out (file names in the output are then the same) and are moved
# to $WORK/<name> afterwards.
run_suite() {
  local name=$1 out="$WORK/out"
  rm -rf "$out" "${WORK:?}/$name"
  mkdir -p "$out/results"
  chmod 777 "$out" "$out/results"  # the server (user postgres) writes COPY files and tablespaces there
  local t0 t1
  t0=$(date +%s.%N)
  "$REGRESS" --use-existing --inputdir="$SRC/src/test/regress" --outputdir="$out" --bindir="$BIN" --dlpath="$DL" \
    --schedule="$SRC/src/test/regress/parallel_schedule" --max-connections=1 >"$out/run.log" 2>&1 || true
  t1=$(date +%s.%N)
  mv "$out" "$WORK/$name"
  out="$WORK/$name"
  echo "$t1 - $t0" | bc -l >"$out/seconds"
  echo "$name: $(grep -c '\.\.\. ok' "$out/run.log" || true) ok, $(grep -c '\.\.\. FAILED' "$out/run.log" || true) failed against PostgreSQL's expected output, $(printf '%.0f' "$(cat "$out/seconds")") s"
}

make_db
run_suite plain

make_db
START=$(wc -l <"$LOG")
q -d regression <<'SQL'
CREATE EXTENSION deltasync;
-- Every new table with a primary key: deltasync_enable, logged either way (server log only).
-- Tests create tables as roles of their own, which then enable them as their owners; the
-- function names deltasync_enable with its schema and runs with its own search_path (tests
-- set theirs). (Not SECURITY DEFINER: opr_sanity lists such functions.)
GRANT EXECUTE ON FUNCTION deltasync_enable(text, jsonb) TO PUBLIC;
CREATE FUNCTION deltasync.regress_autotrack() RETURNS event_trigger LANGUAGE plpgsql
  SET search_path = pg_catalog, public AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' AND object_type = 'table' LOOP
    -- (A partition is covered by its partitioned table, which is what gets tracked.)
    IF EXISTS (SELECT 1 FROM pg_index WHERE indrelid = r.objid AND indisprimary)
       AND NOT (SELECT relispartition FROM pg_class WHERE oid = r.objid) THEN
      BEGIN
        PERFORM public.deltasync_enable(r.object_identity);
        RAISE LOG 'regress_autotrack tracked %', r.object_identity;
      EXCEPTION WHEN others THEN
        RAISE LOG 'regress_autotrack refused % [%]: %', r.object_identity, SQLSTATE, SQLERRM;
      END;
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER deltasync_regress_autotrack ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION deltasync.regress_autotrack();
SQL
run_suite tracked
tail -n +"$START" "$LOG" >"$WORK/tracked/server.log"

# What changed between the runs: the result files compared test by test.
: >"$WORK/changed.diff"
CHANGED=()
for f in "$WORK"/plain/results/*.out; do
  n=$(basename "$f" .out)
  if ! cmp -s "$f" "$WORK/tracked/results/$n.out"; then
    CHANGED+=("$n")
    diff -u "$f" "$WORK/tracked/results/$n.out" >>"$WORK/changed.diff" || true
  fi
done
echo "tests whose output changed with deltasync: ${#CHANGED[@]} of $(ls "$WORK"/plain/results/*.out | wc -l): ${CHANGED[*]:-}"
echo "  (diffs: $WORK/changed.diff)"
TRACKED=$(grep -c 'regress_autotrack tracked' "$WORK/tracked/server.log" || true)
REFUSED=$(grep -c 'regress_autotrack refused' "$WORK/tracked/server.log" || true)
echo "tables: $TRACKED tracked, $REFUSED refused by deltasync_enable; refusals by reason:"
grep -o 'regress_autotrack refused .*' "$WORK/tracked/server.log" | sed -E 's/^regress_autotrack refused [^[]*//; s/"[^"]*"/"…"/g; s/[0-9]+/N/g' |
  sort | uniq -c | sort -rn | head -20
echo "PANIC / assertion / crash lines in the server log: $(grep -cE 'PANIC|TRAP:|terminated by signal' "$WORK/tracked/server.log" || true)"
echo "at the end: $(q -d regression -c "SELECT count(*) FILTER (WHERE t->>'state' = 'tracked') || ' tables tracked, ' ||
  count(*) FILTER (WHERE t->>'state' = 'broken') || ' broken' FROM jsonb_array_elements(deltasync_status()->'tables') AS t" 2>&1 | tail -1)"
q -d regression -c "SELECT t->>'table', t->>'error' FROM jsonb_array_elements(deltasync_status()->'tables') AS t WHERE t->>'state' = 'broken'" 2>/dev/null | head -20 || true
P=$(cat "$WORK/plain/seconds")
T=$(cat "$WORK/tracked/seconds")
printf 'time: plain %.0f s, tracked %.0f s (%.1f%% slower)\n' "$P" "$T" "$(echo "($T / $P - 1) * 100" | bc -l)"
[ "$(md5sum "$MODULE" | cut -d' ' -f1)" = "$SUM0" ] || echo "WARNING: $MODULE was replaced during the run"
