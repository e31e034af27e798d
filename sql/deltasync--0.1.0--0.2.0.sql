-- deltasync 0.1.0 -> 0.2.0 (ALTER EXTENSION deltasync UPDATE). Every change to the install
-- script since 0.1.0 is here too: tests/pg/upgrade.sh checks that an upgraded database has
-- exactly the objects of a fresh install.
\echo Use "ALTER EXTENSION deltasync UPDATE TO '0.2.0'" to load this file. \quit

-- The partitions, at any depth, of tracked partitioned tables: each carries capture
-- triggers that write its tracked table's shadow table.
CREATE TABLE deltasync.members (
  relid regclass PRIMARY KEY,
  table_id integer NOT NULL REFERENCES deltasync.tables (id) ON DELETE CASCADE
);

-- Rows an apply could not write because a constraint refused them, with their changes (a
-- one-row payload), retried by every later apply (docs/applications.md, "Constraints").
CREATE TABLE deltasync.quarantine (
  tbl text NOT NULL,
  key bytea NOT NULL,     -- the row's key in the canonical key encoding
  changes text NOT NULL,
  error text NOT NULL,
  since_ms bigint NOT NULL,
  PRIMARY KEY (tbl, key)
);

-- Per hub, its health: the current failure streak and the last success.
ALTER TABLE deltasync.hubs
  ADD COLUMN last_error text,
  ADD COLUMN last_error_ms bigint,
  ADD COLUMN failing_since_ms bigint,
  ADD COLUMN last_success_ms bigint,
  ADD COLUMN failures bigint NOT NULL DEFAULT 0;

CREATE FUNCTION deltasync.clk_remap(bigint, integer, bytea, integer[]) RETURNS bytea
  AS 'MODULE_PATHNAME', 'deltasync_clk_remap' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION deltasync.clk_remap(bigint, integer, bytea, integer[]) IS
  'deltasync: the clock extras of a shadow row after its tracked columns moved or were dropped';
COMMENT ON FUNCTION deltasync.on_sql_drop() IS 'deltasync: forgets dropped tracked tables and partitions, follows dropped columns';
COMMENT ON FUNCTION deltasync.on_ddl_end() IS
  'deltasync: follows renames, added columns and partitions of tracked tables, refuses DDL capture cannot follow';
-- The DDL event trigger now also sees CREATE TABLE and CREATE SCHEMA (a new partition of a
-- tracked table, also as an element of CREATE SCHEMA).
DROP EVENT TRIGGER deltasync_on_ddl_end;
CREATE EVENT TRIGGER deltasync_on_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE SCHEMA')
  EXECUTE FUNCTION deltasync.on_ddl_end();

CREATE FUNCTION deltasync_quarantine() RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_quarantine' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION deltasync_quarantine() IS 'deltasync: the rows set aside because a constraint refused them';

CREATE FUNCTION deltasync_forget(url text) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_forget' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION deltasync_forget(text) IS 'deltasync: forget a hub: its cursors, echo ranges and health';
-- Forgetting a hub makes the next push to it start over: for the same roles.
REVOKE EXECUTE ON FUNCTION deltasync_forget(text) FROM PUBLIC;

-- Changes of columns this site does not have yet, kept until the column appears: one per
-- (table, column, key), the newest (a one-row, one-change payload) (common/pending_cells).
CREATE TABLE deltasync.pending (
  tbl text NOT NULL,
  col text NOT NULL,
  key bytea NOT NULL,     -- the row's key in the canonical key encoding
  change text NOT NULL,
  since_ms bigint NOT NULL,
  PRIMARY KEY (tbl, col, key)
);

-- Columns of tracked tables this site dropped (now_named NULL: their changes are ignored)
-- or renamed (changes under the old name land in now_named).
CREATE TABLE deltasync.gone_columns (
  table_id integer NOT NULL,
  name text NOT NULL,
  now_named text,
  PRIMARY KEY (table_id, name)
);

