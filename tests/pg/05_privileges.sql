-- Who may do what (docs/postgresql.md, "Privileges"), and DROP EXTENSION.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(21);

CREATE ROLE ds_owner;
CREATE ROLE ds_reader;
CREATE ROLE ds_stranger;
CREATE TABLE priv (id int PRIMARY KEY, v text);
ALTER TABLE priv OWNER TO ds_owner;
GRANT SELECT ON priv TO ds_reader;
GRANT INSERT, UPDATE, DELETE, SELECT ON priv TO ds_stranger;
GRANT USAGE ON SCHEMA public TO ds_owner, ds_reader, ds_stranger;

-- Tracking needs EXECUTE, which PUBLIC does not have: a role that owns a table of the same
-- name in a schema of its own cannot track it first and so receive the node's rows.
CREATE SCHEMA evil AUTHORIZATION ds_stranger;
SET ROLE ds_stranger;
CREATE TABLE evil.priv (id int PRIMARY KEY, v text);
SELECT throws_ok($$SELECT deltasync_enable('evil.priv')$$, '42501', NULL,
  'a role without EXECUTE on deltasync_enable cannot track even its own table');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM deltasync.tables WHERE name = 'priv'), 0, '... and nothing is tracked');
GRANT EXECUTE ON FUNCTION deltasync_enable(text, jsonb), deltasync_disable(text) TO ds_owner, ds_stranger;
SET ROLE ds_stranger;
SELECT throws_ok($$SELECT deltasync_enable('priv')$$, '42501', NULL, 'only the owner may enable a table');
RESET ROLE;
SET ROLE ds_owner;
SELECT lives_ok($$SELECT deltasync_enable('priv')$$, 'its owner may');
INSERT INTO priv VALUES (1, 'by owner');
RESET ROLE;
SET ROLE ds_stranger;
SELECT lives_ok($$INSERT INTO priv VALUES (2, 'by a writer')$$, 'a role with write privileges writes and is captured');
SELECT throws_ok($$SELECT deltasync_disable('priv')$$, '42501', NULL, 'only the owner may disable it');
RESET ROLE;
SELECT format('deltasync.meta_%s', id) AS meta FROM deltasync.tables WHERE name = 'priv' \gset
SELECT is((SELECT count(*)::int FROM :meta WHERE cl = 1), 2, 'both writes were captured');
SELECT deltasync_changes(0) AS payload \gset

SET ROLE ds_reader;
SELECT lives_ok($$SELECT deltasync_changes(0)$$, 'a role with SELECT may read the changes');
SELECT throws_ok(format('SELECT deltasync_apply(%L)', :'payload'), '42501', NULL, 'applying needs the owner''s privileges');
SELECT throws_ok($$SELECT * FROM deltasync.settings$$, '42501', NULL, 'internal tables are not readable directly');
RESET ROLE;
REVOKE SELECT ON priv FROM ds_stranger;
SET ROLE ds_stranger;
SELECT throws_ok($$SELECT deltasync_changes(0)$$, '42501', NULL, 'without SELECT, no changes');
RESET ROLE;

ALTER TABLE priv ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_one ON priv FOR SELECT USING (id = 1);
SET ROLE ds_reader;
SELECT throws_like($$SELECT deltasync_changes(0)$$, 'deltasync: table "priv" has row-level security%',
  'row-level security: a role that would see only some rows cannot sync the table');
RESET ROLE;
SET ROLE ds_owner;
SELECT lives_ok($$SELECT deltasync_changes(0)$$, 'its owner (not subject to its policies) can');
RESET ROLE;
ALTER TABLE priv FORCE ROW LEVEL SECURITY;
SET ROLE ds_owner;
SELECT throws_like($$SELECT deltasync_changes(0)$$, 'deltasync: table "priv" has row-level security%',
  'with FORCE ROW LEVEL SECURITY nobody but a BYPASSRLS role syncs it');
RESET ROLE;

-- Code of the table owner's (a domain's CHECK) runs with the owner's rights during apply,
-- never with the extension owner's.
CREATE ROLE ds_dom_owner;
GRANT USAGE, CREATE ON SCHEMA public TO ds_dom_owner;
CREATE TABLE dom_log (who text);
GRANT INSERT ON dom_log TO ds_dom_owner;
GRANT EXECUTE ON FUNCTION deltasync_enable(text, jsonb) TO ds_dom_owner;
SET ROLE ds_dom_owner;
CREATE FUNCTION dom_ok(int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.dom_log VALUES (current_user); RETURN $1 > 0; END $$;
CREATE DOMAIN posint AS int CHECK (dom_ok(VALUE));
CREATE TABLE dom (id int PRIMARY KEY, n posint);
SELECT deltasync_enable('dom');
RESET ROLE;
SELECT deltasync_apply(format('{"format":"deltasync","version":1,"site":"00000000-0000-4000-8000-000000000003","since":0,"until":1,'
  '"sites":["00000000-0000-4000-8000-000000000003"],"tables":[{"name":"dom","pk":["id"],"columns":["n"],'
  '"rows":[{"key":[1],"cl":1,"changes":[[0,5,%s,0,1]]}]}]}', (extract(epoch from now())::bigint * 1000) << 16));
SELECT is((SELECT array_agg(DISTINCT who) FROM dom_log), ARRAY['ds_dom_owner'],
  'a domain check during apply runs as the table''s owner');
SELECT is((SELECT n::int FROM dom WHERE id = 1), 5, 'and the value was applied');

-- The network functions are for roles an administrator grants them to.
SET ROLE ds_reader;
SELECT throws_ok($$SELECT deltasync_push('http://127.0.0.1:1/nodes/x')$$, '42501', NULL,
  'push is not executable by PUBLIC (it makes the server open connections)');
RESET ROLE;
-- A table with a trigger that fires during replication (ENABLE ALWAYS): only a superuser applies into it.
SET ROLE ds_dom_owner;
CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER always_on AFTER INSERT ON dom FOR EACH ROW EXECUTE FUNCTION noop();
ALTER TABLE dom ENABLE ALWAYS TRIGGER always_on;
SELECT throws_like(format('SELECT deltasync_apply(%L)', format('{"format":"deltasync","version":1,'
  '"site":"00000000-0000-4000-8000-000000000003","since":0,"until":1,"sites":["00000000-0000-4000-8000-000000000003"],'
  '"tables":[{"name":"dom","pk":["id"],"columns":["n"],"rows":[{"key":[2],"cl":1,"changes":[[0,6,%s,0,1]]}]}]}',
  (extract(epoch from now())::bigint * 1000) << 16)), 'deltasync: table "dom" has triggers or rules enabled ALWAYS%',
  'a table owner cannot apply into a table whose triggers fire during replication');
RESET ROLE;

-- deltasync_status() tells what is tracked and where it syncs: only to roles that may read it.
CREATE ROLE ds_nobody;
GRANT USAGE ON SCHEMA public TO ds_nobody;
SET ROLE ds_nobody;
SELECT throws_ok($$SELECT deltasync_status()$$, '42501', NULL, 'a role that may not read the tracked tables gets no status');
RESET ROLE;
DROP EXTENSION deltasync CASCADE;
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'deltasync%'), 0, 'DROP EXTENSION CASCADE removes every trigger');
SELECT hasnt_schema('deltasync', 'and every internal object');

SELECT * FROM finish();
ROLLBACK;
