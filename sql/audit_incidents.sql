-- Incidents: repeated denials by one role, and superuser / BYPASSRLS access
-- to a protected table, each deduplicated into one row with a count.
SET client_min_messages = warning;
CREATE ROLE regress_aud_prober LOGIN;
CREATE ROLE regress_aud_bypass LOGIN BYPASSRLS;
RESET client_min_messages;
SELECT toms.create_tenant('aud_inc', 'Incidents');
CREATE TABLE aud_secrets (tenant_id text NOT NULL, v text);
GRANT SELECT ON aud_secrets TO regress_aud_prober, regress_aud_bypass;
SELECT toms.protect('aud_secrets');

-- toms.incident_denials (5) denials within toms.incident_window: one
-- incident, counted on from there.
SET SESSION AUTHORIZATION regress_aud_prober;
SELECT * FROM aud_secrets;
SELECT * FROM aud_secrets;
SELECT toms.set_tenant('aud_inc');
SELECT * FROM aud_secrets;
SELECT * FROM aud_secrets;
SELECT toms.set_tenant('nope');
SELECT * FROM aud_secrets;
RESET SESSION AUTHORIZATION;
SELECT toms.audit_flush();
SELECT kind, action, fate FROM toms.audit_log
 WHERE session_role = 'regress_aud_prober' ORDER BY seq;
SELECT kind, severity, tenant, detail, count FROM toms.incidents
 WHERE kind = 'repeated_denials' AND detail ~ 'regress_aud_prober';

-- A superuser, and a BYPASSRLS role, reading the table is audited and an incident.
SELECT count(*) FROM aud_secrets;
SELECT count(*) FROM aud_secrets;
SET SESSION AUTHORIZATION regress_aud_bypass;
SELECT count(*) FROM aud_secrets;
RESET SESSION AUTHORIZATION;
SELECT toms.audit_flush();
SELECT kind, severity, detail, count FROM toms.incidents
 WHERE kind = 'privileged_access' AND detail ~ 'aud_secrets' ORDER BY detail;
SELECT action, session_role, relname, tenant FROM toms.audit_log
 WHERE relname = 'public.aud_secrets' AND kind = 'access' ORDER BY seq;

SELECT toms.unprotect('aud_secrets');
DROP TABLE aud_secrets;
DROP ROLE regress_aud_prober, regress_aud_bypass;
DELETE FROM toms.tenants WHERE tenant IN ('aud_inc');
