-- Red team: attacks on the tenant context itself.  An application role
-- that belongs to tenant rt_b (regress_rt_eve) tries to read tenant rt_a's
-- rows by forging, switching or hijacking the context, and by reusing plans
-- and cursors made under another tenant.  Self-contained: everything is
-- created in one transaction and rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SELECT plan(48);
SET LOCAL client_min_messages = warning;

CREATE ROLE regress_rt_owner NOLOGIN;
CREATE ROLE regress_rt_alice LOGIN;		-- member of rt_a (the victim)
CREATE ROLE regress_rt_eve LOGIN NOINHERIT;	-- member of rt_b (the attacker)
CREATE ROLE regress_rt_agroup NOLOGIN;	-- a group that is a member of rt_a
CREATE ROLE regress_rt_pool LOGIN IN ROLE toms_app;	-- a pool that uses tokens
SELECT toms.create_tenant('rt_a', 'Victim'), toms.create_tenant('rt_b', 'Attacker');
SELECT toms.add_member('regress_rt_alice', 'rt_a'), toms.add_member('regress_rt_eve', 'rt_b'),
	   toms.add_member('regress_rt_agroup', 'rt_a');
GRANT regress_rt_agroup TO regress_rt_eve;	-- NOINHERIT: eve may SET ROLE to it

CREATE SCHEMA rt AUTHORIZATION regress_rt_owner;
GRANT USAGE ON SCHEMA rt TO PUBLIC;
CREATE TABLE rt.secrets (id int PRIMARY KEY, tenant_id text NOT NULL, secret text NOT NULL);
CREATE INDEX ON rt.secrets (tenant_id);
ALTER TABLE rt.secrets OWNER TO regress_rt_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON rt.secrets TO regress_rt_alice, regress_rt_eve, regress_rt_pool;
SELECT toms.protect('rt.secrets');
-- rows of both tenants, written through the policy by their own members
SET SESSION AUTHORIZATION regress_rt_alice;
SELECT toms.set_tenant('rt_a', true);
INSERT INTO rt.secrets (id, secret) SELECT g, 'A-secret-' || g FROM generate_series(1, 50) g;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b', true);
INSERT INTO rt.secrets (id, secret) SELECT g, 'B-data-' || g FROM generate_series(101, 105) g;
RESET SESSION AUTHORIZATION;
SELECT toms.clear_tenant();
ANALYZE rt.secrets;

-- The attacker's session from here on.
SET SESSION AUTHORIZATION regress_rt_eve;

-- 1. No context: fail closed, never rows.
SELECT throws_ok('SELECT count(*) FROM rt.secrets', '42501', 'no tenant context',
	'no context: reading a protected table fails closed');
SELECT throws_ok('INSERT INTO rt.secrets (id, secret) VALUES (900, ''x'')', '42501', 'no tenant context',
	'no context: writing fails closed');
SELECT throws_ok('SELECT count(*) FROM rt.secrets WHERE false', '42501', 'no tenant context',
	'no context: fails closed even where the policy is never evaluated');

-- 2. Naming another tenant, by every way of setting toms.context.
SELECT throws_ok($$SELECT toms.set_tenant('rt_a')$$, '42501',
	'role "regress_rt_eve" is not a member of tenant "rt_a"', 'set_tenant to a foreign tenant is refused');
SET toms.context = 'rt_a';
SELECT throws_ok('SELECT count(*) FROM rt.secrets', '42501',
	'role "regress_rt_eve" is not a member of tenant "rt_a"', 'plain SET toms.context to a foreign tenant: refused where used');
RESET toms.context;
SELECT set_config('toms.context', 'rt_a', true);
SELECT throws_ok('SELECT count(*) FROM rt.secrets', '42501', 'role "regress_rt_eve" is not a member of tenant "rt_a"', 'set_config(toms.context) to a foreign tenant: refused');
SELECT throws_ok('SELECT secret FROM rt.secrets WHERE tenant_id = ''rt_a''', '42501', 'role "regress_rt_eve" is not a member of tenant "rt_a"',
	'... also with the tenant named in the query');
