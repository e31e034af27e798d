-- Column policies (docs/policies.md) on PostgreSQL: counter declarations accepted and refused,
-- local writes of every kind becoming this site's contribution, other sites' contributions
-- adding up, a delete ending the life's contributions, overflow refused, a disagreeing
-- declaration refused.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(51);

-- This site's contribution to pol_t.stock of row `k` in payload `p` (NULL: none sent), and
-- how many contributions the payload carries for it.
CREATE FUNCTION pg_temp.own(p text, k text) RETURNS bigint LANGUAGE sql AS $$
  SELECT (c->>1)::bigint FROM jsonb_array_elements(p::jsonb->'tables') AS t,
    jsonb_array_elements(t->'rows') AS r, jsonb_array_elements(r->'changes') AS c
  WHERE t->>'name' = 'pol_t' AND r->'key'->>0 = k AND t->'columns'->>((c->>0)::int) = 'stock'
    AND p::jsonb->'sites'->>((c->>3)::int) = deltasync_site_id() $$;
CREATE FUNCTION pg_temp.stock_changes(p text, k text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM jsonb_array_elements(p::jsonb->'tables') AS t,
    jsonb_array_elements(t->'rows') AS r, jsonb_array_elements(r->'changes') AS c
  WHERE t->>'name' = 'pol_t' AND r->'key'->>0 = k AND t->'columns'->>((c->>0)::int) = 'stock' $$;
-- A payload from site 1111… (or `site`) with one contribution to pol_t.stock of row `k`.
CREATE FUNCTION pg_temp.contribution(k text, v numeric, hlc bigint, cl int,
    site text DEFAULT '11111111-1111-1111-1111-111111111111', policy text DEFAULT 'counter') RETURNS text
  LANGUAGE sql AS $$
  SELECT format('{"format":"deltasync","version":2,"site":"%s","since":0,"until":5,"sites":["%s"],'
    '"tables":[{"name":"pol_t","pk":["id"],"columns":["name","stock"],"policies":["lww","%s"],'
    '"rows":[{"key":["%s"],"cl":%s,"changes":[[1,%s,%s,0,%s]]}]}]}', site, site, policy, k, cl, v, hlc, cl) $$;

-- Declarations.
CREATE TABLE pol_bad (id text PRIMARY KEY, name text NOT NULL, price numeric, loose bigint,
  stock bigint NOT NULL DEFAULT 0, small int2 NOT NULL DEFAULT 0);
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"columns": {"name": "counter"}}')$$,
  'deltasync: column "name" of table "pol_bad" is declared "text"; a counter must be an integer column%',
  'a text counter is refused');
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"columns": {"price": "counter"}}')$$,
  '%column "price" of table "pol_bad" is declared "numeric"%', 'a numeric counter is refused');
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"columns": {"id": "counter"}}')$$,
  '%column "id" of table "pol_bad" is part of the primary key and cannot be a counter%', 'a key counter is refused');
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"columns": {"nope": "counter"}}')$$,
  '%options name column "nope", which table "pol_bad" does not have%', 'a counter on an unknown column is refused');
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"columns": {"loose": "counter"}}')$$,
  '%counter column "loose" of table "pol_bad" must be NOT NULL on PostgreSQL%', 'a nullable counter is refused');
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"columns": {"stock": "sum"}}')$$,
  '%unknown policy "sum" for column "stock" (known: lww, counter, json)%', 'an unknown policy is refused');
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"columns": {"name": "json"}}')$$,
  '%column "name" of table "pol_bad": the json policy is not available on PostgreSQL yet%',
  'a json column is refused on PostgreSQL (SQLite and the hub only, for now)');
SELECT is((SELECT count(*) FROM deltasync.tables WHERE name = 'pol_bad'), 0::bigint,
  'the refused declarations track nothing');

SELECT is(deltasync_enable('pol_bad', '{"columns": {"stock": "counter", "small": {"policy": "counter"}}}')->'column_options',
  '{"small": {"policy": "counter"}, "stock": {"policy": "counter"}}'::jsonb, 'int8 and int2 counters are accepted');
SELECT is((SELECT t->'column_options' FROM jsonb_array_elements(deltasync_status()->'tables') AS t
  WHERE t->>'table' = 'pol_bad'), '{"small": {"policy": "counter"}, "stock": {"policy": "counter"}}'::jsonb,
  'deltasync_status shows each column''s policy');
SELECT is(deltasync_enable('pol_bad')->>'changed', 'false', 'enabling again without options keeps the policies');
SELECT is(deltasync_enable('pol_bad', '{"columns": {"stock": "counter"}}')->>'changed', 'false',
  'declaring the same policy again changes nothing');
SELECT throws_like($$ALTER TABLE pol_bad ALTER COLUMN stock DROP NOT NULL$$,
  '%counter column "stock" of table "pol_bad" must be NOT NULL%', 'a counter cannot lose NOT NULL');
