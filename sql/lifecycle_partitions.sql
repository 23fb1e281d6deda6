-- Deletion and retention on protected partitioned tables (issue 17): stage
-- 2 purges a tenant from every partition; retention drops partitions whose
-- bounds hold only expired rows (audited, counted) and deletes the other
-- expired rows row by row.  Waits are bounded polls.
\set VERBOSITY terse
SELECT toms.create_tenant('lcp1', 'One'), toms.create_tenant('lcp2', 'Two'),
       toms.create_tenant('lcp3', 'Three');

CREATE PROCEDURE pg_temp.wait_for(q text, INOUT ok bool DEFAULT false) LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
	LOOP
		EXECUTE q INTO ok;
		EXIT WHEN ok OR clock_timestamp() > deadline;
		COMMIT;
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;

-- 1. Which partitions retention may drop, by their bounds: range partitions
-- on the time column whose (exclusive) upper bound is at or before
-- now() - keep, at any level, the top-most only; for timestamptz, timestamp
-- and date columns.  Driven by hand in a transaction the worker never sees.
BEGIN;
CREATE TABLE lcp_by_hand (tenant_id text NOT NULL, at timestamptz NOT NULL, d date NOT NULL DEFAULT '2000-01-01')
	PARTITION BY HASH (tenant_id);
CREATE TABLE lcp_by_hand_h0 PARTITION OF lcp_by_hand FOR VALUES WITH (MODULUS 2, REMAINDER 0) PARTITION BY RANGE (at);
CREATE TABLE lcp_by_hand_h1 PARTITION OF lcp_by_hand FOR VALUES WITH (MODULUS 2, REMAINDER 1) PARTITION BY RANGE (at);
CREATE TABLE lcp_by_hand_h0_old PARTITION OF lcp_by_hand_h0 FOR VALUES FROM (MINVALUE) TO ('2001-01-01');
CREATE TABLE lcp_by_hand_h0_2001 PARTITION OF lcp_by_hand_h0 FOR VALUES FROM ('2001-01-01') TO ('2002-01-01')
	PARTITION BY RANGE (at);