SELECT set_config('toms.context', '', true);
-- a per-role default is just another way to set it
ALTER ROLE regress_rt_eve SET toms.context = 'rt_a';
SELECT is((SELECT setconfig::text FROM pg_db_role_setting WHERE setrole = 'regress_rt_eve'::regrole),
	'{toms.context=rt_a}', 'a role may give itself a toms.context default ...');
SET toms.context = 'rt_a';		-- what that default does at login
SELECT throws_ok('SELECT count(*) FROM rt.secrets', '42501', 'role "regress_rt_eve" is not a member of tenant "rt_a"', '... which is verified where used like any other');
RESET toms.context;
ALTER ROLE regress_rt_eve RESET toms.context;
-- near misses of the id
SET toms.context = 'RT_A';
SELECT throws_ok('SELECT count(*) FROM rt.secrets', '42501', 'role "regress_rt_eve" is not a member of tenant "RT_A"', 'case variant of a tenant id is another (unknown) tenant, refused as a non-member''s');
SET toms.context = 'rt_a ';
SELECT throws_ok('SELECT count(*) FROM rt.secrets', '42501', 'role "regress_rt_eve" is not a member of tenant "rt_a "', 'trailing blank is another (unknown) tenant, refused as a non-member''s');
RESET toms.context;

-- 3. Borrowing identities.
SET ROLE regress_rt_agroup;		-- a role that IS a member of rt_a
SELECT throws_ok($$SELECT toms.set_tenant('rt_a')$$, '42501', 'role "regress_rt_eve" is not a member of tenant "rt_a"',
	'SET ROLE to a member of the victim tenant gains nothing (verification uses session_user)');
RESET ROLE;
-- (SET SESSION AUTHORIZATION needs a superuser *login*: see t/801_redteam_login.pl)
SELECT throws_ok('SET session_replication_role = replica', '42501', 'permission denied to set parameter "session_replication_role"',
	'session_replication_role (skips triggers) is for superusers only');
SELECT toms.set_tenant('rt_b');
SELECT throws_ok('SET row_security = off; SELECT count(*) FROM rt.secrets', '42501', 'query would be affected by row-level security policy for table "secrets"',
	'row_security = off does not bypass the policy: the query raises');
RESET row_security;
SELECT toms.clear_tenant();

