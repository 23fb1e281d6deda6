-- pgTAP: audit records mean what their columns say (issue 20), incidents
-- are closed by appending the closing, and the per-table read audit switch
-- (issue 17, SPEC 2) with its audit trail and assess() warning.
-- Not in one transaction: the audit worker must see an incident's closing
-- committed before it opens a new one.  Cleans up at the end.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(62);

CREATE ROLE regress_rec_app LOGIN;
CREATE ROLE regress_rec_aud IN ROLE toms_auditor;
CREATE ROLE regress_rec_nobody;
SELECT toms.create_tenant('rec1', 'Records one');
SELECT toms.create_tenant('rec2', 'Records two');
SELECT toms.add_member('regress_rec_app', 'rec1');
CREATE SCHEMA rec_s;
GRANT USAGE ON SCHEMA rec_s TO regress_rec_app, regress_rec_nobody;
CREATE TABLE rec_s.pat (tenant_id text NOT NULL, patient_id text, ssn toms.sealed, note text);
CREATE TABLE rec_s.log (tenant_id text NOT NULL, line text);
GRANT SELECT, INSERT ON rec_s.pat, rec_s.log TO regress_rec_app;
CREATE SCHEMA rec_s2;
CREATE TABLE rec_s2.solo (tenant_id text NOT NULL);
SELECT toms.protect('rec_s2.solo');

-- One detail format: a JSON object (jsonb) --------------------------------
SELECT col_type_is('toms', 'audit_log', 'detail', 'jsonb', 'audit_log.detail is jsonb');

-- protect/unprotect: relname, the sensitive and subject columns, audit_reads
SELECT toms.protect('rec_s.pat', sensitive => '{ssn}', subject_column => 'patient_id');
SELECT toms.protect('rec_s.log', audit_reads => false);
SELECT is((SELECT row(relname, detail)::text FROM toms.audit_log
			WHERE kind = 'admin' AND action = 'protect' AND relname = 'rec_s.pat'),
	row('rec_s.pat', '{"sensitive": ["ssn"], "audit_reads": true, "tenant_column": "tenant_id", "subject_column": "patient_id"}'::jsonb)::text,
	'protect is recorded with its table, sensitive and subject columns');
SELECT is((SELECT detail FROM toms.audit_log
			WHERE kind = 'admin' AND action = 'protect' AND relname = 'rec_s.log'),
	'{"sensitive": [], "audit_reads": false, "tenant_column": "tenant_id", "subject_column": null}'::jsonb,
	'protect(..., audit_reads => false) is recorded as such');
SELECT is((SELECT audit_reads FROM toms.protected_tables WHERE relid = 'rec_s.log'::regclass), false,
	'toms.protected_tables shows audit_reads');
-- key=value details of SQL callers become objects
SELECT is((SELECT detail FROM toms.audit_log
			WHERE kind = 'admin' AND action = 'add_member' AND tenant = 'rec1'),
	'{"role": "regress_rec_app"}'::jsonb, 'add_member''s detail is an object');
SELECT is((SELECT count(*) FROM toms.audit_log
			WHERE detail IS NOT NULL AND jsonb_typeof(detail) <> 'object'), 0::bigint,
	'every detail is a JSON object');

-- Denials: the verified tenant or NULL, the claimed one in the detail ---------
SET SESSION AUTHORIZATION regress_rec_app;
SELECT throws_ok($$SELECT toms.set_tenant('rec2')$$, '42501',
	'role "regress_rec_app" is not a member of tenant "rec2"', 'set_tenant of a foreign tenant is refused');
-- no tenant context: the denial names the table.  (Refused as the statement
-- starts: a plan made under a context, run without one.  PostgreSQL's
-- planner may ask for the context first, while it estimates; that denial
-- cannot name the table: docs/audit.md.)
SELECT toms.set_tenant('rec1');
PREPARE rec_q AS SELECT count(*) FROM rec_s.pat;
EXECUTE rec_q;
RESET toms.context;
SELECT throws_ok($$EXECUTE rec_q$$, '42501', 'no tenant context',
	'reading without a context is refused');
