-- DDL deltasync follows on PostgreSQL (issue 12): DROP COLUMN of tracked columns (the
-- tracked list shrinks, every other column keeps its clock, other sites' changes to the
-- dropped column are ignored), on ordinary and partitioned tables; a key column cannot be
-- dropped; a key column's rename is followed. Each step is checked by an audit (the rows
-- deltasync_changes(0) describes are the rows the table holds) and against site ds_b.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(25);
SELECT dblink_connect('b', :'other');

CREATE FUNCTION pg_temp.audit(tbl text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE pk text[]; cols text[]; held text; said text;
BEGIN
  SELECT array(SELECT jsonb_array_elements_text(t.pk::jsonb)), array(SELECT jsonb_array_elements_text(t.columns::jsonb))
    INTO pk, cols FROM deltasync.tables AS t WHERE t.name = tbl;
  EXECUTE format('SELECT coalesce(string_agg(x, '' | '' ORDER BY x), '''') FROM'
                 ' (SELECT jsonb_build_array(%s)::text || '' '' || jsonb_build_array(%s)::text AS x FROM %I) AS s',
                 (SELECT string_agg(format('%I', c), ', ') FROM unnest(pk) AS c),
                 (SELECT string_agg(format('%I', c), ', ') FROM unnest(cols) AS c), tbl) INTO held;
  SELECT coalesce(string_agg(x, ' | ' ORDER BY x), '') INTO said FROM (
    SELECT (r->'key')::text || ' ' || (SELECT jsonb_agg(c->1 ORDER BY (c->>0)::int) FROM jsonb_array_elements(r->'changes') AS c)::text AS x
    FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t, jsonb_array_elements(t->'rows') AS r
    WHERE t->>'name' = tbl AND (r->>'cl')::int % 2 = 1) AS s;
  IF held IS DISTINCT FROM said THEN RAISE WARNING 'audit of %: the table holds [%], its changes say [%]', tbl, held, said; END IF;
  RETURN held IS NOT DISTINCT FROM said;
END $$;
-- The clock (hlc) deltasync_changes(0) gives column `col` of the row whose first key value is `k`.
CREATE FUNCTION pg_temp.clock(tbl text, k int, col text) RETURNS text LANGUAGE sql AS $$
  SELECT c->>2 FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t, jsonb_array_elements(t->'rows') AS r,
    jsonb_array_elements(r->'changes') AS c
  WHERE t->>'name' = tbl AND (r->'key'->>0)::int = k
    AND (c->>0)::int = (SELECT i - 1 FROM jsonb_array_elements_text(t->'columns') WITH ORDINALITY AS x(n, i) WHERE n = col) $$;
CREATE FUNCTION pg_temp.on_b(sql text) RETURNS void LANGUAGE sql AS $$ SELECT dblink_exec('b', sql) $$;
CREATE FUNCTION pg_temp.b_value(sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink('b', sql) AS t(v text) $$;
CREATE FUNCTION pg_temp.a_to_b() RETURNS jsonb LANGUAGE sql AS $$
  SELECT r::jsonb FROM dblink('b', format('SELECT deltasync_apply(%L)::text', deltasync_changes(0))) AS t(r text) $$;
CREATE FUNCTION pg_temp.b_to_a() RETURNS jsonb LANGUAGE sql AS $$
  SELECT deltasync_apply((SELECT p FROM dblink('b', 'SELECT deltasync_changes(0)') AS t(p text))) $$;

CREATE TABLE dcol (id int PRIMARY KEY, a text NOT NULL, b int, c text);
SELECT deltasync_enable('dcol');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS dcol; CREATE TABLE dcol (id int PRIMARY KEY, a text NOT NULL, b int, c text)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('dcol')::text$$);
INSERT INTO dcol VALUES (1, 'one', 10, 'c1'), (2, 'two', 20, 'c2'), (3, 'three', 30, 'c3');
SELECT pg_sleep(0.002);
UPDATE dcol SET c = 'c1 again' WHERE id = 1;
UPDATE dcol SET a = 'two again' WHERE id = 2;
UPDATE dcol SET b = 31 WHERE id = 3;
SELECT pg_temp.a_to_b();
SELECT pg_temp.clock('dcol', 1, 'c') AS c1, pg_temp.clock('dcol', 2, 'a') AS a2, pg_temp.clock('dcol', 2, 'c') AS c2 \gset
SELECT isnt(:'c1'::text, :'c2'::text, 'an updated column has its own clock');

ALTER TABLE dcol DROP COLUMN b;
SELECT is((SELECT columns::jsonb FROM deltasync.tables WHERE name = 'dcol'), '["a", "c"]'::jsonb, 'DROP COLUMN is followed: the column is no longer tracked');
SELECT is(pg_temp.clock('dcol', 1, 'c'), :'c1'::text, 'a column after the dropped one keeps its own clock');
SELECT is(pg_temp.clock('dcol', 2, 'a'), :'a2'::text, 'so does a column before it');
SELECT is(pg_temp.clock('dcol', 2, 'c'), :'c2'::text, 'and a column with the row''s shared clock');
SELECT ok(pg_temp.audit('dcol'), 'audit after DROP COLUMN');
UPDATE dcol SET c = 'after the drop' WHERE id = 3;
INSERT INTO dcol VALUES (4, 'four', 'c4');
SELECT ok(pg_temp.audit('dcol'), 'audit after writes that follow it');

-- B still has b: its change to b is ignored here, the one to c is applied; both converge
-- on the columns they share.
SELECT pg_sleep(0.002);
SELECT pg_temp.on_b($$UPDATE dcol SET b = 99, c = 'from B' WHERE id = 1$$);
SELECT ok((pg_temp.b_to_a()->>'untracked')::int >= 1, 'B''s change to the dropped column is counted untracked');
SELECT is((SELECT c FROM dcol WHERE id = 1), 'from B', 'B''s change to another column of the row is applied');
SELECT pg_temp.a_to_b();
SELECT is(pg_temp.b_value('SELECT string_agg(format(''%s/%s/%s'', id, a, c), '','' ORDER BY id) FROM dcol'),
  (SELECT string_agg(format('%s/%s/%s', id, a, c), ',' ORDER BY id) FROM dcol), 'A and B agree on the columns they share');
SELECT is(pg_temp.b_value('SELECT b::text FROM dcol WHERE id = 1'), '99', 'B keeps its own column');

SELECT throws_like($$ALTER TABLE dcol DROP COLUMN id$$,
  'deltasync: column "id" is part of the primary key of tracked table "dcol" and cannot be dropped; call deltasync_disable(''dcol'')%',
  'dropping a key column is refused');

-- Several columns at once, after columns were added.
ALTER TABLE dcol ADD COLUMN d int, ADD COLUMN e text;
UPDATE dcol SET e = 'e1' WHERE id = 1;
SELECT pg_temp.clock('dcol', 1, 'e') AS e1, pg_temp.clock('dcol', 1, 'c') AS c1b \gset
ALTER TABLE dcol DROP COLUMN a, DROP COLUMN d;
SELECT is((SELECT columns::jsonb FROM deltasync.tables WHERE name = 'dcol'), '["c", "e"]'::jsonb, 'two columns dropped in one statement');
SELECT is(pg_temp.clock('dcol', 1, 'e') || '/' || pg_temp.clock('dcol', 1, 'c'), :'e1' || '/' || :'c1b', 'the others keep their clocks');
SELECT ok(pg_temp.audit('dcol'), 'audit after dropping two columns');

-- A partitioned table.
CREATE TABLE dpart (id int NOT NULL, r int NOT NULL, x text, y text NOT NULL, PRIMARY KEY (id, r)) PARTITION BY RANGE (r);
CREATE TABLE dpart_1 PARTITION OF dpart FOR VALUES FROM (0) TO (10);
CREATE TABLE dpart_2 PARTITION OF dpart FOR VALUES FROM (10) TO (20);
SELECT deltasync_enable('dpart');
INSERT INTO dpart VALUES (1, 1, 'x1', 'y1'), (2, 12, 'x2', 'y2');
UPDATE dpart_2 SET y = 'y2 again';
SELECT pg_temp.clock('dpart', 2, 'y') AS y2 \gset
ALTER TABLE dpart DROP COLUMN x;
SELECT is((SELECT columns::jsonb FROM deltasync.tables WHERE name = 'dpart'), '["y"]'::jsonb, 'DROP COLUMN of a partitioned table is followed');
SELECT is(pg_temp.clock('dpart', 2, 'y'), :'y2'::text, 'its other column keeps its clock');
UPDATE dpart_1 SET y = 'y1 again';
INSERT INTO dpart_2 VALUES (3, 13, 'y3');
SELECT ok(pg_temp.audit('dpart'), 'audit after writes to its partitions');

-- RENAME COLUMN of a key column: followed; writes and changes go on.
ALTER TABLE dcol RENAME COLUMN id TO ident;
SELECT is((SELECT pk::jsonb FROM deltasync.tables WHERE name = 'dcol'), '["ident"]'::jsonb, 'a renamed key column is followed');
SELECT lives_ok($$INSERT INTO dcol VALUES (5, 'c5', 'e5')$$, 'an insert after it');
SELECT lives_ok($$UPDATE dcol SET ident = 6 WHERE ident = 5$$, 'a key change after it');
SELECT is((SELECT t->'pk' FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t WHERE t->>'name' = 'dcol'),
  '["ident"]'::jsonb, 'changes carry the new key name');
SELECT ok(pg_temp.audit('dcol'), 'audit after the key rename');
ALTER TABLE dcol RENAME COLUMN c TO cc;
SELECT is((SELECT columns::jsonb FROM deltasync.tables WHERE name = 'dcol'), '["cc", "e"]'::jsonb, 'a renamed column is followed');
SELECT ok(pg_temp.audit('dcol'), 'audit after the column rename');

SELECT pg_temp.on_b('DROP TABLE dcol');
SELECT * FROM finish();
ROLLBACK;
