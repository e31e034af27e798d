-- The SQL API of SPEC section 5 on PostgreSQL: the exact function set, the identity
-- functions, argument errors.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(22);

SELECT is(
  (SELECT array_agg(DISTINCT proname::text ORDER BY proname::text) FROM pg_proc
    WHERE proname LIKE 'deltasync%' AND pronamespace = 'public'::regnamespace),
  ARRAY['deltasync_apply', 'deltasync_changes', 'deltasync_checksum', 'deltasync_compact', 'deltasync_db_version', 'deltasync_disable', 'deltasync_enable', 'deltasync_forget',
        'deltasync_id', 'deltasync_pull', 'deltasync_push', 'deltasync_quarantine', 'deltasync_schedule', 'deltasync_site_id',
        'deltasync_status', 'deltasync_sync', 'deltasync_unschedule', 'deltasync_version'],
  'the extension schema holds exactly the SPEC section 5 functions');
SELECT is(
  (SELECT array_agg(proname::text ORDER BY proname::text) FROM pg_proc WHERE pronamespace = 'deltasync'::regnamespace),
  ARRAY['capture', 'clk_added', 'clk_readopt', 'clk_remap', 'clk_set', 'ne', 'next_version', 'on_ddl_end', 'on_sql_drop',
        'restore_identity'],
  'internal functions live in schema deltasync');
SELECT has_function('deltasync_push', ARRAY['text', 'jsonb'], 'push takes (url, options)');
SELECT is(deltasync_version(), (SELECT extversion FROM pg_extension WHERE extname = 'deltasync'), 'version is the extension version');
SELECT matches(deltasync_site_id(), '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$', 'site id is a canonical v4 UUID');
SELECT is(deltasync_site_id(), deltasync_site_id(), 'site id is stable');
SELECT isnt(deltasync_site_id(),
  (SELECT s FROM dblink(:'other', 'SELECT deltasync_site_id()') AS t(s text)), 'each database is its own site');
SELECT is(deltasync_db_version(), (SELECT CASE WHEN is_called THEN last_value + 255 ELSE 0 END FROM deltasync.db_version),
  'with no writer running, db_version is the end of the last block of versions handed out');

SELECT throws_like($$SELECT deltasync_enable(NULL)$$, 'deltasync: deltasync_enable(table) expects text%', 'enable(NULL)');
SELECT throws_like($$SELECT deltasync_enable('no_such_table')$$, 'deltasync: no such table: "no_such_table"', 'enable of a missing table');
SELECT throws_like($$SELECT deltasync_changes(-1)$$, 'deltasync: deltasync_changes(since): since must be >= 0', 'negative since');
SELECT throws_like($$SELECT deltasync_apply('not json')$$, 'deltasync: %', 'malformed payload');
SELECT throws_like($$SELECT deltasync_compact('{"bogus": 1}')$$, 'deltasync: unknown compact option "bogus"',
  'compact checks its options (tests/pg/17_compact.sql)');
SELECT throws_ok($$SELECT deltasync_apply('{"format":"deltasync","version":99}')$$, NULL, NULL, 'unknown payload version is refused');
SELECT throws_like($$SELECT deltasync_push('ftp://x/nodes/a')$$, 'deltasync: invalid hub url%', 'push with a bad url');
SELECT throws_like(format('SELECT deltasync_sync(%L, %L)', :'hub' || '/nodes/n1', '{"bogus": 1}'),
  'deltasync: unknown option "bogus"', 'unknown option');
SELECT is((deltasync_status()->>'site_id'), deltasync_site_id(), 'status names the site');

-- deltasync_checksum: the digest a SQLite site gives for the same rows (computed there:
-- ck(id INTEGER PRIMARY KEY, v TEXT, r REAL, b BLOB, flag INTEGER, d TEXT) holding
-- (1, 'x', 1.5, x'00ff', 1, '2026-12-02') and (2, NULL, -2.5, NULL, 0, NULL)).
CREATE TABLE ck (id bigint PRIMARY KEY, v text, r float8, b bytea, flag bool, d date);
SELECT deltasync_enable('ck');
SELECT is(deltasync_checksum('ck'), '{"tables": {"ck": {"rows": 0, "digest": "0000000000000000000000000000000000000000000000000000000000000000"}}}'::jsonb,
  'an empty table: 0 rows, a zero digest');
INSERT INTO ck VALUES (1, 'x', 1.5, '\x00ff', true, '2026-12-02'), (2, NULL, -2.5, NULL, false, NULL);
SELECT is(deltasync_checksum('ck'), '{"tables": {"ck": {"rows": 2, "digest": "45ca43e374110ca1dc3c9934c83a5a5add2d217bac6f1564622f23c441b6c749"}}}'::jsonb,
  'the same rows give the digest SQLite gives');
SELECT is(deltasync_checksum()->'tables'->'ck', deltasync_checksum('ck')->'tables'->'ck', 'all tables include it');
SELECT throws_like($$SELECT deltasync_checksum('no_such_table')$$,
  'deltasync: table "no_such_table" is not tracked%', 'checksum of a table that is not tracked');
-- As PostgreSQL's own opr_sanity checks of its catalog: an immutable function is parallel safe.
SELECT is((SELECT string_agg(p.proname, ', ' ORDER BY p.proname) FROM pg_proc AS p JOIN pg_depend AS d ON d.objid = p.oid
             AND d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass
           JOIN pg_extension AS e ON e.oid = d.refobjid AND e.extname = 'deltasync'
           WHERE p.provolatile = 'i' AND p.proparallel = 'u'), NULL, 'every immutable deltasync function is marked parallel safe');

SELECT * FROM finish();
ROLLBACK;