DEALLOCATE rec_q;
RESET SESSION AUTHORIZATION;
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT is((SELECT row(tenant, detail)::text FROM toms.audit_log
			WHERE kind = 'denied' AND session_role = 'regress_rec_app'
			  AND action = 'role "regress_rec_app" is not a member of tenant "rec2"'),
	row(NULL::text, '{"claimed_tenant": "rec2"}'::jsonb)::text,
	'a refused set_tenant: tenant NULL, the claimed tenant in the detail');
SELECT is((SELECT relname FROM toms.audit_log
			WHERE kind = 'denied' AND session_role = 'regress_rec_app' AND action = 'no tenant context'),
	'rec_s.pat', 'a no-tenant-context denial names the table');

-- Every DDL the guard refuses is a denial, with the table -----------------------
SELECT throws_ok($$ALTER TABLE rec_s.pat DISABLE ROW LEVEL SECURITY$$, '42501',
	'cannot disable row level security on protected table "pat"', 'DISABLE RLS refused');
SELECT throws_ok($$ALTER TABLE rec_s.pat NO FORCE ROW LEVEL SECURITY$$, '42501',
	'cannot stop forcing row level security on protected table "pat"', 'NO FORCE refused');
SELECT throws_ok($$DROP POLICY toms_tenant ON rec_s.pat$$, '42501',
	'cannot drop policy "toms_tenant" on protected table "pat"', 'DROP POLICY refused');
SELECT throws_ok($$ALTER TABLE rec_s.pat RENAME COLUMN tenant_id TO t$$, '42501',
	'cannot rename column "tenant_id" of protected table "pat"', 'RENAME COLUMN refused');
SELECT throws_ok($$DROP SCHEMA rec_s2 CASCADE$$, '42501',
	'cannot drop policy "toms_tenant" on protected table "solo"', 'DROP SCHEMA CASCADE refused');
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT is((SELECT array_agg(row(action, relname, fate)::text ORDER BY seq) FROM toms.audit_log
			WHERE kind = 'denied' AND session_role = current_user AND action LIKE 'cannot %'),
	ARRAY[row('cannot disable row level security on protected table "pat"', 'rec_s.pat', 'denied')::text,
		  row('cannot stop forcing row level security on protected table "pat"', 'rec_s.pat', 'denied')::text,
		  row('cannot drop policy "toms_tenant" on protected table "pat"', 'rec_s.pat', 'denied')::text,
		  row('cannot rename column "tenant_id" of protected table "pat"', 'rec_s.pat', 'denied')::text,
		  row('cannot drop policy "toms_tenant" on protected table "solo"', 'rec_s2.solo', 'denied')::text],
	'each refused DDL is recorded as a denial naming its table');

-- The read audit switch ----------------------------------------------------------
SET SESSION AUTHORIZATION regress_rec_app;
SELECT toms.set_tenant('rec1');
INSERT INTO rec_s.log (line) VALUES ('written');
SELECT is((SELECT count(*) FROM rec_s.log), 1::bigint, 'the member reads its row');
SELECT is((SELECT count(*) FROM rec_s.pat), 0::bigint, 'the member reads the audited table');
RESET SESSION AUTHORIZATION;
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT is((SELECT array_agg(action ORDER BY seq) FROM toms.audit_log
			WHERE kind = 'access' AND relname = 'rec_s.log' AND session_role = 'regress_rec_app'),
	ARRAY['INSERT'], 'reads off: the write is recorded, the read of the member is not');
SELECT is((SELECT array_agg(action ORDER BY seq) FROM toms.audit_log
			WHERE kind = 'access' AND relname = 'rec_s.pat' AND session_role = 'regress_rec_app'),
	ARRAY['SELECT', 'SELECT'], 'reads on: the member''s reads of the other table are recorded (EXECUTE rec_q and this one)');
