-- Reproductions of open findings (they fail until fixed; not run by ctest). Run:
--   pg_virtualenv -t -- tests/pg/run_pgtap.sh build/server/deltasync tests/review/pg_review_repros.sql
-- 1. MERGE whose only action is UPDATE moves a row between partitions: nothing is captured.
-- 2. MERGE with UPDATE + INSERT actions moves a row: the new key is captured, the old key
--    stays live in the shadow table with no values (a ghost other sites receive).
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(3);
CREATE FUNCTION pg_temp.live_keys(tbl text) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg((r->'key')::text, ' ' ORDER BY (r->'key')::text), '')
  FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t, jsonb_array_elements(t->'rows') AS r
  WHERE t->>'name' = tbl AND (r->>'cl')::int % 2 = 1 $$;

CREATE TABLE rv_m (id int NOT NULL, r int NOT NULL, v text NOT NULL, PRIMARY KEY (id, r)) PARTITION BY RANGE (r);
CREATE TABLE rv_m_lo PARTITION OF rv_m FOR VALUES FROM (0) TO (10);
CREATE TABLE rv_m_hi PARTITION OF rv_m FOR VALUES FROM (10) TO (20);
INSERT INTO rv_m VALUES (1, 1, 'one'), (2, 2, 'two');
SELECT deltasync_enable('rv_m');
MERGE INTO rv_m USING (VALUES (1, 1)) AS s(id, r) ON rv_m.id = s.id AND rv_m.r = s.r WHEN MATCHED THEN UPDATE SET r = 11;
SELECT is(pg_temp.live_keys('rv_m'), '[1, 11] [2, 2]', 'MERGE (UPDATE only) moving a row between partitions is captured');
MERGE INTO rv_m USING (VALUES (2, 2), (3, 3)) AS s(id, r) ON rv_m.id = s.id AND rv_m.r = s.r
  WHEN MATCHED THEN UPDATE SET r = 12 WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.r, 'three');
SELECT is(pg_temp.live_keys('rv_m'), '[1, 11] [2, 12] [3, 3]', 'MERGE (UPDATE + INSERT) moving a row leaves no ghost key');
SELECT is((SELECT count(*)::int FROM jsonb_array_elements(deltasync_changes(0)::jsonb->'tables') AS t,
           jsonb_array_elements(t->'rows') AS r WHERE t->>'name' = 'rv_m' AND (r->>'cl')::int % 2 = 1
           AND jsonb_array_length(r->'changes') = 0), 0, 'no live row travels without values');

SELECT * FROM finish();
ROLLBACK;
