-- Capture: enable/disable, what each kind of write records, and what is refused.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(41);

CREATE TABLE items (id text PRIMARY KEY, name text, qty int);
INSERT INTO items VALUES ('pre', 'before enable', 1);
SELECT is(deltasync_enable('items'),
  '{"table": "items", "changed": true, "backfilled": 1, "pk": ["id"], "columns": ["name", "qty"]}'::jsonb,
  'enable reports the table, its key and columns; existing rows become changes');
SELECT is(deltasync_enable('items')->'changed', 'false'::jsonb, 'enable again changes nothing');
SELECT is((deltasync_enable('public.items')->>'backfilled')::int, 0, 'a schema-qualified name works; nothing to backfill twice');
SELECT has_table('deltasync', (SELECT 'meta_' || id FROM deltasync.tables WHERE name = 'items'), 'the shadow table lives in schema deltasync');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'items'::regclass AND tgname LIKE 'deltasync_%'), 4,
  'four capture triggers: insert, delete, update, truncate');

-- What a payload says about one key: cl and the changed columns.
CREATE FUNCTION pg_temp.row_of(payload text, k text) RETURNS jsonb LANGUAGE sql AS $$
  SELECT r FROM jsonb_array_elements((payload::jsonb)->'tables'->0->'rows') AS r WHERE r->'key'->>0 = k $$;
CREATE FUNCTION pg_temp.cols_of(payload text, k text) RETURNS int[] LANGUAGE sql AS $$
  SELECT coalesce(array_agg((c->>0)::int ORDER BY (c->>0)::int), '{}')
  FROM jsonb_array_elements(pg_temp.row_of(payload, k)->'changes') AS c $$;

SELECT ok(deltasync_db_version() > 0, 'the backfill took versions');
SELECT deltasync_db_version() AS v0 \gset
INSERT INTO items VALUES ('a', 'apple', 3), ('b', 'bread', 5);
SELECT is(pg_temp.cols_of(deltasync_changes(:v0), 'a'), '{0,1}', 'an insert records every column');
SELECT deltasync_db_version() AS v1 \gset
UPDATE items SET qty = 2 WHERE id = 'a';
SELECT is(pg_temp.cols_of(deltasync_changes(:v1), 'a'), '{1}', 'an update records only the changed column');
SELECT is(pg_temp.row_of(deltasync_changes(:v1), 'b'), NULL, 'rows the update did not touch are not in the delta');
SELECT deltasync_db_version() AS v2 \gset
UPDATE items SET qty = qty WHERE id = 'a';
SELECT is(deltasync_db_version(), :v2::bigint, 'an update that changes no value records nothing');
UPDATE items SET name = 'Apple', qty = 4 WHERE id = 'a';
SELECT is(pg_temp.cols_of(deltasync_changes(:v2), 'a'), '{0,1}', 'both changed columns recorded');
SELECT deltasync_db_version() AS v3 \gset
DELETE FROM items WHERE id = 'b';
SELECT is((pg_temp.row_of(deltasync_changes(:v3), 'b')->>'cl')::int, 2, 'a delete makes the causal length even');
SELECT is(pg_temp.cols_of(deltasync_changes(:v3), 'b'), '{}', 'a deleted row carries no column values');
INSERT INTO items VALUES ('b', 'bread again', 1);
SELECT is((pg_temp.row_of(deltasync_changes(:v3), 'b')->>'cl')::int, 3, 'a re-insert makes it odd again');
SELECT deltasync_db_version() AS v4 \gset
UPDATE items SET id = 'c' WHERE id = 'b';
SELECT is((pg_temp.row_of(deltasync_changes(:v4), 'b')->>'cl')::int, 4, 'a key change deletes the old key ...');
SELECT is((pg_temp.row_of(deltasync_changes(:v4), 'c')->>'cl')::int, 1, '... and inserts the new one');
SELECT deltasync_db_version() AS v5 \gset
UPDATE items SET name = upper(name) WHERE id IN ('a', 'c');
SELECT is(pg_temp.cols_of(deltasync_changes(:v5), 'a') || pg_temp.cols_of(deltasync_changes(:v5), 'c'), '{0,0}',
  'one statement updating several rows records each of them');
SELECT deltasync_db_version() AS v6 \gset
INSERT INTO items VALUES ('c', 'x', 0) ON CONFLICT (id) DO UPDATE SET qty = 99;
SELECT is(pg_temp.cols_of(deltasync_changes(:v6), 'c'), '{1}', 'INSERT ... ON CONFLICT DO UPDATE is captured as an update');
UPDATE items SET qty = 7 WHERE id = 'a';
SELECT format('deltasync.meta_%s', id) AS items_meta FROM deltasync.tables WHERE name = 'items' \gset
SELECT is((SELECT count(*)::int FROM :items_meta), 4, 'one shadow row per key ever seen (pre, a, b, c)');
SELECT deltasync_db_version() AS v7 \gset
TRUNCATE items;
SELECT is((SELECT count(*)::int FROM jsonb_array_elements((deltasync_changes(:v7)::jsonb)->'tables'->0->'rows') r
           WHERE (r->>'cl')::int % 2 = 0), 3, 'TRUNCATE deletes every live row');

