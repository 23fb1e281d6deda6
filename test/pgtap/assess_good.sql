-- toms.assess() on a good configuration: the awareness-training schema as
-- toms wants it (uuid keys, the tenant column first in every key and
-- reference, every tenant table protected).  Nothing fails; each row is a
-- known measure with a valid status; the report adds up.
BEGIN;
SELECT plan(28);

-- Who may assess (docs/assess.md: toms_auditor, toms_admin)
SELECT ok(has_function_privilege('toms_auditor', 'toms.assess()', 'EXECUTE'), 'toms_auditor may run assess()');
SELECT ok(has_function_privilege('toms_admin', 'toms.assess()', 'EXECUTE'), 'toms_admin may run assess()');
SELECT ok(has_function_privilege('toms_auditor', 'toms.assess_report(text)', 'EXECUTE'), 'toms_auditor may run assess_report()');
CREATE ROLE regress_tap_app IN ROLE toms_app;
SELECT ok(NOT has_function_privilege('regress_tap_app', 'toms.assess()', 'EXECUTE'), 'an application role may not run assess()');
SELECT ok(NOT has_function_privilege('regress_tap_app', 'toms.assess_report(text)', 'EXECUTE'), 'an application role may not run assess_report()');
SELECT ok(NOT has_table_privilege('regress_tap_app', 'toms.assessments', 'SELECT'), 'an application role may not read past assessments');

