-- toms.tenants_overview (docs/tenancy.md, "Overview of the tenants"):
-- each tenant with its members, live grants, protected tables, keys and
-- deletion state; readable by toms_admin and toms_auditor only.
BEGIN;
SELECT plan(17);

CREATE ROLE ov_member;
CREATE ROLE ov_staff;
CREATE ROLE ov_group;
CREATE TABLE public.ov_notes (tenant_id text NOT NULL, id int, PRIMARY KEY (tenant_id, id));
SELECT toms.create_tenant('ov_a', 'Overview A'), toms.create_tenant('ov_b', 'Overview B'),
	   toms.create_tenant('ov_c', 'Overview C');
SELECT toms.add_member('ov_member', 'ov_a'), toms.add_member('ov_group', 'ov_a');
SELECT toms.grant_access('ov_staff', 'ov_a', 'ticket 1: cannot log in', '1 hour');
SELECT toms.revoke_access(toms.grant_access('ov_staff', 'ov_a', 'ticket 2: revoked', '1 hour'));
SELECT toms.grant_access('ov_staff', 'ov_c', 'ticket 3: for ov_c', '2 hours');
SELECT toms.protect('public.ov_notes');
SELECT toms.rotate_tenant_key('ov_a', false);
SELECT toms.rotate_tenant_key('ov_a', false);
SELECT toms.request_deletion('ov_b') IS NOT NULL;
SELECT toms.request_deletion('ov_c', 'learner-17') IS NOT NULL;
SELECT toms.hold('ov_a', 'litigation 2026-7');

SELECT is((SELECT members FROM toms.tenants_overview WHERE tenant = 'ov_a'),
	ARRAY['ov_group', 'ov_member'], 'members: every role that may enter, by name');
SELECT is((SELECT members FROM toms.tenants_overview WHERE tenant = 'ov_b'), '{}'::text[],
	'members: none is an empty list');
SELECT is((SELECT cardinality(live_grants) FROM toms.tenants_overview WHERE tenant = 'ov_a'), 1,
	'live grants: the revoked grant is not listed');
SELECT matches((SELECT live_grants[1] FROM toms.tenants_overview WHERE tenant = 'ov_a'),
	'^ov_staff until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(#\d+\)$', 'live grants: role, end and grant id');
SELECT is((SELECT live_grants FROM toms.tenants_overview WHERE tenant = 'ov_b'), '{}'::text[],
	'live grants: another tenant''s grant is not listed');
SELECT is((SELECT protected_tables FROM toms.tenants_overview WHERE tenant = 'ov_a'),
	(SELECT count(*) FROM toms.protected_tables), 'protected tables: the tables that can hold its rows');
SELECT is((SELECT (data_key_version, keys_retired, keys_destroyed)::text FROM toms.tenants_overview WHERE tenant = 'ov_a'),
	'(2,1,0)', 'keys: active data key version 2 after two rotations, one retired');
SELECT ok((SELECT last_key_rotation IS NOT NULL FROM toms.tenants_overview WHERE tenant = 'ov_a'),
	'keys: the last rotation');
SELECT is((SELECT data_key_version FROM toms.tenants_overview WHERE tenant = 'ov_b'), NULL,
	'keys: none yet for a tenant that sealed nothing');
SELECT is((SELECT (status, deletion_state)::text FROM toms.tenants_overview WHERE tenant = 'ov_b'),
	'(deleting,pending)', 'deletion: the tenant''s request and state');
SELECT is((SELECT deletion_state FROM toms.tenants_overview WHERE tenant = 'ov_a'), NULL,
	'deletion: none requested');
SELECT is((SELECT (deletion_state, subject_deletions_open)::text FROM toms.tenants_overview WHERE tenant = 'ov_c'),
	'(,1)', 'deletion: a data subject''s request is counted, not shown as the tenant''s');
SELECT is((SELECT hold FROM toms.tenants_overview WHERE tenant = 'ov_a'), 'litigation 2026-7',
	'hold: the legal hold''s reason');
SELECT is((SELECT count(*)::int FROM toms.tenants_overview WHERE tenant LIKE 'ov\_%'), 3,
	'one row per tenant');

SELECT ok(has_table_privilege('toms_auditor', 'toms.tenants_overview', 'SELECT')
	  AND has_table_privilege('toms_admin', 'toms.tenants_overview', 'SELECT'),
	'toms_auditor and toms_admin read it');
SELECT ok(NOT has_table_privilege('toms_app', 'toms.tenants_overview', 'SELECT')
	  AND NOT has_table_privilege('public', 'toms.tenants_overview', 'SELECT'),
	'applications and PUBLIC do not');
SET LOCAL ROLE ov_member;
SELECT throws_ok('SELECT * FROM toms.tenants_overview', '42501',
	'permission denied for view tenants_overview', 'a tenant member cannot list the tenants');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
