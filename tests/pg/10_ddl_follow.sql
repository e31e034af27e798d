-- DDL deltasync follows on PostgreSQL (issue 12): DROP COLUMN of tracked columns (the
-- tracked list shrinks, every other column keeps its clock, other sites' changes to the
-- dropped column are ignored), on ordinary and partitioned tables; a key column cannot be
-- dropped; a key column's rename is followed; a table changed where deltasync could not see
-- it is reported and left out, and never stops the others. Each step is checked by an audit (the rows
-- deltasync_changes(0) describes are the rows the table holds) and against site ds_b.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(48);
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
    -- A column the row has no change for holds a value without a version (ADD COLUMN): NULL here.
    SELECT (r->'key')::text || ' ' || (SELECT jsonb_agg((SELECT c->1 FROM jsonb_array_elements(r->'changes') AS c
      WHERE (c->>0)::int = i - 1) ORDER BY i) FROM generate_series(1, jsonb_array_length(t->'columns')) AS i)::text AS x
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

-- A table changed behind deltasync's back (event triggers do not fire under
-- session_replication_role = replica): status names it, deltasync_changes leaves it out and
-- serves the others, writes to it and payloads for it are refused naming it, and
-- disable + enable repairs it.
CREATE TABLE brk (id int PRIMARY KEY, v text NOT NULL, w text);
CREATE TABLE brk_key (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE brk_fine (id int PRIMARY KEY, v text NOT NULL);
SELECT deltasync_enable('brk'), deltasync_enable('brk_key'), deltasync_enable('brk_fine');
INSERT INTO brk VALUES (1, 'x', 'y');
INSERT INTO brk_key VALUES (1, 'x');
INSERT INTO brk_fine VALUES (1, 'fine');
SET LOCAL session_replication_role = replica;
ALTER TABLE brk DROP COLUMN w;
ALTER TABLE brk_key ALTER COLUMN id TYPE bigint;
SET LOCAL session_replication_role = origin;
CREATE FUNCTION pg_temp.status_of(tbl text) RETURNS jsonb LANGUAGE sql AS $$
  SELECT t FROM jsonb_array_elements(deltasync_status()->'tables') AS t WHERE t->>'table' = tbl $$;
SELECT is(pg_temp.status_of('brk')->>'state', 'broken', 'status reports a table whose tracked column vanished unseen as broken');
SELECT matches(pg_temp.status_of('brk')->>'error', 'its column "w" is gone.*deltasync_disable\(''brk''\)', '... saying why and what to do');
SELECT is(pg_temp.status_of('brk_key')->>'error' LIKE '%the type of its key column "id" changed%', true, 'a key retyped unseen too');
SELECT is(pg_temp.status_of('brk_fine')->>'state', 'tracked', 'the other tables stay tracked');
SELECT is((SELECT array_agg(t->>'name' ORDER BY t->>'name') FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t
           WHERE t->>'name' LIKE 'brk%'), ARRAY['brk_fine'], 'deltasync_changes leaves the broken tables out and serves the others');
SELECT throws_like($$INSERT INTO brk VALUES (2, 'z')$$,
  'deltasync: table "brk" cannot be served by deltasync any more: its column "w" is gone%', 'a write to a broken table is refused, naming it');
SELECT throws_like(format($$SELECT deltasync_apply(%L)$$, '{"format":"deltasync","version":1,"site":"00000000-0000-4000-8000-000000000002",'
  '"since":0,"until":1,"sites":["00000000-0000-4000-8000-000000000002"],"tables":[{"name":"brk","pk":["id"],"columns":["v"],'
  '"rows":[{"key":[5],"cl":1,"changes":[[0,"remote",' || ((extract(epoch from now())::bigint * 1000) << 16) || ',0,1]]}]}]}'),
  'deltasync: table "brk" cannot be served by deltasync any more%', 'a payload for it is refused, naming it');
SELECT lives_ok($$SELECT deltasync_disable('brk'), deltasync_enable('brk')$$, 'disable and enable repair it');
SELECT is(pg_temp.status_of('brk')->>'state', 'tracked', '... it is tracked again');
SELECT ok(pg_temp.audit('brk'), 'audit of the repaired table');
SELECT lives_ok($$INSERT INTO brk VALUES (2, 'z')$$, 'and written again');

-- Capture triggers disabled where deltasync could not see it.
CREATE TABLE brk_trig (id int PRIMARY KEY, v text NOT NULL);
SELECT deltasync_enable('brk_trig');
SET LOCAL session_replication_role = replica;
ALTER TABLE brk_trig DISABLE TRIGGER deltasync_capture_upd;
SET LOCAL session_replication_role = origin;
SELECT matches(pg_temp.status_of('brk_trig')->>'error', 'a trigger disabled or gone',
  'status reports a table whose capture trigger was disabled unseen');
SELECT throws_like($$SELECT deltasync_enable('brk_trig')$$, 'deltasync: table "brk_trig" cannot be served by deltasync any more%',
  'enable alone does not paper over writes that may have escaped');
SELECT lives_ok($$SELECT deltasync_disable('brk_trig'), deltasync_enable('brk_trig')$$, 'disable and enable do');
SELECT is(pg_temp.status_of('brk_trig')->>'state', 'tracked', '... it is tracked again');

-- Partitions created, attached or detached where deltasync could not see it.
CREATE TABLE brk_part (id int NOT NULL, r int NOT NULL, v text NOT NULL, PRIMARY KEY (id, r)) PARTITION BY RANGE (r);
CREATE TABLE brk_part_1 PARTITION OF brk_part FOR VALUES FROM (0) TO (10);
CREATE TABLE brk_part_2 PARTITION OF brk_part FOR VALUES FROM (10) TO (20);
SELECT deltasync_enable('brk_part');
SET LOCAL session_replication_role = replica;
CREATE TABLE brk_part_3 PARTITION OF brk_part FOR VALUES FROM (20) TO (30);
SET LOCAL session_replication_role = origin;
SELECT is(pg_temp.status_of('brk_part')->>'state', 'broken', 'a partition created unseen, without capture triggers, is reported');
SELECT lives_ok($$SELECT deltasync_disable('brk_part'), deltasync_enable('brk_part')$$, 'disable and enable cover it');
SELECT is(pg_temp.status_of('brk_part')->>'state', 'tracked', '... it is tracked again');
SET LOCAL session_replication_role = replica;
ALTER TABLE brk_part DETACH PARTITION brk_part_2;
SET LOCAL session_replication_role = origin;
SELECT is(pg_temp.status_of('brk_part')->>'state', 'broken', 'a partition detached unseen is reported');
SELECT lives_ok($$SELECT deltasync_disable('brk_part')$$, 'disable');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'brk_part_2'::regclass AND tgname LIKE 'deltasync\_capture\_%'), 0,
  '... removes the triggers of the table detached unseen too');

