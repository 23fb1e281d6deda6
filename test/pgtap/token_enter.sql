-- Tokens end to end: an application login role (member of toms_app) enters
-- a tenant with toms.enter_tenant(token) or SET LOCAL toms.context, and
-- every kind of bad token is refused with its reason (42501), without the
-- token in any error text.  session_user is what toms checks, so the cases
-- run under SET SESSION AUTHORIZATION and record their outcome in a table
-- that the assertions read afterwards.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
CREATE EXTENSION toms_test;
SELECT plan(25);

CREATE ROLE regress_tok_app LOGIN;
CREATE ROLE regress_tok_plain LOGIN;
GRANT toms_app TO regress_tok_app;
SELECT toms.create_tenant('acme-tok', 'Acme');
SELECT toms.create_tenant('other-tok', 'Other');

CREATE TEMP TABLE k AS
SELECT 'k1' AS name, * FROM toms_test.keypair(decode(repeat('11', 32), 'hex'))
UNION ALL SELECT 'k2', * FROM toms_test.keypair(decode(repeat('12', 32), 'hex'));
SELECT toms.trust_key('regress-tok-k1', public_key) FROM k WHERE name = 'k1';
CREATE FUNCTION pg_temp.sk(n text) RETURNS bytea LANGUAGE sql AS
	$$ SELECT secret_key FROM k WHERE name = n $$;

CREATE TEMP TABLE toks (label text PRIMARY KEY, tok text);
INSERT INTO toks VALUES
	('valid', toms_test.mint_claims(pg_temp.sk('k1'), 'acme-tok', 'alice@example.com', '1 hour', 'regress-tok-k1')),
	('valid other', toms_test.mint_claims(pg_temp.sk('k1'), 'other-tok', 'bob', '1 hour')),
	('expired', toms_test.mint_claims(pg_temp.sk('k1'), 'acme-tok', 'alice', '-1 minute', 'regress-tok-k1')),
	('unknown kid', toms_test.mint_claims(pg_temp.sk('k1'), 'acme-tok', 'alice', '1 hour', 'regress-tok-nope')),
	('untrusted key', toms_test.mint_claims(pg_temp.sk('k2'), 'acme-tok', 'alice', '1 hour')),
	('untrusted key, trusted kid', toms_test.mint_claims(pg_temp.sk('k2'), 'acme-tok', 'alice', '1 hour', 'regress-tok-k1')),
	('no such tenant', toms_test.mint_claims(pg_temp.sk('k1'), 'nope-tok', 'alice', '1 hour')),
	('no sub', toms_test.mint(pg_temp.sk('k1'),
		format('{"tid":"acme-tok","exp":"%s"}', toms_test.rfc3339(now() + interval '1 hour')))),
	('nbf in the future', toms_test.mint(pg_temp.sk('k1'),
		format('{"tid":"acme-tok","sub":"a","exp":"%s","nbf":"%s"}', toms_test.rfc3339(now() + interval '2 hours'),
			   toms_test.rfc3339(now() + interval '1 hour'))));
-- one payload character changed (not the last one: the encoding stays canonical)
INSERT INTO toks SELECT 'tampered', 'v4.public.' || left(b, 19) ||
	CASE WHEN substr(b, 20, 1) = 'A' THEN 'B' ELSE 'A' END || substr(b, 21) || '.' || split_part(tok, '.', 4)
  FROM (SELECT tok, split_part(tok, '.', 3) AS b FROM toks WHERE label = 'valid') x;
INSERT INTO toks SELECT 'v4.local', 'v4.local.' || split_part(tok, '.', 3) FROM toks WHERE label = 'valid';
INSERT INTO toks SELECT 'truncated', left(tok, 60) FROM toks WHERE label = 'valid';

