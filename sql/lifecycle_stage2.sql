-- Two-stage deletion, stage 2 on a single node (measures 6b, 8a): the
-- worker purges one data subject from protected tables and a registered
-- copy, passes over requests that await approval or are held, and applies
-- retention rules.  Waits are bounded polls.
SET client_min_messages = warning;
CREATE ROLE regress_lc2_app LOGIN;
CREATE ROLE regress_lc2_admin LOGIN IN ROLE toms_admin;
RESET client_min_messages;
\set VERBOSITY terse
SELECT toms.create_tenant('lc2a', 'A'), toms.create_tenant('lc2b', 'B'),
       toms.create_tenant('lc2c', 'C'), toms.create_tenant('lc2d', 'D');
SELECT toms.add_member('regress_lc2_app', 'lc2a');

-- A procedure that commits between polls, so that it holds no snapshot
-- that would keep stage 2 waiting for older transactions to end.
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

CREATE TABLE lc2_learners (tenant_id text NOT NULL, email text NOT NULL,
                           PRIMARY KEY (tenant_id, email));
CREATE TABLE lc2_results (tenant_id text NOT NULL, email text NOT NULL, score int,
                          FOREIGN KEY (tenant_id, email) REFERENCES lc2_learners);
CREATE TABLE lc2_events (tenant_id text NOT NULL, at timestamptz NOT NULL, what text);
CREATE TABLE lc2_archive (org text NOT NULL, learner text, score int, archived_at date);
SELECT toms.protect('lc2_learners', subject_column => 'email');
SELECT toms.protect('lc2_results', subject_column => 'email');
SELECT toms.protect('lc2_events');
GRANT SELECT, INSERT ON lc2_learners, lc2_results TO regress_lc2_app;

-- Copies and retention rules: the refusals.
SELECT toms.register_copy('lc2_learners', 'tenant_id');
SELECT toms.register_copy('lc2_archive', 'tenant');
SELECT toms.register_copy('lc2_archive', 'org', 'nope');
SELECT toms.register_copy('lc2_archive', 'org', 'learner');
SELECT toms.register_copy('lc2_archive', 'org', 'learner');
SELECT relid, tenant_column, subject_column FROM toms.copies;
CREATE TABLE lc2_other (t text, d date);
SELECT toms.set_retention('lc2_other', 'd', '1 day');
DROP TABLE lc2_other;
SELECT toms.set_retention('lc2_events', 'what', '30 days');
SELECT toms.set_retention('lc2_events', 'at', '-1 day');
SELECT toms.clear_retention('lc2_events');
SELECT toms.unregister_copy('lc2_events');

INSERT INTO lc2_learners SELECT t, e FROM unnest('{lc2a,lc2b,lc2c,lc2d}'::text[]) t,
	unnest('{ann@x,bob@x}'::text[]) e;
INSERT INTO lc2_results SELECT tenant_id, email, g FROM lc2_learners, generate_series(1, 3) g;
INSERT INTO lc2_archive SELECT tenant_id, email, score, date '2020-01-01' FROM lc2_results;
INSERT INTO lc2_events VALUES ('lc2a', now() - interval '40 days', 'old'),
	('lc2a', now() - interval '35 days', 'old'), ('lc2a', now(), 'new'), ('lc2b', now(), 'new');

-- A request that needs approval and one under a legal hold wait; a later
-- request is carried out, which shows the worker passed over both.
SET toms.deletion_approval = on;
SELECT toms.request_deletion('lc2b', 'ann@x', grace => '0s') AS needs_approval \gset
RESET toms.deletion_approval;
SELECT toms.hold('lc2c', 'litigation');
SELECT toms.request_deletion('lc2c', 'ann@x', grace => '0s') AS held \gset
SELECT toms.request_deletion('lc2a', 'ann@x', 'erasure', grace => '0s') AS subj \gset
CALL pg_temp.wait_for(format('SELECT toms.deletion_certificate(%L) IS NOT NULL', :'subj'));
SELECT request = :'needs_approval' AS needs_approval, phase, rows_done
  FROM toms.deletion_progress WHERE tenant IN ('lc2b', 'lc2c') ORDER BY tenant;