-- a superuser's read is recorded whatever the switch
SELECT is((SELECT count(*) FROM rec_s.log), 1::bigint, 'the superuser reads');
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT is((SELECT count(*) FROM toms.audit_log
			WHERE kind = 'access' AND relname = 'rec_s.log' AND action = 'SELECT' AND session_role = current_user),
	1::bigint, 'a read by a superuser is recorded with reads off');
-- reads under a need-to-know grant are recorded whatever the switch
SELECT toms.grant_access('regress_rec_app', 'rec2', 'ticket 42: export check', interval '1 hour');
SET SESSION AUTHORIZATION regress_rec_app;
SELECT toms.set_tenant('rec2');
SELECT is((SELECT count(*) FROM rec_s.log), 0::bigint, 'the granted role reads rec2');
RESET SESSION AUTHORIZATION;
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT is((SELECT row(tenant, justification)::text FROM toms.audit_log
			WHERE kind = 'access' AND relname = 'rec_s.log' AND action = 'SELECT'
			  AND session_role = 'regress_rec_app'),
	row('rec2', 'ticket 42: export check')::text, 'a read under a grant is recorded with reads off');

-- set_audit_reads: toms_admin only, an admin act, and it takes effect
SET SESSION AUTHORIZATION regress_rec_nobody;
SELECT throws_ok($$SELECT toms.set_audit_reads('rec_s.log', true)$$, '42501',
	'permission denied for function set_audit_reads', 'only toms_admin switches the read audit');
RESET SESSION AUTHORIZATION;
CREATE TABLE rec_s.plain (tenant_id text);
SELECT throws_ok($$SELECT toms.set_audit_reads('rec_s.plain', true)$$, '55000',
	'table "plain" is not protected', 'only a protected table has a read audit switch');
SELECT lives_ok($$SELECT toms.set_audit_reads('rec_s.log', true)$$, 'reads of rec_s.log audited again');
SELECT is((SELECT row(relname, detail)::text FROM toms.audit_log
			WHERE kind = 'admin' AND action = 'set_audit_reads' AND relname = 'rec_s.log'),
	row('rec_s.log', '{"audit_reads": true}'::jsonb)::text, 'the switch is an admin act naming the table');
SELECT is((SELECT audit_reads FROM toms.protected_tables WHERE relid = 'rec_s.log'::regclass), true,
	'toms.protected_tables follows');
