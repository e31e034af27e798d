-- deltasync 0.1.0: the SQL API (SPEC section 5) in the extension's schema,
-- internal objects in schema deltasync. docs/postgresql.md describes them.
\echo Use "CREATE EXTENSION deltasync" to load this file. \quit

CREATE SCHEMA deltasync;
REVOKE ALL ON SCHEMA deltasync FROM PUBLIC;
COMMENT ON SCHEMA deltasync IS 'deltasync internal objects: settings, sites, tracked tables, shadow tables meta_<id>';

-- site_id (canonical UUID text), hlc (the clock floor local transactions start above),
-- max_clock_drift_ms (user-settable), schema_version.
CREATE TABLE deltasync.settings (name text PRIMARY KEY, value text NOT NULL);
INSERT INTO deltasync.settings VALUES
  ('site_id', gen_random_uuid()::text),
  ('hlc', '0'),
  ('schema_version', '1');

-- Origin sites by local ordinal; 0 is this site.
CREATE TABLE deltasync.sites (ord integer PRIMARY KEY, site_id bytea NOT NULL UNIQUE);
CREATE SEQUENCE deltasync.site_ord START 1;
INSERT INTO deltasync.sites VALUES (0, decode(replace((SELECT value FROM deltasync.settings WHERE name = 'site_id'), '-', ''), 'hex'));

-- Tracked tables; the shadow table of table id N is deltasync.meta_N.
CREATE TABLE deltasync.tables (
  id integer PRIMARY KEY,
  relid oid NOT NULL UNIQUE,
  name text NOT NULL UNIQUE,
  pk text NOT NULL,       -- JSON array of key column names
  columns text NOT NULL   -- JSON array of the other tracked columns, in table order
);
CREATE SEQUENCE deltasync.table_id START 1;

-- The change counter, handed out in blocks of 256: a writing transaction takes a block
-- with one nextval and numbers its row changes from it (deltasync.next_version()).
CREATE SEQUENCE deltasync.db_version START 1 INCREMENT 256;

-- Per hub: its identity, how far this site's versions were pushed, how far the hub's
-- sequence was pulled.
CREATE TABLE deltasync.hubs (
  hub text PRIMARY KEY,
  hub_id text,
  push_cursor bigint NOT NULL DEFAULT 0,
  pull_cursor bigint NOT NULL DEFAULT 0,
  last_sync_ms bigint
);
-- Versions a pull gave to what it applied from a hub: never pushed back to that hub.
CREATE TABLE deltasync.hub_echo (hub text NOT NULL, lo bigint NOT NULL, hi bigint NOT NULL);
CREATE INDEX ON deltasync.hub_echo (hub, hi);

SELECT pg_catalog.pg_extension_config_dump('deltasync.settings', $$WHERE name = 'max_clock_drift_ms'$$);

-- Internal functions, called by the triggers deltasync_enable installs.
CREATE FUNCTION deltasync.capture() RETURNS trigger
  AS 'MODULE_PATHNAME', 'deltasync_capture' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION deltasync.capture() IS 'deltasync: records the row changes of one statement in the shadow table';
CREATE FUNCTION deltasync.next_version() RETURNS bigint
  AS 'MODULE_PATHNAME', 'deltasync_next_version' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION deltasync.next_version() IS 'deltasync: the next db_version of the current transaction';
CREATE FUNCTION deltasync.ne(anyelement, anyelement) RETURNS bigint
  AS 'MODULE_PATHNAME', 'deltasync_ne' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION deltasync.ne(anyelement, anyelement) IS 'deltasync: 1 when two values differ in their bytes, else 0';
CREATE FUNCTION deltasync.clk_set(bigint, integer, bytea, bigint, bigint, bigint, VARIADIC bigint[]) RETURNS bytea
  AS 'MODULE_PATHNAME', 'deltasync_clk_set' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION deltasync.clk_set(bigint, integer, bytea, bigint, bigint, bigint, bigint[]) IS
  'deltasync: the clock extras of a shadow row after an update of the columns in the masks';
CREATE FUNCTION deltasync.on_sql_drop() RETURNS event_trigger
  AS 'MODULE_PATHNAME', 'deltasync_on_sql_drop' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION deltasync.on_sql_drop() IS 'deltasync: forgets tracked tables that were dropped';
CREATE EVENT TRIGGER deltasync_on_sql_drop ON sql_drop EXECUTE FUNCTION deltasync.on_sql_drop();
CREATE FUNCTION deltasync.on_ddl_end() RETURNS event_trigger
  AS 'MODULE_PATHNAME', 'deltasync_on_ddl_end' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION deltasync.on_ddl_end() IS 'deltasync: follows renames and added columns of tracked tables, refuses DDL capture cannot follow';
