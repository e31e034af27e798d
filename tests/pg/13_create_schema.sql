-- CREATE SCHEMA with table elements: a partition of a tracked table created as an element is
-- covered at once (capture triggers, its rows captured), and an element inheriting from a
-- tracked table is refused, as the same CREATE TABLE on its own would be.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(5);

CREATE TABLE cs_p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE cs_p_lo PARTITION OF cs_p FOR VALUES FROM (0) TO (50);
SELECT deltasync_enable('cs_p');
CREATE SCHEMA cs_s2 CREATE TABLE cs_p_hi PARTITION OF public.cs_p FOR VALUES FROM (50) TO (100);
SELECT is((SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'cs_s2.cs_p_hi'::regclass AND tgname LIKE 'deltasync\_capture\_%'),
  (SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'cs_p_lo'::regclass AND tgname LIKE 'deltasync\_capture\_%'),
  'a partition created inside CREATE SCHEMA gets the capture triggers a leaf partition has');
INSERT INTO cs_s2.cs_p_hi VALUES (55, 'direct');
INSERT INTO cs_p VALUES (56, 'through the root');
SELECT ok(position('"key":[55]' in deltasync_changes(0)) > 0, 'a row written into that partition directly is captured');
SELECT ok(position('"key":[56]' in deltasync_changes(0)) > 0, 'a row written through the root into it is captured');
TRUNCATE cs_s2.cs_p_hi;
SELECT ok(position('"key":[55],"cl":2' in deltasync_changes(0)) > 0, 'truncating it turns its rows into deletes');

CREATE TABLE cs_plain (id int PRIMARY KEY, v text);
SELECT deltasync_enable('cs_plain');
SELECT throws_like($$CREATE SCHEMA cs_s3 CREATE TABLE cs_child (w int) INHERITS (public.cs_plain)$$,
  'deltasync: a table cannot inherit from tracked table "cs_plain"%', 'an element inheriting from a tracked table is refused');

SELECT * FROM finish();
ROLLBACK;
