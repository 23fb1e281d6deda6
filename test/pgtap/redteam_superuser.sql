-- Red team (issue 16, class 5): quiet superuser edits of toms' own
-- objects.  A superuser replaces toms.current_tenant() (so one tenant's
-- session reads another's) or deletes from toms.protected_tables (so the
-- guard lets DISABLE ROW LEVEL SECURITY through), leaving no record.
-- Refused where PostgreSQL has a hook, and recorded as denials; where it
-- has none (an UPDATE of pg_proc itself), toms.check_functions() and
-- toms.assess() see the change and raise an incident.
-- Self-contained: one transaction, rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SELECT plan(36);
SET LOCAL client_min_messages = warning;
-- the test clusters let superusers repair toms' tables (test/conf.d)
SET LOCAL toms.allow_catalog_edits = off;

CREATE ROLE regress_su_alice LOGIN;
CREATE ROLE regress_su_both LOGIN;
CREATE ROLE regress_su_admin LOGIN IN ROLE toms_admin;
SELECT toms.create_tenant('su_a', 'Victim'), toms.create_tenant('su_b', 'Other');
SELECT toms.add_member('regress_su_alice', 'su_a'), toms.add_member('regress_su_both', 'su_a'),
	   toms.add_member('regress_su_both', 'su_b');
CREATE TABLE public.su_notes (id int, tenant_id text NOT NULL, body text);
GRANT SELECT, INSERT ON public.su_notes TO regress_su_alice, regress_su_both;
SELECT toms.protect('public.su_notes');

-- 0. What the scripts created is on record, and nothing differs yet.
SELECT cmp_ok((SELECT count(*) FROM toms.function_fingerprints), '>', 50::bigint,
	'CREATE EXTENSION recorded the fingerprints of toms'' functions');
SELECT is((SELECT count(*) FROM toms.check_functions()), 0::bigint, 'toms.check_functions(): nothing changed');

-- 1. Replacing, altering, adding, removing toms' functions.
SELECT throws_ok($q$CREATE OR REPLACE FUNCTION toms.current_tenant() RETURNS text LANGUAGE sql STABLE AS $b$ SELECT 'su_b' $b$ $q$,
	'42501', 'cannot create, replace or alter function toms.current_tenant() in toms'' schema',
	'superuser: CREATE OR REPLACE of toms.current_tenant() (the filter) refused');
SELECT throws_ok('ALTER FUNCTION toms.current_tenant() SECURITY DEFINER', '42501',
	'cannot create, replace or alter function toms.current_tenant() in toms'' schema', 'superuser: ALTER FUNCTION refused');
SELECT throws_ok('ALTER FUNCTION toms.current_actor() RENAME TO current_actor_old', '42501',
	'cannot create, replace or alter function toms.current_actor() in toms'' schema',
	'superuser: renaming toms'' function (to put another in its place) refused');
SELECT throws_ok('ALTER FUNCTION toms.set_tenant(text, boolean) OWNER TO regress_su_alice', '42501',
	'cannot create, replace or alter function toms.set_tenant(text,boolean) in toms'' schema',
	'superuser: giving toms'' function another owner refused');
SELECT throws_ok('ALTER FUNCTION toms.current_actor() SET SCHEMA public', '42501',
	'cannot create, replace or alter function toms.current_actor() in toms'' schema',
	'superuser: moving toms'' function out of its schema refused');
SELECT throws_ok($q$CREATE FUNCTION toms.current_tenant(x int) RETURNS text LANGUAGE sql AS $b$ SELECT 'su_b' $b$ $q$,
	'42501', 'cannot create, replace or alter function toms.current_tenant(integer) in toms'' schema',
	'superuser: a new function in toms'' schema (an overload) refused');
SELECT throws_ok('ALTER EXTENSION toms DROP FUNCTION toms.current_actor()', '42501',
	'cannot add objects to or remove objects from extension toms',
	'superuser: taking a function out of the extension (to replace it then) refused');
SELECT throws_ok('DROP FUNCTION toms.current_actor()', '2BP01',
	'cannot drop function toms.current_actor() because extension toms requires it',
	'superuser: DROP FUNCTION of a member: PostgreSQL refuses');

-- 2. Writing toms' tables directly.
SELECT throws_ok('DELETE FROM toms.protected_tables', '42501',
	'cannot write table "protected_tables" of toms directly',
	'superuser: DELETE FROM toms.protected_tables (lifting the guard) refused');
SELECT throws_ok($$UPDATE toms.protected_tables SET tenant_column = 'body'$$, '42501',
	'cannot write table "protected_tables" of toms directly', 'superuser: UPDATE of it refused');
SELECT throws_ok($$INSERT INTO toms.members VALUES ('regress_su_alice', 'su_b')$$, '42501',
	'cannot write table "members" of toms directly', 'superuser: INSERT INTO toms.members (a quiet membership) refused');
SELECT throws_ok($q$DO $b$ BEGIN DELETE FROM toms.protected_tables; END $b$ $q$, '42501',
	'cannot write table "protected_tables" of toms directly', 'superuser: ... also from a DO block');
SELECT throws_ok('WITH d AS (DELETE FROM toms.grants RETURNING 1) SELECT count(*) FROM d', '42501',
	'cannot write table "grants" of toms directly', 'superuser: ... also in a data-modifying CTE');
SELECT throws_ok('TRUNCATE toms.protected_tables', '42501', 'cannot change table "protected_tables" of toms',
	'superuser: TRUNCATE of toms'' table refused');
