-- Partitioned tables tracked as one table (issue 12): every write path — the root, an
-- intermediate partitioned table, a leaf, MERGE, COPY, writable CTEs, ON CONFLICT,
-- TRUNCATE, rows moving between partitions, partitions created, attached, detached and
-- dropped — is checked after each statement by an audit that compares the table's rows with
-- what deltasync_changes(0) says, and by two other sites that apply the changes: ds_b holds
-- an ordinary table of the same name, ds_c a table partitioned differently. Table
-- inheritance is refused with a deltasync: error at every door.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(98);
SELECT dblink_connect('b', :'other');
SELECT dblink_connect('c', replace(:'other', 'dbname=ds_b', 'dbname=ds_c'));

-- The audit: the live rows deltasync_changes(0) describes, key and column values, are
-- exactly the rows the tracked table holds.
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
CREATE FUNCTION pg_temp.on(site text, sql text) RETURNS void LANGUAGE sql AS $$ SELECT dblink_exec(site, sql) $$;
CREATE FUNCTION pg_temp.value(site text, sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink(site, sql) AS t(v text) $$;
CREATE FUNCTION pg_temp.rows_of(tbl text) RETURNS text LANGUAGE sql AS $$
  SELECT format('SELECT coalesce(string_agg(format(''%%s/%%s/%%s/%%s'', id, r, name, qty), '','' ORDER BY id, r), '''') FROM %I', tbl) $$;
-- A's changes applied on B and C; then each holds what A holds.
CREATE FUNCTION pg_temp.spread() RETURNS void LANGUAGE plpgsql AS $$
DECLARE p text := deltasync_changes(0);
BEGIN
  PERFORM pg_temp.value('b', format('SELECT deltasync_apply(%L)::text', p));
  PERFORM pg_temp.value('c', format('SELECT deltasync_apply(%L)::text', p));
END $$;
CREATE FUNCTION pg_temp.converged() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a text; b text; c text;
BEGIN
  PERFORM pg_temp.spread();
  EXECUTE pg_temp.rows_of('part') INTO a;
  b := pg_temp.value('b', pg_temp.rows_of('part'));
  c := pg_temp.value('c', pg_temp.rows_of('part'));
  IF a IS DISTINCT FROM b OR a IS DISTINCT FROM c THEN RAISE WARNING 'A: %  B: %  C: %', a, b, c; END IF;
  RETURN a IS NOT DISTINCT FROM b AND a IS NOT DISTINCT FROM c;
END $$;
-- Both checks after a statement.
CREATE FUNCTION pg_temp.check_after(what text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  RETURN NEXT ok(pg_temp.audit('part'), 'audit after ' || what);
  RETURN NEXT ok(pg_temp.converged(), 'B (ordinary table) and C (other partitions) converge after ' || what);
END $$;

-- A: partitioned by range of r, one range partitioned again by list of id.
CREATE TABLE part (id int NOT NULL, r int NOT NULL, name text NOT NULL, qty int NOT NULL, PRIMARY KEY (id, r))
  PARTITION BY RANGE (r);
CREATE TABLE part_lo PARTITION OF part FOR VALUES FROM (0) TO (10);
CREATE TABLE part_mid PARTITION OF part FOR VALUES FROM (10) TO (20) PARTITION BY LIST (id);
CREATE TABLE part_mid_a PARTITION OF part_mid FOR VALUES IN (1, 2, 3);
CREATE TABLE part_mid_b PARTITION OF part_mid DEFAULT;
INSERT INTO part VALUES (100, 1, 'before enable', 1);
SELECT pg_temp.on('b', 'DROP TABLE IF EXISTS part CASCADE; CREATE TABLE part (id int NOT NULL, r int NOT NULL, name text NOT NULL,'
  ' qty int NOT NULL, PRIMARY KEY (id, r))');
SELECT pg_temp.on('c', 'DROP TABLE IF EXISTS part CASCADE; CREATE TABLE part (id int NOT NULL, r int NOT NULL, name text NOT NULL,'
  ' qty int NOT NULL, PRIMARY KEY (id, r)) PARTITION BY HASH (id);'
  ' CREATE TABLE part_h0 PARTITION OF part FOR VALUES WITH (MODULUS 2, REMAINDER 0);'
  ' CREATE TABLE part_h1 PARTITION OF part FOR VALUES WITH (MODULUS 2, REMAINDER 1)');
SELECT pg_temp.value('b', $$SELECT deltasync_enable('part')::text$$);
SELECT pg_temp.value('c', $$SELECT deltasync_enable('part')::text$$);

SELECT throws_like($$SELECT deltasync_enable('part_lo')$$,
  'deltasync: "part_lo" is a partition of "part"; track the partitioned table instead%', 'a partition alone cannot be tracked');
SELECT is(deltasync_enable('part')->>'backfilled', '1', 'a partitioned table can be tracked; its rows are backfilled');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'deltasync\_capture\_%'
           AND tgrelid IN ('part'::regclass, 'part_lo'::regclass, 'part_mid'::regclass, 'part_mid_a'::regclass, 'part_mid_b'::regclass)),
  5 + 4 + 4 + 4 + 4, 'every member of the tree carries capture triggers (a partitioned one also deltasync_capture_bupd)');
SELECT * FROM pg_temp.check_after('enable');

INSERT INTO part VALUES (1, 1, 'one', 1), (2, 11, 'two', 2), (5, 15, 'five', 5);
SELECT * FROM pg_temp.check_after('an insert through the root');
SELECT deltasync_db_version() AS v0 \gset
INSERT INTO part_lo VALUES (3, 2, 'three', 3);
SELECT is((SELECT count(*)::int FROM jsonb_array_elements(deltasync_changes(:v0)::jsonb->'tables') AS t, jsonb_array_elements(t->'rows') AS r
           WHERE t->>'name' = 'part'), 1, 'a direct write to a leaf is captured once, under the root''s name');
SELECT is((SELECT count(*)::int FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t WHERE t->>'name' LIKE 'part\_%'), 0,
  'no partition''s name ever travels');
INSERT INTO part_mid VALUES (6, 12, 'six', 6);
INSERT INTO part_mid_b VALUES (7, 13, 'seven', 7);
SELECT * FROM pg_temp.check_after('inserts into a leaf and an intermediate partitioned table');

UPDATE part SET r = 12 WHERE id = 1;
SELECT is((SELECT tableoid::regclass::text FROM part WHERE id = 1), 'part_mid_a', 'the row moved to another partition');
SELECT * FROM pg_temp.check_after('an update moving a row between partitions');
UPDATE part_mid SET id = 9 WHERE id = 2;
SELECT * FROM pg_temp.check_after('an update of an intermediate table moving a row between its partitions');
UPDATE part_lo SET qty = qty + 10;
UPDATE part SET name = name || '!' WHERE r >= 10;
SELECT * FROM pg_temp.check_after('updates of a leaf and through the root');

MERGE INTO part USING (VALUES (3, 2, 'three merged'), (8, 3, 'eight'), (6, 12, 'gone')) AS s(id, r, name) ON part.id = s.id AND part.r = s.r
  WHEN MATCHED AND s.name = 'gone' THEN DELETE
  WHEN MATCHED THEN UPDATE SET name = s.name, r = part.r + 10
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.r, s.name, 8);
SELECT is((SELECT tableoid::regclass::text FROM part WHERE id = 3), 'part_mid_a', 'MERGE moved a row between partitions');
SELECT * FROM pg_temp.check_after('MERGE (delete, update moving a row, insert)');
-- A MERGE whose actions include no DELETE or no INSERT: PostgreSQL 15 puts the rows its
-- UPDATE moves into the DELETE and INSERT transition tables and would fire no trigger for
-- them; deltasync's hook queues its own (and only its own) triggers for them.
CREATE FUNCTION public.part_count_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('part.fired', current_setting('part.fired', true) || TG_OP || ' ', true); RETURN NULL; END $$;
CREATE TRIGGER part_user_del AFTER DELETE ON part FOR EACH STATEMENT EXECUTE FUNCTION public.part_count_stmt();
CREATE TRIGGER part_user_ins AFTER INSERT ON part FOR EACH STATEMENT EXECUTE FUNCTION public.part_count_stmt();
SELECT set_config('part.fired', '', true);
MERGE INTO part USING (VALUES (3, 12)) AS s(id, r) ON part.id = s.id AND part.r = s.r WHEN MATCHED THEN UPDATE SET r = 3;
SELECT is((SELECT tableoid::regclass::text FROM part WHERE id = 3), 'part_lo', 'MERGE (UPDATE only) moved a row back');
SELECT * FROM pg_temp.check_after('MERGE whose only action is an UPDATE moving a row');
SELECT is(current_setting('part.fired'), '', '... and the application''s DELETE and INSERT statement triggers did not fire for it');
DROP TRIGGER part_user_del ON part;
DROP TRIGGER part_user_ins ON part;
MERGE INTO part USING (VALUES (3, 3), (31, 6)) AS s(id, r) ON part.id = s.id AND part.r = s.r
  WHEN MATCHED THEN UPDATE SET r = 13, name = 'three moved' WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.r, 'thirty-one', 31);
SELECT * FROM pg_temp.check_after('MERGE (UPDATE moving a row, INSERT)');
MERGE INTO part USING (VALUES (3, 13), (31, 6)) AS s(id, r) ON part.id = s.id AND part.r = s.r
  WHEN MATCHED AND s.id = 31 THEN DELETE WHEN MATCHED THEN UPDATE SET r = 4;
SELECT * FROM pg_temp.check_after('MERGE (UPDATE moving a row, DELETE)');
MERGE INTO part_mid USING (VALUES (1, 12)) AS s(id, r) ON part_mid.id = s.id AND part_mid.r = s.r
  WHEN MATCHED THEN UPDATE SET id = 11;
SELECT is((SELECT tableoid::regclass::text FROM part WHERE id = 11), 'part_mid_b', 'MERGE into an intermediate table moved a row');
SELECT * FROM pg_temp.check_after('MERGE into an intermediate table moving a row between its partitions');
MERGE INTO part USING (VALUES (11, 12)) AS s(id, r) ON part.id = s.id AND part.r = s.r
  WHEN MATCHED THEN UPDATE SET id = 1, name = name || ' back';
SELECT * FROM pg_temp.check_after('MERGE moving a row between partitions below the root');
MERGE INTO part USING (VALUES (99, 99)) AS s(id, r) ON part.id = s.id AND part.r = s.r WHEN MATCHED THEN UPDATE SET r = 1;
SELECT * FROM pg_temp.check_after('MERGE matching nothing');
DO $$ BEGIN MERGE INTO part USING (VALUES (1, 12)) AS s(id, r) ON part.id = s.id AND part.r = s.r WHEN MATCHED THEN UPDATE SET r = 7; END $$;
SELECT is((SELECT tableoid::regclass::text FROM part WHERE id = 1), 'part_lo', 'a MERGE in a PL/pgSQL block moved a row');
SELECT * FROM pg_temp.check_after('a MERGE in a PL/pgSQL block moving a row');
DO $$ BEGIN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF) MERGE INTO part USING (VALUES (1, 7)) AS s(id, r) ON part.id = s.id AND part.r = s.r'
  ' WHEN MATCHED THEN UPDATE SET r = 12'; END $$;
SELECT is((SELECT tableoid::regclass::text FROM part WHERE id = 1), 'part_mid_a', 'EXPLAIN ANALYZE of a MERGE moved a row back');
SELECT * FROM pg_temp.check_after('EXPLAIN ANALYZE of a MERGE moving a row');
-- A backend that has not loaded deltasync yet, whose first statement is such a MERGE: the
-- BEFORE UPDATE statement trigger loads the module at the MERGE's start, so its hook sees
-- the end. (On B, in a connection of its own; the table is dropped below.)
SELECT pg_temp.on('b', 'CREATE TABLE part_fresh (id int NOT NULL, r int NOT NULL, v text NOT NULL, PRIMARY KEY (id, r))'
  ' PARTITION BY RANGE (r); CREATE TABLE part_fresh_lo PARTITION OF part_fresh FOR VALUES FROM (0) TO (10);'
  ' CREATE TABLE part_fresh_hi PARTITION OF part_fresh FOR VALUES FROM (10) TO (20);'
  ' INSERT INTO part_fresh VALUES (1, 1, ''one''), (2, 2, ''two'')');
SELECT pg_temp.value('b', $$SELECT deltasync_enable('part_fresh')::text$$);
SELECT dblink_connect('fresh', :'other');
SELECT pg_temp.on('fresh', 'MERGE INTO part_fresh USING (VALUES (1, 1)) AS s(id, r) ON part_fresh.id = s.id AND part_fresh.r = s.r'
  ' WHEN MATCHED THEN UPDATE SET r = 11');
SELECT dblink_disconnect('fresh');
SELECT is(pg_temp.value('b', $$SELECT string_agg((r->'key')::text || ':' || (r->>'cl'), ' ' ORDER BY (r->'key')::text COLLATE "C")
  FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t, jsonb_array_elements(t->'rows') AS r
  WHERE t->>'name' = 'part_fresh'$$), '[1, 11]:1 [1, 1]:2 [2, 2]:1',
  'a fresh backend''s first statement, a MERGE moving a row, is captured as the delete of the old key and the insert of the new');
SELECT pg_temp.on('b', 'DROP TABLE part_fresh');

COPY part FROM STDIN;
20	4	copied	20
21	14	copied too	21
\.
SELECT * FROM pg_temp.check_after('COPY into the root');
COPY part_lo FROM STDIN;
22	5	copied into a leaf	22
\.
SELECT * FROM pg_temp.check_after('COPY into a leaf');

WITH u AS (UPDATE part SET qty = -qty WHERE id = 20 RETURNING *),
     d AS (DELETE FROM part WHERE id = 8 RETURNING *),
     m AS (UPDATE part SET r = r + 10 WHERE id = 22 RETURNING *)
INSERT INTO part SELECT id + 100, r, name || ' again', qty FROM u;
SELECT * FROM pg_temp.check_after('a writable CTE updating, deleting, moving and inserting');

INSERT INTO part VALUES (1, 12, 'one upserted', 1), (30, 5, 'thirty', 30)
  ON CONFLICT (id, r) DO UPDATE SET name = excluded.name, qty = part.qty + 100;
INSERT INTO part_lo VALUES (30, 5, 'x', 0) ON CONFLICT (id, r) DO NOTHING;
SELECT * FROM pg_temp.check_after('INSERT ... ON CONFLICT on the root and on a leaf');

DELETE FROM part_mid_b WHERE id = 7;
DELETE FROM part WHERE id = 5;
SELECT * FROM pg_temp.check_after('deletes from a leaf and through the root');

TRUNCATE part_mid;
SELECT is((SELECT count(*)::int FROM part), (SELECT count(*)::int FROM part_lo), 'TRUNCATE of a partitioned partition empties its subtree');
SELECT * FROM pg_temp.check_after('TRUNCATE of a partition');

-- Partitions created, attached, detached and dropped.
CREATE TABLE part_hi PARTITION OF part FOR VALUES FROM (20) TO (30);
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'part_hi'::regclass AND tgname LIKE 'deltasync\_capture\_%'), 4,
  'a new partition is covered at once');
INSERT INTO part_hi VALUES (40, 25, 'in a new partition', 40);
INSERT INTO part VALUES (41, 26, 'routed to it', 41);
SELECT * FROM pg_temp.check_after('writes to a new partition');
CREATE TABLE part_top (id int NOT NULL, r int NOT NULL, name text NOT NULL, qty int NOT NULL, PRIMARY KEY (id, r));
INSERT INTO part_top VALUES (50, 35, 'came with an attached table', 50), (51, 36, 'so did this', 51);
ALTER TABLE part ATTACH PARTITION part_top FOR VALUES FROM (30) TO (40);
SELECT * FROM pg_temp.check_after('ATTACH PARTITION of a table holding rows');
UPDATE part_top SET qty = 0 WHERE id = 50;
SELECT * FROM pg_temp.check_after('a write to the attached partition');
ALTER TABLE part DETACH PARTITION part_hi;
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'part_hi'::regclass AND tgname LIKE 'deltasync\_capture\_%'), 0,
  'a detached table is no longer covered');
SELECT * FROM pg_temp.check_after('DETACH PARTITION (its rows leave the table)');
SELECT deltasync_db_version() AS v1 \gset
INSERT INTO part_hi VALUES (42, 27, 'written after the detach', 42);
SELECT is(deltasync_db_version(), :v1::bigint, 'a write to the detached table is not captured');
DROP TABLE part_top;
SELECT * FROM pg_temp.check_after('DROP TABLE of a partition');
CREATE TABLE part_lo2 PARTITION OF part FOR VALUES FROM (40) TO (50);
INSERT INTO part VALUES (60, 45, 'sixty', 60), (61, 2, 'sixty-one', 61);
SELECT * FROM pg_temp.check_after('writes after the tree changed');

-- Changes made on B (an ordinary table) land in A's partitions, a key change included.
SELECT pg_temp.on('b', $$UPDATE part SET r = 41 WHERE id = 61; INSERT INTO part VALUES (70, 15, 'from B', 70); UPDATE part SET qty = 7 WHERE id = 1$$);
SELECT deltasync_apply(pg_temp.value('b', 'SELECT deltasync_changes(0)'));
SELECT is((SELECT tableoid::regclass::text FROM part WHERE id = 61), 'part_lo2', 'a key change on B moves the row between A''s partitions');
SELECT is((SELECT tableoid::regclass::text FROM part WHERE id = 70), 'part_mid_b', 'a row inserted on B lands in its partition on A');
SELECT * FROM pg_temp.check_after('applying B''s changes');

-- What capture cannot follow is refused before it takes effect.
SELECT throws_like($$ALTER TABLE part_lo DISABLE TRIGGER USER$$,
  'deltasync: disabling the capture trigger % of partition "part_lo"%of tracked table "part"%', 'disabling a partition''s triggers is refused');
SELECT throws_like($$ALTER TABLE part_mid_a ENABLE REPLICA TRIGGER deltasync_capture_ins$$,
  'deltasync: disabling the capture trigger deltasync_capture_ins%', 'a capture trigger turned into a REPLICA trigger is refused');
SELECT throws_like($$DROP TRIGGER deltasync_capture_upd ON part_mid$$,
  'deltasync: dropping the capture trigger deltasync_capture_upd of tracked table "part"%deltasync_disable(''part'')%',
  'dropping a partition''s capture trigger is refused');
SELECT throws_like($$DROP TRIGGER deltasync_capture_del ON part$$, 'deltasync: dropping the capture trigger deltasync_capture_del%',
  'dropping the tracked table''s capture trigger is refused');
CREATE TABLE part_solo (id int NOT NULL, r int NOT NULL, name text NOT NULL, qty int NOT NULL, PRIMARY KEY (id, r));
SELECT deltasync_enable('part_solo');
SELECT throws_like($$ALTER TABLE part ATTACH PARTITION part_solo FOR VALUES FROM (50) TO (60)$$,
  'deltasync: "public"."part_solo" is tracked on its own; call deltasync_disable(''part_solo'')%', 'a table tracked on its own cannot be attached');
CREATE TABLE part_free (id int NOT NULL, r int NOT NULL, name text NOT NULL, qty int NOT NULL, PRIMARY KEY (id, r)) PARTITION BY RANGE (r);
SELECT throws_like($$ALTER TABLE part_free ATTACH PARTITION part_solo FOR VALUES FROM (0) TO (10)$$,
  'deltasync: tracked table "public"."part_solo" cannot become a partition of an untracked table%', '... nor attached to an untracked table');
CREATE FOREIGN DATA WRAPPER part_fdw;
CREATE SERVER part_server FOREIGN DATA WRAPPER part_fdw;
SELECT throws_ok($$CREATE FOREIGN TABLE part_far PARTITION OF part FOR VALUES FROM (90) TO (100) SERVER part_server$$,
  'cannot create foreign partition of partitioned table "part"',
  'a foreign partition is refused (by PostgreSQL: a tracked table has a primary key, which foreign tables cannot take part in)');
SELECT * FROM pg_temp.check_after('the refused statements');

-- Inheritance: refused, whichever way it comes.
CREATE TABLE inh_parent (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE inh_child (extra int) INHERITS (inh_parent);
SELECT throws_like($$SELECT deltasync_enable('inh_parent')$$, 'deltasync: "inh_parent" takes part in table inheritance%',
  'an inheritance parent cannot be tracked');
ALTER TABLE inh_child ADD PRIMARY KEY (id);
SELECT throws_like($$SELECT deltasync_enable('inh_child')$$, 'deltasync: "inh_child" takes part in table inheritance%',
  'an inheritance child cannot be tracked');
CREATE TABLE inh_tracked (id int PRIMARY KEY, v text NOT NULL);
SELECT deltasync_enable('inh_tracked');
SELECT throws_like($$CREATE TABLE inh_new () INHERITS (inh_tracked)$$,
  'deltasync: a table cannot inherit from tracked table "inh_tracked"%', 'CREATE TABLE ... INHERITS a tracked table is refused');
CREATE TABLE inh_other (id int PRIMARY KEY, v text NOT NULL);
SELECT throws_like($$ALTER TABLE inh_other INHERIT inh_tracked$$, 'deltasync: tracked table "inh_tracked" cannot take part in table inheritance%',
  'ALTER TABLE ... INHERIT a tracked table is refused');
SELECT throws_like($$ALTER TABLE inh_tracked INHERIT inh_parent$$, 'deltasync: tracked table "inh_tracked" cannot take part in table inheritance%',
  'a tracked table cannot become an inheritance child');
SELECT is((SELECT count(*)::int FROM pg_inherits WHERE inhparent = 'inh_tracked'::regclass OR inhrelid = 'inh_tracked'::regclass), 0,
  '... and no inheritance was left behind');

-- TRUNCATE of the root, then disable: every member's triggers go, the rows stay.
TRUNCATE part;
SELECT * FROM pg_temp.check_after('TRUNCATE of the root');
INSERT INTO part VALUES (80, 3, 'after truncate', 80);
SELECT * FROM pg_temp.check_after('an insert after TRUNCATE');
SELECT is(deltasync_disable('part')->>'changed', 'true', 'disable of a partitioned table');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'deltasync\_capture\_%'
           AND tgrelid IN (SELECT relid FROM pg_partition_tree('part'))), 0, '... removes the triggers of every member');
SELECT is((SELECT count(*)::int FROM deltasync.members), 0, '... and forgets them');
SELECT is((SELECT count(*)::int FROM part), 1, '... and keeps the rows');

SELECT pg_temp.on('b', 'DROP TABLE part');
SELECT pg_temp.on('c', 'DROP TABLE part');
SELECT * FROM finish();
ROLLBACK;