CREATE EVENT TRIGGER deltasync_on_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION deltasync.on_ddl_end();

-- The SQL API. Functions that turn values into text pin the settings that make it
-- canonical (UTC, ISO dates, shortest exact floats, hex bytea).
CREATE FUNCTION deltasync_version() RETURNS text
  AS 'MODULE_PATHNAME', 'deltasync_version' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION deltasync_version() IS 'deltasync: the extension version';

CREATE FUNCTION deltasync_site_id() RETURNS text
  AS 'MODULE_PATHNAME', 'deltasync_site_id' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION deltasync_site_id() IS 'deltasync: this site''s id (canonical UUID text)';

-- deltasync_id(): row ids no other site allocates (common/site_id.hpp): the site's id node
-- and this sequence.
CREATE SEQUENCE deltasync.id_seq;
CREATE FUNCTION deltasync_id() RETURNS bigint
  AS 'MODULE_PATHNAME', 'deltasync_id' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION deltasync_id() IS
  'deltasync: a row id no other site allocates (site id node and a per-site counter), for column defaults';
CREATE FUNCTION deltasync_db_version() RETURNS bigint
  AS 'MODULE_PATHNAME', 'deltasync_db_version' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION deltasync_db_version() IS
  'deltasync: this site''s change counter; every change at or below it is committed (a safe since cursor)';

CREATE FUNCTION deltasync_enable("table" text, options jsonb DEFAULT NULL) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_enable' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION deltasync_enable(text, jsonb) IS 'deltasync: start tracking a table (its owner only); existing rows become changes';

CREATE FUNCTION deltasync_disable("table" text) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_disable' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION deltasync_disable(text) IS 'deltasync: stop tracking a table; rows are kept, triggers and metadata removed';

CREATE FUNCTION deltasync_changes(since bigint) RETURNS text
  AS 'MODULE_PATHNAME', 'deltasync_changes' LANGUAGE C VOLATILE PARALLEL UNSAFE
  SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
  SET extra_float_digits = 3 SET bytea_output = 'hex';
COMMENT ON FUNCTION deltasync_changes(bigint) IS 'deltasync: a payload of every change with db_version > since';

CREATE FUNCTION deltasync_apply(payload text) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_apply' LANGUAGE C VOLATILE PARALLEL UNSAFE
  SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
  SET extra_float_digits = 3 SET bytea_output = 'hex';
COMMENT ON FUNCTION deltasync_apply(text) IS 'deltasync: merge a payload, all or nothing';

CREATE FUNCTION deltasync_push(url text, options jsonb DEFAULT NULL) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_push' LANGUAGE C VOLATILE PARALLEL UNSAFE
  SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
  SET extra_float_digits = 3 SET bytea_output = 'hex';
COMMENT ON FUNCTION deltasync_push(text, jsonb) IS 'deltasync: send the hub every local change it lacks';

CREATE FUNCTION deltasync_pull(url text, options jsonb DEFAULT NULL) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_pull' LANGUAGE C VOLATILE PARALLEL UNSAFE
  SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
  SET extra_float_digits = 3 SET bytea_output = 'hex';
COMMENT ON FUNCTION deltasync_pull(text, jsonb) IS 'deltasync: fetch and apply the hub''s changes, page by page';

CREATE FUNCTION deltasync_sync(url text, options jsonb DEFAULT NULL) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_sync' LANGUAGE C VOLATILE PARALLEL UNSAFE
  SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
  SET extra_float_digits = 3 SET bytea_output = 'hex';
COMMENT ON FUNCTION deltasync_sync(text, jsonb) IS 'deltasync: push, then pull';

CREATE FUNCTION deltasync_status() RETURNS jsonb
  AS 'MODULE_PATHNAME', 'deltasync_status' LANGUAGE C VOLATILE PARALLEL UNSAFE
  SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
  SET extra_float_digits = 3 SET bytea_output = 'hex';
-- The network functions make this server open HTTP connections (and read ca_file): only
-- roles an administrator grants them to may call them.
REVOKE EXECUTE ON FUNCTION deltasync_push(text, jsonb), deltasync_pull(text, jsonb), deltasync_sync(text, jsonb) FROM PUBLIC;
-- Tracking a table decides where a node's rows land when a privileged role pulls (payloads
-- name tables without schema): only roles an administrator trusts may track and untrack.
REVOKE EXECUTE ON FUNCTION deltasync_enable(text, jsonb), deltasync_disable(text) FROM PUBLIC;

COMMENT ON FUNCTION deltasync_status() IS 'deltasync: site id, db_version, tracked tables, pending changes, hubs';
