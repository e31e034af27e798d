-- Column policies (docs/policies.md) on PostgreSQL: the counter policy is not built here yet,
-- so declaring it is refused clearly, and a payload that carries a counter column (from a
-- SQLite site or a hub) is refused whole instead of merging contributions as plain values.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(4);

CREATE TABLE pol_t (id text PRIMARY KEY, name text NOT NULL, stock bigint NOT NULL);

SELECT throws_like(
  $$SELECT deltasync_enable('pol_t', '{"columns": {"stock": "counter"}}')$$,
  'deltasync: column policy "counter" for column "stock" is not supported on PostgreSQL yet%',
  'a counter declaration is refused on PostgreSQL');
SELECT is((SELECT count(*) FROM deltasync.tables WHERE name = 'pol_t'), 0::bigint,
  'the refused declaration tracks nothing');

SELECT deltasync_enable('pol_t');
SELECT throws_like(
  $$SELECT deltasync_apply('{"format":"deltasync","version":2,"site":"11111111-1111-1111-1111-111111111111","since":0,"until":5,"sites":["11111111-1111-1111-1111-111111111111"],"tables":[{"name":"pol_t","pk":["id"],"columns":["name","stock"],"policies":["lww","counter"],"rows":[{"key":["apple"],"cl":1,"changes":[[0,"Apple",117714538756833280,0,1],[1,10,117714538756833280,0,1]]}]}]}')$$,
  'deltasync: table "pol_t": column "stock" merges as counter where the changes come from but as lww here%',
  'a payload with a counter column is refused by a site that declares it otherwise');
SELECT is((SELECT count(*) FROM pol_t), 0::bigint, 'nothing of it was applied');

SELECT * FROM finish();
ROLLBACK;
