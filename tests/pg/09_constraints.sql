-- Constraint conflicts between two PostgreSQL sites, ds_a (this session) and ds_b (dblink):
-- a row a constraint refuses is held in quarantine and retried while the rest applies; a
-- child whose parent was deleted concurrently is removed (the delete wins) on both sites.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(21);
SELECT dblink_connect('b', :'other');

CREATE FUNCTION pg_temp.on_b(sql text) RETURNS void LANGUAGE sql AS $$ SELECT dblink_exec('b', sql) $$;
CREATE FUNCTION pg_temp.b_value(sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink('b', sql) AS t(v text) $$;
CREATE FUNCTION pg_temp.a_to_b() RETURNS jsonb LANGUAGE sql AS $$
  SELECT r::jsonb FROM dblink('b', format('SELECT deltasync_apply(%L)::text', deltasync_changes(0))) AS t(r text) $$;
CREATE FUNCTION pg_temp.b_to_a() RETURNS jsonb LANGUAGE sql AS $$
  SELECT deltasync_apply((SELECT p FROM dblink('b', 'SELECT deltasync_changes(0)') AS t(p text))) $$;
CREATE FUNCTION pg_temp.sync() RETURNS void LANGUAGE sql AS $$
  SELECT pg_temp.a_to_b(); SELECT pg_temp.b_to_a(); SELECT pg_temp.a_to_b(); $$;
CREATE FUNCTION pg_temp.same(tbl text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a text; b text;
BEGIN
  EXECUTE format('SELECT coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''') FROM %I AS t', tbl) INTO a;
  SELECT pg_temp.b_value(format('SELECT coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''') FROM %I AS t', tbl)) INTO b;
  IF a IS DISTINCT FROM b THEN RAISE NOTICE 'A: %  B: %', a, b; END IF;
  RETURN a IS NOT DISTINCT FROM b;
END $$;

CREATE TEMP TABLE schema_sql (sql text);
INSERT INTO schema_sql VALUES ($$
  CREATE TABLE cs_product (id int PRIMARY KEY, sku text NOT NULL UNIQUE, price int NOT NULL CHECK (price >= 0));
  CREATE TABLE cs_tag (name text PRIMARY KEY);
  CREATE TABLE cs_orders (id int PRIMARY KEY, note text NOT NULL);
  CREATE TABLE cs_line (id int PRIMARY KEY, order_id int NOT NULL REFERENCES cs_orders (id) ON DELETE CASCADE, qty int NOT NULL);
  CREATE TABLE cs_memo (id int PRIMARY KEY, order_id int REFERENCES cs_orders (id) ON DELETE SET NULL, body text);
  DO $e$ BEGIN PERFORM deltasync_enable('cs_product'), deltasync_enable('cs_tag'), deltasync_enable('cs_orders'),
    deltasync_enable('cs_line'), deltasync_enable('cs_memo'); END $e$;
$$);
DO $$ BEGIN EXECUTE (SELECT sql FROM schema_sql); END $$;
SELECT pg_temp.on_b('DROP TABLE IF EXISTS cs_memo, cs_line, cs_orders, cs_tag, cs_product');
SELECT pg_temp.on_b((SELECT sql FROM schema_sql));

-- Item 5: two sites create one sku under different keys.
INSERT INTO cs_product VALUES (1, 'NEW-1', 10);
SELECT pg_temp.on_b($$INSERT INTO cs_product VALUES (2, 'NEW-1', 20); INSERT INTO cs_tag VALUES ('sale')$$);
CREATE TEMP TABLE r AS SELECT pg_temp.b_to_a() AS j;
SELECT is((SELECT (j->>'quarantined')::int FROM r), 1, 'the apply sets the conflicting row aside');
SELECT is((SELECT (j->>'held')::int FROM r), 1, 'and reports it held');
SELECT is((SELECT name FROM cs_tag), 'sale', 'the rest of the page applies');
SELECT is((SELECT count(*)::int FROM cs_product), 1, 'the held row is not written');
SELECT is(deltasync_quarantine()->'rows'->0->>'table', 'cs_product', 'deltasync_quarantine names the table');
SELECT is(deltasync_quarantine()->'rows'->0->'key', '[2]'::jsonb, '... the key');
SELECT matches(deltasync_quarantine()->'rows'->0->>'error', 'cs_product_sku_key', '... and the constraint');
SELECT is((deltasync_status()->>'quarantined')::int, 1, 'deltasync_status counts held rows');
SELECT is((SELECT count(*)::int FROM deltasync.quarantine), 1, 'the quarantine is kept in the database');
SELECT is((pg_temp.b_to_a()->>'held')::int, 1, 'a later apply retries it and it is still held');
SELECT pg_temp.a_to_b();
SELECT is(pg_temp.b_value($$SELECT deltasync_quarantine()->>'held'$$), '1', 'B holds A''s row the same way');

SELECT pg_sleep(0.005);
UPDATE cs_product SET sku = 'NEW-2' WHERE id = 1;  -- the user fixes the data on one site
SELECT pg_temp.sync();
SELECT ok(pg_temp.same('cs_product'), 'after the fix both sites hold both products');
SELECT is((SELECT string_agg(id || '=' || sku, ',' ORDER BY id) FROM cs_product), '1=NEW-2,2=NEW-1', 'with their skus');
SELECT is((deltasync_quarantine()->>'held')::int, 0, 'nothing is held on A');
SELECT is(pg_temp.b_value($$SELECT deltasync_quarantine()->>'held'$$), '0', 'nothing is held on B');

-- Item 6: A deletes an order (cascading to its lines) while B adds a line and a memo to it.
INSERT INTO cs_orders VALUES (1, 'o');
INSERT INTO cs_line VALUES (10, 1, 1);
INSERT INTO cs_memo VALUES (7, 1, 'm');
SELECT pg_temp.sync();
SELECT pg_sleep(0.005);
DELETE FROM cs_orders WHERE id = 1;
SELECT pg_temp.on_b($$INSERT INTO cs_line VALUES (11, 1, 2); INSERT INTO cs_memo VALUES (8, 1, 'n')$$);
CREATE TEMP TABLE r2 AS SELECT pg_temp.a_to_b() AS j;
SELECT cmp_ok((SELECT (j->>'orphans')::int FROM r2), '>=', 2, 'B removes the new line and clears the new memo''s order');
SELECT is(pg_temp.b_value('SELECT count(*) FROM cs_line'), '0', 'B holds no line of the deleted order');
SELECT pg_temp.sync();
SELECT ok(pg_temp.same('cs_line') AND pg_temp.same('cs_memo') AND pg_temp.same('cs_orders'), 'both sites converge');
SELECT is((SELECT count(*)::int FROM cs_line), 0, 'no orphan line on A');
SELECT is((SELECT string_agg(id || ':' || coalesce(order_id::text, 'null'), ',' ORDER BY id) FROM cs_memo), '7:null,8:null',
  'memos of the deleted order are kept with order_id NULL (ON DELETE SET NULL)');
SELECT is((SELECT count(*)::int FROM cs_line AS l WHERE NOT EXISTS (SELECT 1 FROM cs_orders AS o WHERE o.id = l.order_id)),
  0, 'no row violates the foreign key');

SELECT pg_temp.on_b('DROP TABLE IF EXISTS cs_memo, cs_line, cs_orders, cs_tag, cs_product');
SELECT pg_temp.on_b('DELETE FROM deltasync.quarantine');
SELECT * FROM finish();
ROLLBACK;