-- The good configuration
CREATE TABLE public.employees (
	tenant_id text NOT NULL,
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	email text NOT NULL,
	name text,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, email)
);
CREATE TABLE public.campaigns (
	tenant_id text NOT NULL,
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	title text,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE public.results (
	tenant_id text NOT NULL,
	campaign_id uuid NOT NULL,
	employee_id uuid NOT NULL,
	clicked boolean,
	PRIMARY KEY (tenant_id, campaign_id, employee_id),
	FOREIGN KEY (tenant_id, campaign_id) REFERENCES public.campaigns (tenant_id, id),
	FOREIGN KEY (tenant_id, employee_id) REFERENCES public.employees (tenant_id, id)
);
-- every supported tenant column type
CREATE TABLE public.t_varchar (tenant_id varchar(64) NOT NULL, v text);
CREATE TABLE public.t_uuid (tenant_id uuid NOT NULL, v text);
CREATE TABLE public.t_int4 (tenant_id integer NOT NULL, v text);
CREATE TABLE public.t_int8 (tenant_id bigint NOT NULL, v text);
SELECT toms.protect(t) FROM unnest('{employees,campaigns,results,t_varchar,t_uuid,t_int4,t_int8}'::regclass[]) t;
-- personal data sealed (measure 7)
CREATE TABLE public.contacts (
	tenant_id text NOT NULL,
	employee_id uuid NOT NULL,
	phone toms.sealed,
	PRIMARY KEY (tenant_id, employee_id),
	FOREIGN KEY (tenant_id, employee_id) REFERENCES public.employees (tenant_id, id)
);
SELECT toms.protect('public.contacts', sensitive => '{phone}');

SELECT is_empty($$SELECT control, evidence FROM toms.assess() WHERE status = 'fail'$$,
	'good configuration: no check fails');
SELECT is_empty($$SELECT control, evidence FROM toms.assess() WHERE evidence LIKE 'check could not run%'$$,
	'every check runs');
SELECT is((SELECT status FROM toms.assess() WHERE control = '9a'), 'pass',
	'9a passes: every tenant table protected, policies of all five tenant column types recognised as intact');
SELECT is((SELECT status FROM toms.assess() WHERE control = '9b'), 'pass',
	'9b passes: uuid keys, tenant column first in every unique index and foreign key');
SELECT is((SELECT status FROM toms.assess() WHERE control = '4a'), 'pass', '4a passes');
SELECT is((SELECT status FROM toms.assess() WHERE control = '5a'), 'pass', '5a passes: no stray superuser or BYPASSRLS role');
SELECT is((SELECT status FROM toms.assess() WHERE control = '8a'), 'warn', '8a warns without standbys');
SELECT matches((SELECT status || ': ' || evidence FROM toms.assess() WHERE control = '7'),
	'^pass: master key loaded; 1 sensitive column\(s\) declared', '7 passes: master key loaded, the sensitive column is sealed');

-- A sensitive column that is not toms.sealed (toms.protect() refuses to
-- declare one; here a superuser edits toms' table behind its back)
UPDATE toms.protected_tables SET sensitive = sensitive || 'employee_id'::name WHERE relid = 'public.contacts'::regclass;
SELECT matches((SELECT status || ': ' || evidence FROM toms.assess() WHERE control = '7'),
	'^fail: .*sensitive columns not of type toms.sealed: public.contacts.employee_id', '7 fails naming a sensitive column that is not sealed');
UPDATE toms.protected_tables SET sensitive = '{phone}' WHERE relid = 'public.contacts'::regclass;
SELECT is((SELECT status FROM toms.assess() WHERE control = '7'), 'pass', '7 passes again');

-- Two-stage deletion on time (measure 6b).  The lifecycle worker cannot see
-- this transaction's request, so it stays as placed here.
SET LOCAL toms.deletion_approval = off;
SELECT toms.create_tenant('regress_gone', 'Gone Ltd');
SELECT toms.request_deletion('regress_gone', NULL, 'contract ended', '0 seconds') IS NOT NULL AS requested;
SELECT is((SELECT status FROM toms.assess() WHERE control = '6b'), 'pass', '6b passes: the request is not overdue yet');
UPDATE toms.deletion_requests SET not_before = now() - interval '2 hours' WHERE tenant = 'regress_gone';
SELECT matches((SELECT status || ': ' || evidence FROM toms.assess() WHERE control = '6b'),
	'^fail: 1 overdue', '6b fails on a deletion request overdue past its grace period');
SELECT toms.hold('regress_gone', 'litigation hold, case 12');
SELECT matches((SELECT status || ': ' || evidence FROM toms.assess() WHERE control = '6b'),
	'^pass: 0 overdue .*, 1 legal hold', '6b: a held request is not overdue, and the hold is reported');

-- Shape of the answer
SELECT bag_eq($$SELECT control FROM toms.assess()$$,
	ARRAY['4a', '4b', '4c', '4d', '4e', '5a', '5b', '5c', '6a', '6b', '7', '8a', '9a', '9b', '10a', '10b', '11a'],
	'one row per checkable measure');
SELECT is_empty($$SELECT status FROM toms.assess() WHERE status NOT IN ('pass', 'warn', 'fail', 'n/a')
				  OR evidence IS NULL OR evidence = '' OR title IS NULL$$,
	'every row has a valid status, a title and evidence');
SELECT is_empty($$SELECT control, evidence FROM toms.assess()
				  WHERE status = 'n/a' AND evidence !~ '(standby|Unix-socket)'$$,
	'every n/a says why');

-- The report adds up
SELECT is(substring(toms.assess_report() FROM '\n(\d+ pass, \d+ warn, \d+ fail, \d+ n/a)\n$'),
	(SELECT format('%s pass, %s warn, %s fail, %s n/a',
				   count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'warn'),
				   count(*) FILTER (WHERE status = 'fail'), count(*) FILTER (WHERE status = 'n/a'))
	   FROM toms.assess()),
	'the text report ends with the summary line of assess()');
SELECT matches(toms.assess_report('markdown'), '\| 9a \| [^|]+ \| pass \|', 'the Markdown report has a table row per measure');
SELECT throws_ok($$SELECT toms.assess_report('pdf')$$, '22023', 'unknown report format "pdf"', 'an unknown format is refused');

-- Runs are recorded (measure 11a)
SELECT is((SELECT n_fail FROM toms.assessments ORDER BY id DESC LIMIT 1), 0, 'the last run is recorded with no failure');

-- toms.tenant_column_names
CREATE TABLE public.orgs_legacy (org_id integer, note text);
SET LOCAL toms.tenant_column_names = tenant_id, org_id;
SELECT matches((SELECT evidence FROM toms.assess() WHERE control = '9a' AND status = 'fail'),
	'public\.orgs_legacy \(column org_id\)', 'a table with another configured tenant column is reported unprotected');
SELECT throws_ok($$SET LOCAL toms.tenant_column_names = 'tenant_id,,org_id'$$, '22023', 'invalid value for parameter "toms.tenant_column_names": "tenant_id,,org_id"', 'a malformed tenant_column_names is refused');

SELECT * FROM finish();
ROLLBACK;
