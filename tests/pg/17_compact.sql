-- deltasync_compact on PostgreSQL (docs/operations.md, "Compaction on sites"): its options
-- and errors, the bound (no hub: nothing; {"direct_up_to": V}; each hub's push cursor and
-- confirmed frontier mark), what a grave is (key and causal length, version and clock NULL),
-- and that graves keep every merge rule: a grave travels in a pass from 0 only, an older
-- life arriving later loses to it, a newer one wins, a re-insert here starts above it.
-- The other site is ds_b, inside a transaction of its own that is rolled back.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(32);

-- Options and errors: checked before anything is read or written.
SELECT throws_like($$SELECT deltasync_compact('{"bogus": 1}')$$, 'deltasync: unknown compact option "bogus"', 'an unknown option');
SELECT throws_like($$SELECT deltasync_compact('[1]')$$, 'deltasync: compact options must be a JSON object', 'options not an object');
SELECT throws_like($$SELECT deltasync_compact('{"direct_up_to": -1}')$$,
  'deltasync: option direct_up_to must be a db_version%', 'a negative direct_up_to');
SELECT throws_like($$SELECT deltasync_compact('{"direct_up_to": "5"}')$$,
  'deltasync: option direct_up_to must be a db_version%', 'a direct_up_to that is not a number');
CREATE ROLE compact_nobody;
SELECT ok(NOT has_function_privilege('compact_nobody', 'deltasync_compact(jsonb)', 'EXECUTE'),
  'only roles an administrator grants it to may compact');

