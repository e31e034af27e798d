-- Every write path and DDL of issue 12 on ordinary tables, each statement checked by an
-- audit of every tracked table: the rows deltasync_changes(0) describes as live are exactly
-- the rows each table holds (key and tracked columns), and site ds_b, which applies A's
-- changes after each statement, then holds the same rows (generated columns included, which
-- B computes itself). Ground: a PRIMARY KEY ... INCLUDE table, a generated column, MERGE
-- (every action, key changes), writable CTEs over several tables, an updatable view, a rule,
-- a cursor, UPDATE ... FROM, DELETE ... USING, a function, COPY, TRUNCATE,
-- INSERT ... ON CONFLICT, foreign-key cascades between tracked tables, key changes, and a
-- DDL-heavy script (columns added, dropped, renamed, retyped; tables renamed; DDL deltasync
-- refuses). Partitioned tables: 10_partitions.sql; inheritance (refused): 10_partitions.sql.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(71);
SELECT dblink_connect('b', :'other');

CREATE FUNCTION pg_temp.on_b(sql text) RETURNS void LANGUAGE sql AS $$ SELECT dblink_exec('b', sql) $$;
CREATE FUNCTION pg_temp.b_value(sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink('b', sql) AS t(v text) $$;
-- A table's rows as text: key-sorted JSON objects, sorted (the same on both sites whatever
-- the order of their columns).
CREATE FUNCTION pg_temp.rows_sql(tbl text) RETURNS text LANGUAGE sql AS $$
  SELECT format('SELECT coalesce(string_agg(x, '' | '' ORDER BY x), '''') FROM (SELECT to_jsonb(s)::text AS x FROM %I AS s) AS q', tbl) $$;

-- The audit of every tracked table of A: the keys deltasync_changes(0) says are live are
-- the keys the table holds, and each column value it gives for them is the value the table
-- holds (a column without a change has a value without a version, from ADD COLUMN's
-- default: B has it from its own DDL); then A's changes applied on B and every table compared.
CREATE FUNCTION pg_temp.audit() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE tbl record; held jsonb; bad text; good boolean := true; a text; b text; payload jsonb := deltasync_changes(0)::jsonb;
BEGIN
  FOR tbl IN SELECT t.name, array(SELECT jsonb_array_elements_text(t.pk::jsonb)) AS pk FROM deltasync.tables AS t ORDER BY t.name LOOP
    EXECUTE format('SELECT coalesce(jsonb_object_agg(jsonb_build_array(%s)::text, to_jsonb(s)), ''{}'') FROM %I AS s',
                   (SELECT string_agg(format('%I', c), ', ') FROM unnest(tbl.pk) AS c), tbl.name) INTO held;
    SELECT string_agg(x, '; ') INTO bad FROM (
      SELECT k || ' held, not live in the changes' AS x FROM jsonb_object_keys(held) AS k
      WHERE k NOT IN (SELECT (r->'key')::text FROM jsonb_array_elements(payload->'tables') AS t, jsonb_array_elements(t->'rows') AS r
                      WHERE t->>'name' = tbl.name AND (r->>'cl')::int % 2 = 1)
      UNION ALL
      SELECT (r->'key')::text || CASE WHEN held ? (r->'key')::text THEN ' ' || (t->'columns'->>((c->>0)::int)) || ': held '
               || coalesce(held->(r->'key')::text->(t->'columns'->>((c->>0)::int)), 'null') || ', changes say ' || (c->1)::text
             ELSE ' live in the changes, not held' END
      FROM jsonb_array_elements(payload->'tables') AS t, jsonb_array_elements(t->'rows') AS r
        LEFT JOIN LATERAL jsonb_array_elements(r->'changes') AS c ON true
      WHERE t->>'name' = tbl.name AND (r->>'cl')::int % 2 = 1
        AND (NOT held ? (r->'key')::text
             OR (c IS NOT NULL AND held->(r->'key')::text->(t->'columns'->>((c->>0)::int)) IS DISTINCT FROM c->1))) AS s;
    IF bad IS NOT NULL THEN
      RAISE WARNING 'audit of %: %', tbl.name, bad;
      good := false;
    END IF;
  END LOOP;
  PERFORM pg_temp.b_value(format('SELECT deltasync_apply(%L)::text', payload::text));
  FOR tbl IN SELECT t.name FROM deltasync.tables AS t ORDER BY t.name LOOP
    EXECUTE pg_temp.rows_sql(tbl.name) INTO a;
    b := pg_temp.b_value(pg_temp.rows_sql(tbl.name));
    IF a IS DISTINCT FROM b THEN
      RAISE WARNING 'table %: A holds [%], B holds [%]', tbl.name, a, b;
      good := false;
    END IF;
  END LOOP;
  RETURN good;
END $$;
-- One statement on A, then the audit.
CREATE FUNCTION pg_temp.run(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  RETURN ok(pg_temp.audit(), 'audit after: ' || sql);
END $$;
-- DDL every site runs (A, then B), then the audit.
CREATE FUNCTION pg_temp.everywhere(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  PERFORM pg_temp.on_b(sql);
  RETURN ok(pg_temp.audit(), 'audit after (on both sites): ' || sql);
END $$;

-- The tables, on both sites (B's left from a failed run first dropped).
SELECT pg_temp.on_b('DROP TABLE IF EXISTS wp_inc, wp_gen, wp_items, wp_lines, wp_orders, wp_moved CASCADE');
SELECT pg_temp.everywhere($$CREATE TABLE wp_inc (a int NOT NULL, b text NOT NULL, c int, PRIMARY KEY (a) INCLUDE (b));
  CREATE TABLE wp_gen (id int PRIMARY KEY, price int NOT NULL, qty int NOT NULL, total int GENERATED ALWAYS AS (price * qty) STORED);
  CREATE TABLE wp_items (id int PRIMARY KEY, name text NOT NULL, stock int NOT NULL DEFAULT 0);
  CREATE TABLE wp_orders (id int PRIMARY KEY, who text NOT NULL);
  CREATE TABLE wp_lines (order_id int NOT NULL REFERENCES wp_orders ON DELETE CASCADE, n int NOT NULL, item int, qty int NOT NULL,
                         PRIMARY KEY (order_id, n))$$);
-- Rows before enable on A only (B gets them from A: rows B wrote itself would carry B's own,
-- later, clocks and rightly win over A's).
SELECT pg_temp.run($$INSERT INTO wp_items VALUES (1, 'bolt', 10), (2, 'nut', 20)$$);
SELECT pg_temp.b_value($$SELECT string_agg(deltasync_enable(x)::text, ',') FROM unnest(array['wp_inc', 'wp_gen', 'wp_items', 'wp_orders', 'wp_lines']) AS x$$);
SELECT pg_temp.run($$SELECT deltasync_enable(x) FROM unnest(array['wp_inc', 'wp_gen', 'wp_items', 'wp_orders', 'wp_lines']) AS x$$);
SELECT is((SELECT pk::jsonb FROM deltasync.tables WHERE name = 'wp_inc'), '["a"]'::jsonb, 'PRIMARY KEY (a) INCLUDE (b): only a is the key');
SELECT is((SELECT columns::jsonb FROM deltasync.tables WHERE name = 'wp_gen'), '["price", "qty"]'::jsonb,
  'a generated column is not tracked (each site computes it)');

-- INCLUDE key and generated column.
SELECT pg_temp.run($$INSERT INTO wp_inc VALUES (1, 'one', 10), (2, 'two', 20)$$);
SELECT pg_temp.run($$UPDATE wp_inc SET b = 'uno' WHERE a = 1$$);
SELECT deltasync_db_version() AS v0 \gset
UPDATE wp_inc SET b = 'eins' WHERE a = 1;
SELECT is((SELECT string_agg((r->>'cl') || ' ' || jsonb_array_length(r->'changes'), ',') FROM jsonb_array_elements(deltasync_changes(:v0)::jsonb->'tables') AS t,
           jsonb_array_elements(t->'rows') AS r WHERE t->>'name' = 'wp_inc'), '1 1', 'an update of an INCLUDE column is an update of one column, not a key change');
SELECT pg_temp.run($$INSERT INTO wp_gen VALUES (1, 3, 4), (2, 5, 6)$$);
SELECT pg_temp.run($$UPDATE wp_gen SET qty = qty + 1$$);

-- MERGE on an ordinary table: every action, a key change, a MERGE with no match.
SELECT pg_temp.run($$MERGE INTO wp_items AS t USING (VALUES (1, 'bolt', 5), (2, 'nut', 0), (3, 'washer', 7)) AS s(id, name, stock)
  ON t.id = s.id WHEN MATCHED AND s.stock = 0 THEN DELETE WHEN MATCHED THEN UPDATE SET stock = t.stock + s.stock
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.name, s.stock)$$);
SELECT pg_temp.run($$MERGE INTO wp_items AS t USING (VALUES (3)) AS s(id) ON t.id = s.id WHEN MATCHED THEN UPDATE SET id = 30, name = 'washer!'$$);
SELECT pg_temp.run($$MERGE INTO wp_items AS t USING (VALUES (99)) AS s(id) ON t.id = s.id WHEN MATCHED THEN DELETE$$);
SELECT pg_temp.run($$MERGE INTO wp_inc AS t USING (VALUES (1, 'x'), (5, 'five')) AS s(a, b) ON t.a = s.a
  WHEN MATCHED THEN UPDATE SET b = s.b, c = NULL WHEN NOT MATCHED THEN INSERT VALUES (s.a, s.b, 5)$$);

-- Writable CTEs: several tables, and one table written twice (its statements each captured).
SELECT pg_temp.run($$WITH o AS (INSERT INTO wp_orders VALUES (1, 'ann'), (2, 'bob') RETURNING id),
  l AS (INSERT INTO wp_lines SELECT o.id, n, 1, n FROM o, generate_series(1, 3) AS n RETURNING item, qty)
  UPDATE wp_items SET stock = stock - (SELECT sum(qty) FROM l) WHERE id = 1$$);
SELECT pg_temp.run($$WITH d AS (DELETE FROM wp_lines WHERE n = 3 RETURNING order_id),
  u AS (UPDATE wp_lines SET n = n + 10 WHERE n = 2 RETURNING *)
  INSERT INTO wp_items SELECT 100 + order_id, 'from cte', count(*) FROM d GROUP BY order_id$$);
SELECT pg_temp.run($$WITH a AS (DELETE FROM wp_items WHERE id = 101 RETURNING *) INSERT INTO wp_items SELECT id, name || ' again', stock FROM a$$);

-- Through an updatable view, a rule, a cursor, UPDATE ... FROM / DELETE ... USING, a function.
SELECT pg_temp.everywhere($$CREATE VIEW wp_stock AS SELECT id, name, stock FROM wp_items WHERE stock >= 0 WITH CHECK OPTION$$);
SELECT pg_temp.run($$INSERT INTO wp_stock VALUES (40, 'via view', 4)$$);
SELECT pg_temp.run($$UPDATE wp_stock SET stock = stock + 1, id = 41 WHERE id = 40$$);
SELECT pg_temp.run($$DELETE FROM wp_stock WHERE id = 41$$);
SELECT pg_temp.everywhere($$DROP VIEW wp_stock$$);
SELECT pg_temp.everywhere($$CREATE RULE wp_order_line AS ON INSERT TO wp_orders DO ALSO INSERT INTO wp_lines VALUES (NEW.id, 0, NULL, 0)$$);
SELECT pg_temp.run($$INSERT INTO wp_orders VALUES (9, 'rule')$$);
SELECT pg_temp.everywhere($$DROP RULE wp_order_line ON wp_orders$$);
SELECT pg_temp.run($q$DO $$ DECLARE c CURSOR FOR SELECT * FROM wp_items WHERE id = 30 FOR UPDATE; r record;
  BEGIN OPEN c; FETCH c INTO r; UPDATE wp_items SET stock = stock * 2 WHERE CURRENT OF c; CLOSE c; END $$$q$);
SELECT pg_temp.run($$UPDATE wp_lines AS l SET qty = l.qty + i.stock FROM wp_items AS i WHERE i.id = 1 AND l.order_id = 9$$);
SELECT pg_temp.run($$DELETE FROM wp_lines AS l USING wp_orders AS o WHERE o.id = l.order_id AND o.who = 'rule'$$);
SELECT pg_temp.run($$CREATE FUNCTION pg_temp.wp_touch(n int) RETURNS int LANGUAGE sql AS
  'UPDATE wp_items SET stock = stock + 1 WHERE id = $1 RETURNING stock'; SELECT pg_temp.wp_touch(30)$$);

-- COPY (psql's COPY FROM STDIN, then the audit).
COPY wp_items FROM STDIN;
200	copied	1
201	copied too	2
\.
SELECT ok(pg_temp.audit(), 'audit after COPY FROM STDIN');
COPY wp_gen (id, price, qty) FROM STDIN;
3	7	8
\.
SELECT ok(pg_temp.audit(), 'audit after COPY of a table with a generated column');

-- INSERT ... ON CONFLICT.
SELECT pg_temp.run($$INSERT INTO wp_items VALUES (200, 'upserted', 100), (202, 'new', 1)
  ON CONFLICT (id) DO UPDATE SET name = excluded.name, stock = wp_items.stock + excluded.stock$$);
SELECT pg_temp.run($$INSERT INTO wp_items VALUES (200, 'ignored', 0), (203, 'kept', 3) ON CONFLICT DO NOTHING$$);
SELECT pg_temp.run($$INSERT INTO wp_items VALUES (202, 'same', 1) ON CONFLICT (id) DO UPDATE SET stock = excluded.stock WHERE wp_items.stock <> excluded.stock$$);
SELECT pg_temp.run($$INSERT INTO wp_inc VALUES (2, 'dos', 2) ON CONFLICT (a) DO UPDATE SET b = excluded.b$$);

-- Key changes, a swap of two keys in one statement, deletes, a foreign-key cascade.
SELECT pg_temp.run($$UPDATE wp_items SET id = id + 1000 WHERE id >= 200$$);
SELECT pg_temp.run($$UPDATE wp_lines SET n = CASE n WHEN 1 THEN 11 ELSE 1 END WHERE order_id = 1 AND n IN (1, 11)$$);
SELECT pg_temp.run($$DELETE FROM wp_orders WHERE id = 2$$);
SELECT is((SELECT count(*)::int FROM wp_lines WHERE order_id = 2), 0, 'the cascade removed order 2''s lines');
SELECT pg_temp.run($$UPDATE wp_gen SET id = 10 WHERE id = 1$$);
SELECT pg_temp.run($$DELETE FROM wp_items WHERE name LIKE 'copied%' OR id = 1203$$);

-- TRUNCATE: one table; two tables in one statement; TRUNCATE then rows again, in one transaction.
SELECT pg_temp.run($$TRUNCATE wp_gen$$);
SELECT pg_temp.run($$TRUNCATE wp_lines, wp_orders$$);
SELECT pg_temp.run($$INSERT INTO wp_gen VALUES (1, 1, 1)$$);
SAVEPOINT s1;
TRUNCATE wp_inc;
INSERT INTO wp_inc VALUES (1, 'back', 1);
RELEASE SAVEPOINT s1;
SELECT ok(pg_temp.audit(), 'audit after TRUNCATE and an insert in a subtransaction');
SAVEPOINT s2;
DELETE FROM wp_items;
ROLLBACK TO SAVEPOINT s2;
SELECT ok(pg_temp.audit(), 'audit after a delete rolled back to a savepoint');

-- DDL, run on every site, between writes.
SELECT pg_temp.everywhere($$ALTER TABLE wp_items ADD COLUMN color text DEFAULT 'red'$$);
SELECT pg_temp.run($$UPDATE wp_items SET color = 'blue' WHERE id = 1$$);
SELECT pg_temp.run($$INSERT INTO wp_items (id, name) VALUES (5, 'default color')$$);
SELECT pg_temp.everywhere($$ALTER TABLE wp_items RENAME COLUMN name TO label$$);
SELECT pg_temp.run($$UPDATE wp_items SET label = label || '.' WHERE id = 30$$);
SELECT pg_temp.everywhere($$ALTER TABLE wp_items ALTER COLUMN stock TYPE bigint$$);
SELECT pg_temp.run($$UPDATE wp_items SET stock = 5000000000 WHERE id = 5$$);
SELECT pg_temp.everywhere($$ALTER TABLE wp_items DROP COLUMN color$$);
SELECT pg_temp.run($$UPDATE wp_items SET stock = 1 WHERE id = 5$$);
SELECT pg_temp.everywhere($$ALTER TABLE wp_items RENAME TO wp_moved$$);
SELECT pg_temp.run($$INSERT INTO wp_moved VALUES (6, 'after the rename', 6)$$);
SELECT pg_temp.everywhere($$ALTER TABLE wp_moved RENAME COLUMN id TO item_id$$);
SELECT pg_temp.run($$UPDATE wp_moved SET item_id = 7 WHERE item_id = 6$$);
SELECT pg_temp.everywhere($$ALTER TABLE wp_gen ADD COLUMN note text, DROP COLUMN qty CASCADE$$);
SELECT pg_temp.run($$INSERT INTO wp_gen (id, price, note) VALUES (2, 9, 'no qty')$$);
SELECT pg_temp.everywhere($$ALTER TABLE wp_inc ADD COLUMN d int NOT NULL DEFAULT 4, ALTER COLUMN c SET DEFAULT 0$$);
SELECT pg_temp.run($$MERGE INTO wp_inc AS t USING (VALUES (1), (9)) AS s(a) ON t.a = s.a
  WHEN MATCHED THEN UPDATE SET d = 40 WHEN NOT MATCHED THEN INSERT (a, b) VALUES (s.a, 'nine')$$);
-- Refused before it happens; nothing changes.
SELECT throws_like($$ALTER TABLE wp_moved ALTER COLUMN item_id TYPE text$$, 'deltasync: %', 'a key column''s type change is refused');
SELECT throws_like($$ALTER TABLE wp_moved DROP CONSTRAINT wp_items_pkey$$, 'deltasync: %', 'dropping the primary key is refused');
SELECT throws_like($$ALTER TABLE wp_lines DROP COLUMN n$$, 'deltasync: %', 'dropping a key column is refused');
SELECT throws_like($$ALTER TABLE wp_moved DISABLE TRIGGER USER$$, 'deltasync: %', 'disabling the capture triggers is refused');
SELECT ok(pg_temp.audit(), 'audit after the refused DDL');
SELECT is((SELECT t->>'state' FROM jsonb_array_elements(deltasync_status()->'tables') AS t WHERE t->>'table' = 'wp_moved'), 'tracked',
  'the renamed table is tracked under its new name');

-- Disable keeps the rows and stops capture; the table leaves the audit.
SELECT pg_temp.run($$SELECT deltasync_disable('wp_inc')$$);
SELECT pg_temp.run($$INSERT INTO wp_inc (a, b) VALUES (50, 'not captured')$$);

SELECT pg_temp.on_b('DROP TABLE IF EXISTS wp_inc, wp_gen, wp_items, wp_lines, wp_orders, wp_moved CASCADE');
SELECT * FROM finish();
ROLLBACK;
