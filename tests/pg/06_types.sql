-- SPEC section 4 between two PostgreSQL sites: every type it names, with edge values,
-- written on A, applied on B, and compared under the column's type. (The same matrix
-- through SQLite and back is tests/pg_e2e.)
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(5);
SELECT dblink_connect('b', :'other');

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
SELECT dblink_exec('b', $$DROP TABLE IF EXISTS tm; DROP TYPE IF EXISTS mood; CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')$$);
CREATE TEMP TABLE ddl AS SELECT $$CREATE TABLE tm (
  id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, b bool, n numeric, n2 numeric(12, 4),
  t text, vc varchar(20), c char(5), by bytea, u uuid, d date, tm time, ttz timetz, ts timestamp, tsz timestamptz,
  iv interval, j json, jb jsonb, ai int[], at text[], e mood)$$ AS sql;
SELECT dblink_exec('b', (SELECT sql FROM ddl));
DO $$BEGIN EXECUTE (SELECT sql FROM ddl); END$$;
SELECT deltasync_enable('tm');
SELECT v FROM dblink('b', $$SELECT deltasync_enable('tm')::text$$) AS t(v text);

SET LOCAL TimeZone = 'America/New_York';
INSERT INTO tm VALUES
  (1, 32767, -2147483648, 9223372036854775807, 'NaN', 'Infinity', true, 123456789012345678901234567890.123456789000,
   1.5, 'unicode: żółć 漢字 🙂 "quotes" \back', 'varchar', 'ab', '\x00ff00'::bytea, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
   '2024-02-29', '23:59:59.999999', '12:00+05:30', '1999-12-31 23:59:59.5', '2024-06-01 12:00:00+02',
   '1 year 2 mons -3 days 04:05:06.7', '{"b": 1,  "a": [1, 2]}', '{"b": 1,  "a": [1, 2]}', '{1,NULL,3}', '{"x,y","z"}', 'happy'),
  (2, -32768, 0, -9223372036854775808, '-0', '-Infinity', false, 0.000, -0.0001, '', '', '', ''::bytea, NULL,
   'infinity', '00:00', '00:00+00', '-infinity', 'infinity', '0', 'null', '[]', '{}', '{}', 'sad'),
  (3, NULL, NULL, NULL, 3.4028235e38, -0.0, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '1970-01-01 00:00:00+14', '-178000000 years', NULL, NULL, NULL, NULL, NULL);
RESET TimeZone;

SELECT is((v::jsonb->>'applied')::int, 72, 'B applies every column change (3 rows x 24 columns)')
  FROM dblink('b', format('SELECT deltasync_apply(%L)::text', deltasync_changes(0))) AS t(v text);

-- Compare under the column's type: B's rows, read back as text in one fixed setting, cast
-- to A's types, equal A's (record_image_eq: byte for byte, so -0.0, NaN and numeric scale count).
SET LOCAL TimeZone = 'UTC';
SELECT dblink_exec('b', $$SET TimeZone = 'UTC'; SET extra_float_digits = 3$$);
SET LOCAL extra_float_digits = 3;
CREATE TEMP TABLE tm_b AS SELECT * FROM tm WITH NO DATA;
INSERT INTO tm_b SELECT id, i2, i4, i8, f4, f8, b, n, n2, t, vc, c, by, u, d, tm, ttz, ts, tsz, iv, j, jb, ai, at, e::mood
  FROM dblink('b', 'SELECT * FROM tm') AS t(
  id int, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, b bool, n numeric, n2 numeric(12, 4),
  t text, vc varchar(20), c char(5), by bytea, u uuid, d date, tm time, ttz timetz, ts timestamp, tsz timestamptz,
  iv interval, j json, jb jsonb, ai int[], at text[], e text);
SELECT is((SELECT count(*)::int FROM tm_b), 3, 'B holds the three rows');
SELECT is_empty($$SELECT a.id FROM tm a JOIN tm_b b ON a.id = b.id WHERE NOT (a *= row(b.*)::tm)$$,
  'every value is identical, byte for byte, under its column type');
SELECT is((SELECT j::text FROM tm_b WHERE id = 1), '{"b": 1,  "a": [1, 2]}', 'json keeps its text exactly; jsonb its value');

-- Column representations are SQLite's (docs/types.md): PostgreSQL's types already give the canonical form.
SELECT throws_like($$SELECT deltasync_enable('tm', '{"columns": {"u": {"uuid": "hex32"}}}')$$,
  'deltasync: column representations ("columns": {"u": …}) are for SQLite columns%',
  'a representation option is refused on PostgreSQL');

SELECT dblink_exec('b', 'DROP TABLE IF EXISTS tm; DROP TYPE IF EXISTS mood');
SELECT * FROM finish();
ROLLBACK;
