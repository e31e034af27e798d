-- DDL on tracked tables (issue 12): followed (renames, ADD COLUMN) or refused before it
-- takes effect (disabled capture triggers, a changed or retyped primary key), never accepted
-- and broken after. INCLUDE columns are not part of the key.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(18);

CREATE TABLE dd (id int PRIMARY KEY, v text NOT NULL);
SELECT deltasync_enable('dd');
INSERT INTO dd VALUES (1, 'one');

SELECT throws_like($$ALTER TABLE dd DISABLE TRIGGER USER$$,
  'deltasync: disabling the capture trigger deltasync_capture_% of tracked table "dd" cannot be followed%deltasync_disable(''dd'')%',
  'DISABLE TRIGGER USER is refused');
SELECT throws_like($$ALTER TABLE dd DISABLE TRIGGER ALL$$, 'deltasync: disabling the capture trigger%', 'DISABLE TRIGGER ALL is refused');
SELECT throws_like($$ALTER TABLE dd DISABLE TRIGGER deltasync_capture_upd$$, 'deltasync: disabling the capture trigger deltasync_capture_upd%',
  'disabling one capture trigger by name is refused');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'dd'::regclass AND tgenabled = 'D'), 0, '... and every trigger stays enabled');
SELECT throws_like($$ALTER TABLE dd DROP CONSTRAINT dd_pkey$$, 'deltasync: changing the primary key of tracked table "dd"%',
  'dropping the primary key is refused');
SELECT throws_like($$ALTER TABLE dd ALTER COLUMN id TYPE text$$,
  'deltasync: changing the type of key column "id" (integer to text) of tracked table "dd"%', 'retyping a key column is refused');
SELECT lives_ok($$ALTER TABLE dd ALTER COLUMN v TYPE varchar(20)$$, 'retyping another column is fine');

-- ADD COLUMN is tracked at once: a write to the new column right after it is captured.
SELECT deltasync_db_version() AS v0 \gset
ALTER TABLE dd ADD COLUMN qty int NOT NULL DEFAULT 7;
SELECT is((SELECT columns::jsonb FROM deltasync.tables WHERE name = 'dd'), '["v", "qty"]'::jsonb, 'an added column is tracked without deltasync_enable');
UPDATE dd SET qty = 8 WHERE id = 1;
SELECT is((SELECT count(*)::int FROM jsonb_array_elements(deltasync_changes(:v0)::jsonb->'tables'->0->'rows'->0->'changes') c
           WHERE (c->>0)::int = 1 AND (c->>1)::int = 8), 1, 'the write to it is captured');

-- RENAME TO: the tracked name follows; the old name is free again.
ALTER TABLE dd RENAME TO dd2;
SELECT is((SELECT name FROM deltasync.tables WHERE relid = 'dd2'::regclass), 'dd2', 'a renamed table is tracked under its new name');
SELECT lives_ok($$INSERT INTO dd2 VALUES (2, 'two', 2)$$, 'writes after the rename are captured');
SELECT is((deltasync_changes(0)::jsonb->'tables'->0->>'name'), 'dd2', 'changes carry the new name');
CREATE TABLE dd (id int PRIMARY KEY);
SELECT lives_ok($$SELECT deltasync_enable('dd')$$, 'a new table may take the old name');
SELECT lives_ok($$SELECT deltasync_disable('dd2')$$, 'and the renamed one can be disabled by its new name');
SELECT lives_ok($$ALTER TABLE dd2 DISABLE TRIGGER USER$$, 'an untracked table is none of deltasync''s business');

-- PRIMARY KEY ... INCLUDE: the INCLUDE columns are not key columns.
CREATE TABLE inc (a int, b text, c text, PRIMARY KEY (a) INCLUDE (b));
SELECT is((deltasync_enable('inc')->'pk'), '["a"]'::jsonb, 'INCLUDE columns are left out of the key');
INSERT INTO inc VALUES (1, 'x', 'y');
UPDATE inc SET b = 'z';
SELECT is((SELECT count(*)::int FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') t
           WHERE t->>'name' = 'inc' AND jsonb_array_length(t->'rows') = 1 AND (t->'rows'->0->>'cl')::int = 1), 1,
  'an update of an INCLUDE column is an update of one live row, not a delete and an insert');
SELECT is((deltasync_enable('inc', '{"restamp": true}')->>'restamped')::int, 1,
  'enable with restamp gives every live row a new clock');
SELECT * FROM finish();
ROLLBACK;
