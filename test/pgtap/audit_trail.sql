-- pgTAP: the audit trail's shape, privileges, settings, append-only
-- guarantees and the record of an access, checked as a superuser, the
-- table owner's side, toms_admin and toms_auditor.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
BEGIN;
SELECT plan(34);

-- Shape
SELECT has_table('toms', 'audit_log', 'toms.audit_log exists');
SELECT has_table('toms', 'incidents', 'toms.incidents exists');
SELECT has_view('toms', 'audit_stats', 'toms.audit_stats exists');
SELECT columns_are('toms', 'audit_log', ARRAY['seq', 'ts', 'kind', 'action', 'session_role',
	'effective_role', 'actor', 'tenant', 'grant_id', 'justification', 'relname', 'row_count',
	'query_id', 'client_addr', 'application_name', 'pid', 'xid', 'fate', 'statement', 'detail',
	'hash'], 'audit_log has the documented columns');
SELECT has_function('toms', 'verify_audit', ARRAY['bigint', 'bigint'], 'verify_audit(from_seq, to_seq)');
SELECT function_returns('toms', 'verify_audit', ARRAY['bigint', 'bigint'], 'record');
SELECT is_definer('toms', 'verify_audit', ARRAY['bigint', 'bigint'], 'verify_audit is security definer');
SELECT is((SELECT proargnames[1:2] FROM pg_proc WHERE oid = 'toms.verify_audit(bigint, bigint)'::regprocedure),
	ARRAY['from_seq', 'to_seq'], 'verify_audit takes from_seq and to_seq (named or positional)');

-- Settings and their defaults
SELECT is(current_setting('toms.audit_flush_delay'), '200ms', 'flush delay 200 ms');
SELECT is(current_setting('toms.audit_sync'), 'off', 'audit_sync off by default');
SELECT is(current_setting('toms.audit_queue_full'), 'block', 'queue-full policy: block');
SELECT is(current_setting('toms.audit_statement_text'), 'off', 'no statement text by default');
SELECT is(current_setting('toms.audit_log_destination'), 'table', 'destination: table');
SELECT is((SELECT context FROM pg_settings WHERE name = 'toms.audit_sync'), 'superuser', 'audit_sync is SUSET');
SELECT is((SELECT context FROM pg_settings WHERE name = 'toms.audit_statement_text'), 'superuser', 'statement text is SUSET');
SELECT is((SELECT context FROM pg_settings WHERE name = 'toms.audit_queue_size'), 'postmaster', 'queue size needs a restart');
SELECT is((SELECT context FROM pg_settings WHERE name = 'toms.audit_flush_delay'), 'sighup', 'flush delay is SIGHUP');
SELECT throws_ok($$SET toms.audit_log_destination = 'log'$$, '22023', 'invalid value for parameter "toms.audit_log_destination": "log"', 'destination must include the table');

-- Privileges
SELECT table_privs_are('toms', 'audit_log', 'toms_auditor', ARRAY['SELECT'], 'auditor reads the trail');
SELECT table_privs_are('toms', 'audit_log', 'toms_admin', ARRAY['SELECT'], 'admin only reads the trail');
SELECT table_privs_are('toms', 'audit_log', 'toms_app', ARRAY[]::text[], 'applications see nothing');
SELECT table_privs_are('toms', 'audit_log', 'public', ARRAY[]::text[], 'PUBLIC sees nothing');
SELECT function_privs_are('toms', 'verify_audit', ARRAY['bigint', 'bigint'], 'toms_auditor', ARRAY['EXECUTE']);
SELECT function_privs_are('toms', 'verify_audit', ARRAY['bigint', 'bigint'], 'public', ARRAY[]::text[]);
SELECT ok((SELECT queue_size > 0 AND launcher_pid IS NOT NULL FROM toms.audit_stats), 'queue and launcher are up');

-- Append-only, for a superuser and for toms_admin
SELECT throws_ok($$UPDATE toms.audit_log SET detail = '{}'$$, '42501', 'toms.audit_log is append-only', 'superuser cannot UPDATE');
SELECT throws_ok($$DELETE FROM toms.audit_log$$, '42501', 'toms.audit_log is append-only', 'superuser cannot DELETE');
SELECT throws_ok($$TRUNCATE toms.audit_log$$, '42501', 'the toms audit trail is append-only', 'superuser cannot TRUNCATE');
SELECT throws_ok($$ALTER TABLE toms.audit_log DISABLE TRIGGER ALL$$, '42501', 'the toms audit trail is append-only', 'superuser cannot disable the triggers');
SELECT throws_ok($$INSERT INTO toms.audit_log (ts, kind) VALUES (now(), 'forged')$$, '42501', 'only toms can add records to toms.audit_log', 'nobody forges records');
CREATE ROLE regress_tap_admin IN ROLE toms_admin;
SET LOCAL ROLE regress_tap_admin;
SELECT throws_ok($$UPDATE toms.audit_log SET detail = '{}'$$, '42501', 'permission denied for table audit_log', 'toms_admin cannot UPDATE');
SELECT throws_ok($$DELETE FROM toms.incidents$$, '42501', 'permission denied for table incidents', 'toms_admin cannot DELETE incidents');
RESET ROLE;

-- An access is recorded with its table, tenant, actor and rows
CREATE ROLE regress_tap_app;
SELECT toms.create_tenant('tap1', 'TAP');
SELECT toms.add_member('regress_tap_app', 'tap1');
CREATE TABLE tap_items (tenant_id text NOT NULL, v int);
GRANT SELECT, INSERT ON tap_items TO regress_tap_app;
SELECT toms.protect('tap_items');
SET LOCAL SESSION AUTHORIZATION regress_tap_app;
SELECT toms.set_tenant('tap1', true);
INSERT INTO tap_items (v) VALUES (1), (2), (3);
RESET SESSION AUTHORIZATION;
SELECT results_eq(
	$$SELECT kind, action, session_role, actor, tenant, row_count, fate FROM toms.audit_log
	   WHERE relname = 'public.tap_items' AND kind = 'access'$$,
	$$VALUES ('access'::text, 'INSERT'::text, 'regress_tap_app'::text, 'regress_tap_app'::text,
	          'tap1'::text, 3::bigint, 'committed'::text)$$,
	'the write is recorded in the writing transaction');
SELECT is((SELECT seq FROM toms.audit_log WHERE relname = 'public.tap_items' AND kind = 'access'), NULL::bigint,
	'it is chained only after the commit');
SELECT * FROM finish();
ROLLBACK;
