-- Retention batches (toms.set_retention), driven by hand so that each one
-- can be looked at: without an index on the time column a batch goes on
-- from the previous batch's last tuple id in physical order, so a long
-- first purge reads each row once; rows behind the cursor wait for the
-- next pass; with an index the batches take the oldest rows through it.
-- One transaction, rolled back: the worker never sees the rules.
\set VERBOSITY terse
BEGIN;
SELECT toms.create_tenant('lcr1', 'Retention');
CREATE TABLE lcr_t (tenant_id text NOT NULL, at timestamptz NOT NULL, pad text);
SELECT toms.protect('lcr_t');
-- 2 000 rows, every other one expired (older than 30 days).
INSERT INTO lcr_t SELECT 'lcr1', now() - CASE WHEN g % 2 = 0 THEN interval '40 days' ELSE interval '1 day' END,
	repeat('x', 100) FROM generate_series(1, 2000) g;
SELECT toms.set_retention('lcr_t', 'at', '30 days');
CREATE TEMP TABLE lcr_cur (last tid);
INSERT INTO lcr_cur VALUES ('(0,0)');
-- One batch of n rows from the cursor; the cursor moves to its last row.
CREATE FUNCTION pg_temp.lcr_batch(n int) RETURNS TABLE (purged bigint, cursor_moved bool,
	expired_at_or_before bigint, expired_after bigint)
	LANGUAGE plpgsql AS $$
DECLARE
	b record;
	prev tid := (SELECT last FROM lcr_cur);
BEGIN
	SELECT * INTO b FROM toms._retention_batch('lcr_t'::regclass, 'lcr_t'::regclass, n, prev);
	purged := b.purged;
	cursor_moved := b.last IS NOT NULL AND b.last > prev;
	UPDATE lcr_cur SET last = coalesce(b.last, prev);
	SELECT count(*) FILTER (WHERE t.ctid <= c.last), count(*) FILTER (WHERE t.ctid > c.last)
	  INTO expired_at_or_before, expired_after
	  FROM lcr_t t, lcr_cur c WHERE t.at < now() - interval '30 days';
	RETURN NEXT;
END $$;
-- The function's settings keep a batch off a sequential scan from the
-- first page: without an index on the time column it is a TID range scan.
SELECT proconfig FROM pg_proc WHERE oid = 'toms._retention_batch'::regproc;
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT ctid FROM ONLY lcr_t WHERE ctid > '(0,0)' AND at < now() - interval '30 days' LIMIT 300;
RESET enable_seqscan;
RESET enable_bitmapscan;
-- Batches of 300: nothing expired is left at or before the cursor.
SELECT * FROM pg_temp.lcr_batch(300);
SELECT * FROM pg_temp.lcr_batch(300);
-- The cursor is honoured: moved past the next five expired rows, the
-- next batch leaves them.
UPDATE lcr_cur SET last = (SELECT t.ctid FROM lcr_t t, lcr_cur c
	WHERE t.ctid > c.last AND t.at < now() - interval '30 days' ORDER BY t.ctid OFFSET 4 LIMIT 1);
SELECT * FROM pg_temp.lcr_batch(300);
SELECT * FROM pg_temp.lcr_batch(300);	-- fewer than 300: the pass is over
-- The next pass starts from the first page and takes the five.
UPDATE lcr_cur SET last = '(0,0)';
SELECT * FROM pg_temp.lcr_batch(300);
SELECT count(*) AS left_expired FROM lcr_t WHERE at < now() - interval '30 days';
SELECT count(*) AS kept FROM lcr_t;
SELECT rows_purged FROM toms.retention WHERE relid = 'lcr_t'::regclass;

-- With an index led by the time column: no cursor, the oldest rows first.
INSERT INTO lcr_t SELECT 'lcr1', now() - interval '40 days' - g * interval '1 minute', 'y'
  FROM generate_series(1, 500) g;
CREATE INDEX ON lcr_t (at);
SELECT purged, last IS NULL AS no_cursor FROM toms._retention_batch('lcr_t'::regclass, 'lcr_t'::regclass, 200);
SELECT min(at) = now() - interval '40 days' - interval '300 minutes' AS oldest_went_first
  FROM lcr_t WHERE at < now() - interval '30 days';
SELECT purged, last IS NULL AS no_cursor FROM toms._retention_batch('lcr_t'::regclass, 'lcr_t'::regclass, 200);
SELECT purged FROM toms._retention_batch('lcr_t'::regclass, 'lcr_t'::regclass, 200);
SELECT rows_purged FROM toms.retention WHERE relid = 'lcr_t'::regclass;
ROLLBACK;