-- on a partitioned table, the switch covers every partition (each can be read directly)
CREATE TABLE rec_s.parted (tenant_id text NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE rec_s.parted_2026 PARTITION OF rec_s.parted FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE rec_s.parted_2027 PARTITION OF rec_s.parted FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')
	PARTITION BY LIST (tenant_id);
CREATE TABLE rec_s.parted_2027_r PARTITION OF rec_s.parted_2027 DEFAULT;
SELECT toms.protect('rec_s.parted');
SELECT lives_ok($$SELECT toms.set_audit_reads('rec_s.parted', false)$$, 'the switch on a partitioned table');
SELECT is((SELECT string_agg(relid::text || '=' || audit_reads, ',' ORDER BY relid::text) FROM toms.protected_tables
			WHERE relid::text LIKE 'rec_s.parted%'),
	'rec_s.parted=false,rec_s.parted_2026=false,rec_s.parted_2027=false,rec_s.parted_2027_r=false',
	'every partition, at every level, follows its partitioned table');
SELECT toms.unprotect('rec_s.parted');
DROP TABLE rec_s.parted;
SET SESSION AUTHORIZATION regress_rec_app;
SELECT toms.set_tenant('rec1');
SELECT is((SELECT count(*) FROM rec_s.log), 1::bigint, 'the member reads again');
RESET SESSION AUTHORIZATION;
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT is((SELECT count(*) FROM toms.audit_log
			WHERE kind = 'access' AND relname = 'rec_s.log' AND action = 'SELECT'
			  AND session_role = 'regress_rec_app' AND tenant = 'rec1'),
	1::bigint, 'with reads on again, the member''s read is recorded');

-- assess() warns for tables with sensitive or subject columns whose reads
-- are not audited (control 7)
SELECT unalike((SELECT evidence FROM toms.assess() WHERE control = '7'),
	'%reads not audited%', 'no warning while every such table''s reads are audited');
SELECT toms.set_audit_reads('rec_s.pat', false);
SELECT ok((SELECT status <> 'pass' AND evidence LIKE '%reads not audited on tables with sensitive or subject columns: rec_s.pat %'
			 FROM toms.assess() WHERE control = '7'),
	'assess 7 warns for rec_s.pat, whose reads are not audited');
SELECT toms.set_audit_reads('rec_s.pat', true);

-- Incidents: closed by appending the closing ------------------------------------
SELECT ok((SELECT count(*) = 1 FROM toms.incidents
			WHERE kind = 'privileged_access' AND detail ~ 'rec_s\.log'), 'the superuser''s read is an incident');
SELECT id AS inc_id, xmin::text AS inc_xmin, count AS inc_count FROM toms.incidents
 WHERE kind = 'privileged_access' AND detail ~ 'rec_s\.log' \gset
SET SESSION AUTHORIZATION regress_rec_nobody;
SELECT throws_ok(format('SELECT toms.close_incident(%s, %L)', :inc_id, 'x'), '42501',
	'permission denied for function close_incident', 'only auditors and admins close incidents');
SET SESSION AUTHORIZATION regress_rec_aud;
SELECT throws_ok(format('SELECT toms.close_incident(%s, %L)', :inc_id, ' '), '22023',
	'closing an incident needs a note', 'a closing needs a note');
SELECT throws_ok($$SELECT toms.close_incident(-1, 'nothing')$$, '42704',
	'incident -1 does not exist', 'an unknown incident cannot be closed');
SELECT lives_ok(format('SELECT toms.close_incident(%s, %L)', :inc_id, 'the test superuser, expected'),
	'an auditor closes the incident');
SELECT throws_ok(format('SELECT toms.close_incident(%s, %L)', :inc_id, 'again'), '55000',
	format('incident %s is already closed', :inc_id), 'an incident is closed once');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT row(closed_by, note)::text FROM toms.incident_closures WHERE incident_id = :inc_id),
	row('regress_rec_aud', 'the test superuser, expected')::text, 'the closing is appended with who and why');
SELECT is((SELECT xmin::text FROM toms.incidents WHERE id = :inc_id), :'inc_xmin',
	'the incident itself is not updated');
SELECT is((SELECT row(session_role, detail ->> 'incident', detail ->> 'note')::text FROM toms.audit_log
			WHERE kind = 'admin' AND action = 'close_incident' AND (detail ->> 'incident')::bigint = :inc_id),
	row('regress_rec_aud', :inc_id::text, 'the test superuser, expected')::text, 'the closing is audited');
SELECT throws_ok($$DELETE FROM toms.incident_closures$$, '42501',
	'toms.incident_closures is append-only', 'closings cannot be deleted');
SELECT is((SELECT evidence FROM toms._assess_10a()),
	format('%s open incident(s) of %s recorded', (SELECT count(*) FROM toms.incidents)
		   - (SELECT count(*) FROM toms.incident_closures), (SELECT count(*) FROM toms.incidents))
	|| CASE WHEN (SELECT count(*) FROM toms.incidents) > (SELECT count(*) FROM toms.incident_closures)
			THEN ' (investigate each, then toms.close_incident(id, note))' ELSE '' END,
	'assess 10a counts only open incidents');
-- the same event again opens a new incident; the closed one stays as it was
SELECT is((SELECT count(*) FROM rec_s.log), 1::bigint, 'the superuser reads again');
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT is((SELECT array_agg(row(id = :inc_id, count = CASE WHEN id = :inc_id THEN :inc_count ELSE 1 END)::text ORDER BY id) FROM toms.incidents
			WHERE kind = 'privileged_access' AND detail ~ 'rec_s\.log'),
	ARRAY['(t,t)', '(f,t)'], 'a new incident is opened, the closed one is left alone');

