-- Sites on different versions of the schema (SPEC section 8) on PostgreSQL: a change for a
-- column this site does not have yet is kept (the newest per cell) and applied when the
-- column appears; a dropped column keeps nothing; what ADD COLUMN gives existing rows has no
-- version, also after DROP COLUMN then ADD COLUMN of the same name; a renamed column's old
-- name lands in the new one; a new life of a row that does not cover a column resets it.
-- Site ds_b (through dblink) is the other site.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(25);
SELECT dblink_connect('b', :'other');

CREATE FUNCTION pg_temp.on_b(sql text) RETURNS void LANGUAGE sql AS $$ SELECT dblink_exec('b', sql) $$;
CREATE FUNCTION pg_temp.b_value(sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink('b', sql) AS t(v text) $$;
CREATE FUNCTION pg_temp.a_to_b() RETURNS jsonb LANGUAGE sql AS $$
  SELECT r::jsonb FROM dblink('b', format('SELECT deltasync_apply(%L)::text', deltasync_changes(0))) AS t(r text) $$;
CREATE FUNCTION pg_temp.b_to_a() RETURNS jsonb LANGUAGE sql AS $$
  SELECT deltasync_apply((SELECT p FROM dblink('b', 'SELECT deltasync_changes(0)') AS t(p text))) $$;
-- An apply of nothing: merges in what the site kept, where it can.
CREATE FUNCTION pg_temp.apply_nothing() RETURNS jsonb LANGUAGE sql AS $$
  SELECT deltasync_apply('{"format":"deltasync","version":1,"site":"00000000-0000-0000-0000-000000000001",'
                         '"since":0,"until":0,"sites":[],"tables":[]}') $$;
-- Whether deltasync_changes(0) sends column `col` of the row whose first key value is `k`.
CREATE FUNCTION pg_temp.sends(tbl text, k int, col text) RETURNS boolean LANGUAGE sql AS $$
  SELECT EXISTS (SELECT 1 FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t,
    jsonb_array_elements(t->'rows') AS r, jsonb_array_elements(r->'changes') AS c
  WHERE t->>'name' = tbl AND (r->'key'->>0)::int = k
    AND (c->>0)::int = (SELECT i - 1 FROM jsonb_array_elements_text(t->'columns') WITH ORDINALITY AS x(n, i) WHERE n = col)) $$;
CREATE FUNCTION pg_temp.rows_a(tbl text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE out text;
BEGIN
  EXECUTE format('SELECT string_agg(to_jsonb(x)::text, '' '' ORDER BY x.id) FROM %I AS x', tbl) INTO out;
  RETURN out;
END $$;
CREATE FUNCTION pg_temp.rows_b(tbl text) RETURNS text LANGUAGE sql AS $$
  SELECT pg_temp.b_value(format('SELECT string_agg(to_jsonb(x)::text, '' '' ORDER BY x.id) FROM %I AS x', tbl)) $$;

-- B is a migration ahead: it has column w.
CREATE TABLE lag (id int PRIMARY KEY, v text NOT NULL);
SELECT deltasync_enable('lag');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS lag; CREATE TABLE lag (id int PRIMARY KEY, v text NOT NULL, w text)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('lag')::text$$);
SELECT pg_temp.on_b($$INSERT INTO lag VALUES (1, 'one', 'w1'), (2, 'two', 'w2')$$);
SELECT is((pg_temp.b_to_a()->>'kept')::int, 2, 'changes of a column this site does not have are kept');
SELECT is((SELECT count(*)::int FROM deltasync.pending WHERE tbl = 'lag' AND col = 'w'), 2, 'one kept cell per row');
SELECT is((deltasync_status()->>'kept')::int, 2, 'deltasync_status() counts them');
SELECT is(pg_temp.rows_a('lag'), '{"v": "one", "id": 1} {"v": "two", "id": 2}', 'the rest of the rows applies');
SELECT pg_sleep(0.002);
SELECT pg_temp.on_b($$UPDATE lag SET w = 'w1 again' WHERE id = 1$$);
SELECT pg_temp.b_to_a();
SELECT pg_temp.b_to_a();
SELECT is((SELECT count(*)::int FROM deltasync.pending WHERE tbl = 'lag'), 2, 'the same cell received again stays one');
SELECT is((SELECT count(*)::int FROM deltasync.pending WHERE tbl = 'lag' AND change LIKE '%w1 again%'), 1,
  'the newest change of a cell is the one kept');
SELECT is((pg_temp.apply_nothing()->>'unkept')::int, 0, 'nothing is applied while the column is not here');

ALTER TABLE lag ADD COLUMN w text;
SELECT ok(NOT pg_temp.sends('lag', 1, 'w'), 'what ADD COLUMN gives an existing row has no version: it is not sent');
SELECT is((pg_temp.apply_nothing()->>'unkept')::int, 2, 'the next apply merges the kept cells in once the column is here');
SELECT is((SELECT count(*)::int FROM deltasync.pending WHERE tbl = 'lag'), 0, 'and keeps them no longer');
SELECT is(pg_temp.rows_a('lag'), pg_temp.rows_b('lag'), 'the sites hold the same rows');
SELECT is((SELECT w FROM lag WHERE id = 1), 'w1 again', 'with the newest value of the column');

-- A dropped column keeps nothing, however often other sites send it.
ALTER TABLE lag DROP COLUMN w;
SELECT pg_sleep(0.002);
SELECT pg_temp.on_b($$UPDATE lag SET w = 'after the drop', v = 'one, B' WHERE id = 1$$);
SELECT pg_temp.b_to_a();
SELECT is((pg_temp.b_to_a()->>'kept')::int, 0, 'changes of a dropped column are not kept');
SELECT is((SELECT count(*)::int FROM deltasync.pending), 0, 'the kept store does not grow');
SELECT is((SELECT v FROM lag WHERE id = 1), 'one, B', 'the rest of the row applies');

-- DROP COLUMN then ADD COLUMN of the same name (review finding 3): the re-added column does
-- not inherit the row's old clock, so a site still holding the dropped column's value and
-- this site do not tie on one clock with different values.
CREATE TABLE rv_c (id int PRIMARY KEY, a text, b text);
INSERT INTO rv_c VALUES (1, 'a1', 'b1');
SELECT deltasync_enable('rv_c');
SELECT deltasync_changes(0) AS before \gset
ALTER TABLE rv_c DROP COLUMN a;
ALTER TABLE rv_c ADD COLUMN a text;
SELECT ok(NOT pg_temp.sends('rv_c', 1, 'a'), 're-added column a does not reuse the dropped column''s clock');
SELECT ok(pg_temp.sends('rv_c', 1, 'b'), 'the other column keeps its own');
-- The site's old payload (what another site that kept column a still holds and sends back).
SELECT deltasync_apply(:'before');
SELECT is((SELECT a FROM rv_c WHERE id = 1), 'a1', 'the value the other site holds wins over the versionless NULL');

-- ADD COLUMN with a default: existing rows hold it under the smallest real clock (1 ms,
-- from the adding site), and a real value from elsewhere wins over it.
CREATE TABLE dflt (id int PRIMARY KEY, v text);
INSERT INTO dflt VALUES (1, 'one'), (2, 'two');
SELECT deltasync_enable('dflt');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS dflt; CREATE TABLE dflt (id int PRIMARY KEY, v text)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('dflt')::text$$);
SELECT pg_temp.a_to_b();
ALTER TABLE dflt ADD COLUMN n int NOT NULL DEFAULT 100;
SELECT pg_temp.on_b('ALTER TABLE dflt ADD COLUMN n int NOT NULL DEFAULT 100');
SELECT is((SELECT array_agg((c->>2)::bigint ORDER BY r->'key'->>0) FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t,
    jsonb_array_elements(t->'rows') AS r, jsonb_array_elements(r->'changes') AS c
  WHERE t->>'name' = 'dflt' AND (c->>0)::int = 1), '{65536,65536}'::bigint[], 'the default of existing rows is sent under the smallest clock (1 ms)');