CREATE FUNCTION deltasync.clk_readopt(bigint, integer, bytea, bigint, bigint, bigint, integer[]) RETURNS bytea
  AS 'MODULE_PATHNAME', 'deltasync_clk_readopt' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION deltasync.clk_readopt(bigint, integer, bytea, bigint, bigint, bigint, integer[]) IS
  'deltasync: the clock extras of a live shadow row whose renamed columns are sent again under their new name';
CREATE FUNCTION deltasync.clk_added(bigint, integer, bytea, bigint, bigint, bigint, integer[], integer[]) RETURNS bytea
  AS 'MODULE_PATHNAME', 'deltasync_clk_added' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION deltasync.clk_added(bigint, integer, bytea, bigint, bigint, bigint, integer[], integer[]) IS
  'deltasync: the clock extras of a live shadow row after columns were added: a NULL there has no version, a value the smallest real clock';
-- Schedules (deltasync_schedule): per hub, the URL, the options as given (token included:
-- the schema is not readable by PUBLIC), the longest interval between syncs, and the role
-- the schedule's background workers run its calls as (docs/live-sync.md).
CREATE TABLE deltasync.schedules (
  hub text PRIMARY KEY,
  url text NOT NULL,
  options text NOT NULL,
  interval_ms bigint NOT NULL,
  role oid NOT NULL,
  updated_ms bigint NOT NULL
);

CREATE FUNCTION deltasync_schedule(url text, options jsonb DEFAULT NULL) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_schedule' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION deltasync_schedule(text, jsonb) IS
  'deltasync: keep this database in sync with a hub from background workers (stored; replaces the hub''s schedule)';
CREATE FUNCTION deltasync_unschedule(url text) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_unschedule' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION deltasync_unschedule(text) IS 'deltasync: remove the schedule of a hub';
-- A schedule makes the server open HTTP connections as its role, as push/pull do.
REVOKE EXECUTE ON FUNCTION deltasync_schedule(text, jsonb), deltasync_unschedule(text) FROM PUBLIC;

-- Without JIT: compiling their small statements cost a one-row push a second.
ALTER FUNCTION deltasync_changes(bigint) SET jit = off;
ALTER FUNCTION deltasync_apply(text) SET jit = off;
ALTER FUNCTION deltasync_push(text, jsonb) SET jit = off;
ALTER FUNCTION deltasync_pull(text, jsonb) SET jit = off;
ALTER FUNCTION deltasync_sync(text, jsonb) SET jit = off;
ALTER FUNCTION deltasync_status() SET jit = off;

-- Column policies (docs/policies.md): a JSON array of the columns' policies by position of
-- columns ("lww", "counter"), NULL when every column is last-writer-wins.
ALTER TABLE deltasync.tables ADD COLUMN policies text;

-- deltasync_checksum (docs/protocol.md): the same rows give the same digest on every engine and the hub.
CREATE FUNCTION deltasync_checksum("table" text DEFAULT NULL) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_checksum' LANGUAGE C STABLE PARALLEL UNSAFE
  SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
  SET extra_float_digits = 3 SET bytea_output = 'hex'
  SET jit = off;
COMMENT ON FUNCTION deltasync_checksum(text) IS
  'deltasync: rows and an order-independent digest of the live rows of each tracked table (or one)';

-- Compaction on sites (docs/operations.md, "Compaction on sites").
CREATE FUNCTION deltasync_compact(options jsonb DEFAULT NULL) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_compact' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION deltasync_compact(jsonb) IS
  'deltasync: turn tombstones every hub''s frontier covers into graves';
REVOKE EXECUTE ON FUNCTION deltasync_compact(jsonb) FROM PUBLIC;

