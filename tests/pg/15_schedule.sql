-- deltasync_schedule / deltasync_unschedule (docs/live-sync.md, "PostgreSQL"): stored in
-- deltasync.schedules, replaced per hub, listed by deltasync_status() without options, bad
-- options refused before anything is stored, not callable by PUBLIC, the stored token not
-- readable by PUBLIC; the API functions run without JIT. All in one transaction that is
-- rolled back, so no worker starts (they start at commit; tests/pg_e2e/pg_schedule_test.cpp
-- runs them).
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(16);

SELECT is(deltasync_schedule('http://127.0.0.1:9/nodes/shop', '{"token": "s3cret", "interval_ms": 500}')->>'replaced',
          'false', 'a first schedule for a hub is new');
SELECT is((SELECT options FROM deltasync.schedules), '{"token":"s3cret"}', 'the options are stored without interval_ms');
SELECT is((SELECT interval_ms FROM deltasync.schedules), 500::bigint, 'interval_ms is stored apart');
SELECT is((SELECT role FROM deltasync.schedules), (SELECT oid FROM pg_roles WHERE rolname = current_user),
          'the schedule runs as the role that made it');
SELECT is(deltasync_schedule('http://127.0.0.1:9/nodes/shop', '{"tables": ["t"]}')->>'replaced', 'true',
          'scheduling the same hub again replaces it');
SELECT is((SELECT count(*) FROM deltasync.schedules), 1::bigint, 'one schedule per hub');
SELECT is((SELECT interval_ms FROM deltasync.schedules), 10000::bigint, 'the default interval is 10 s');
SELECT deltasync_schedule('http://127.0.0.1:9/nodes/other');
SELECT is(deltasync_status()->'schedules',
          '[{"hub": "http://127.0.0.1:9/nodes/other", "url": "http://127.0.0.1:9/nodes/other", "interval_ms": 10000},
            {"hub": "http://127.0.0.1:9/nodes/shop", "url": "http://127.0.0.1:9/nodes/shop", "interval_ms": 10000}]'::jsonb,
          'status lists the schedules by hub, never their options');

SELECT throws_like($$SELECT deltasync_schedule('http://127.0.0.1:9/nodes/x', '{"interval_ms": 10}')$$,
                   'deltasync: deltasync_schedule: option interval_ms must be between 50 and 86400000%',
                   'an interval out of range is refused');
SELECT throws_like($$SELECT deltasync_schedule('http://127.0.0.1:9/nodes/x', '{"bogus": 1}')$$,
                   'deltasync:%bogus%', 'an option deltasync_sync would refuse is refused');
SELECT throws_like($$SELECT deltasync_schedule('ftp://127.0.0.1:9/nodes/x')$$, 'deltasync:%',
                   'a URL deltasync_sync would refuse is refused');
SELECT is((SELECT count(*) FROM deltasync.schedules), 2::bigint, 'a refused schedule stores nothing');

SELECT is(deltasync_unschedule('http://127.0.0.1:9/nodes/shop')->>'unscheduled', 'true', 'unscheduling removes it');
SELECT is(deltasync_unschedule('http://127.0.0.1:9/nodes/shop')->>'unscheduled', 'false', 'a second time finds none');

CREATE ROLE ds_sched_stranger;
SELECT ok(NOT has_function_privilege('ds_sched_stranger', 'deltasync_schedule(text, jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('ds_sched_stranger', 'deltasync_unschedule(text)', 'EXECUTE')
          AND NOT has_schema_privilege('ds_sched_stranger', 'deltasync', 'USAGE'),
          'PUBLIC can neither schedule nor reach the stored tokens');

SELECT is((SELECT count(*) FROM pg_proc WHERE proname IN ('deltasync_changes', 'deltasync_apply', 'deltasync_push',
           'deltasync_pull', 'deltasync_sync', 'deltasync_status') AND 'jit=off' = ANY (proconfig)), 6::bigint,
          'the functions that read shadow tables run without JIT');

SELECT * FROM finish();
ROLLBACK;