SELECT throws_like($$ALTER TABLE pol_bad ALTER COLUMN small TYPE text$$,
  '%column "small" of table "pol_bad" is declared "text"; a counter must be an integer column%',
  'a counter cannot become text');
SELECT lives_ok($$ALTER TABLE pol_bad ALTER COLUMN small TYPE int4$$, 'a counter may become another integer type');
SELECT is(deltasync_enable('pol_bad', '{"columns": {"small": "lww"}}')->'column_options',
  '{"stock": {"policy": "counter"}}'::jsonb, 'a policy changes while the table tracks no row');
INSERT INTO pol_bad VALUES ('a', 'A', NULL, NULL, 1, 1);
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"columns": {"small": "counter"}}')$$,
  '%column "small" of table "pol_bad" merges as lww; changing it to counter would merge the 1 rows%',
  'a policy does not change once rows are tracked');
SELECT throws_like($$SELECT deltasync_enable('pol_bad', '{"restamp": true}')$$,
  '%table "pol_bad" has a counter column: restamp%', 'restamp is refused on a table with a counter');
ALTER TABLE pol_bad DROP COLUMN price;
SELECT is((SELECT t->'column_options' FROM jsonb_array_elements(deltasync_status()->'tables') AS t
  WHERE t->>'table' = 'pol_bad'), '{"stock": {"policy": "counter"}}'::jsonb,
  'the policies follow their columns when another is dropped');
UPDATE pol_bad SET stock = stock + 2;
SELECT is((SELECT (c->>1)::bigint FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t,
    jsonb_array_elements(t->'rows') AS r, jsonb_array_elements(r->'changes') AS c
  WHERE t->>'name' = 'pol_bad' AND (t->'columns'->>((c->>0)::int)) = 'stock'), 3::bigint,
  'and the counter still sends its contribution');

-- Local writes become this site's contribution; other sites' contributions add up.
CREATE TABLE pol_t (id text PRIMARY KEY, name text NOT NULL, stock bigint NOT NULL DEFAULT 0);
SELECT deltasync_enable('pol_t', '{"columns": {"stock": "counter"}}');
INSERT INTO pol_t VALUES ('apple', 'Apple', 10);
SELECT is(pg_temp.own(deltasync_changes(0), 'apple'), 10::bigint, 'an insert is the inserting site''s contribution');
SELECT is(deltasync_apply(pg_temp.contribution('apple', -2, 117714538756833280, 1))->>'applied', '1',
  'another site''s contribution is applied');
SELECT is((SELECT stock FROM pol_t WHERE id = 'apple'), 8::bigint, 'the value is the sum of the contributions');
UPDATE pol_t SET stock = stock - 1 WHERE id = 'apple';
SELECT is(pg_temp.own(deltasync_changes(0), 'apple'), 9::bigint, 'stock = stock - 1 moves this site''s contribution');
UPDATE pol_t SET stock = 5 WHERE id = 'apple';
SELECT is(pg_temp.own(deltasync_changes(0), 'apple'), 7::bigint,
  'stock = 5 makes this site''s contribution 5 minus the others''');
INSERT INTO pol_t VALUES ('apple', 'Apple', 3) ON CONFLICT (id) DO UPDATE SET stock = pol_t.stock + excluded.stock;
SELECT is((SELECT stock FROM pol_t WHERE id = 'apple'), 8::bigint, 'an UPSERT adds');
SELECT is(pg_temp.own(deltasync_changes(0), 'apple'), 10::bigint, 'and becomes this site''s contribution');
SELECT is(pg_temp.stock_changes(deltasync_changes(0), 'apple'), 2::bigint, 'the row sends both contributions');
SELECT is(deltasync_apply(pg_temp.contribution('apple', -2, 117714538756833280, 1))->>'applied', '0',
  'the same contribution again changes nothing');
SELECT is(deltasync_apply(pg_temp.contribution('apple', -3, 117714538756833290, 1))->>'applied', '1',
  'a later contribution of the same site replaces its earlier one');
SELECT is((SELECT stock FROM pol_t WHERE id = 'apple'), 7::bigint, 'the sum follows (10 - 3)');
SELECT is(deltasync_apply(pg_temp.contribution('apple', -9, 117714538756833000, 1))->>'applied', '0',
  'an older contribution of that site loses');
SET LOCAL deltasync.apply_page_rows = 0;
SELECT is(deltasync_apply(pg_temp.contribution('apple', 4, 117714538756833280, 1,
  '22222222-2222-2222-2222-222222222222'))->>'applied', '1', 'a third site''s contribution, one row at a time');
SELECT is((SELECT stock FROM pol_t WHERE id = 'apple'), 11::bigint, 'adds up too');
RESET deltasync.apply_page_rows;

-- Overflow and disagreement are refused whole.
SELECT throws_like($$SELECT deltasync_apply(pg_temp.contribution('apple', 9223372036854775807, 117714538756833280, 1,
  '33333333-3333-3333-3333-333333333333'))$$,
  'deltasync: counter "stock" of table "pol_t" would leave the 64-bit integer range%', 'an overflowing sum is refused');
