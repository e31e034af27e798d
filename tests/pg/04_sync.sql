-- Push, pull and sync through a real hub (deltasync serve on 127.0.0.1), between ds_a and
-- ds_b, each driven through its own autocommit dblink connection ('a' is database ds_c, 'b'
-- is ds_b, so no table of this suite stays tracked in ds_a): a push sends
-- only committed changes, so the writes must commit before it. A hub that never answers
-- cannot hang a backend (checked from this session).
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(18);
SELECT dblink_connect('b', :'other');
SELECT :'hub' || '/nodes/pg_sync' AS url \gset

SELECT dblink_connect('a', replace(:'other', 'dbname=ds_b', 'dbname=ds_c'));
CREATE FUNCTION pg_temp.b_value(sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink('b', sql) AS t(v text) $$;
CREATE FUNCTION pg_temp.a_value(sql text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM dblink('a', sql) AS t(v text) $$;
CREATE FUNCTION pg_temp.b_sync(url text) RETURNS jsonb LANGUAGE sql AS $$
  SELECT pg_temp.b_value(format('SELECT deltasync_sync(%L)::text', url))::jsonb $$;
CREATE FUNCTION pg_temp.a_call(fn text, url text, opts text DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
  SELECT pg_temp.a_value(format('SELECT %s(%L, %L)::text', fn, url, opts))::jsonb $$;

SELECT dblink_exec('a', 'DROP TABLE IF EXISTS shop; CREATE TABLE shop (sku text PRIMARY KEY, qty int, price numeric(8, 2), seen timestamptz)');
SELECT pg_temp.a_value($$SELECT deltasync_enable('shop')::text$$);
SELECT dblink_exec('b', 'DROP TABLE IF EXISTS shop; CREATE TABLE shop (sku text PRIMARY KEY, qty int, price numeric(8, 2), seen timestamptz)');
SELECT pg_temp.b_value($$SELECT deltasync_enable('shop')::text$$);

SELECT dblink_exec('a', $$INSERT INTO shop SELECT 'sku' || g, g, g * 1.25, timestamptz '2024-03-01 12:00:00+01' + g * interval '1 hour'
  FROM generate_series(1, 250) AS g$$);
SELECT is((pg_temp.a_call('deltasync_push', :'url', '{"batch_rows": 100}')->>'batches')::int, 3, 'push sends 250 rows in batches of 100');
SELECT is((pg_temp.a_call('deltasync_push', :'url')->>'pushed')::int, 0, 'a second push has nothing left to send');
SELECT is((pg_temp.b_value(format('SELECT deltasync_pull(%L, %L)::text', :'url', '{"batch_rows": 64}'))::jsonb->>'pages')::int, 4,
  'B pulls them in pages');
SELECT is(pg_temp.b_value('SELECT count(*)::text FROM shop'), '250', 'B holds every row');
SELECT is(pg_temp.b_value($$SELECT seen::text FROM shop WHERE sku = 'sku1'$$),
  pg_temp.a_value($$SELECT seen::text FROM shop WHERE sku = 'sku1'$$), 'timestamptz arrives as the same instant');

SELECT dblink_exec('a', $$UPDATE shop SET qty = 0 WHERE sku = 'sku1'$$);
SELECT dblink_exec('b', $$UPDATE shop SET price = 9.99 WHERE sku = 'sku1'; DELETE FROM shop WHERE sku = 'sku2'$$);
SELECT is((pg_temp.b_sync(:'url')->'push'->>'rows')::int, 2, 'B pushes only its own two changed rows');
SELECT ok((pg_temp.a_call('deltasync_sync', :'url')->'pull'->>'applied')::int >= 2, 'A pulls B''s changes');
SELECT is(pg_temp.a_value($$SELECT qty || '/' || price FROM shop WHERE sku = 'sku1'$$), '0/9.99', 'edits of different columns merge');
SELECT is(pg_temp.a_value($$SELECT count(*)::text FROM shop WHERE sku = 'sku2'$$), '0', 'the delete arrived');
SELECT pg_temp.b_sync(:'url');
SELECT is(pg_temp.b_value('SELECT md5(string_agg(t::text, '','' ORDER BY sku)) FROM shop t'),
  pg_temp.a_value('SELECT md5(string_agg(t::text, '','' ORDER BY sku)) FROM shop t'), 'both sites hold identical rows');
SELECT is((pg_temp.a_call('deltasync_sync', :'url')->'pull'->>'pulled')::int, 0, 'nothing of its own comes back to A');
SELECT is(jsonb_array_length(pg_temp.a_value('SELECT deltasync_status()::text')::jsonb->'hubs'), 1, 'status lists the hub');
SELECT ok((pg_temp.a_value('SELECT deltasync_status()::text')::jsonb->'hubs'->0->>'push_cursor')::bigint > 0, 'with its push cursor');

-- Network failures: a clear error naming the URL; nothing lost.
SELECT dblink_exec('a', $$INSERT INTO shop VALUES ('late', 1, 1, now())$$);
SELECT throws_like($$SELECT * FROM dblink('a', 'SELECT deltasync_push(''http://127.0.0.1:1/nodes/pg_sync'', ''{"timeout_ms": 2000}'')::text') AS t(v text)$$,
  '%deltasync: http://127.0.0.1:1/nodes/pg_sync/push: %', 'a refused connection is a deltasync error naming the URL');
SELECT is((pg_temp.a_call('deltasync_push', :'url')->>'rows')::int, 1, 'the pending change is still there for the next push');

-- A push inside a transaction that wrote sends only what is committed.
CREATE TABLE mine (id int PRIMARY KEY);
SELECT deltasync_enable('mine');
INSERT INTO mine VALUES (1);
SELECT is((deltasync_push(:'url')->>'rows')::int, 0, 'a push never sends its own transaction''s uncommitted writes');

-- A hub that accepts and never answers: statement_timeout and cancel still stop the call.
CREATE FUNCTION pg_temp.timed(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE sql;
  RETURN 'returned';
EXCEPTION WHEN query_canceled THEN
  RETURN CASE WHEN clock_timestamp() - t0 < interval '3 seconds' THEN 'cancelled in time' ELSE 'cancelled late' END;
END $$;
SET LOCAL statement_timeout = '700ms';
SELECT pg_temp.timed(format('SELECT deltasync_pull(%L)', :'blackhole' || '/nodes/x')) AS timeout_result \gset
RESET statement_timeout;
SELECT is(:'timeout_result'::text, 'cancelled in time', 'statement_timeout interrupts a transfer to a silent hub');
SELECT dblink_connect('c', replace(:'other', 'dbname=ds_b', 'dbname=ds_a'));
SELECT dblink_send_query('c', format('SELECT pg_sleep(0.7), pg_cancel_backend(%s)', pg_backend_pid()));
SELECT pg_temp.timed(format('SELECT deltasync_sync(%L)', :'blackhole' || '/nodes/x')) AS cancel_result \gset
SELECT is(:'cancel_result'::text, 'cancelled in time', 'a query cancel interrupts it too');

SELECT dblink_exec('b', 'DROP TABLE IF EXISTS shop');
SELECT * FROM finish();
ROLLBACK;
