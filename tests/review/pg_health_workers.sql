\set ON_ERROR_STOP 0
\pset pager off
CREATE EXTENSION deltasync;
CREATE TABLE t (id int PRIMARY KEY, v text);
SELECT deltasync_enable('t')->>'backfilled';
CREATE TABLE big AS SELECT g AS x FROM generate_series(1, 200000) g;
ANALYZE big;
SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM big;
-- H2: success then failures inside one transaction holding the hub row
BEGIN;
SELECT 'H2 pull ok', deltasync_pull(:'url')->>'pages';
\! kill $(cat /tmp/rv/hub.pid); sleep 0.5
DO $$ BEGIN FOR i IN 1..12 LOOP BEGIN PERFORM deltasync_pull(current_setting('my.url'), '{"timeout_ms": 500}'); EXCEPTION WHEN others THEN END; END LOOP; END $$;
SELECT pg_sleep(1);
SELECT 'H2 workers', backend_type, wait_event_type, wait_event, count(*) FROM pg_stat_activity WHERE backend_type LIKE 'deltasync%' GROUP BY 1,2,3,4;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM big;
COMMIT;
SELECT pg_sleep(2);
SELECT 'H2 after commit', e->>'hub', e->>'failures', e->>'last_success_ms' IS NOT NULL FROM jsonb_array_elements(deltasync_status()->'hubs') e;
\c x
SET ROLE dsowner;
CREATE EXTENSION deltasync;
RESET ROLE;
CREATE TABLE t (id int PRIMARY KEY);
SELECT deltasync_enable('t')->>'backfilled';
DO $$ BEGIN FOR i IN 1..900 LOOP BEGIN PERFORM deltasync_pull('http://127.0.0.1:1/nodes/nologin'); EXCEPTION WHEN others THEN END; PERFORM pg_sleep(0.012); END LOOP; END $$;
SELECT pg_sleep(1);
\c a
SELECT deltasync_pull('http://127.0.0.1:1/nodes/after_leak');
SELECT pg_sleep(2);
SELECT 'H6 after leak', e->>'hub', e->>'failures' FROM jsonb_array_elements(deltasync_status()->'hubs') e;
SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM big;