-- Per hub, its frontier as this site last heard it and the marks that tie it to this site's
-- versions (common/compaction), written with the pull cursor.
CREATE TABLE deltasync.hub_frontier (
  hub text PRIMARY KEY,
  frontier bigint NOT NULL,
  mark_ver bigint NOT NULL,
  mark_seq bigint NOT NULL,
  safe_ver bigint NOT NULL
);
-- A grave (a compacted tombstone) keeps its key and causal length and stores its version and
-- clock as NULL (no bytes): the shadow tables deltasync_enable makes now allow them.
DO $$
DECLARE t record;
BEGIN
  FOR t IN SELECT id FROM deltasync.tables LOOP
    IF to_regclass('deltasync.meta_' || t.id) IS NOT NULL THEN
      EXECUTE format('ALTER TABLE deltasync.%I ALTER ver DROP NOT NULL, ALTER hlc DROP NOT NULL, ALTER site DROP NOT NULL',
                     'meta_' || t.id);
    END IF;
  END LOOP;
END$$;
-- The last long push and the last long pull with each hub that ended well (a call of more
-- than a second: its last progress report, docs/live-sync.md "Progress"), written in the
-- call's own transaction, so a call that fails or rolls back leaves the one before it.
CREATE TABLE deltasync.sync_progress (
  hub text NOT NULL,
  direction text NOT NULL,
  state text NOT NULL,
  since_ms bigint NOT NULL,
  updated_ms bigint NOT NULL,
  rows_done bigint NOT NULL,
  rows_expected bigint,
  rows_per_s bigint NOT NULL,
  eta_ms bigint,
  PRIMARY KEY (hub, direction)
);

-- pg_dump and pg_restore (docs/operations.md, "Backups"; the block of the same name in
-- deltasync.sql.in): the state tables and sequences are dumped, relids as names, and the
-- shadow tables leave the extension so pg_dump dumps them whole.
ALTER TABLE deltasync.tables ALTER COLUMN relid TYPE regclass USING relid::regclass;
DO $$
DECLARE
  m record;
BEGIN
  FOR m IN SELECT c.oid::regclass AS rel FROM pg_catalog.pg_depend AS d
             JOIN pg_catalog.pg_class AS c ON c.oid = d.objid
            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'e'
              AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'deltasync')
              AND c.relnamespace = 'deltasync'::pg_catalog.regnamespace AND c.relname LIKE 'meta\_%'
  LOOP
    EXECUTE format('ALTER EXTENSION deltasync DROP TABLE %s', m.rel);
  END LOOP;
END$$;
SELECT pg_catalog.pg_extension_config_dump('deltasync.settings', $$WHERE name <> 'schema_version'$$);
SELECT pg_catalog.pg_extension_config_dump('deltasync.sites', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.site_ord', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.tables', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.table_id', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.members', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.db_version', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.hubs', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.hub_frontier', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.hub_echo', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.pending', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.gone_columns', '');
SELECT pg_catalog.pg_extension_config_dump('deltasync.id_seq', '');
CREATE FUNCTION deltasync.restore_identity() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
  IF TG_TABLE_NAME = 'settings' THEN
    IF NEW.name IN ('site_id', 'hlc') THEN
      UPDATE deltasync.settings SET value = NEW.value WHERE name = NEW.name;
      IF FOUND THEN RETURN NULL; END IF;
    END IF;
  ELSIF NEW.ord = 0 THEN
    UPDATE deltasync.sites SET site_id = NEW.site_id WHERE ord = 0;
    IF FOUND THEN RETURN NULL; END IF;
  END IF;
  RETURN NEW;
END$f$;
COMMENT ON FUNCTION deltasync.restore_identity() IS
  'deltasync: a restored site id, clock floor and sites row 0 replace those CREATE EXTENSION made';
CREATE TRIGGER deltasync_restore_identity BEFORE INSERT ON deltasync.settings
  FOR EACH ROW EXECUTE FUNCTION deltasync.restore_identity();
CREATE TRIGGER deltasync_restore_identity BEFORE INSERT ON deltasync.sites
  FOR EACH ROW EXECUTE FUNCTION deltasync.restore_identity();
ALTER TABLE deltasync.settings ENABLE ALWAYS TRIGGER deltasync_restore_identity;
ALTER TABLE deltasync.sites ENABLE ALWAYS TRIGGER deltasync_restore_identity;