-- deltasync's own DDL (shadow tables, triggers) does not fire users' event triggers.
CREATE TABLE ddl_seen (what text);
CREATE FUNCTION public.ddl_seen_log() RETURNS event_trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO ddl_seen SELECT object_identity FROM pg_event_trigger_ddl_commands(); END $$;
CREATE EVENT TRIGGER ddl_seen_log ON ddl_command_end EXECUTE FUNCTION public.ddl_seen_log();
CREATE FUNCTION public.ddl_seen_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO ddl_seen SELECT 'dropped ' || object_identity FROM pg_event_trigger_dropped_objects(); END $$;
CREATE EVENT TRIGGER ddl_seen_drop ON sql_drop EXECUTE FUNCTION public.ddl_seen_drop();
CREATE TABLE quiet (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE quiet_1 PARTITION OF quiet FOR VALUES FROM (0) TO (10);
DELETE FROM ddl_seen;
SELECT deltasync_enable('quiet');
CREATE TABLE quiet_2 PARTITION OF quiet FOR VALUES FROM (10) TO (20);
SELECT deltasync_disable('quiet');
SELECT ok((SELECT count(*) FROM ddl_seen WHERE what = 'public.quiet_2') = 1, 'users'' event triggers see the user''s own DDL');
SELECT is((SELECT array_agg(what) FROM ddl_seen WHERE what LIKE '%deltasync%'), NULL, '... and none of deltasync''s');
DROP EVENT TRIGGER ddl_seen_log;
DROP EVENT TRIGGER ddl_seen_drop;

SELECT pg_temp.on_b('DROP TABLE dcol');
SELECT * FROM finish();
ROLLBACK;