-- Other suites' hubs (committed by their calls) are not this suite's: forgotten here, in
-- this transaction only.
DELETE FROM deltasync.hub_echo;
DELETE FROM deltasync.hub_frontier;
DELETE FROM deltasync.hubs;
CREATE TABLE cg (id int PRIMARY KEY, v text);
SELECT deltasync_enable('cg');
INSERT INTO cg VALUES (1, 'one'), (2, 'two'), (3, 'three');
DELETE FROM cg WHERE id IN (1, 2);
SELECT deltasync_db_version() AS v_del \gset
CREATE FUNCTION pg_temp.shadow(k int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  EXECUTE format('SELECT cl || '' '' || coalesce(ver::text, ''-'') || '' '' || coalesce(hlc::text, ''-'') || '' '''
    ' || coalesce(site::text, ''-'') || '' '' || coalesce(encode(clk, ''hex''), ''-'') FROM deltasync.%I WHERE k0 = $1',
    'meta_' || (SELECT id FROM deltasync.tables WHERE name = 'cg')) INTO r USING k;
  RETURN r;
END $$;
CREATE FUNCTION pg_temp.ver(k int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN
  EXECUTE format('SELECT ver FROM deltasync.%I WHERE k0 = $1', 'meta_' || (SELECT id FROM deltasync.tables WHERE name = 'cg'))
    INTO r USING k;
  RETURN r;
END $$;

SELECT is(deltasync_compact(), '{"up_to": 0, "held_by": "no hub", "graves": 0, "tables": {}}'::jsonb,
  'without a hub nothing says what the peers have seen: nothing is compacted');
SELECT matches(pg_temp.shadow(1), '^2 [0-9]+ [0-9]+ 0 -$', 'the tombstone is still whole');
SELECT deltasync_compact(format('{"direct_up_to": %s}', :v_del - 1)::jsonb)->'graves' AS below \gset
SELECT deltasync_compact(format('{"direct_up_to": %s}', :v_del)::jsonb) AS r \gset
SELECT is((:'r'::jsonb)->>'held_by', 'direct_up_to', 'direct_up_to holds the bound');
SELECT is((:'r'::jsonb)->'up_to', to_jsonb(:v_del::bigint), 'up to the version given');
SELECT is((:'below'::jsonb)::int + ((:'r'::jsonb)->>'graves')::int, 2, 'both tombstones became graves');
SELECT is((:'r'::jsonb)->'tables'->'cg', to_jsonb((:'r'::jsonb->>'graves')::int), 'counted per table');

SELECT is(pg_temp.shadow(1), '2 - - - -', 'a grave keeps the key and causal length; version and clock are NULL');
SELECT is(pg_temp.shadow(2), '2 - - - -', 'so does the other');
SELECT matches(pg_temp.shadow(3), '^1 [0-9]+ [0-9]+ 0 -$', 'a live row keeps everything');
SELECT is((deltasync_compact(format('{"direct_up_to": %s}', :v_del)::jsonb))->'graves', '0'::jsonb,
  'a second compaction finds nothing left');

-- A grave is collected by a pass from 0 (a new hub, a restored one) and by no other.
SELECT ok(deltasync_changes(0) LIKE '%{"key":[1],"cl":2,"changes":[]}%', 'deltasync_changes(0) carries the grave');
SELECT ok(deltasync_changes(1) NOT LIKE '%"key":[1]%' AND deltasync_changes(1) NOT LIKE '%"key":[2]%',
  'an incremental pass does not');
SELECT ok(deltasync_changes(1) LIKE '%"key":[3]%', 'but still carries the live row');
SELECT is((SELECT e->>'rows' || ' ' || (e->>'deleted') FROM jsonb_array_elements(deltasync_status()->'tables') AS e
  WHERE e->>'table' = 'cg'), '1 2', 'status counts graves as deleted rows');

-- Another site (ds_b, rolled back at the end) with the old life of 1, then a newer life.
SELECT dblink_connect('cb', :'other');
SELECT dblink_exec('cb', 'BEGIN');
SELECT dblink_exec('cb', 'SET client_min_messages = warning');
SELECT dblink_exec('cb', 'CREATE TABLE cg (id int PRIMARY KEY, v text)');
SELECT v FROM dblink('cb', $$SELECT deltasync_enable('cg')::text$$) AS t(v text);
SELECT dblink_exec('cb', $$INSERT INTO cg VALUES (1, 'old life')$$);
SELECT p AS old_life FROM dblink('cb', 'SELECT deltasync_changes(0)') AS t(p text) \gset
SELECT is((deltasync_apply(:'old_life'))->'applied', '0'::jsonb, 'an older life arriving after the compaction loses to the grave');
SELECT is((SELECT count(*) FROM cg WHERE id = 1), 0::bigint, 'the row stays deleted');
SELECT is(pg_temp.shadow(1), '2 - - - -', 'and its grave stays a grave');
SELECT dblink_exec('cb', 'DELETE FROM cg WHERE id = 1');
SELECT dblink_exec('cb', $$INSERT INTO cg VALUES (1, 'new life')$$);
SELECT p AS new_life FROM dblink('cb', 'SELECT deltasync_changes(0)') AS t(p text) \gset
SELECT ok(((deltasync_apply(:'new_life'))->>'applied')::int > 0, 'a newer life is applied over the grave');
SELECT is((SELECT v FROM cg WHERE id = 1), 'new life', 'the row is back with its new value');
SELECT matches(pg_temp.shadow(1), '^3 [0-9]+ [0-9]+ [0-9]+ ', 'at causal length 3, with a version and clock');
SELECT dblink_exec('cb', 'ROLLBACK');
SELECT dblink_disconnect('cb');
INSERT INTO cg VALUES (2, 'again');
SELECT matches(pg_temp.shadow(2), '^3 [0-9]+ [0-9]+ 0 ', 'a re-insert over a grave here starts a life above it');
SELECT ok(deltasync_changes(1) LIKE '%{"key":[2],"cl":3,%', 'and is sent as any change');

-- With hubs: each hub's push cursor and confirmed mark (deltasync.hub_frontier, written by
-- full pulls) bound it; the smallest wins, also against direct_up_to.
DELETE FROM cg WHERE id = 3;
SELECT deltasync_db_version() AS v_del3 \gset
INSERT INTO deltasync.hubs (hub, push_cursor) VALUES ('http://h1/nodes/n', :v_del3), ('http://h2/nodes/n', :v_del3);
SELECT is((deltasync_compact())->>'held_by', 'http://h1/nodes/n', 'a hub that never sent a frontier holds it at 0');
INSERT INTO deltasync.hub_frontier VALUES ('http://h1/nodes/n', 50, 0, 0, :v_del3), ('http://h2/nodes/n', 40, 0, 0, pg_temp.ver(3) - 1);
SELECT deltasync_compact(format('{"direct_up_to": %s}', :v_del3 + 100)::jsonb) AS r \gset
SELECT is((:'r'::jsonb)->>'held_by', 'http://h2/nodes/n', 'the hub whose frontier covers least holds the bound');
SELECT is((:'r'::jsonb)->'graves', '0'::jsonb, 'and the newest delete is not covered there');
UPDATE deltasync.hub_frontier SET safe_ver = :v_del3 + 1000;
SELECT is((deltasync_compact())->'graves', '1'::jsonb, 'once every hub covers it, it is compacted (up to the push cursors)');
SELECT is((SELECT jsonb_agg(jsonb_build_object('f', e->'frontier', 'c', e->'compactable_to') ORDER BY e->>'hub')
  FROM jsonb_array_elements(deltasync_status()->'hubs') AS e),
  jsonb_build_array(jsonb_build_object('f', 50, 'c', :v_del3), jsonb_build_object('f', 40, 'c', :v_del3)),
  'status shows each hub''s frontier and how far it lets this site compact');

SELECT * FROM finish();
ROLLBACK;