SELECT is((SELECT stock FROM pol_t WHERE id = 'apple'), 11::bigint, 'and changes nothing');
SELECT throws_like($$SELECT deltasync_apply(pg_temp.contribution('apple', 1, 117714538756833300, 1,
  '11111111-1111-1111-1111-111111111111', 'lww'))$$,
  'deltasync: table "pol_t": column "stock" merges as lww where the changes come from but as counter here%',
  'a payload whose declaration disagrees is refused');
SELECT is((SELECT stock FROM pol_t WHERE id = 'apple'), 11::bigint, 'nothing of it was applied');

CREATE TABLE pol_s (id text PRIMARY KEY, stock int2 NOT NULL);
SELECT deltasync_enable('pol_s', '{"columns": {"stock": "counter"}}');
INSERT INTO pol_s VALUES ('apple', 32000);
SELECT throws_like($$SELECT deltasync_apply(replace(replace(pg_temp.contribution('apple', 1000, 117714538756833280, 1),
  '"name":"pol_t","pk":["id"],"columns":["name","stock"],"policies":["lww","counter"]',
  '"name":"pol_s","pk":["id"],"columns":["stock"],"policies":["counter"]'), '[[1,', '[[0,'))$$,
  'deltasync: cannot apply a change to column "stock" of table "pol_s": integer 33000 is out of range for type smallint%', 'a sum that does not fit a smallint column is refused');
SELECT is((SELECT stock FROM pol_s), 32000::int2, 'and changes nothing');

-- A delete ends the life's contributions; a re-insert starts a new one.
DELETE FROM pol_t WHERE id = 'apple';
INSERT INTO pol_t VALUES ('apple', 'Apple', 4);
SELECT is(pg_temp.stock_changes(deltasync_changes(0), 'apple'), 1::bigint,
  'after a delete and an insert the row sends only the new life''s contribution');
SELECT is(pg_temp.own(deltasync_changes(0), 'apple'), 4::bigint, 'which is the insert''s value');
SELECT is(deltasync_apply(pg_temp.contribution('apple', -5, 117714538756833400, 1))->>'applied', '0',
  'a contribution of the old life no longer counts');
SELECT is(deltasync_apply(pg_temp.contribution('apple', -1, 117714538756833400, 3))->>'applied', '1',
  'one of the new life does');
SELECT is((SELECT stock FROM pol_t WHERE id = 'apple'), 3::bigint, 'the new life''s sum');

-- A partitioned table: writes through a partition and an apply (one row at a time there).
CREATE TABLE pol_p (id int NOT NULL, r int NOT NULL, stock int NOT NULL, PRIMARY KEY (id, r)) PARTITION BY RANGE (r);
CREATE TABLE pol_p_lo PARTITION OF pol_p FOR VALUES FROM (0) TO (10);
CREATE TABLE pol_p_hi PARTITION OF pol_p FOR VALUES FROM (10) TO (20);
SELECT deltasync_enable('pol_p', '{"columns": {"stock": "counter"}}');
INSERT INTO pol_p VALUES (1, 5, 50);
SELECT is(deltasync_apply('{"format":"deltasync","version":2,"site":"11111111-1111-1111-1111-111111111111",'
  '"since":0,"until":5,"sites":["11111111-1111-1111-1111-111111111111"],"tables":[{"name":"pol_p","pk":["id","r"],'
  '"columns":["stock"],"policies":["counter"],"rows":[{"key":[1,5],"cl":1,"changes":[[0,-7,117714538756833280,0,1]]}]}]}')
  ->>'applied', '1', 'a contribution to a partitioned table is applied');
UPDATE pol_p_lo SET stock = stock - 3;
SELECT is((SELECT stock FROM pol_p), 40, 'and adds up with writes through a partition (50 - 7 - 3)');
SELECT is((SELECT (c->>1)::bigint FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t,
    jsonb_array_elements(t->'rows') AS r, jsonb_array_elements(r->'changes') AS c
  WHERE t->>'name' = 'pol_p' AND deltasync_changes(0)::jsonb->'sites'->>((c->>3)::int) = deltasync_site_id()),
  47::bigint, 'this site''s contribution there is 47');

-- A column dropped before the counter: its policy and the other sites' contributions move.
ALTER TABLE pol_t DROP COLUMN name;
SELECT is((SELECT t->'column_options' FROM jsonb_array_elements(deltasync_status()->'tables') AS t
  WHERE t->>'table' = 'pol_t'), '{"stock": {"policy": "counter"}}'::jsonb, 'the counter keeps its policy');
UPDATE pol_t SET stock = stock - 1 WHERE id = 'apple';
SELECT is(pg_temp.own(deltasync_changes(0), 'apple'), 3::bigint,
  'this site''s contribution is still its value minus the others'' (2 + 1)');
SELECT is(pg_temp.stock_changes(deltasync_changes(0), 'apple'), 2::bigint, 'and the other site''s is still sent');

SELECT * FROM finish();
ROLLBACK;
