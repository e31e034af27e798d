-- Real application schemas between two PostgreSQL sites, ds_a (this session) and ds_b
-- (dblink): NOT NULL columns without defaults, renamed columns (issue 9, items 1 and 2).
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(22);
SELECT dblink_connect('b', :'other');

CREATE FUNCTION pg_temp.on_b(sql text) RETURNS void LANGUAGE sql AS $$ SELECT dblink_exec('b', sql) $$;
CREATE FUNCTION pg_temp.b_value(sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink('b', sql) AS t(v text) $$;
-- What A holds above `since`, merged into B.
CREATE FUNCTION pg_temp.a_to_b(since bigint) RETURNS jsonb LANGUAGE sql AS $$
  SELECT r::jsonb FROM dblink('b', format('SELECT deltasync_apply(%L)::text', deltasync_changes(since))) AS t(r text) $$;
CREATE FUNCTION pg_temp.same(tbl text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a text; b text;
BEGIN
  EXECUTE format('SELECT coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''') FROM %I AS t', tbl) INTO a;
  SELECT pg_temp.b_value(format('SELECT coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''') FROM %I AS t', tbl)) INTO b;
  IF a IS DISTINCT FROM b THEN RAISE NOTICE 'A: %  B: %', a, b; END IF;
  RETURN a IS NOT DISTINCT FROM b;
END $$;

-- As an ORM declares a table: every column NOT NULL, no defaults.
CREATE TABLE product (id bigint PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL, stock int NOT NULL);
SELECT deltasync_enable('product');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS product; CREATE TABLE product (id bigint PRIMARY KEY, sku text NOT NULL UNIQUE,'
                    ' name text NOT NULL, stock int NOT NULL)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('product')::text$$);
INSERT INTO product VALUES (1, 'SKU-1', 'apple', 10), (2, 'SKU-2', 'pear', 5);
SELECT pg_temp.a_to_b(0);
SELECT deltasync_db_version() AS v1 \gset

UPDATE product SET stock = 9 WHERE id = 1;
SELECT lives_ok(format('SELECT pg_temp.a_to_b(%s)', :v1), 'an update of one NOT NULL column applies on a site holding the row');
SELECT is(pg_temp.b_value('SELECT stock::text FROM product WHERE id = 1'), '9', '... with its value');
SELECT ok(pg_temp.same('product'), '... and both sites agree');
SELECT deltasync_db_version() AS v2 \gset
UPDATE product SET name = name || '!', stock = stock + 1;
SELECT is((pg_temp.a_to_b(:v2)->>'applied')::int, 4, 'an update of two columns of every row applies');
SELECT ok(pg_temp.same('product'), '... and both sites agree');

-- RENAME COLUMN: the tracked lists follow it, history included, writes keep working.
SELECT deltasync_db_version() AS vr \gset
ALTER TABLE product RENAME COLUMN name TO title;
SELECT ok(jsonb_array_length(deltasync_changes(:vr)::jsonb->'tables'->0->'rows') = 2
          AND deltasync_changes(:vr) LIKE '%"title"%' AND deltasync_changes(:vr) LIKE '%"apple!"%',
  'a rename sends the column''s values again, under the new name (a site created later never knew the old one)');
SELECT pg_temp.on_b('ALTER TABLE product RENAME COLUMN name TO title');
SELECT is((SELECT columns::jsonb FROM deltasync.tables WHERE name = 'product'), '["sku", "title", "stock"]'::jsonb,
  'the tracked column list follows the rename');
SELECT deltasync_db_version() AS v3 \gset
SELECT lives_ok($$UPDATE product SET title = 'red apple' WHERE id = 1$$, 'writes to the renamed column are captured');
SELECT is((SELECT jsonb_agg(c) FROM jsonb_array_elements_text(deltasync_changes(:v3)::jsonb->'tables'->0->'columns') c),
  '["sku", "title", "stock"]'::jsonb, 'changes carry the new name');
SELECT lives_ok(format('SELECT pg_temp.a_to_b(%s)', :v3), 'and apply on a site that renamed too');
SELECT is(pg_temp.b_value('SELECT title FROM product WHERE id = 1'), 'red apple', '... with the value');
SELECT ok(pg_temp.same('product'), '... and both sites agree');
ALTER TABLE product RENAME COLUMN id TO product_id;
SELECT is((SELECT pk::jsonb FROM deltasync.tables WHERE name = 'product'), '["product_id"]'::jsonb, 'a renamed key column is followed');

-- deltasync_id() as a column default: ids no other site allocates (issue 9, item 7).
SELECT deltasync_disable('product');
CREATE TABLE ided (id bigint PRIMARY KEY DEFAULT deltasync_id(), name text NOT NULL);
SELECT deltasync_enable('ided');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS ided; CREATE TABLE ided (id bigint PRIMARY KEY DEFAULT deltasync_id(), name text NOT NULL)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('ided')::text$$);
INSERT INTO ided(name) SELECT 'a' FROM generate_series(1, 20);
SELECT pg_temp.on_b($$INSERT INTO ided(name) SELECT 'b' FROM generate_series(1, 20)$$);
SELECT pg_temp.a_to_b(0);
SELECT deltasync_apply((SELECT p FROM dblink('b', 'SELECT deltasync_changes(0)') AS t(p text)));
SELECT is((SELECT count(*)::int FROM ided), 40, 'rows with default ids from two sites never merge');
SELECT ok(pg_temp.same('ided'), '... and both sites hold them all');
SELECT is((SELECT count(DISTINCT id >> 43)::int FROM ided WHERE name = 'a'), 1, 'a site''s ids share its node');
SELECT is((SELECT min(id >> 43) FROM ided WHERE name = 'a'), ('x' || substr(deltasync_site_id(), 1, 5))::bit(20)::int::bigint,
  'the node is the first 20 bits of the site id');

-- Sequences of key columns move past ids applied from elsewhere (issue 9, item 9).
CREATE TABLE seqt (id serial PRIMARY KEY, v text NOT NULL);
CREATE TABLE idt (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text NOT NULL);
SELECT deltasync_enable('seqt'), deltasync_enable('idt');
SELECT pg_temp.on_b('DROP TABLE IF EXISTS seqt, idt; CREATE TABLE seqt (id serial PRIMARY KEY, v text NOT NULL);'
                    ' CREATE TABLE idt (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text NOT NULL)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('seqt')::text || deltasync_enable('idt')::text$$);
SELECT pg_temp.on_b($$INSERT INTO seqt(v) VALUES ('b1'), ('b2'), ('b3'); INSERT INTO idt(v) VALUES ('b1'), ('b2')$$);
SELECT deltasync_apply((SELECT p FROM dblink('b', 'SELECT deltasync_changes(0)') AS t(p text)));
INSERT INTO seqt(v) VALUES ('a1');
INSERT INTO idt(v) VALUES ('a1');
SELECT is((SELECT id FROM seqt WHERE v = 'a1'), 4, 'a serial key continues above the ids applied from another site');
SELECT is((SELECT id FROM idt WHERE v = 'a1'), 3, 'an identity key too');

-- An ORM's own bookkeeping is refused unless forced (issue 9, item 10).
CREATE TABLE django_migrations (id bigserial PRIMARY KEY, app text, name text);
SELECT throws_like($$SELECT deltasync_enable('django_migrations')$$,
  'deltasync: "django_migrations" is Django''s record of the migrations applied to this database%force%',
  'django_migrations is refused');
SELECT throws_like($$SELECT deltasync_enable('django_migrations', '{"force": "yes"}')$$,
  'deltasync: deltasync_enable option force must be true or false', 'a mistyped option is refused');
SELECT lives_ok($$SELECT deltasync_enable('django_migrations', '{"force": true}')$$, '... and tracked when forced');

SELECT pg_temp.on_b('DROP TABLE IF EXISTS product, ided, seqt, idt');
SELECT * FROM finish();
ROLLBACK;
