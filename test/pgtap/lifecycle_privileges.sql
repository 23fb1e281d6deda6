-- Deletion and retention: least privilege (docs/deletion.md), setting contexts,
-- and the launcher (measures 6b, 8a).
BEGIN;
SELECT plan(16);

SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1)
	   FROM pg_proc p
	  WHERE p.pronamespace = 'toms'::regnamespace
		AND p.proname IN ('request_deletion', 'cancel_deletion', 'approve_deletion', 'withdraw_approval',
						  'hold', 'release_hold', 'register_copy', 'unregister_copy',
						  'set_retention', 'clear_retention', 'deletion_certificate')
		AND has_function_privilege('toms_admin', p.oid, 'EXECUTE')),
	ARRAY['toms.approve_deletion(uuid)', 'toms.cancel_deletion(uuid)', 'toms.clear_retention(regclass)',
		  'toms.deletion_certificate(uuid)', 'toms.hold(text,text)', 'toms.register_copy(regclass,name,name)',
		  'toms.release_hold(text)', 'toms.request_deletion(text,text,text,interval)',
		  'toms.set_retention(regclass,name,interval)', 'toms.unregister_copy(regclass)',
		  'toms.withdraw_approval(uuid)'],
	'toms_admin may call every deletion and retention function');

SELECT is(
	(SELECT count(*)::int FROM pg_proc p
	  WHERE p.pronamespace = 'toms'::regnamespace
		AND (p.proname IN ('request_deletion', 'cancel_deletion', 'approve_deletion', 'withdraw_approval',
						   'hold', 'release_hold', 'register_copy', 'unregister_copy',
						   'set_retention', 'clear_retention', 'deletion_certificate')
			 OR p.proname LIKE '\_lifecycle%' OR p.proname LIKE '\_deletion%' OR p.proname LIKE '\_retention%')
		AND (has_function_privilege('toms_app', p.oid, 'EXECUTE')
			 OR has_function_privilege('public', p.oid, 'EXECUTE'))),
	0, 'neither applications nor PUBLIC may call them');

SELECT ok(has_function_privilege('toms_auditor', 'toms.deletion_certificate(uuid)', 'EXECUTE'),
	'auditors read certificates');
SELECT ok(NOT has_function_privilege('toms_auditor', 'toms.request_deletion(text,text,text,interval)', 'EXECUTE'),
	'auditors cannot request deletions');
SELECT is(
	(SELECT count(*)::int FROM pg_proc p
	  WHERE p.pronamespace = 'toms'::regnamespace
		AND (p.proname LIKE '\_lifecycle%' OR p.proname LIKE '\_deletion%' OR p.proname LIKE '\_retention%')
		AND has_function_privilege('toms_admin', p.oid, 'EXECUTE')),
	0, 'the worker''s internal functions are not callable by toms_admin');
SELECT ok(has_function_privilege('public', 'toms.subject_visible(text)', 'EXECUTE'),
	'every reader of a protected table may evaluate the subject policy');

SELECT ok(has_table_privilege('toms_auditor', 'toms.deletion_progress', 'SELECT')
		  AND has_table_privilege('toms_admin', 'toms.deletion_progress', 'SELECT'),
	'admins and auditors see progress');
SELECT ok(NOT has_table_privilege('toms_app', 'toms.deletion_progress', 'SELECT')
		  AND NOT has_table_privilege('toms_app', 'toms.deletion_requests', 'SELECT'),
	'applications see neither progress nor requests');
SELECT is(
	(SELECT count(*)::int FROM unnest(ARRAY['toms.deletion_requests', 'toms.deletion_steps', 'toms.copies',
											'toms.holds', 'toms.retention']::regclass[]) t
	  WHERE has_table_privilege('toms_admin', t, 'INSERT')
		 OR has_table_privilege('toms_admin', t, 'UPDATE')
		 OR has_table_privilege('toms_admin', t, 'DELETE')),
	0, 'toms_admin changes lifecycle tables only through the functions');

SELECT ok((SELECT prosecdef AND proconfig @> ARRAY['search_path=pg_catalog, pg_temp']
			 FROM pg_proc WHERE oid = 'toms.request_deletion(text,text,text,interval)'::regprocedure),
	'request_deletion is SECURITY DEFINER with a safe search_path');

SELECT is((SELECT context FROM pg_settings WHERE name = 'toms.deletion_grace'), 'superuser',
	'shortening the grace period is a superuser setting');
SELECT is((SELECT context FROM pg_settings WHERE name = 'toms.deletion_approval'), 'superuser',
	'the four-eyes switch is a superuser setting');
SELECT is((SELECT array_agg(context::text ORDER BY name) FROM pg_settings
			WHERE name IN ('toms.deletion_batch_size', 'toms.deletion_batch_pause', 'toms.deletion_copies',
						   'toms.deletion_copies_timeout', 'toms.lifecycle_naptime')),
	ARRAY['sighup', 'sighup', 'sighup', 'sighup', 'sighup'], 'worker settings are reloadable');
SELECT is((SELECT unit FROM pg_settings WHERE name = 'toms.deletion_grace'), 's', 'grace is in seconds');
SELECT throws_ok($$SET toms.deletion_grace = -1$$, '22023', '-1 s is outside the valid range for parameter "toms.deletion_grace" (0 .. 2147483647)', 'a negative grace period is refused');

SELECT is((SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'toms lifecycle launcher'), 1,
	'the lifecycle launcher runs');

SELECT * FROM finish();
ROLLBACK;