-- 4. search_path hijacking of toms' own functions and operators.
RESET SESSION AUTHORIZATION;
CREATE SCHEMA rt_evil AUTHORIZATION regress_rt_eve;
SET SESSION AUTHORIZATION regress_rt_eve;
CREATE FUNCTION rt_evil.current_tenant() RETURNS text LANGUAGE sql AS $$ SELECT 'rt_a'::text $$;
CREATE FUNCTION rt_evil.current_tenant(boolean) RETURNS text LANGUAGE sql AS $$ SELECT 'rt_a'::text $$;
CREATE FUNCTION rt_evil.always(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR rt_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = rt_evil.always);
SELECT toms.set_tenant('rt_b');
-- pg_catalog last: the attacker's = and current_tenant() win name lookup.
-- (Evaluate under the hijacked path, assert afterwards: pgTAP's own
-- unqualified text = text would otherwise use the attacker's operator.)
SET search_path = rt_evil, toms, public, pg_catalog;
CREATE TEMP TABLE rt_sp AS SELECT
	current_tenant() AS ct,
	(SELECT count(*) FROM rt.secrets) AS n,
	(SELECT count(*) FROM rt.secrets WHERE secret LIKE 'A-%') AS a,
	(SELECT count(*) FROM rt.secrets WHERE tenant_id = 'rt_a') AS eq_a;
INSERT INTO rt.secrets (id, secret) VALUES (902, 'x');
RESET search_path;
SELECT is((SELECT ct FROM rt_sp), 'rt_a', 'the attacker''s current_tenant() is first in search_path');
SELECT is((SELECT n FROM rt_sp), 5::bigint, 'the policy still calls toms.current_tenant(): only rt_b rows');
SELECT is((SELECT a FROM rt_sp), 0::bigint, '... nothing of rt_a');
SELECT is((SELECT eq_a FROM rt_sp), 5::bigint,
	'the attacker''s always-true = works in their own WHERE, but the policy''s = was bound when it was made');
SELECT is((SELECT tenant_id FROM rt.secrets WHERE id = 902), 'rt_b',
	'the tenant column default calls toms.current_tenant() too');
DELETE FROM rt.secrets WHERE id = 902;
SELECT toms.clear_tenant();

-- 5. Plans made under one tenant, executed under another.
SELECT toms.set_tenant('rt_b');
PREPARE rt_q AS SELECT count(*) FROM rt.secrets;
PREPARE rt_qid(int) AS SELECT secret FROM rt.secrets WHERE id = $1;
SELECT is((SELECT count(*) FROM rt.secrets), 5::bigint, 'rt_b sees its 5 rows');
SELECT is_empty('EXECUTE rt_qid(1)', 'prepared point lookup of an rt_a id: nothing');
SET toms.context = 'rt_a';
SELECT throws_ok('EXECUTE rt_q', '42501', 'role "regress_rt_eve" is not a member of tenant "rt_a"', 'prepared statement under a foreign context: refused');
RESET toms.context;
SET plan_cache_mode = force_generic_plan;
PREPARE rt_gq(int) AS SELECT count(*) FROM rt.secrets WHERE id > $1;
SELECT toms.set_tenant('rt_b');
SELECT results_eq('EXECUTE rt_gq(0)', $$VALUES (5::bigint)$$, 'generic plan under rt_b: 5 rows');
SELECT toms.clear_tenant();
SELECT throws_ok('EXECUTE rt_gq(0)', '42501', 'no tenant context',
	'generic plan executed after clear_tenant(): fails closed');
SET toms.context = 'rt_a';
SELECT throws_ok('EXECUTE rt_gq(0)', '42501', 'role "regress_rt_eve" is not a member of tenant "rt_a"',
	'generic plan executed under a foreign context: refused');
RESET toms.context;
RESET plan_cache_mode;
-- a plpgsql function caches its plans too
CREATE FUNCTION rt_evil.count_secrets() RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN RETURN (SELECT count(*) FROM rt.secrets); END $$;
SELECT toms.set_tenant('rt_b');
SELECT is(rt_evil.count_secrets(), 5::bigint, 'plpgsql cached plan: rt_b');
SELECT toms.clear_tenant();
SELECT throws_ok('SELECT rt_evil.count_secrets()', '42501', 'no tenant context',
	'plpgsql cached plan after clear_tenant(): fails closed');
RESET SESSION AUTHORIZATION;

-- A pool (one session user for all tenants, entering with set_tenant as a
-- member of both): the same prepared statement follows the context.
SELECT toms.add_member('regress_rt_pool', 'rt_a'), toms.add_member('regress_rt_pool', 'rt_b');
SET SESSION AUTHORIZATION regress_rt_pool;
SET plan_cache_mode = force_generic_plan;
SELECT toms.set_tenant('rt_a');
PREPARE pool_q AS SELECT count(*), min(secret) FROM rt.secrets;
PREPARE pool_id(int) AS SELECT secret FROM rt.secrets WHERE id = $1;
SELECT results_eq('EXECUTE pool_q', $$VALUES (50::bigint, 'A-secret-1')$$, 'pool in rt_a: rt_a rows (generic plan)');
SELECT toms.set_tenant('rt_b');
SELECT results_eq('EXECUTE pool_q', $$VALUES (5::bigint, 'B-data-101')$$,
	'same prepared statement after switching to rt_b: only rt_b rows');
SELECT is_empty('EXECUTE pool_id(1)', 'point lookup of an rt_a id through a plan made under rt_a: nothing');
RESET plan_cache_mode;
SET plan_cache_mode = force_custom_plan;
SELECT results_eq('EXECUTE pool_q', $$VALUES (5::bigint, 'B-data-101')$$, '... and with custom plans');
RESET plan_cache_mode;
-- index scans compute the tenant key once per scan: a cursor keeps the
-- tenant it was opened under, so reading it under another is refused
SELECT toms.set_tenant('rt_a');
SET LOCAL enable_seqscan = off;
DECLARE rt_cur NO SCROLL CURSOR FOR SELECT secret FROM rt.secrets;
DECLARE rt_cur2 NO SCROLL CURSOR FOR SELECT secret FROM rt.secrets;
CREATE TEMP TABLE rt_fetched (phase text, secret text);
GRANT ALL ON rt_fetched TO PUBLIC;
DO $$ DECLARE c refcursor := 'rt_cur'; v text; BEGIN
	FETCH c INTO v; INSERT INTO rt_fetched VALUES ('before', v); END $$;
SELECT is((SELECT count(*) FROM rt_fetched WHERE phase = 'before' AND secret LIKE 'A-%'), 1::bigint,
	'cursor opened under rt_a returns an rt_a row');
SELECT toms.set_tenant('rt_a');
DO $$ DECLARE c refcursor := 'rt_cur'; v text; BEGIN
	FETCH c INTO v; INSERT INTO rt_fetched VALUES ('again', v); END $$;
SELECT is((SELECT count(*) FROM rt_fetched WHERE phase = 'again' AND secret LIKE 'A-%'), 1::bigint,
	'the same tenant entered again: the cursor reads on');
SELECT toms.set_tenant('rt_b');
SELECT throws_ok('FETCH 1 FROM rt_cur', '42501', 'cursor "rt_cur" was opened under another tenant context',
	'a cursor opened under rt_a cannot be read under rt_b');
SELECT throws_ok($x$DO $d$ DECLARE c refcursor := 'rt_cur2'; v text; BEGIN FETCH c INTO v; END $d$$x$,
	'42501', 'cursor "rt_cur2" was opened under another tenant context', '... nor through PL/pgSQL FETCH');
SELECT is((SELECT count(*) FROM rt_fetched WHERE phase NOT IN ('before', 'again')), 0::bigint,
	'no row of rt_a was read under rt_b');
RESET enable_seqscan;
-- A cursor WITH HOLD outlives the transaction and its (SET LOCAL)
-- context, and is then read from a store no hook sees: refused.
SELECT throws_ok('DECLARE rt_held CURSOR WITH HOLD FOR SELECT secret FROM rt.secrets', '42501',
	'cursor "rt_held" cannot be declared WITH HOLD: it reads protected table "secrets"',
	'a cursor WITH HOLD on a protected table is refused');
RESET SESSION AUTHORIZATION;
GRANT USAGE ON SCHEMA rt_evil TO regress_rt_pool;
SET SESSION AUTHORIZATION regress_rt_pool;
DECLARE rt_held2 CURSOR WITH HOLD FOR SELECT rt_evil.count_secrets();
SELECT throws_ok('FETCH 1 FROM rt_held2', '42501', 'cursor "rt_held2" cannot be declared WITH HOLD: it reads protected table "secrets"',
	'... also when a function it calls reads the table');
CLOSE ALL;
SELECT throws_ok('FETCH 1 FROM rt_cur', '34000', 'cursor "rt_cur" does not exist', 'CLOSE ALL (part of DISCARD ALL) ends it');
RESET SESSION AUTHORIZATION;

-- 6. Tokens (PASETO v4.public): forged, tampered, expired, wrong role.
CREATE EXTENSION IF NOT EXISTS toms_test;
CREATE TEMP TABLE rt_keys AS
	SELECT 'rt-kid'::text AS kid, public_key, secret_key FROM toms_test.keypair();
CREATE TEMP TABLE rt_forger AS SELECT public_key, secret_key FROM toms_test.keypair();
INSERT INTO toms.trusted_keys (key_id, public_key) SELECT kid, public_key FROM rt_keys;
GRANT SELECT ON rt_keys, rt_forger TO PUBLIC;
CREATE TEMP TABLE rt_tok AS SELECT
	toms_test.mint_claims((SELECT secret_key FROM rt_keys), 'rt_a', 'mallory', '1 hour', 'rt-kid') AS good_a,
	toms_test.mint_claims((SELECT secret_key FROM rt_forger), 'rt_a', 'mallory', '1 hour', 'rt-kid') AS forged,
	toms_test.mint_claims((SELECT secret_key FROM rt_forger), 'rt_a', 'mallory', '1 hour', 'no-such-kid') AS unknown_kid,
	toms_test.mint_claims((SELECT secret_key FROM rt_keys), 'rt_a', 'mallory', '-1 hour', 'rt-kid') AS expired,
	toms_test.mint_claims((SELECT secret_key FROM rt_keys), 'rt_b', 'mallory', '1 hour', 'rt-kid') AS good_b;
GRANT SELECT ON rt_tok TO PUBLIC;
SELECT toms.clear_tenant();
SET SESSION AUTHORIZATION regress_rt_pool;
SELECT throws_ok(format('SELECT toms.enter_tenant(%L)', (SELECT forged FROM rt_tok)), '42501', 'token signature invalid',
	'token signed by an untrusted key under a trusted kid: refused');
SELECT throws_ok(format('SELECT toms.enter_tenant(%L)', (SELECT unknown_kid FROM rt_tok)), '42501', 'unknown key',
	'token with an unknown kid: refused');
SELECT throws_ok(format('SELECT toms.enter_tenant(%L)', (SELECT expired FROM rt_tok)), '42501', 'token expired',
	'expired token: refused');
-- tamper: swap the tenant of a validly signed token (re-encode the payload)
SELECT throws_ok(format('SELECT toms.enter_tenant(%L)',
	(SELECT replace(good_a, split_part(good_a, '.', 3),
		translate(encode(convert_to(replace(convert_from(substr(d, 1, length(d) - 64), 'UTF8'), '"rt_a"', '"rt_b"'), 'UTF8')
			|| substr(d, length(d) - 63), 'base64'), E'+/=\n', '-_'))
	   FROM rt_tok, LATERAL (SELECT decode(rpad(translate(split_part(good_a, '.', 3), '-_', '+/'),
			(length(split_part(good_a, '.', 3)) + 3) / 4 * 4, '='), 'base64') AS d) z)),
	'42501', 'token signature invalid', 'token whose tid was edited after signing: refused');
SELECT throws_ok(format('SET toms.context = %L; SELECT count(*) FROM rt.secrets', (SELECT forged FROM rt_tok)),
	'42501', 'token signature invalid', 'forged token through plain SET toms.context: refused where used');
SELECT throws_ok($$SELECT toms.enter_tenant('rt_a')$$, '42501', 'token malformed',
	'enter_tenant with a bare tenant id: refused');
RESET toms.context;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT throws_ok(format('SET toms.context = %L; SELECT count(*) FROM rt.secrets', (SELECT good_a FROM rt_tok)),
	'42501', 'role "regress_rt_eve" may not use tenant tokens', 'a valid token used by a role outside toms_app: refused');
RESET toms.context;
RESET SESSION AUTHORIZATION;
-- positive control: a good token does enter
SET SESSION AUTHORIZATION regress_rt_pool;
SELECT lives_ok(format('SELECT toms.enter_tenant(%L)', (SELECT good_b FROM rt_tok)),
	'positive control: a good token enters rt_b');
SELECT is((SELECT count(*) FROM rt.secrets WHERE secret LIKE 'A-%'), 0::bigint, '... and sees nothing of rt_a');
RESET toms.context;
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;
