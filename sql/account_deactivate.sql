-- Deactivation and review (measure 4d): toms.deactivate_role(),
-- toms.reactivate_role(), toms.stale_roles().
\set VERBOSITY default
SELECT (now() + interval '30 days')::text AS soon \gset
CREATE ROLE regress_deact_user LOGIN PASSWORD 'Leaver-Of-Company-42' VALID UNTIL :'soon';
CREATE ROLE regress_deact_admin LOGIN IN ROLE toms_admin;
SELECT toms.create_tenant('regress_t1', 'Tenant 1'), toms.create_tenant('regress_t2', 'Tenant 2');
SELECT toms.add_member('regress_deact_user', 'regress_t1'), toms.add_member('regress_deact_user', 'regress_t2'),
	toms.add_member('regress_deact_admin', 'regress_t1');
SELECT count(toms.grant_access('regress_deact_user', 'regress_t1', 'support ticket 1', '1 day')),
	count(toms.grant_access('regress_deact_admin', 'regress_t2', 'support ticket 2', '1 day'));

-- Only toms_admin may call it, with a reason, not on itself.
SET SESSION AUTHORIZATION regress_deact_user;
SELECT toms.deactivate_role('regress_deact_admin', 'attempt by an ordinary role');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_deact_admin;
SELECT toms.deactivate_role('regress_deact_user', '');
SELECT toms.deactivate_role('regress_deact_admin', 'myself');
SELECT toms.deactivate_role('postgres', 'a toms_admin is not a superuser');
SELECT toms.deactivate_role('regress_deact_nosuch', 'no such role');

SELECT toms.deactivate_role('regress_deact_user', 'left the company (HR-1234)');
RESET SESSION AUTHORIZATION;
SELECT rolcanlogin FROM pg_roles WHERE rolname = 'regress_deact_user';
SELECT role, tenant FROM toms.members WHERE role::text LIKE 'regress_deact%' ORDER BY 1, 2;
SELECT role, tenant, revoked_at IS NOT NULL AS revoked, revoked_by
FROM toms.grants WHERE role::text LIKE 'regress_deact%' ORDER BY id;
SELECT role, reason, deactivated_by, tenants, cardinality(grants) AS grants
FROM toms.deactivated_roles;
SELECT toms.deactivate_role('regress_deact_user', 'twice');
-- Only toms.reactivate_role() undoes it, not ALTER ROLE, not even by a superuser.
ALTER ROLE regress_deact_user LOGIN;
ALTER ROLE regress_deact_user NOLOGIN;

-- Reactivation is explicit and needs a reason; memberships are not restored.
SELECT toms.reactivate_role('regress_deact_admin', 'was never deactivated');
SELECT toms.reactivate_role('regress_deact_user', NULL);
SET SESSION AUTHORIZATION regress_deact_admin;
SELECT toms.reactivate_role('regress_deact_user', 'rehired (HR-1300)');
RESET SESSION AUTHORIZATION;
SELECT rolcanlogin FROM pg_roles WHERE rolname = 'regress_deact_user';
SELECT count(*) AS memberships FROM toms.members WHERE role = 'regress_deact_user'::regrole;
SELECT count(*) AS deactivated FROM toms.deactivated_roles;

-- Stale roles: login roles without a recorded login for that long.  These
-- roles never logged in; this session's role just did.
SELECT role, last_login FROM toms.stale_roles('1 day') WHERE role LIKE 'regress_deact%';
SELECT count(*) AS postgres_stale FROM toms.stale_roles('1 hour') WHERE role = 'postgres';
SELECT last_login > now() - interval '1 hour' AS recent
FROM toms.login_state() WHERE role = 'postgres';
SET SESSION AUTHORIZATION regress_deact_user;
SELECT * FROM toms.stale_roles('1 day');
RESET SESSION AUTHORIZATION;

DELETE FROM toms.grants WHERE role::text LIKE 'regress_deact%';
DELETE FROM toms.members WHERE role::text LIKE 'regress_deact%';
DELETE FROM toms.tenants WHERE tenant LIKE 'regress_t%';
DELETE FROM toms.password_history WHERE role LIKE 'regress_deact%';
DROP ROLE regress_deact_user, regress_deact_admin;
