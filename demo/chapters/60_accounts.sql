\echo
\echo '=== 5. Accounts: password policy and deactivation (measures 4a, 4c, 4d) ==='
\echo
\echo 'toms checks every new password in CREATE/ALTER ROLE.  A trainer picks a'
\echo 'weak one; toms names the rule that failed and never echoes the password:'
SELECT (now() + interval '60 days')::date::text AS in_60_days \gset
\set ON_ERROR_STOP off
CREATE ROLE demo_trainer LOGIN PASSWORD 'Kiwi-38!' VALID UNTIL :'in_60_days';
CREATE ROLE demo_trainer LOGIN PASSWORD 'P@ssw0rd-2024!' VALID UNTIL :'in_60_days';
\echo
\echo 'Regular change (4c): VALID UNTIL is required and at most toms.password_max_age ahead:'
CREATE ROLE demo_trainer LOGIN PASSWORD 'Velvet-Anchor-Kiwi-38';
\set ON_ERROR_STOP on
\echo
\echo 'A strong password with an expiry date is accepted:'
CREATE ROLE demo_trainer LOGIN PASSWORD 'Velvet-Anchor-Kiwi-38' VALID UNTIL :'in_60_days';
SELECT rolname, rolvaliduntil::date AS valid_until,
       split_part(rolpassword, '$', 1) AS stored_as
FROM pg_authid WHERE rolname = 'demo_trainer';
\echo
\echo 'Reuse is refused: toms keeps only Argon2id hashes of recent passwords.'
\set ON_ERROR_STOP off
ALTER ROLE demo_trainer PASSWORD 'Velvet-Anchor-Kiwi-38';
\set ON_ERROR_STOP on
SELECT role, left(hash, 30) || '...' AS stored_hash FROM toms.password_history WHERE role = 'demo_trainer';
\echo
\echo 'The trainer works for a customer: a tenant membership and a support grant.'
SELECT toms.create_tenant('accounts-demo', 'Accounts Demo Ltd') \g /dev/null
SELECT toms.add_member('demo_trainer', 'accounts-demo') \g /dev/null
SELECT toms.grant_access('demo_trainer', 'accounts-demo', 'ticket 4711: import of training results', '2 days') AS grant_id;
\echo
\echo 'The trainer leaves (4d).  One call: NOLOGIN, memberships removed, grants'
\echo 'revoked, open sessions ended, and an audit record:'
SELECT toms.deactivate_role('demo_trainer', 'left the company, HR case 2024-117') \g /dev/null
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'demo_trainer';
SELECT count(*) AS memberships_left FROM toms.members WHERE role::text = 'demo_trainer';
SELECT tenant, revoked_at IS NOT NULL AS revoked FROM toms.grants WHERE role::text = 'demo_trainer';
SELECT role, reason, tenants FROM toms.deactivated_roles;
\echo
\echo 'Even a superuser cannot quietly switch the login back on:'
\set ON_ERROR_STOP off
ALTER ROLE demo_trainer LOGIN;
\set ON_ERROR_STOP on
\echo
\echo 'An analyst account was opened but never used.'
CREATE ROLE demo_analyst LOGIN;
\echo 'Account review: login roles without a login for 30 days (never = no login recorded):'
SELECT role, coalesce(last_login::text, 'never') AS last_login FROM toms.stale_roles('30 days');
