-- Hub health in deltasync_status(), persisted in deltasync.hubs so that every connection sees
-- it: a failed call aborts its own transaction, so a background worker records the failure;
-- a success ends the streak. deltasync_forget drops a hub. Everything runs in ds_c through
-- autocommit dblink connections (what they record commits); the suite forgets its hubs at
-- the end, so other suites see ds_c as before.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(17);
SELECT dblink_connect('h', replace(:'other', 'dbname=ds_b', 'dbname=ds_c'));
SELECT dblink_connect('watch', replace(:'other', 'dbname=ds_b', 'dbname=ds_c'));
SELECT dblink_connect('b', :'other');
SELECT 'http://127.0.0.1:1/nodes/health' AS dead, :'hub' || '/nodes/pg_health' AS url \gset

CREATE FUNCTION pg_temp.h_call(fn text, url text, opts text DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
  SELECT v::jsonb FROM dblink('h', format('SELECT %s(%L, %L)::text', fn, url, opts)) AS t(v text) $$;
-- The error a call through 'h' raised ('' when it returned).
CREATE FUNCTION pg_temp.h_error(fn text, url text, opts text DEFAULT NULL) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_temp.h_call(fn, url, opts);
  RETURN '';
EXCEPTION WHEN others THEN
  RETURN SQLERRM;
END $$;
-- The status entry of a hub as another connection sees it.
CREATE FUNCTION pg_temp.seen(url text) RETURNS jsonb LANGUAGE sql AS $$
  SELECT e FROM dblink('watch', 'SELECT deltasync_status()::text') AS t(v text),
    jsonb_array_elements(v::jsonb->'hubs') AS e WHERE e->>'hub' = url $$;
-- Waits (up to 20 s) until that entry has `n` failures; returns the entry.
CREATE FUNCTION pg_temp.failures(url text, n int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE e jsonb;
BEGIN
  FOR i IN 1..400 LOOP
    e := pg_temp.seen(url);
    EXIT WHEN coalesce((e->>'failures')::int, 0) >= n;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN e;
END $$;

SELECT alike(pg_temp.h_error('deltasync_pull', :'dead', '{"timeout_ms": 2000}'),
  '%deltasync: http://127.0.0.1:1/nodes/health/pull%', 'a pull from a dead port fails');
SELECT pg_temp.failures(:'dead', 1) AS first \gset
SELECT is((:'first'::jsonb->>'failures')::int, 1, 'another connection sees the failure');
SELECT ok(:'first'::jsonb->>'last_error' LIKE '%127.0.0.1:1%', 'with its message');
SELECT ok((:'first'::jsonb->>'failing_since_ms')::bigint > 0, 'and since when the hub has been failing');
SELECT ok(:'first'::jsonb->'last_success_ms' = 'null'::jsonb, 'never a success');
SELECT alike(pg_temp.h_error('deltasync_sync', :'dead', '{"timeout_ms": 2000}'), '%deltasync: %', 'a sync fails');
SELECT pg_temp.failures(:'dead', 2) AS second \gset
SELECT is((:'second'::jsonb->>'failures')::int, 2, 'the streak grows');
SELECT is(:'second'::jsonb->'failing_since_ms', :'first'::jsonb->'failing_since_ms', 'and keeps its first failure time');

-- One hub, failing then healthy: B pushes a row larger than the page size A then accepts.
SELECT dblink_exec('b', 'DROP TABLE IF EXISTS health_t; CREATE TABLE health_t (id int PRIMARY KEY, v text NOT NULL)');
SELECT v FROM dblink('b', $$SELECT deltasync_enable('health_t')::text$$) AS t(v text);
SELECT dblink_exec('b', $$INSERT INTO health_t VALUES (1, repeat('x', 20000))$$);
SELECT v FROM dblink('b', format('SELECT deltasync_push(%L)::text', :'url')) AS t(v text);
SELECT alike(pg_temp.h_error('deltasync_pull', :'url', '{"max_page_bytes": 4096}'), '%deltasync: %',
  'a page over max_page_bytes fails the pull');
SELECT is((pg_temp.failures(:'url', 1)->>'failures')::int, 1, 'recorded as a failure of that hub');
SELECT is((pg_temp.h_call('deltasync_pull', :'url')->>'pages')::int, 1, 'the next pull succeeds');
SELECT pg_temp.seen(:'url') AS healed \gset
SELECT is((:'healed'::jsonb->>'failures')::int, 0, 'a success ends the streak');
SELECT ok(:'healed'::jsonb->'failing_since_ms' = 'null'::jsonb AND :'healed'::jsonb->'last_error' = 'null'::jsonb,
  'no failing_since, no last_error');
SELECT ok((:'healed'::jsonb->>'last_success_ms')::bigint >= (:'first'::jsonb->>'failing_since_ms')::bigint, 'last success recorded');

-- Forget: the hub, its cursors and its health go; status stops listing (and counting) it.
SELECT is(v::jsonb, jsonb_build_object('hub', :'dead', 'forgotten', true), 'forget a hub')
  FROM dblink('h', format('SELECT deltasync_forget(%L)::text', :'dead')) AS t(v text);
SELECT ok(pg_temp.seen(:'dead') IS NULL, 'status no longer lists it');
SELECT is(v::jsonb->>'forgotten', 'false', 'forgetting an unknown hub says so')
  FROM dblink('h', format('SELECT deltasync_forget(%L)::text', :'dead')) AS t(v text);

SELECT v FROM dblink('h', format('SELECT deltasync_forget(%L)::text', :'url')) AS t(v text);
SELECT v FROM dblink('b', format('SELECT deltasync_forget(%L)::text', :'url')) AS t(v text);
SELECT v FROM dblink('b', $$SELECT deltasync_disable('health_t')::text$$) AS t(v text);
SELECT dblink_exec('b', 'DROP TABLE health_t');
SELECT * FROM finish();
ROLLBACK;
