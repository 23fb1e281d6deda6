-- Account security objects and settings (measures 4a-4e, 6a): privileges
-- of every function, the context of every setting (a security switch is
-- never settable by an ordinary session), and the password rules once more
-- through pgTAP's throws_ok with their SQLSTATEs.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(32);

SELECT has_function('toms', 'deactivate_role', ARRAY['regrole', 'text'], 'deactivate_role exists');
SELECT has_function('toms', 'reactivate_role', ARRAY['regrole', 'text'], 'reactivate_role exists');
SELECT has_function('toms', 'unlock_role', ARRAY['regrole'], 'unlock_role exists');
SELECT has_function('toms', 'stale_roles', ARRAY['interval'], 'stale_roles exists');
SELECT has_view('toms', 'locked_roles', 'locked_roles view exists');
SELECT has_table('toms', 'password_history', 'password_history table exists');

-- Privileges: toms_admin administers, toms_auditor reads, PUBLIC nothing.
SELECT ok(has_function_privilege('toms_admin', 'toms.deactivate_role(regrole, text)', 'EXECUTE'), 'admin may deactivate');
SELECT ok(NOT has_function_privilege('toms_auditor', 'toms.deactivate_role(regrole, text)', 'EXECUTE'), 'auditor may not deactivate');
SELECT ok(NOT has_function_privilege('toms_app', 'toms.reactivate_role(regrole, text)', 'EXECUTE'), 'app may not reactivate');
SELECT ok(has_function_privilege('toms_admin', 'toms.unlock_role(regrole)', 'EXECUTE'), 'admin may unlock');
SELECT ok(NOT has_function_privilege('toms_app', 'toms.unlock_role(regrole)', 'EXECUTE'), 'app may not unlock');
SELECT ok(has_function_privilege('toms_auditor', 'toms.stale_roles(interval)', 'EXECUTE'), 'auditor may list stale roles');
SELECT ok(has_table_privilege('toms_auditor', 'toms.locked_roles', 'SELECT'), 'auditor may read locked_roles');
SELECT ok(NOT has_table_privilege('toms_app', 'toms.locked_roles', 'SELECT'), 'app may not read locked_roles');
SELECT ok(NOT has_table_privilege('toms_admin', 'toms.password_history', 'SELECT'), 'nobody reads the password history');
SELECT ok(NOT has_table_privilege('toms_admin', 'toms.deactivated_roles', 'DELETE'), 'admin cannot delete deactivation records');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'toms' AND p.prosecdef
             AND p.proname IN ('deactivate_role', 'reactivate_role', 'unlock_role')
             AND NOT ('search_path=pg_catalog, pg_temp' = ANY (p.proconfig))), 0,
          'SECURITY DEFINER functions pin search_path');

-- Settings: security switches are superuser/sighup, never user.
SELECT is(
	(SELECT string_agg(name || '=' || context, ',' ORDER BY name) FROM pg_settings
	 WHERE name IN ('toms.password_min_length', 'toms.password_classes', 'toms.password_history',
	                'toms.password_max_age', 'toms.password_allow_prehashed',
	                'toms.max_failed_logins', 'toms.lockout_window', 'toms.lockout_duration',
	                'toms.require_tls', 'toms.min_tls_version', 'toms.require_tls_local',
	                'toms.max_tracked_roles', 'toms.auth_failure_delay', 'toms.password_common_file')),
	'toms.auth_failure_delay=sighup,toms.lockout_duration=sighup,toms.lockout_window=sighup,'
	'toms.max_failed_logins=sighup,toms.max_tracked_roles=postmaster,toms.min_tls_version=sighup,'
	'toms.password_allow_prehashed=superuser,toms.password_classes=superuser,'
	'toms.password_common_file=sighup,toms.password_history=superuser,'
	'toms.password_max_age=superuser,toms.password_min_length=superuser,'
	'toms.require_tls=sighup,toms.require_tls_local=sighup',
	'every setting has the intended context');
SELECT is(current_setting('toms.password_min_length'), '12', 'default minimum length 12');
SELECT is(current_setting('toms.password_max_age'), '90d', 'default maximum age 90 days');
SELECT is(current_setting('toms.max_failed_logins'), '5', 'default 5 failed logins');
SELECT is(current_setting('toms.lockout_duration'), '15min', 'default lock-out 15 minutes');
SELECT is(current_setting('toms.min_tls_version'), 'TLSv1.2', 'default minimum TLSv1.2');

-- The rules, with their SQLSTATE.
SELECT throws_ok($$CREATE ROLE regress_tap_a LOGIN PASSWORD 'Correct-Horse-Battery-9'$$,
	'22023', 'password must have an expiry date', 'VALID UNTIL required');
SET LOCAL toms.password_max_age = 0;
SELECT throws_ok($$CREATE ROLE regress_tap_a LOGIN PASSWORD 'Aa1!'$$,
	'22023', 'password is too short', 'minimum length');
SELECT throws_ok($$CREATE ROLE regress_tap_a LOGIN PASSWORD 'ALLUPPERCASE-ONLY'$$,
	'22023', 'password has too few kinds of characters', 'character classes');
SELECT throws_ok($$CREATE ROLE regress_tap_a LOGIN PASSWORD 'my-Regress_Tap_A-9'$$,
	'22023', 'password must not contain the role name', 'role name');
SELECT throws_ok($$CREATE ROLE regress_tap_a LOGIN PASSWORD 'Qwerty123456!'$$,
	'22023', 'password is too common', 'common list, decorated');
SELECT throws_ok($$CREATE ROLE regress_tap_a LOGIN PASSWORD 'md5a6a3ef5ab4e0e2b0d3bd3cf10a1d2d50'$$,
	'22023', 'MD5 password hashes are not accepted', 'MD5 refused');
SET LOCAL toms.password_history = 1;
SELECT lives_ok($$CREATE ROLE regress_tap_a LOGIN PASSWORD 'Quiet-Lantern-Orbit-7'$$, 'a good password');
SELECT throws_ok($$ALTER ROLE regress_tap_a PASSWORD 'Quiet-Lantern-Orbit-7'$$,
	'22023', 'password was used recently', 'history');
SELECT lives_ok($$ALTER ROLE regress_tap_a PASSWORD 'Second-Lantern-Orbit-8'$$, 'a new password');

SELECT * FROM finish();
ROLLBACK;