CREATE TABLE lcp_by_hand_h0_2001a PARTITION OF lcp_by_hand_h0_2001 FOR VALUES FROM ('2001-01-01') TO ('2001-07-01');
CREATE TABLE lcp_by_hand_h0_2001b PARTITION OF lcp_by_hand_h0_2001 FOR VALUES FROM ('2001-07-01') TO ('2002-01-01');
CREATE TABLE lcp_by_hand_h0_now PARTITION OF lcp_by_hand_h0 FOR VALUES FROM ('2002-01-01') TO (MAXVALUE);
CREATE TABLE lcp_by_hand_h1_all PARTITION OF lcp_by_hand_h1 DEFAULT;
SELECT toms.protect('lcp_by_hand');
SELECT toms.set_retention('lcp_by_hand', 'at', '1 day');
SELECT p::regclass AS droppable FROM toms._retention_expired_partitions('lcp_by_hand'::regclass) p ORDER BY 1::text;
-- Not by a column that is not the partition key.
SELECT toms.set_retention('lcp_by_hand', 'd', '1 day');
SELECT count(*) AS droppable FROM toms._retention_expired_partitions('lcp_by_hand'::regclass);
-- date and timestamp keys.
CREATE TABLE lcp_dates (tenant_id text NOT NULL, d date NOT NULL, ts timestamp NOT NULL) PARTITION BY RANGE (d);
CREATE TABLE lcp_dates_a PARTITION OF lcp_dates FOR VALUES FROM ('2000-01-01') TO ('2000-02-01');
CREATE TABLE lcp_dates_b PARTITION OF lcp_dates FOR VALUES FROM ('2000-02-01') TO ('3000-01-01');
CREATE TABLE lcp_ts (tenant_id text NOT NULL, ts timestamp NOT NULL) PARTITION BY RANGE (ts);
CREATE TABLE lcp_ts_a PARTITION OF lcp_ts FOR VALUES FROM ('2000-01-01') TO ('2000-02-01 12:00');
CREATE TABLE lcp_ts_b PARTITION OF lcp_ts FOR VALUES FROM ('2000-02-01 12:00') TO ('3000-01-01');
SELECT toms.protect('lcp_dates'), toms.protect('lcp_ts');
SELECT toms.set_retention('lcp_dates', 'd', '1 day'), toms.set_retention('lcp_ts', 'ts', '1 day');
SELECT p::regclass AS droppable FROM toms._retention_expired_partitions('lcp_dates'::regclass) p
UNION ALL
SELECT p::regclass FROM toms._retention_expired_partitions('lcp_ts'::regclass) p;
-- Dropping one: its rows are counted in the rule, it leaves
-- toms.protected_tables with its own partitions, and an audit record says so.
SELECT toms.set_retention('lcp_by_hand', 'at', '1 day');
INSERT INTO lcp_by_hand (tenant_id, at)
SELECT t, timestamptz '2001-01-01' + g * interval '1 day' FROM unnest('{lcp1,lcp2,lcp3}'::text[]) t, generate_series(0, 364) g;
SELECT count(*) AS rows_2001_h0 FROM lcp_by_hand_h0_2001;
SELECT toms._retention_drop_partition('lcp_by_hand'::regclass, 'lcp_by_hand_h0_2001'::regclass) AS dropped_rows;
SELECT count(*) FROM pg_class WHERE relname LIKE 'lcp_by_hand_h0_2001%';
SELECT count(*) FROM toms.protected_tables WHERE relid::text LIKE 'lcp_by_hand%';
SELECT rows_purged FROM toms.retention WHERE relid = 'lcp_by_hand'::regclass;
SELECT action, detail::jsonb->>'partition' AS part, detail::jsonb->>'rows_deleted' AS n
  FROM toms.audit_log WHERE action = 'retention_partition_dropped' AND detail::text LIKE '%lcp_by_hand%';
-- Only a partition of the rule's table.
SAVEPOINT s;
SELECT toms._retention_drop_partition('lcp_dates'::regclass, 'lcp_ts_a'::regclass);
ROLLBACK TO s;
-- The rest through the function the worker calls.
SELECT toms._retention_drop_expired('lcp_by_hand'::regclass) AS dropped_rows;
SELECT c.relname FROM pg_class c WHERE c.relname LIKE 'lcp_by_hand%' ORDER BY 1;
-- The guard still refuses the same DROP to everyone else, superusers included.
DROP TABLE lcp_by_hand_h0_now;
ROLLBACK;

-- 2. The worker: a table partitioned by month, 15 months of rows, a rule
-- keeping 100 days: the months that ended more than 100 days ago are
-- dropped whole; the rest of the expired rows (in the month that straddles
-- the limit, and in the default partition) are deleted row by row.
CREATE TABLE lcp_events (tenant_id text NOT NULL, at timestamptz NOT NULL, what text)
	PARTITION BY RANGE (at);
DO $$
BEGIN
	FOR i IN 0 .. 14 LOOP
		EXECUTE format('CREATE TABLE %I PARTITION OF lcp_events FOR VALUES FROM (%L) TO (%L)',
					   'lcp_events_m' || i, date_trunc('month', now()) - i * interval '1 month',
					   date_trunc('month', now()) - (i - 1) * interval '1 month');
	END LOOP;
END $$;
CREATE TABLE lcp_events_rest PARTITION OF lcp_events DEFAULT;
SELECT toms.protect('lcp_events');
-- (a row an hour for each tenant, half an hour off the hour of now() so
-- that none expires while the test runs; in a DO block, since the number
-- of rows depends on the day the test runs)
DO $$
BEGIN
	INSERT INTO lcp_events
	SELECT t, now() - interval '30 minutes' - g * interval '1 hour', 'e'
	  FROM unnest('{lcp1,lcp2}'::text[]) t,
		   generate_series(0, (extract(epoch FROM now() - (date_trunc('month', now()) - interval '14 months')) / 3600)::int - 1) g;