-- A role given BYPASSRLS during a session is recorded from its next read on,
-- reads off or not (toms keeps its answer per role and drops it when a role
-- changes), and no longer once it has lost it.
SELECT toms.set_audit_reads('rec_s.log', false);
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT max(seq) AS before_bypass FROM toms.audit_log \gset
SET SESSION AUTHORIZATION regress_rec_app;
SELECT toms.set_tenant('rec1');
SELECT is((SELECT count(*) FROM rec_s.log), 1::bigint, 'the member reads (reads off: not recorded)');
RESET SESSION AUTHORIZATION;
ALTER ROLE regress_rec_app BYPASSRLS;
SET SESSION AUTHORIZATION regress_rec_app;
SELECT toms.set_tenant('rec1');
SELECT is((SELECT count(*) FROM rec_s.log), 1::bigint, 'the member, now BYPASSRLS, reads');
RESET SESSION AUTHORIZATION;
ALTER ROLE regress_rec_app NOBYPASSRLS;
SET SESSION AUTHORIZATION regress_rec_app;
SELECT toms.set_tenant('rec1');
SELECT is((SELECT count(*) FROM rec_s.log), 1::bigint, 'the member, BYPASSRLS no more, reads');
RESET SESSION AUTHORIZATION;
SELECT toms.set_audit_reads('rec_s.log', true);
SELECT ok(toms.audit_flush(), 'queue flushed');
SELECT is((SELECT array_agg(statement IS NULL ORDER BY seq) FROM toms.audit_log
			WHERE seq > :before_bypass AND kind = 'access' AND relname = 'rec_s.log'
			  AND session_role = 'regress_rec_app'),
	ARRAY[true], 'only the read made while the role had BYPASSRLS is recorded');

-- Admin acts in nested savepoints: each record's fate follows its own
-- subtransaction (audit_emit.c walks only the innermost one's records).
BEGIN;
SAVEPOINT a;
SELECT toms.create_tenant('recsx1', 'kept');
SAVEPOINT b;
SELECT toms.create_tenant('recsx2', 'rolled back');
ROLLBACK TO b;
SAVEPOINT c;
SELECT toms.create_tenant('recsx3', 'rolled back with c');
SAVEPOINT d;
SELECT toms.create_tenant('recsx4', 'released into c, rolled back with it');
RELEASE d;
ROLLBACK TO c;
SAVEPOINT e;
SELECT toms.create_tenant('recsx5', 'released into a');
RELEASE e;
RELEASE a;
SELECT toms.create_tenant('recsx6', 'top level');
COMMIT;
SELECT toms.audit_flush();
SELECT is((SELECT array_agg(row(tenant, fate)::text ORDER BY tenant) FROM toms.audit_log
			WHERE kind = 'admin' AND action = 'create_tenant' AND tenant LIKE 'recsx%'),
	ARRAY['(recsx1,committed)', '(recsx2,"rolled back")', '(recsx3,"rolled back")',
		  '(recsx4,"rolled back")', '(recsx5,committed)', '(recsx6,committed)'],
	'admin records in nested savepoints: committed or rolled back with their subtransaction');

SELECT * FROM finish();

SELECT toms.unprotect('rec_s.pat'), toms.unprotect('rec_s.log'), toms.unprotect('rec_s2.solo');
DROP SCHEMA rec_s, rec_s2 CASCADE;
SELECT toms.revoke_access(id) FROM toms.grants WHERE role = 'regress_rec_app'::regrole AND revoked_at IS NULL;
DELETE FROM toms.grants WHERE role = 'regress_rec_app'::regrole;
DELETE FROM toms.members WHERE role = 'regress_rec_app'::regrole;
DELETE FROM toms.tenants WHERE tenant IN ('rec1', 'rec2', 'recsx1', 'recsx5', 'recsx6');
DROP ROLE regress_rec_app, regress_rec_aud, regress_rec_nobody;