-- run sql with the token bound as $1 (never spliced into the statement);
-- then toms.current_tenant() (which verifies the context where it is used):
-- 'ok <tenant> <actor>' or every text of the error
CREATE FUNCTION pg_temp.try(sql text, tok text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	m text; s text; d text; h text; c text;
BEGIN
	EXECUTE sql USING tok;
	RETURN 'ok ' || coalesce(toms.current_tenant(), '-') || ' ' || coalesce(toms.current_actor(), '-');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
		h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
	RETURN concat_ws(' | ', s || ': ' || m, nullif(d, ''), nullif(h, ''), nullif(c, ''));
END
$$;
CREATE TEMP TABLE r (label text, how text, full_text text,
	outcome text GENERATED ALWAYS AS (split_part(full_text, ' | ', 1)) STORED);
GRANT SELECT ON toks TO PUBLIC;
GRANT INSERT ON r TO PUBLIC;

SET SESSION AUTHORIZATION regress_tok_app;
INSERT INTO r (label, how, full_text) SELECT label, 'enter_tenant', pg_temp.try('SELECT toms.enter_tenant($1, true)', tok) FROM toks;
SELECT toms.clear_tenant();
INSERT INTO r (label, how, full_text) SELECT label, 'set local', pg_temp.try('SELECT set_config(''toms.context'', $1, true)', tok) FROM toks;
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;

SELECT is((SELECT outcome FROM r WHERE label = 'valid' AND how = 'enter_tenant'), 'ok acme-tok alice@example.com',
	'enter_tenant(valid token): tenant from tid, actor from sub');
SELECT is((SELECT outcome FROM r WHERE label = 'valid' AND how = 'set local'), 'ok acme-tok alice@example.com',
	'SET LOCAL toms.context = valid token: same, verified where used');
SELECT is((SELECT outcome FROM r WHERE label = 'valid other' AND how = 'enter_tenant'), 'ok other-tok bob',
	'a token without kid verifies against the trusted keys');
SELECT is((SELECT outcome FROM r WHERE label = 'expired' AND how = 'enter_tenant'), '42501: token expired', 'expired');
SELECT is((SELECT outcome FROM r WHERE label = 'unknown kid' AND how = 'enter_tenant'), '42501: unknown key', 'unknown kid');
SELECT is((SELECT outcome FROM r WHERE label = 'untrusted key' AND how = 'enter_tenant'),
	'42501: token signature invalid', 'signed by an untrusted key');
SELECT is((SELECT outcome FROM r WHERE label = 'untrusted key, trusted kid' AND how = 'enter_tenant'),
	'42501: token signature invalid', 'signed by an untrusted key naming a trusted kid');
SELECT is((SELECT outcome FROM r WHERE label = 'tampered' AND how = 'enter_tenant'),
	'42501: token signature invalid', 'tampered');
SELECT is((SELECT outcome FROM r WHERE label = 'no sub' AND how = 'enter_tenant'), '42501: token claims invalid', 'no sub claim');
SELECT is((SELECT outcome FROM r WHERE label = 'nbf in the future' AND how = 'enter_tenant'),
	'42501: token not yet valid', 'nbf in the future');
SELECT alike((SELECT outcome FROM r WHERE label = 'v4.local' AND how = 'enter_tenant'), '42501: token malformed%', 'v4.local');
SELECT alike((SELECT outcome FROM r WHERE label = 'truncated' AND how = 'enter_tenant'), '42501: token malformed%', 'truncated');
SELECT is((SELECT outcome FROM r WHERE label = 'no such tenant' AND how = 'enter_tenant'),
	'42501: tenant "nope-tok" does not exist', 'a valid token for a tenant that does not exist');
SELECT is((SELECT count(*) FROM r WHERE how = 'set local' AND outcome LIKE 'ok %'), 2::bigint,
	'SET LOCAL toms.context: only the two good tokens give a context');
SELECT is((SELECT count(*) FROM r WHERE how = 'set local' AND outcome NOT LIKE 'ok %' AND outcome NOT LIKE '42501: %'), 0::bigint,
	'SET LOCAL toms.context: every bad token is a 42501 where it is used');
SELECT is((SELECT count(*) FROM r r1 JOIN toks t USING (label)
			WHERE position(split_part(t.tok, '.', 3) IN r1.full_text) > 0
			   OR (split_part(t.tok, '.', 4) <> '' AND position(split_part(t.tok, '.', 4) IN r1.full_text) > 0)
			   OR position(right(split_part(t.tok, '.', 3), 40) IN r1.full_text) > 0), 0::bigint,
	'no outcome (message, detail, hint, context) contains a token body, signature or footer');

-- a role outside toms_app cannot use tokens at all
TRUNCATE r;
SET SESSION AUTHORIZATION regress_tok_plain;
INSERT INTO r (label, how, full_text) SELECT label, 'enter_tenant', pg_temp.try('SELECT toms.enter_tenant($1, true)', tok) FROM toks WHERE label = 'valid';
INSERT INTO r (label, how, full_text) SELECT label, 'set local', pg_temp.try('SELECT set_config(''toms.context'', $1, true)', tok) FROM toks WHERE label = 'valid';
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT is((SELECT outcome FROM r WHERE how = 'enter_tenant'), '42501: permission denied for function enter_tenant',
	'enter_tenant is for toms_app only');
SELECT alike((SELECT outcome FROM r WHERE how = 'set local'), '42501: role "regress_tok_plain" may not use tenant tokens%',
	'a token in toms.context from a role outside toms_app is refused where used');

-- in a parallel worker: current_tenant() is parallel safe, so with
-- force_parallel_mode a worker verifies the token itself (with the
-- leader's snapshot); the plan shows that a worker ran it
CREATE FUNCTION pg_temp.try_parallel(tok text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text; launched text := '?'; t text; m text; c text;
BEGIN
	PERFORM set_config('toms.context', tok, true);
	FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT toms.current_tenant()' LOOP
		IF line ~ 'Workers Launched' THEN launched := btrim(line); END IF;
	END LOOP;
	EXECUTE 'SELECT toms.current_tenant()' INTO t;
	RETURN 'ok ' || t || ' | ' || launched;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, c = PG_EXCEPTION_CONTEXT;
	RETURN SQLSTATE || ': ' || m || ' | ' || launched || ' | ' || c;
END
$$;
TRUNCATE r;
SET LOCAL force_parallel_mode = on;
SET SESSION AUTHORIZATION regress_tok_app;
INSERT INTO r (label, how, full_text) SELECT 'parallel valid', 'set local', pg_temp.try_parallel(tok)
  FROM toks WHERE label = 'valid';
INSERT INTO r (label, how, full_text) SELECT 'parallel expired', 'set local', pg_temp.try_parallel(tok)
  FROM toks WHERE label = 'expired';
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
RESET force_parallel_mode;
SELECT is((SELECT outcome FROM r WHERE label = 'parallel expired'), '42501: token expired',
	'force_parallel_mode: an expired token is refused');
SELECT alike((SELECT full_text FROM r WHERE label = 'parallel expired'), '%parallel worker%',
	'force_parallel_mode: ... and it was a parallel worker that verified it');
SELECT is((SELECT full_text FROM r WHERE label = 'parallel valid'), 'ok acme-tok | Workers Launched: 1',
	'force_parallel_mode: a worker verifies a valid token and enters its tenant');

-- distrusting a key ends the contexts entered with it, at the next use
TRUNCATE r;
SET SESSION AUTHORIZATION regress_tok_app;
INSERT INTO r (label, how, full_text) SELECT 'before', 'enter_tenant', pg_temp.try('SELECT toms.enter_tenant($1)', tok) FROM toks WHERE label = 'valid';
RESET SESSION AUTHORIZATION;
SELECT toms.distrust_key('regress-tok-k1');
SET SESSION AUTHORIZATION regress_tok_app;
INSERT INTO r (label, how, full_text) SELECT 'after', 'current_tenant', pg_temp.try('SELECT toms.current_tenant()', NULL);
INSERT INTO r (label, how, full_text) SELECT 'after, kid', 'enter_tenant', pg_temp.try('SELECT toms.enter_tenant($1)', tok) FROM toks WHERE label = 'valid';
INSERT INTO r (label, how, full_text) SELECT 'after, no kid', 'enter_tenant', pg_temp.try('SELECT toms.enter_tenant($1)', tok) FROM toks WHERE label = 'valid other';
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT is((SELECT outcome FROM r WHERE label = 'before'), 'ok acme-tok alice@example.com', 'entered with the key trusted');
SELECT alike((SELECT outcome FROM r WHERE label = 'after'), '42501: unknown key%', 'after distrust_key: the context no longer verifies');
SELECT is((SELECT outcome FROM r WHERE label = 'after, kid'), '42501: unknown key', 'after distrust_key: token with its kid refused');
SELECT is((SELECT outcome FROM r WHERE label = 'after, no kid'), '42501: unknown key', 'after distrust_key: no key left, token without kid refused');

SELECT * FROM finish();
ROLLBACK;