SELECT pg_temp.on_b('UPDATE dflt SET n = 7 WHERE id = 2');
SELECT pg_temp.b_to_a();
SELECT pg_temp.a_to_b();
SELECT is(pg_temp.rows_a('dflt'), pg_temp.rows_b('dflt'), 'the sites agree');
SELECT is((SELECT string_agg(n::text, ',' ORDER BY id) FROM dflt), '100,7', 'a real write wins over the default');

-- A site that added the column without the default (NULL there) converges on the default's
-- values: a NULL written by no one has no version; the default travels under the smallest clock.
CREATE TABLE dfl2 (id int PRIMARY KEY, v text);
INSERT INTO dfl2 VALUES (1, 'one'), (2, 'two');
SELECT deltasync_enable('dfl2');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS dfl2; CREATE TABLE dfl2 (id int PRIMARY KEY, v text)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('dfl2')::text$$);
SELECT pg_temp.a_to_b();
ALTER TABLE dfl2 ADD COLUMN n int DEFAULT 100;
SELECT pg_temp.on_b('ALTER TABLE dfl2 ADD COLUMN n int');
SELECT pg_temp.a_to_b();
SELECT pg_temp.b_to_a();
SELECT is(pg_temp.rows_a('dfl2'), pg_temp.rows_b('dfl2'), 'a site that added the column without its default converges');
SELECT is((SELECT string_agg(n::text, ',' ORDER BY id) FROM dfl2), '100,100', 'on the default''s values');

-- RENAME COLUMN: B, not renamed yet, writes the old name; it lands in the new one here.
CREATE TABLE ren (id int PRIMARY KEY, v text);
SELECT deltasync_enable('ren');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS ren; CREATE TABLE ren (id int PRIMARY KEY, v text)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('ren')::text$$);
INSERT INTO ren VALUES (1, 'one');
SELECT pg_temp.a_to_b();
ALTER TABLE ren RENAME COLUMN v TO title;
SELECT pg_sleep(0.002);
SELECT pg_temp.on_b($$UPDATE ren SET v = 'B, under the old name' WHERE id = 1$$);
SELECT pg_temp.b_to_a();
SELECT is((SELECT title FROM ren WHERE id = 1), 'B, under the old name', 'a change under the old name lands in the new one');

-- A new life of a row from a site that lacks a column: what the old life left there is reset.
CREATE TABLE life (id int PRIMARY KEY, v text, w text DEFAULT 'dw');
SELECT deltasync_enable('life');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS life; CREATE TABLE life (id int PRIMARY KEY, v text)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('life')::text$$);
INSERT INTO life VALUES (1, 'one', 'old life');
SELECT pg_temp.a_to_b();
SELECT pg_sleep(0.002);
SELECT pg_temp.on_b($$DELETE FROM life WHERE id = 1; INSERT INTO life VALUES (1, 'again')$$);
SELECT pg_temp.b_to_a();
SELECT is((SELECT v || '/' || w FROM life WHERE id = 1), 'again/dw', 'the old life''s value of a column the new life lacks is reset');

-- B's tables go (the suites run in any order and read B's changes).
SELECT pg_temp.on_b('DROP TABLE lag, dflt, dfl2, ren, life');
SELECT * FROM finish();
ROLLBACK;