-- The certificate of the subject deletion.
SELECT c->>'scope' AS scope, c->>'tenant' AS tenant, c->>'subject' AS subject,
       c->>'reason' AS reason, c->>'rows_deleted' AS rows_deleted, c->'keys' AS keys,
       c->>'copies_required' AS copies_required, c->'standbys' AS standbys,
       (c->>'purge_lsn')::pg_lsn <= pg_current_wal_lsn() AS lsn_ok,
       (c->>'finished_at')::timestamptz >= (c->>'started_at')::timestamptz AS times_ok
  FROM toms.deletion_certificate(:'subj') c;
SELECT t->>'table' AS tbl, t->>'kind' AS kind, t->>'rows_deleted' AS rows_deleted,
       t->>'vacuumed_at' IS NOT NULL AS vacuumed
  FROM jsonb_array_elements(toms.deletion_certificate(:'subj')->'tables') t;
SELECT tenant_id, email, count(*) FROM lc2_results GROUP BY 1, 2 ORDER BY 1, 2;
SELECT org, learner, count(*) FROM lc2_archive GROUP BY 1, 2 ORDER BY 1, 2;
SELECT status FROM toms.tenants WHERE tenant = 'lc2a';
-- The subject stays hidden and refused: its id is not re-used.
SET SESSION AUTHORIZATION regress_lc2_app;
SELECT toms.set_tenant('lc2a');
SELECT email FROM lc2_learners ORDER BY email;
INSERT INTO lc2_learners (email) VALUES ('ann@x');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT toms.cancel_deletion(:'subj');

-- Approval by another role, then release of the hold: both complete.
SET SESSION AUTHORIZATION regress_lc2_admin;
SELECT toms.approve_deletion(:'needs_approval');
SELECT toms.release_hold('lc2c');
RESET SESSION AUTHORIZATION;
CALL pg_temp.wait_for(format(
	'SELECT toms.deletion_certificate(%L) IS NOT NULL AND toms.deletion_certificate(%L) IS NOT NULL',
	:'needs_approval', :'held'));
SELECT toms.deletion_certificate(:'needs_approval')->>'approved_by' AS approved_by,
       toms.deletion_certificate(:'needs_approval')->>'rows_deleted' AS rows_b,
       toms.deletion_certificate(:'held')->>'rows_deleted' AS rows_c;

-- Retention: events older than 30 days and archive rows older than a year.
SELECT toms.set_retention('lc2_events', 'at', '30 days');
SELECT toms.set_retention('lc2_archive', 'archived_at', '1 year');
CALL pg_temp.wait_for('SELECT sum(rows_purged) = 2 + 15 FROM toms.retention');
SELECT relid, rows_purged FROM toms.retention ORDER BY relid::text;
SELECT tenant_id, what FROM lc2_events ORDER BY 1, 2;
SELECT count(*) AS archive_left FROM lc2_archive;
SELECT toms.clear_retention('lc2_events'), toms.clear_retention('lc2_archive');

-- Clean up.
SELECT toms.unregister_copy('lc2_archive');
SELECT toms.unprotect(relid) FROM toms.protected_tables WHERE relid::text LIKE 'lc2%' ORDER BY relid::text;
DROP TABLE lc2_results, lc2_learners, lc2_events, lc2_archive;
DELETE FROM toms.deletion_requests WHERE tenant LIKE 'lc2%';
DELETE FROM toms.members WHERE tenant LIKE 'lc2%';
DELETE FROM toms.tenants WHERE tenant LIKE 'lc2%';
DROP ROLE regress_lc2_app, regress_lc2_admin;
