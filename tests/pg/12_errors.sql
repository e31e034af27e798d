-- Errors carry PostgreSQL's own detail and hint through deltasync (errdetail/errhint), with
-- the SQLSTATE of the underlying error and the deltasync prefix on the message.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(4);

CREATE TABLE err_t (id int PRIMARY KEY, n numeric(12, 2));
SELECT deltasync_enable('err_t');
INSERT INTO err_t VALUES (1, 123456.78);
SELECT deltasync_changes(0) AS payload \gset
SELECT deltasync_disable('err_t');
DROP TABLE err_t;
-- The same table with a narrower column: the value no longer fits.
CREATE TABLE err_t (id int PRIMARY KEY, n numeric(5, 2));
SELECT deltasync_enable('err_t');

CREATE FUNCTION pg_temp.apply_error(p text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text; hnt text;
BEGIN
  PERFORM deltasync_apply(p);
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN ARRAY[st, msg, det, hnt];
END $$;

SELECT pg_temp.apply_error(:'payload') AS e \gset
SELECT is((:'e'::text[])[1], '22003', 'the SQLSTATE is PostgreSQL''s own (numeric value out of range)');
SELECT matches((:'e'::text[])[2], '^deltasync: cannot apply a change to column "n" of table "err_t": numeric field overflow',
  'the message names column and table after the prefix, once');
SELECT matches((:'e'::text[])[3], 'precision 5, scale 2', 'PostgreSQL''s detail is reported as the error''s detail');
SELECT is((SELECT count(*) FROM err_t), 0::bigint, 'nothing was applied');

SELECT * FROM finish();
ROLLBACK;
