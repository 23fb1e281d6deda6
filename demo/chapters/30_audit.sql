\echo
\echo '=== 2. Access audit (measures 4b, 5c, 7, 10b) ==============================='
\echo
\echo 'Everything the previous chapter did to protected tables is in toms.audit_log:'
\echo 'one record per statement and table -- who, as which actor, in which tenant,'
\echo 'under which grant, how many rows, and whether it committed.  Reads and'
\echo 'denials reach the table through a shared-memory queue within 200 ms;'
\echo 'toms.audit_flush() waits for it.'
SELECT toms.audit_flush() \g /dev/null
SELECT seq, kind, action, session_role AS role, actor, tenant, relname, row_count AS rows, fate
  FROM toms.audit_log
 WHERE session_role IN ('trainer_anna', 'support_sam') AND kind IN ('access', 'denied')
 ORDER BY seq;

\echo
\echo 'Anna''s attempt to write into globex was recorded even though it failed,'
\echo 'and support_sam''s reads carry the justification of his grant:'
SELECT action, relname, fate FROM toms.audit_log
 WHERE session_role = 'trainer_anna' AND fate IN ('failed', 'denied') ORDER BY seq;
SELECT DISTINCT action, tenant, justification FROM toms.audit_log
 WHERE session_role = 'support_sam' AND kind = 'access';

\echo
\echo '--- An incident: somebody probes tenants -----------------------------------'
\echo 'A role that is refused five times within a minute raises ONE incident,'
\echo 'announced with NOTIFY toms_incident (the security team''s LISTENer sees it):'
SET client_min_messages = warning;
CREATE ROLE intruder_ivan LOGIN;
RESET client_min_messages;
GRANT USAGE ON SCHEMA training TO intruder_ivan;
GRANT SELECT ON ALL TABLES IN SCHEMA training TO intruder_ivan;
LISTEN toms_incident;
SET SESSION AUTHORIZATION intruder_ivan;
\set ON_ERROR_STOP 0
SELECT toms.set_tenant('acme') \g /dev/null
SELECT toms.set_tenant('globex') \g /dev/null
SELECT toms.set_tenant('initech') \g /dev/null
SELECT count(*) FROM training.learners;
SELECT count(*) FROM training.sim_results;
SELECT count(*) FROM training.campaigns;
\set ON_ERROR_STOP 1
RESET SESSION AUTHORIZATION;
SELECT toms.audit_flush() \g /dev/null
SELECT kind, severity, detail, count FROM toms.incidents WHERE kind = 'repeated_denials';
UNLISTEN toms_incident;

\echo
\echo '--- Tamper evidence ---------------------------------------------------------'
\echo 'No role -- not the owner, not toms_admin, not a superuser -- can change the'
\echo 'trail through SQL:'
\set ON_ERROR_STOP 0
UPDATE toms.audit_log SET actor = 'nobody' WHERE session_role = 'intruder_ivan';
DELETE FROM toms.audit_log;
ALTER TABLE toms.audit_log DISABLE TRIGGER ALL;
\set ON_ERROR_STOP 1
\echo
\echo 'A superuser can still switch triggers off (session_replication_role) and'
\echo 'hide Ivan''s attempts.  The records are hash-chained (BLAKE2b), so'
\echo 'verify_audit() finds the first record that was touched:'
SELECT * FROM toms.verify_audit();
CREATE TEMP TABLE ivans_records AS
  SELECT seq FROM toms.audit_log WHERE session_role = 'intruder_ivan';
SET session_replication_role = replica;
UPDATE toms.audit_log SET session_role = 'trainer_anna', actor = 'trainer_anna'
 WHERE seq IN (SELECT seq FROM ivans_records);
RESET session_replication_role;
SELECT ok, first_bad, detail FROM toms.verify_audit();
\echo 'The break is an incident too (announced with NOTIFY toms_incident):'
SELECT toms.audit_flush() \g /dev/null
SELECT kind, severity, detail FROM toms.incidents WHERE kind = 'audit_chain_break';
\echo 'Putting the records back makes the chain whole again:'
SET session_replication_role = replica;
UPDATE toms.audit_log SET session_role = 'intruder_ivan', actor = 'intruder_ivan'
 WHERE seq IN (SELECT seq FROM ivans_records);
RESET session_replication_role;
SELECT ok, detail FROM toms.verify_audit();
