\echo
\echo '=== 4. Two-stage deletion (measures 6b, 8a) =================================='
\echo
\echo 'The provider keeps a reporting copy of simulation results outside toms'' row'
\echo 'security.  The DBA registers it, so deletions purge it too.'
CREATE TABLE training.results_archive AS
	SELECT tenant_id AS org, learner_id, clicked, reported, at FROM training.sim_results;
ALTER TABLE training.results_archive OWNER TO schema_owner;
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.register_copy('training.results_archive', 'org', 'learner_id') \g /dev/null

\echo
\echo 'Ada (acme learner 1) asks to be forgotten.  Stage 1 hides her at once, in'
\echo 'the DBA''s transaction, from every role but superusers:'
SELECT toms.request_deletion('acme', '1', 'erasure request (GDPR Art. 17)', grace => '30 days') AS ada \gset
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION trainer_anna;
SELECT toms.set_tenant('acme') \g /dev/null
SELECT id, name FROM training.learners ORDER BY id;
SELECT learner_id, clicked FROM training.sim_results ORDER BY learner_id;
\echo 'Writing her back in is refused:'
\set ON_ERROR_STOP 0
INSERT INTO training.learners (id, name, email) VALUES (1, 'Ada Lovelace', 'ada@acme.example');
\set ON_ERROR_STOP 1
RESET SESSION AUTHORIZATION;
\echo 'It was a mistake (wrong learner): within the grace period it is cancelled,'
\echo 'and everything is back:'
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.cancel_deletion(:'ada') \g /dev/null
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION trainer_anna;
SELECT toms.set_tenant('acme') \g /dev/null
SELECT id, name FROM training.learners ORDER BY id;
RESET SESSION AUTHORIZATION;

\echo
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.add_member('support_sam', 'globex') \g /dev/null
RESET SESSION AUTHORIZATION;
\echo 'globex ends its contract.  The DBA requests the deletion of the whole'
\echo 'tenant; the demo, run as superuser here, shortens the grace period to one'
\echo 'second (only a superuser may; the default is toms.deletion_grace, 7 days).'
SELECT toms.request_deletion('globex', reason => 'contract ended 2026-11-30', grace => '1 second') AS globex \gset
SELECT tenant, status FROM toms.tenants ORDER BY tenant;
\echo 'globex can no longer be entered, not even by its members:'
\set ON_ERROR_STOP 0
SET SESSION AUTHORIZATION support_sam;
SELECT toms.set_tenant('globex') \g /dev/null
RESET SESSION AUTHORIZATION;
\set ON_ERROR_STOP 1

\echo
\echo 'After the grace period the lifecycle worker purges every protected table'
\echo 'and the registered copy in committed batches (children before parents),'
\echo 'destroys the tenant''s keys where sealed columns are installed, vacuums,'
\echo 'waits for the standbys, and stores a certificate.  Waiting for it ...'
SELECT set_config('demo.globex', :'globex', false) IS NOT NULL AS noted;
DO $$
DECLARE deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
	WHILE toms.deletion_certificate(current_setting('demo.globex')::uuid) IS NULL LOOP
		IF clock_timestamp() > deadline THEN
			RAISE EXCEPTION 'stage 2 did not complete in time';
		END IF;
		COMMIT;  -- hold no snapshot: stage 2 waits for older ones to end
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
\echo 'The deletion certificate (also chained into the audit trail):'
SELECT jsonb_pretty(toms.deletion_certificate(:'globex') - 'system_identifier' - 'database') AS certificate;
\echo 'Not a row of globex is left, not even for a superuser:'
SELECT (SELECT count(*) FROM training.learners WHERE tenant_id = 'globex') AS learners,
       (SELECT count(*) FROM training.sim_results WHERE tenant_id = 'globex') AS results,
       (SELECT count(*) FROM training.results_archive WHERE org = 'globex') AS archived,
       (SELECT status FROM toms.tenants WHERE tenant = 'globex') AS status;