-- Statements of many rows (the set-based fast path), including keys seen before.
CREATE TABLE bulk (id int PRIMARY KEY, v text);
SELECT deltasync_enable('bulk');
INSERT INTO bulk SELECT g, 'v' || g FROM generate_series(1, 100) g;
DELETE FROM bulk WHERE id <= 50;
INSERT INTO bulk SELECT g, 'again' FROM generate_series(1, 60) g ON CONFLICT (id) DO NOTHING;
SELECT format('deltasync.meta_%s', id) AS bulk_meta FROM deltasync.tables WHERE name = 'bulk' \gset
SELECT is((SELECT array_agg(DISTINCT cl ORDER BY cl) FROM :bulk_meta WHERE k0 <= 50), '{3}'::bigint[],
  'a bulk insert of deleted keys makes them live again (cl 3)');
SELECT is((SELECT count(*)::int FROM :bulk_meta), 100, 'and adds no second shadow row');

-- A savepoint rolled back takes its changes along.
SELECT deltasync_db_version() AS v8 \gset
SAVEPOINT s;
INSERT INTO items VALUES ('gone', 'rolled back', 1);
ROLLBACK TO SAVEPOINT s;
SELECT is(pg_temp.row_of(deltasync_changes(:v8), 'gone'), NULL, 'a rolled-back write leaves no change');

-- Generated columns are derived, never synced; NULL values travel as NULL.
CREATE TABLE gen (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED);
SELECT is(deltasync_enable('gen')->'columns', '["a"]'::jsonb, 'generated columns are not tracked');
INSERT INTO gen VALUES (1, NULL);

-- Refusals.
CREATE TABLE nokey (a int);
SELECT throws_like($$SELECT deltasync_enable('nokey')$$, 'deltasync: table "nokey" has no primary key%', 'no primary key');
CREATE VIEW v AS SELECT 1 AS one;
SELECT throws_like($$SELECT deltasync_enable('v')$$, 'deltasync: "v" is a view%', 'views are refused');
CREATE TEMP TABLE tmp (id int PRIMARY KEY);
SELECT throws_like($$SELECT deltasync_enable('tmp')$$, 'deltasync: "tmp" is a temporary table%', 'temporary tables are refused');
SELECT throws_like($$SELECT deltasync_enable('deltasync.settings')$$, 'deltasync: "settings" is an internal table%', 'internal tables are refused');
SELECT throws_like($$SELECT deltasync_enable('items; DROP TABLE items')$$, 'deltasync: %', 'an injection attempt is only a bad name');
CREATE SCHEMA other;
CREATE TABLE other.items (id int PRIMARY KEY);
SELECT throws_like($$SELECT deltasync_enable('other.items')$$, 'deltasync: another table named "items"%', 'payload names must be unique');
SELECT throws_like($$ALTER TABLE items DROP COLUMN id$$, 'deltasync: column "id" is part of the primary key of tracked table "items"%',
  'a key column cannot be dropped (tests/pg/10_ddl_follow.sql: other columns can)');

-- New columns: enable again to track them.
ALTER TABLE items ADD COLUMN price numeric;
SELECT is(deltasync_enable('items')->'columns', '["name", "qty", "price"]'::jsonb, 'enable again tracks an added column');
SELECT deltasync_db_version() AS v9 \gset
INSERT INTO items VALUES ('p', 'priced', 1, 2.50);
SELECT is(pg_temp.row_of(deltasync_changes(:v9), 'p')->'changes'->2->>1, '2.50', 'numeric travels as its canonical text');

SELECT is((SELECT t->>'state' FROM jsonb_array_elements(deltasync_status()->'tables') AS t WHERE t->>'table' = 'items'),
  'tracked', 'status reports a tracked table as tracked, as on SQLite');

-- Disable and drop leave nothing behind.
SELECT is(deltasync_disable('gen'), '{"table": "gen", "changed": true}'::jsonb, 'disable reports the table');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'gen'::regclass AND tgname LIKE 'deltasync_%'), 0, 'disable removes the triggers');
SELECT is((SELECT count(*)::int FROM deltasync.tables WHERE name = 'gen'), 0, 'disable removes the table''s metadata');
SELECT is((SELECT count(*)::int FROM gen), 1, 'disable keeps the rows');
SELECT is(deltasync_disable('gen')->'changed', 'false'::jsonb, 'disable of an untracked table changes nothing');
SELECT (SELECT id FROM deltasync.tables WHERE name = 'items') AS items_id \gset
DROP TABLE items;
SELECT is((SELECT count(*)::int FROM deltasync.tables WHERE name = 'items'), 0, 'dropping a tracked table forgets it');
SELECT hasnt_table('deltasync', 'meta_' || :items_id, 'and drops its shadow table');

SELECT * FROM finish();
ROLLBACK;