END $$;
INSERT INTO lcp_events VALUES ('lcp1', now() - interval '10 years', 'ancient'), ('lcp1', now() + interval '10 years', 'future');
SELECT count(*) FILTER (WHERE at < now() - interval '100 days') AS expired FROM lcp_events \gset
SELECT count(*) AS months_wholly_expired
  FROM generate_series(1, 14) i
 WHERE date_trunc('month', now()) - (i - 1) * interval '1 month' <= now() - interval '100 days' \gset
SELECT toms.set_retention('lcp_events', 'at', '100 days');
CALL pg_temp.wait_for(format('SELECT rows_purged = %s FROM toms.retention WHERE relid = %L::regclass',
                             :expired, 'lcp_events'));
SELECT rows_purged = :expired AS all_expired_rows_gone FROM toms.retention WHERE relid = 'lcp_events'::regclass;
SELECT count(*) AS expired_left FROM lcp_events WHERE at < now() - interval '100 days';
SELECT count(*) = 15 - :months_wholly_expired AS months_dropped
  FROM pg_class WHERE relname ~ '^lcp_events_m[0-9]+$';
SELECT count(*) = 1 + 15 - :months_wholly_expired + 1 AS registered_tables
  FROM toms.protected_tables WHERE relid::text LIKE 'lcp_events%';
SELECT count(*) = :months_wholly_expired AS one_record_per_dropped_month,
       sum((detail::jsonb->>'rows_deleted')::bigint) < :expired AS rest_row_by_row
  FROM toms.audit_log WHERE action = 'retention_partition_dropped' AND detail::jsonb->>'table' = 'public.lcp_events';
SELECT what FROM lcp_events WHERE what <> 'e';
SELECT toms.clear_retention('lcp_events');

-- 3. Stage 2: a tenant is purged from every partition of a protected
-- partitioned table (hash on the tenant column, one partition by month).
CREATE TABLE lcp_scores (tenant_id text NOT NULL, learner text, score int) PARTITION BY HASH (tenant_id);
CREATE TABLE lcp_scores_0 PARTITION OF lcp_scores FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE lcp_scores_1 PARTITION OF lcp_scores FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE lcp_scores_2 PARTITION OF lcp_scores FOR VALUES WITH (MODULUS 3, REMAINDER 2);
SELECT toms.protect('lcp_scores', subject_column => 'learner');
INSERT INTO lcp_scores SELECT t, 'l' || g, g FROM unnest('{lcp1,lcp2,lcp3}'::text[]) t, generate_series(1, 20) g;
SELECT count(*) AS lcp2_events FROM lcp_events WHERE tenant_id = 'lcp2' \gset
SELECT toms.request_deletion('lcp2', reason => 'contract ended', grace => '0s') AS req \gset
CALL pg_temp.wait_for(format('SELECT toms.deletion_certificate(%L) IS NOT NULL', :'req'));
SELECT tenant_id, count(*) FROM lcp_scores GROUP BY 1 ORDER BY 1;
SELECT tenant_id, count(*) > 0 AS has_rows FROM lcp_events GROUP BY 1 ORDER BY 1;
-- The certificate names the partitions that held rows (leaves only).
SELECT t->>'table' AS tbl, (t->>'rows_deleted')::int > 0 AS had_rows
  FROM jsonb_array_elements(toms.deletion_certificate(:'req')->'tables') t
 WHERE t->>'table' LIKE '%lcp_scores%' ORDER BY 1;
SELECT (toms.deletion_certificate(:'req')->>'rows_deleted')::bigint = 20 + :lcp2_events AS all_rows_counted;

-- Clean up.
SELECT toms.unprotect('lcp_scores'), toms.unprotect('lcp_events');
DROP TABLE lcp_scores, lcp_events;
DELETE FROM toms.deletion_requests WHERE tenant LIKE 'lcp%';
DELETE FROM toms.tenants WHERE tenant LIKE 'lcp%';
