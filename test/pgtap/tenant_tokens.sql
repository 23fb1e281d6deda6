-- Entering tenants with PASETO v4.public tokens: enter_tenant, SET LOCAL
-- toms.context, and every way a token is refused, including in a session
-- that has the context cached.
BEGIN;
SELECT plan(28);

CREATE EXTENSION toms_test;
SET client_min_messages = warning;
CREATE ROLE regress_pool LOGIN IN ROLE toms_app;
CREATE ROLE regress_nopool LOGIN;
RESET client_min_messages;
CREATE TEMP TABLE k AS
	SELECT 'idp' AS name, * FROM toms_test.keypair(decode(repeat('11', 32), 'hex'))
	UNION ALL SELECT 'rogue', * FROM toms_test.keypair(decode(repeat('22', 32), 'hex'));
GRANT SELECT ON k TO PUBLIC;
SELECT toms.trust_key('regress-idp', (SELECT public_key FROM k WHERE name = 'idp'));
SELECT toms.create_tenant('tok_a', 'A'), toms.create_tenant('tok_b', 'B'), toms.create_tenant('tok_gone', 'Gone');
UPDATE toms.tenants SET status = 'deleting' WHERE tenant = 'tok_gone';

CREATE TABLE regress_tok_rows (tenant_id text NOT NULL, v text);
GRANT SELECT, INSERT ON regress_tok_rows TO regress_pool, regress_nopool;
SELECT toms.protect('regress_tok_rows');
INSERT INTO regress_tok_rows VALUES ('tok_a', 'a1'), ('tok_b', 'b1'), ('tok_b', 'b2');

CREATE FUNCTION pg_temp.tok(tid text, sub text, valid_for interval, kid text DEFAULT 'regress-idp', signer text DEFAULT 'idp')
	RETURNS text LANGUAGE sql AS
	$$ SELECT toms_test.mint_claims((SELECT secret_key FROM k WHERE name = signer), tid, sub, valid_for, kid) $$;
CREATE TEMP TABLE t AS SELECT
	pg_temp.tok('tok_a', 'user-17@acme', '1 hour') AS good_a,
	pg_temp.tok('tok_b', 'user-99@globex', '1 hour') AS good_b,
	pg_temp.tok('tok_a', 'u', '-1 hour') AS expired,
	pg_temp.tok('tok_a', 'u', '1 hour', 'regress-nokey') AS unknown_kid,
	pg_temp.tok('tok_a', 'u', '1 hour', 'regress-idp', 'rogue') AS forged,
	pg_temp.tok('tok_a', 'u', '1 hour', NULL, 'rogue') AS forged_nokid,
	pg_temp.tok('tok_gone', 'u', '1 hour') AS gone,
	pg_temp.tok('tok_nosuch', 'u', '1 hour') AS nosuch,
	toms_test.mint((SELECT secret_key FROM k WHERE name = 'idp'), '{"tid":"tok_a","exp":"2099-01-01T00:00:00Z"}', '{"kid":"regress-idp"}') AS no_sub,
	pg_temp.tok('tok_a', 'u', '3 seconds') AS short;
GRANT SELECT ON t TO PUBLIC;
-- a token with one payload character changed (signature no longer matches)
CREATE TEMP TABLE t2 AS SELECT
	overlay(good_a placing CASE WHEN substr(good_a, 20, 1) = 'A' THEN 'B' ELSE 'A' END from 20 for 1) AS tampered
	FROM t;
GRANT SELECT ON t2 TO PUBLIC;
CREATE TEMP TABLE texp AS SELECT (toms.inspect_token(short)).expires AS e FROM t;
GRANT SELECT ON texp TO PUBLIC;

SET SESSION AUTHORIZATION regress_pool;
SELECT lives_ok($$SELECT toms.enter_tenant((SELECT good_a FROM t))$$, 'enter_tenant with a valid token');
SELECT is(toms.current_tenant(), 'tok_a', 'tenant from the tid claim');
SELECT is(toms.current_actor(), 'user-17@acme', 'actor from the sub claim');
SELECT results_eq('SELECT v FROM regress_tok_rows ORDER BY v', ARRAY['a1'], 'sees its tenant''s rows only');
SELECT lives_ok($$INSERT INTO regress_tok_rows (v) VALUES ('a2')$$, 'writes get the token''s tenant');
SELECT throws_ok($$INSERT INTO regress_tok_rows VALUES ('tok_b', 'x')$$, '42501', 'new row violates row-level security policy for table "regress_tok_rows"', 'cannot write into another tenant');

-- SET LOCAL: the form that travels to Citus workers
SELECT lives_ok($$SELECT set_config('toms.context', (SELECT good_b FROM t), true)$$, 'set the token as a plain setting');
SELECT results_eq('SELECT v FROM regress_tok_rows ORDER BY v', ARRAY['b1', 'b2'], 'SET toms.context = token works like enter_tenant');
SELECT is(toms.current_actor(), 'user-99@globex', 'actor follows the token');

