-- SPEC section 3 between two PostgreSQL sites: ds_a (this session) and ds_b (dblink).
-- Payloads travel as deltasync_changes / deltasync_apply; every rule is checked on both.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(31);
SELECT dblink_connect('b', :'other');

CREATE FUNCTION pg_temp.on_b(sql text) RETURNS void LANGUAGE sql AS $$ SELECT dblink_exec('b', sql) $$;
CREATE FUNCTION pg_temp.b_enable(tbl text) RETURNS text LANGUAGE sql AS $$
  SELECT v FROM dblink('b', format('SELECT deltasync_enable(%L)::text', tbl)) AS t(v text) $$;
CREATE FUNCTION pg_temp.b_value(sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink('b', sql) AS t(v text) $$;
-- Everything A holds, merged into B; and the other way round.
CREATE FUNCTION pg_temp.a_to_b() RETURNS jsonb LANGUAGE sql AS $$
  SELECT r::jsonb FROM dblink('b', format('SELECT deltasync_apply(%L)::text', deltasync_changes(0))) AS t(r text) $$;
CREATE FUNCTION pg_temp.b_to_a() RETURNS jsonb LANGUAGE sql AS $$
  SELECT deltasync_apply((SELECT p FROM dblink('b', 'SELECT deltasync_changes(0)') AS t(p text))) $$;
CREATE FUNCTION pg_temp.same(tbl text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a text; b text;
BEGIN
  EXECUTE format('SELECT coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''') FROM %I AS t', tbl) INTO a;
  SELECT pg_temp.b_value(format('SELECT coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''') FROM %I AS t', tbl)) INTO b;
  IF a IS DISTINCT FROM b THEN RAISE NOTICE 'A: %  B: %', a, b; END IF;
  RETURN a IS NOT DISTINCT FROM b;
END $$;

CREATE TABLE sc (id int PRIMARY KEY, name text, qty int);
SELECT deltasync_enable('sc');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS sc; CREATE TABLE sc (id int PRIMARY KEY, name text, qty int)');
SELECT pg_temp.b_enable('sc');

INSERT INTO sc VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3);
SELECT is((pg_temp.a_to_b()->>'applied')::int, 6, 'B applies the 6 column changes of A''s inserts');
SELECT ok(pg_temp.same('sc'), 'B holds A''s rows');
SELECT is((pg_temp.a_to_b()->>'applied')::int, 0, 'applying the same payload again changes nothing (idempotent)');
SELECT is((pg_temp.b_to_a()->>'applied')::int, 0, 'nothing comes back: B relays A''s changes, A already has them');
SELECT is(pg_temp.b_value($$SELECT (deltasync_changes(0)::jsonb->'sites'->>0)$$), deltasync_site_id(),
  'B serves A''s changes with A as their origin (no echo as new changes, full relay)');

-- Rule 2: column-level last writer wins.
UPDATE sc SET name = 'one from A' WHERE id = 1;
SELECT pg_sleep(0.005);
SELECT pg_temp.on_b($$UPDATE sc SET name = 'one from B' WHERE id = 1$$);
UPDATE sc SET qty = 100 WHERE id = 2;
SELECT pg_temp.on_b($$UPDATE sc SET name = 'two from B' WHERE id = 2$$);
SELECT pg_temp.a_to_b();
SELECT pg_temp.b_to_a();
SELECT is((SELECT name FROM sc WHERE id = 1), 'one from B', 'the later write of one column wins');
SELECT is((SELECT name || '/' || qty FROM sc WHERE id = 2), 'two from B/100', 'concurrent edits of different columns both survive');
SELECT ok(pg_temp.same('sc'), 'both sites agree after exchanging');

-- Rule 3: a delete wins over a concurrent update; a re-insert after seeing it wins over it.
SELECT pg_temp.on_b($$DELETE FROM sc WHERE id = 3$$);
UPDATE sc SET qty = 33 WHERE id = 3;
SELECT pg_temp.b_to_a();
SELECT pg_temp.a_to_b();
SELECT is((SELECT count(*)::int FROM sc WHERE id = 3), 0, 'the delete wins over an update made without seeing it');
SELECT ok(pg_temp.same('sc'), 'both sites agree');
INSERT INTO sc VALUES (3, 'three again', 30);
SELECT pg_temp.a_to_b();
SELECT is(pg_temp.b_value('SELECT name FROM sc WHERE id = 3'), 'three again', 'a re-insert after the delete wins');
SELECT ok(pg_temp.same('sc'), 'both sites agree');
-- The same site writing the same row twice in one millisecond: the later write still wins.
UPDATE sc SET qty = 1 WHERE id = 1;
UPDATE sc SET qty = 2 WHERE id = 1;
SELECT pg_temp.a_to_b();
SELECT is(pg_temp.b_value('SELECT qty FROM sc WHERE id = 1'), '2', 'a local overwrite always beats the version it overwrites');

-- A local write beats the version it overwrites even when that version's clock is ahead of
-- this site's (a faster remote clock, or another backend in the same millisecond).
SELECT deltasync_apply(format('{"format":"deltasync","version":1,"site":"00000000-0000-4000-8000-000000000002","since":0,"until":1,'
  '"sites":["00000000-0000-4000-8000-000000000002"],"tables":[{"name":"sc","pk":["id"],"columns":["name"],'
  '"rows":[{"key":[2],"cl":1,"changes":[[0,"from the future",%s,0,1]]}]}]}', ((extract(epoch from now())::bigint + 60) * 1000) << 16));
SELECT deltasync_db_version() AS before_local \gset
UPDATE sc SET name = 'local after it' WHERE id = 2;
SELECT ok((SELECT (c->>2)::bigint FROM jsonb_array_elements(deltasync_changes(:before_local)::jsonb->'tables'->0->'rows'->0->'changes') c
           WHERE (c->>0)::int = 0) > ((extract(epoch from now())::bigint + 60) * 1000) << 16,
  'the local overwrite gets a clock above the one it replaced');
SELECT pg_temp.a_to_b();
SELECT is(pg_temp.b_value('SELECT name FROM sc WHERE id = 2'), 'local after it', 'and wins everywhere');

-- Rule 6 and 1: a refused clock and a value that does not fit leave everything as it was.
CREATE FUNCTION pg_temp.payload(tbl text, cols text, rows text) RETURNS text LANGUAGE sql AS $$
  SELECT format('{"format":"deltasync","version":1,"site":"00000000-0000-4000-8000-000000000001","since":0,"until":1,'
                '"sites":["00000000-0000-4000-8000-000000000001"],"tables":[{"name":"%s","pk":["id"],"columns":%s,"rows":%s}]}',
                tbl, cols, rows) $$;
SELECT deltasync_db_version() AS before_bad \gset
SELECT throws_like(format('SELECT deltasync_apply(%L)', pg_temp.payload('sc', '["name","qty"]',
  format('[{"key":[50],"cl":1,"changes":[[0,"new",%s,0,1]]},{"key":[51],"cl":1,"changes":[[1,"abc",%s,0,1]]}]',
         (extract(epoch from now())::bigint * 1000) << 16, (extract(epoch from now())::bigint * 1000) << 16))),
  'deltasync: cannot apply a change to column "qty" of table "sc": invalid input syntax for type integer%',
  'a value that does not fit its column is a deltasync error');
SELECT is((SELECT count(*)::int FROM sc WHERE id IN (50, 51)), 0, '... and nothing of the payload was applied');
SELECT is(deltasync_changes(:before_bad)::jsonb->'tables', '[]'::jsonb, '... no change at all');
SELECT throws_like(format('SELECT deltasync_apply(%L)', pg_temp.payload('sc', '["name"]',
  format('[{"key":[52],"cl":1,"changes":[[0,"future",%s,0,1]]}]', ((extract(epoch from now())::bigint + 3600) * 1000) << 16))),
  'deltasync: %clock%', 'a clock an hour ahead is refused');
SELECT is((SELECT count(*)::int FROM sc WHERE id = 52), 0, '... whole');
SELECT is((deltasync_apply(pg_temp.payload('sc', '["nope", "name"]',
  format('[{"key":[53],"cl":1,"changes":[[0,"x",%1$s,0,1],[1,"known",%1$s,0,1]]}]', (extract(epoch from now())::bigint * 1000) << 16)))->>'kept')::int,
  1, 'a change for a column this site does not have is kept until the column appears');
SELECT is((SELECT name FROM sc WHERE id = 53), 'known', '... and the rest of the row applies');
SELECT throws_like(format('SELECT deltasync_apply(%L)', pg_temp.payload('sc', '["name"]', '[{"key":[null],"cl":1,"changes":[]}]')),
  'deltasync: %', 'a NULL key is refused');
SELECT is((deltasync_apply(pg_temp.payload('not_here', '["x"]',
  format('[{"key":[1],"cl":1,"changes":[[0,"v",%s,0,1]]}]', (extract(epoch from now())::bigint * 1000) << 16)))->>'untracked')::int,
  1, 'changes for a table this site does not track are counted as untracked');
SELECT is((SELECT count(*)::int FROM pg_tables WHERE tablename = 'not_here'), 0, '... and create nothing');

-- Foreign keys between tracked tables: a child may arrive before its parent.
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent(id), note text);
SELECT deltasync_enable('parent'), deltasync_enable('child');
SELECT pg_temp.on_b($$DROP TABLE IF EXISTS child, parent;
  CREATE TABLE parent (id int PRIMARY KEY, name text);
  CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent(id), note text)$$);