SELECT throws_ok('ALTER TABLE toms.members DISABLE TRIGGER ALL', '42501', 'cannot change table "members" of toms',
	'superuser: disabling the triggers of toms'' table refused');
CREATE FUNCTION public.su_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
SELECT throws_ok('CREATE TRIGGER su_t BEFORE INSERT ON toms.members FOR EACH ROW EXECUTE FUNCTION public.su_trg()',
	'42501', 'cannot change table "members" of toms', 'superuser: a trigger on toms'' table (runs inside toms'' functions) refused');
SELECT throws_ok('ALTER TABLE toms.protected_tables RENAME TO pt', '42501', 'cannot change table "protected_tables" of toms',
	'superuser: renaming toms'' table refused');
SELECT throws_ok('DROP INDEX toms.audit_log_seq', '42501', 'cannot change table "audit_log" of toms',
	'superuser: dropping an index of toms'' table (the audit chain''s unique seq) refused');
SELECT throws_ok('CREATE UNIQUE INDEX su_i ON toms.members (tenant)', '42501', 'cannot change table "members" of toms',
	'superuser: an index of one''s own on toms'' table refused');
SELECT throws_ok('CREATE INDEX su_j ON toms.audit_log (actor)', '42501', 'cannot change table "audit_log" of toms',
	'superuser: ... also on the audit trail');
SELECT throws_ok('ALTER SCHEMA toms RENAME TO toms_old', '42501', 'cannot rename schema "toms" of toms',
	'superuser: renaming toms'' schema (toms would no longer find itself, nor guard anything) refused');
SELECT throws_ok('ALTER TABLE public.su_notes DISABLE ROW LEVEL SECURITY', '42501',
	'cannot disable row level security on protected table "su_notes"', 'so the table is still guarded');
SELECT lives_ok($$SELECT toms.create_tenant('su_c', 'Made through toms')$$,
	'toms'' own functions still write its tables');
SELECT is((SELECT count(*) FROM toms.tenants WHERE tenant = 'su_c'), 1::bigint, '... the tenant exists');

-- 3. Other roles: PostgreSQL's privileges refuse first; the setting is a superuser's.
SET SESSION AUTHORIZATION regress_su_admin;
SELECT throws_ok('DELETE FROM toms.protected_tables', '42501', 'permission denied for table protected_tables',
	'toms_admin: no direct DELETE');
SELECT throws_ok('SET toms.allow_catalog_edits = on', '42501', 'permission denied to set parameter "toms.allow_catalog_edits"',
	'toms_admin: cannot allow catalog edits');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_su_both;
SELECT throws_ok($$INSERT INTO toms.members VALUES ('regress_su_both', 'su_c')$$, '42501',
	'permission denied for table members', 'role in two tenants: cannot join a third directly');
RESET SESSION AUTHORIZATION;

-- 4. The refusals are in the audit trail as denials.
SELECT toms.audit_flush();
SELECT cmp_ok((SELECT count(*) FROM toms.audit_log WHERE kind = 'denied' AND ts >= now()
				AND action IN ('change of a toms function', 'direct edit of a toms table', 'DDL on a toms table',
							   'change of toms'' extension members', 'DDL on toms'' schema')), '>=', 17::bigint,
	'every refusal above was recorded as a denial');

-- 5. A repair by a superuser who allows it is not quiet either.
SET LOCAL toms.allow_catalog_edits = on;
SELECT lives_ok($$UPDATE toms.tenants SET name = 'Renamed' WHERE tenant = 'su_c'$$,
	'superuser with toms.allow_catalog_edits: may repair a table');
SET LOCAL toms.allow_catalog_edits = off;
SELECT is((SELECT count(*) FROM toms.audit_log WHERE kind = 'admin' AND action = 'direct edit of a toms table'
			AND ts >= now()), 1::bigint, '... and the edit is audited');

-- COPY ... FROM (pg_restore's way) is not refused, but recorded.
SELECT current_setting('data_directory') || '/su_tenants.copy' AS su_f \gset
COPY (SELECT 'su_copied', 'Loaded') TO :'su_f';
COPY toms.tenants (tenant, name) FROM :'su_f';
SELECT is((SELECT count(*) FROM toms.audit_log WHERE kind = 'admin' AND action = 'direct load of a toms table'
			AND relname = 'toms.tenants' AND ts >= now()), 1::bigint, 'superuser: COPY FROM into toms'' table is audited');

-- 6. No hook: an UPDATE of pg_proc itself is detected.
UPDATE pg_proc SET prosrc = prosrc || ' ' WHERE oid = 'toms.assess_report(text)'::regprocedure;
SELECT results_eq('SELECT function, problem FROM toms.check_functions()',
	$$VALUES ('toms.assess_report(text)', 'changed')$$, 'toms.check_functions() names the edited function');
SELECT toms.audit_flush();
SELECT is((SELECT count(*) FROM toms.incidents WHERE kind = 'toms_function_changed' AND NOT EXISTS (SELECT 1 FROM toms.incident_closures c WHERE c.incident_id = incidents.id)
			AND last_seen >= now()), 1::bigint, '... and raised an incident');
SELECT matches((SELECT status || ': ' || evidence FROM toms.assess() WHERE control = '9a'),
	'^fail: .*toms'' functions differ from what its extension scripts created: toms\.assess_report\(text\) \(changed\)',
	'toms.assess() fails 9a, naming it');

SELECT * FROM finish();
ROLLBACK;
