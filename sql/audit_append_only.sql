-- toms.audit_log is append-only for every role, superusers and the table
-- owner included; what a superuser does with the triggers switched off
-- (session_replication_role = replica) is caught by verify_audit.
SET client_min_messages = warning;
CREATE ROLE regress_aud_admin LOGIN IN ROLE toms_admin;
CREATE ROLE regress_aud_auditor LOGIN IN ROLE toms_auditor;
CREATE ROLE regress_aud_nobody LOGIN;
RESET client_min_messages;
SELECT toms.create_tenant('aud_ao', 'Append only');
SELECT toms.audit_flush();

-- Through SQL, nothing but toms writes the trail.
INSERT INTO toms.audit_log (ts, kind) VALUES (now(), 'forged');
UPDATE toms.audit_log SET detail = '{"edited": true}' WHERE kind = 'admin';
DELETE FROM toms.audit_log WHERE kind = 'admin';
TRUNCATE toms.audit_log;
UPDATE toms.incidents SET count = 0;
DELETE FROM toms.incidents;
TRUNCATE toms.incidents;
ALTER TABLE toms.audit_log DISABLE TRIGGER audit_log_append_only;
ALTER TABLE toms.audit_log DISABLE TRIGGER ALL;
ALTER TABLE toms.audit_log ADD COLUMN note text;
ALTER TABLE toms.audit_log RENAME TO audit_log_old;
ALTER TABLE toms.audit_log RENAME COLUMN detail TO note;
ALTER TABLE toms.audit_log SET SCHEMA public;
ALTER TABLE toms.audit_log OWNER TO regress_aud_admin;
ALTER TABLE toms.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TRIGGER audit_log_append_only ON toms.audit_log RENAME TO t;
DROP TRIGGER audit_log_append_only ON toms.audit_log;
CREATE RULE skip AS ON INSERT TO toms.audit_log DO INSTEAD NOTHING;
CREATE TRIGGER t BEFORE INSERT ON toms.audit_log
  FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE POLICY hide ON toms.audit_log USING (false);
DROP TABLE toms.audit_log;
ALTER EXTENSION toms DROP TABLE toms.audit_log;
ALTER TABLE toms.incidents DISABLE TRIGGER ALL;

-- toms_admin reads but cannot change it; the auditor reads and verifies;
-- nobody else sees it.
SET SESSION AUTHORIZATION regress_aud_admin;
SELECT count(*) > 0 AS admin_reads FROM toms.audit_log;
UPDATE toms.audit_log SET detail = '{"edited": true}';
DELETE FROM toms.audit_log;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_aud_auditor;
SELECT count(*) > 0 AS auditor_reads FROM toms.audit_log;
SELECT ok FROM toms.verify_audit();
DELETE FROM toms.audit_log;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_aud_nobody;
SELECT count(*) FROM toms.audit_log;
SELECT * FROM toms.verify_audit();
SELECT count(*) FROM toms.incidents;
RESET SESSION AUTHORIZATION;

-- A superuser bypassing the triggers: every edit, deletion and insertion
-- is found, and putting things back makes the chain whole again.
SELECT seq AS victim FROM toms.audit_log
 WHERE kind = 'admin' AND tenant = 'aud_ao' ORDER BY seq DESC LIMIT 1 \gset
SELECT max(seq) AS newest FROM toms.audit_log \gset
CREATE TEMP TABLE saved AS SELECT * FROM toms.audit_log WHERE seq = :victim;
SET session_replication_role = replica;
UPDATE toms.audit_log SET tenant = 'aud_other' WHERE seq = :victim;
RESET session_replication_role;
SELECT ok, first_bad = :victim AS at_victim, detail ~ 'does not match its hash' AS why
  FROM toms.verify_audit();
SELECT ok FROM toms.verify_audit(1, :victim - 1);
SELECT ok, first_bad = :victim AS at_victim FROM toms.verify_audit();
SET session_replication_role = replica;
UPDATE toms.audit_log SET tenant = 'aud_ao' WHERE seq = :victim;
RESET session_replication_role;
SELECT ok FROM toms.verify_audit();

SET session_replication_role = replica;
DELETE FROM toms.audit_log WHERE seq = :victim;
RESET session_replication_role;
SELECT ok, first_bad = :victim AS at_victim, detail ~ 'missing' AS why FROM toms.verify_audit();
SET session_replication_role = replica;
INSERT INTO toms.audit_log SELECT * FROM saved;
RESET session_replication_role;
SELECT ok FROM toms.verify_audit();

-- rewriting seq to hide a deletion does not help either
SET session_replication_role = replica;
UPDATE toms.audit_log SET seq = -seq WHERE seq = :victim;
UPDATE toms.audit_log SET seq = seq - 1 WHERE seq > :victim AND seq <= :newest;
RESET session_replication_role;
SELECT ok FROM toms.verify_audit(NULL, :newest - 1);
SET session_replication_role = replica;
UPDATE toms.audit_log SET seq = seq + 1 WHERE seq >= :victim AND seq < :newest;
UPDATE toms.audit_log SET seq = -seq WHERE seq = -:victim;
RESET session_replication_role;
SELECT ok FROM toms.verify_audit();

-- a row slipped in without a place in the chain
SET session_replication_role = replica;
INSERT INTO toms.audit_log (ts, kind, action) VALUES (now() - interval '2 minutes', 'access', 'SELECT');
RESET session_replication_role;
SELECT ok, first_bad, detail FROM toms.verify_audit();
SET session_replication_role = replica;
DELETE FROM toms.audit_log WHERE seq IS NULL AND kind = 'access' AND xid IS NULL;
RESET session_replication_role;
SELECT ok FROM toms.verify_audit();

-- each break found above was raised as an incident; the same break found
-- twice is one incident with a count
SELECT toms.audit_flush();
SELECT kind, severity, count, detail ~ 'record' AS names_record
  FROM toms.incidents WHERE kind = 'audit_chain_break' ORDER BY first_seen;

DROP ROLE regress_aud_admin, regress_aud_auditor, regress_aud_nobody;
DELETE FROM toms.tenants WHERE tenant IN ('aud_ao');