-- refusals, each naming the problem
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT expired FROM t))$$, '42501', 'token expired', 'expired token');
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT tampered FROM t2))$$, '42501', 'token signature invalid', 'tampered token');
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT forged FROM t))$$, '42501', 'token signature invalid', 'token signed by another key under a trusted kid');
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT forged_nokid FROM t))$$, '42501', 'token signature invalid', 'token signed by an untrusted key, no kid');
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT unknown_kid FROM t))$$, '42501', 'unknown key', 'unknown kid');
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT gone FROM t))$$, '42501', 'tenant "tok_gone" is not active', 'tenant in deletion');
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT nosuch FROM t))$$, '42501', 'tenant "tok_nosuch" does not exist', 'unknown tenant');
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT no_sub FROM t))$$, '42501', 'token claims invalid', 'missing sub claim');
SELECT throws_ok($$SELECT toms.enter_tenant('tok_a')$$, '42501', 'token malformed', 'a bare tenant id is no token');
SET toms.context = 'v4.public.AAAA';
SELECT throws_ok('SELECT count(*) FROM regress_tok_rows', '42501', 'token malformed', 'garbage in the setting is refused where used');

-- the cache never outlives exp ...
SELECT toms.enter_tenant((SELECT short FROM t));
SELECT is(toms.current_tenant(), 'tok_a', 'short-lived token works while valid');
DO $$ BEGIN
	WHILE clock_timestamp() <= (SELECT e FROM texp) LOOP
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;
SELECT throws_ok('SELECT count(*) FROM regress_tok_rows', '42501', 'token expired', 'cached context refused once exp passes');

-- ... nor a distrusted key
SELECT toms.enter_tenant((SELECT good_a FROM t));
RESET SESSION AUTHORIZATION;
SELECT toms.distrust_key('regress-idp');
SET SESSION AUTHORIZATION regress_pool;
SELECT throws_ok('SELECT count(*) FROM regress_tok_rows', '42501', 'unknown key', 'cached context refused after distrust_key');
RESET SESSION AUTHORIZATION;
SELECT toms.trust_key('regress-idp', (SELECT public_key FROM k WHERE name = 'idp'));

-- only toms_app members use tokens
SET SESSION AUTHORIZATION regress_nopool;
SELECT throws_ok($$SELECT toms.enter_tenant((SELECT good_a FROM t))$$, '42501', 'permission denied for function enter_tenant', 'enter_tenant is for toms_app');
SELECT set_config('toms.context', (SELECT good_a FROM t), false);
SELECT throws_ok('SELECT count(*) FROM regress_tok_rows', '42501', 'role "regress_nopool" may not use tenant tokens', 'a stolen token does not work for other roles');
RESET toms.context;
RESET SESSION AUTHORIZATION;

-- no refusal carries the token: what the client gets back (message,
-- detail, hint, context) for each refused token, through enter_tenant and
-- through the setting where used, holds neither the token nor the start
-- (claims) or the end (signature) of its body
CREATE FUNCTION pg_temp.refusal(how text, tok text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	m text; d text; h text; c text;
BEGIN
	IF how = 'enter_tenant' THEN
		PERFORM toms.enter_tenant(tok);
	ELSE
		PERFORM set_config('toms.context', tok, true);
		PERFORM count(*) FROM regress_tok_rows;
	END IF;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
	RETURN concat_ws(' | ', m, d, h, c);
END $$;
CREATE TEMP TABLE bad AS
SELECT v.* FROM t, t2, LATERAL (VALUES ('regress_pool', 'expired', expired), ('regress_pool', 'tampered', tampered),
	('regress_pool', 'forged', forged), ('regress_pool', 'forged_nokid', forged_nokid),
	('regress_pool', 'unknown_kid', unknown_kid), ('regress_pool', 'gone', gone),
	('regress_pool', 'nosuch', nosuch), ('regress_pool', 'no_sub', no_sub),
	('regress_nopool', 'good_a', good_a)) AS v(who, name, tok);
CREATE TEMP TABLE said (who text, name text, tok text, how text, said text);
GRANT SELECT ON bad TO PUBLIC;
GRANT INSERT ON said TO PUBLIC;
SET SESSION AUTHORIZATION regress_pool;
INSERT INTO said SELECT who, name, tok, how, pg_temp.refusal(how, tok)
  FROM bad, (VALUES ('enter_tenant'), ('setting')) AS h(how)
 WHERE who = 'regress_pool';
SET SESSION AUTHORIZATION regress_nopool;
INSERT INTO said SELECT who, name, tok, 'setting', pg_temp.refusal('setting', tok)
  FROM bad WHERE who = 'regress_nopool';
RESET SESSION AUTHORIZATION;
SELECT is((SELECT string_agg(name || ': ' || coalesce(e.said, 'accepted') || ' / ' || coalesce(s.said, 'accepted'), ', ' ORDER BY name)
			 FROM said e JOIN said s USING (who, name, tok)
			WHERE e.how = 'enter_tenant' AND s.how = 'setting'
			  AND (e.said IS NULL OR s.said IS NULL OR split_part(e.said, ' | ', 1) <> split_part(s.said, ' | ', 1))), NULL,
	'every bad token is refused, with the same message through enter_tenant and the setting');
SELECT is((SELECT split_part(said, ' | ', 1) FROM said WHERE who = 'regress_nopool'), 'role "regress_nopool" may not use tenant tokens',
	'... and a good token used by a role outside toms_app');
SELECT is((SELECT string_agg(name || ' ' || how || ': ' || said, E'\n' ORDER BY name, how) FROM said
			WHERE strpos(said, tok) > 0
			   OR strpos(said, left(split_part(tok, '.', 3), 16)) > 0
			   OR strpos(said, right(split_part(tok, '.', 3), 16)) > 0), NULL,
	'no refusal carries the token or a part of its claims or signature');
SELECT is((SELECT count(*)::int FROM regress_tok_rows), 4, 'superuser count: the refused attempts wrote nothing');

SELECT toms.unprotect('regress_tok_rows');
SELECT * FROM finish();
ROLLBACK;
