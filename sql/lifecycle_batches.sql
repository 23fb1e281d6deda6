-- Stage 2's batches (measure 6b), driven by hand so that each one can be
-- looked at: a dense scope goes in windows of pages, one pass per row; a
-- sparse one through the index; rows behind the cursor are caught by the
-- closing pass; the counts are exact.  The requests stay in their grace
-- period, so the worker leaves them alone.
\set VERBOSITY terse
SELECT count(toms.create_tenant('lcb' || n, 'B' || n)) FROM generate_series(1, 3) n;
CREATE TABLE lcb_t (tenant_id text NOT NULL, subj text, pad text);
CREATE INDEX ON lcb_t (tenant_id);
SELECT toms.protect('lcb_t', subject_column => 'subj');
-- lcb1 and lcb2 interleaved, 1 000 rows each, pages full; lcb3: 5 rows.
INSERT INTO lcb_t SELECT CASE WHEN g % 2 = 0 THEN 'lcb1' ELSE 'lcb2' END, 's' || g % 7, repeat('x', 200)
  FROM generate_series(1, 2000) g;
INSERT INTO lcb_t SELECT 'lcb3', 's' || g, 'y' FROM generate_series(1, 5) g;
ANALYZE lcb_t;
SELECT pg_relation_size('lcb_t') / current_setting('block_size')::int BETWEEN 50 AND 1000 AS pages_ok;

-- Run times batches of request req on lcb_t: the rows each deleted, and
-- the step's state after it.
CREATE FUNCTION lcb_batches(req uuid, batch int, times int DEFAULT 1)
	RETURNS TABLE (n bigint, rows_deleted bigint, batches int, cursor_set bool, purged bool)
	LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. times LOOP
		n := toms._deletion_batch(req, 'lcb_t'::regclass, batch);
		SELECT s.rows_deleted, s.batches, s.last_tid IS NOT NULL, s.purged_at IS NOT NULL
		  INTO rows_deleted, batches, cursor_set, purged
		  FROM toms.deletion_steps s WHERE s.request = req AND s.relid = 'lcb_t'::regclass;
		RETURN NEXT;
	END LOOP;
END $$;

-- Dense: windows of 300 rows of lcb1.
SELECT toms.request_deletion('lcb1', grace => '1 day') AS r1 \gset
SELECT toms._deletion_plan(:'r1');
SELECT rows_estimated FROM toms.deletion_steps WHERE request = :'r1' AND relid = 'lcb_t'::regclass;
SELECT * FROM lcb_batches(:'r1', 300);
-- Everything up to the cursor is gone, everything after it is there.
SELECT count(*) FILTER (WHERE l.ctid <= s.last_tid) AS before_cursor,
       count(*) FILTER (WHERE l.ctid > s.last_tid) AS after_cursor
  FROM lcb_t l, toms.deletion_steps s
 WHERE tenant_id = 'lcb1' AND s.request = :'r1' AND s.relid = 'lcb_t'::regclass;
SELECT * FROM lcb_batches(:'r1', 300);
-- Rows in scope behind the cursor, as an UPDATE moving rows to freed
-- space before it would leave them: advance the cursor past the next five
-- rows of lcb1.
UPDATE toms.deletion_steps s
   SET last_tid = (SELECT ctid FROM lcb_t WHERE tenant_id = 'lcb1' AND ctid > s.last_tid
                    ORDER BY ctid OFFSET 4 LIMIT 1)
 WHERE s.request = :'r1' AND s.relid = 'lcb_t'::regclass;
-- The windows run to the end of the table (1 000 - 600 - 5), then the
-- closing pass finds the five.
SELECT * FROM lcb_batches(:'r1', 300, 3);
SELECT tenant_id, count(*) FROM lcb_t GROUP BY 1 ORDER BY 1;

-- Sparse: lcb3's 5 rows in batches of 2, through the index.
SELECT toms.request_deletion('lcb3', grace => '1 day') AS r3 \gset
SELECT toms._deletion_plan(:'r3');
SELECT * FROM lcb_batches(:'r3', 2, 4);
SELECT tenant_id, count(*) FROM lcb_t GROUP BY 1 ORDER BY 1;

-- One window from the first page to the end of the table is a whole pass:
-- lcb2 in one batch, complete at once.
SELECT toms.request_deletion('lcb2', grace => '1 day') AS r2 \gset
SELECT toms._deletion_plan(:'r2');
SELECT * FROM lcb_batches(:'r2', 5000);
SELECT count(*) FROM lcb_t;

SELECT toms.unprotect('lcb_t');
DROP TABLE lcb_t;
DROP FUNCTION lcb_batches(uuid, int, int);
DELETE FROM toms.deletion_requests WHERE tenant LIKE 'lcb_';
DELETE FROM toms.tenants WHERE tenant LIKE 'lcb_';