SELECT pg_temp.b_enable('parent'), pg_temp.b_enable('child');
SELECT lives_ok(format('SELECT deltasync_apply(%L)', replace(pg_temp.payload('child', '["parent_id","note"]',
  format('[{"key":[10],"cl":1,"changes":[[0,7,%1$s,0,1],[1,"first",%1$s,0,1]]}]', (extract(epoch from now())::bigint * 1000) << 16)),
  '"pk":["id"]', '"pk":["id"]')), 'a child arriving before its parent applies');
SELECT lives_ok(format('SELECT deltasync_apply(%L)', pg_temp.payload('parent', '["name"]',
  format('[{"key":[7],"cl":1,"changes":[[0,"mum",%s,0,1]]}]', (extract(epoch from now())::bigint * 1000) << 16))),
  '... and the parent after it');
SELECT is((SELECT p.name FROM child c JOIN parent p ON p.id = c.parent_id), 'mum', 'the pair is whole');
SELECT pg_temp.a_to_b();
SELECT ok(pg_temp.same('child') AND pg_temp.same('parent'), 'and travels on to B');
SELECT throws_like($$INSERT INTO child VALUES (11, 999, 'orphan')$$, '%foreign key%', 'local writes still check the foreign key');

-- Reading changes in a REPEATABLE READ transaction is refused (its snapshot could be older
-- than the horizon).
SELECT dblink_exec('b', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
SELECT throws_like($$SELECT * FROM dblink('b', 'SELECT deltasync_changes(0)') AS t(p text)$$,
  '%deltasync: reading changes needs READ COMMITTED isolation%', 'changes under REPEATABLE READ is refused');
SELECT dblink_exec('b', 'ROLLBACK');

SELECT pg_temp.on_b('DROP TABLE IF EXISTS sc, child, parent');
SELECT * FROM finish();
ROLLBACK;
