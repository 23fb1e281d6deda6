-- No error, detail, hint or context that toms raises about a token contains
-- the token, its signature or its footer; toms_token_verify gives only its
-- static reasons (the token is a bearer credential until it expires).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
CREATE EXTENSION toms_test;
SELECT plan(9);

CREATE TEMP TABLE k AS
SELECT * FROM toms_test.keypair(decode(repeat('07', 32), 'hex'));
CREATE TEMP TABLE t AS
SELECT toms_test.mint_claims(secret_key, 'acme', 'alice', '1 hour', 'regress-msg') AS tok FROM k;
CREATE FUNCTION pg_temp.b64d(s text) RETURNS bytea LANGUAGE sql AS
	$$ SELECT decode(rpad(translate(s, '-_', '+/'), (length(s) + 3) / 4 * 4, '='), 'base64') $$;
CREATE FUNCTION pg_temp.b64e(b bytea) RETURNS text LANGUAGE sql AS
	$$ SELECT translate(rtrim(replace(encode(b, 'base64'), E'\n', ''), '='), '+/', '-_') $$;

-- every error text of running sql with bind parameters a, b (as an
-- application would: a literal token in the statement text would be shown
-- in the context by PostgreSQL itself), concatenated
CREATE FUNCTION pg_temp.error_texts(sql text, a text, b bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	m text; d text; h text; c text;
BEGIN
	EXECUTE sql USING a, b;
	RETURN '(no error)';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
		h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
	RETURN concat_ws(' | ', m, d, h, c);
END
$$;
-- does text contain any 12-character piece of secret (base64url) or hex?
CREATE FUNCTION pg_temp.leaks(txt text, secret text) RETURNS boolean LANGUAGE sql AS $$
	SELECT EXISTS (SELECT 1 FROM generate_series(1, greatest(length(secret) - 11, 1)) i
				    WHERE position(substr(secret, i, 12) IN txt) > 0)
$$;

-- the pieces: body (payload || signature), signature alone, footer
CREATE TEMP TABLE p AS
SELECT split_part(tok, '.', 3) AS body,
	   pg_temp.b64e(substr(pg_temp.b64d(split_part(tok, '.', 3)),
			length(pg_temp.b64d(split_part(tok, '.', 3))) - 63)) AS sig_b64,
	   encode(substr(pg_temp.b64d(split_part(tok, '.', 3)),
			length(pg_temp.b64d(split_part(tok, '.', 3))) - 63), 'hex') AS sig_hex,
	   split_part(tok, '.', 4) AS foot
  FROM t;

-- bad tokens made from the good one, and the errors verify_token gives
CREATE TEMP TABLE errs AS
SELECT label, pg_temp.error_texts('SELECT toms.verify_token($1, $2)', bad, pk) AS txt
  FROM (SELECT public_key AS pk FROM k) kk,
	   (SELECT 'wrong key' AS label, tok AS bad FROM t
		UNION ALL SELECT 'tampered', 'v4.public.' || translate(body, 'abc', 'bca') || '.' || foot FROM p
		UNION ALL SELECT 'bad base64', 'v4.public.' || body || '=.' || foot FROM p
		UNION ALL SELECT 'v4.local', 'v4.local.' || body || '.' || foot FROM p
		UNION ALL SELECT 'too long', 'v4.public.' || repeat(body, 40) FROM p) b;
UPDATE errs SET txt = pg_temp.error_texts('SELECT toms.verify_token($1, $2)',
		(SELECT tok FROM t), decode(repeat('42', 32), 'hex'))
 WHERE label = 'wrong key';

SELECT is((SELECT count(*) FROM errs WHERE txt <> '(no error)'), 5::bigint, 'every bad token raised an error');
SELECT ok(NOT bool_or(pg_temp.leaks(txt, body)), 'no error text contains a piece of the token body')
  FROM errs, p;
SELECT ok(NOT bool_or(pg_temp.leaks(txt, sig_b64)), 'no error text contains a piece of the signature (base64url)')
  FROM errs, p;
SELECT ok(NOT bool_or(pg_temp.leaks(txt, sig_hex)), 'no error text contains a piece of the signature (hex)')
  FROM errs, p;
SELECT ok(NOT bool_or(pg_temp.leaks(txt, foot)), 'no error text contains a piece of the footer')
  FROM errs, p;
-- the leak detector itself works
SELECT ok(pg_temp.leaks('xx' || substr(body, 20, 12) || 'yy', body), 'leak detector finds a piece of the body')
  FROM p;

-- toms_token_verify's reasons are from the fixed list
SELECT toms.trust_key('regress-msg', public_key) FROM k;
SELECT set_eq(
	$$SELECT DISTINCT (toms.inspect_token(bad)).reason FROM (
		SELECT tok || 'x' AS bad FROM t
		UNION ALL SELECT 'v4.public.' || translate(body, 'abc', 'bca') || '.' || foot FROM p
		UNION ALL SELECT toms_test.mint_claims(secret_key, 'acme', 'alice', '-1 hour', 'regress-msg') FROM k
		UNION ALL SELECT toms_test.mint_claims(secret_key, 'acme', 'alice', '1 hour', 'regress-other') FROM k
		UNION ALL SELECT toms_test.mint(secret_key, '{"tid":"acme"}', '{"kid":"regress-msg"}') FROM k
		UNION ALL SELECT toms_test.mint(secret_key, format('{"tid":"a","sub":"b","exp":"2999-01-01T00:00:00Z","nbf":"%s"}',
			toms_test.rfc3339(now() + interval '1 day')), '{"kid":"regress-msg"}') FROM k) x$$,
	ARRAY['token malformed', 'token signature invalid', 'token expired', 'unknown key',
		  'token claims invalid', 'token not yet valid'],
	'inspect_token reasons are exactly the static reasons');
SELECT is((SELECT reason FROM toms.inspect_token((SELECT tok FROM t))), NULL, 'the good token verifies');
SELECT ok(NOT pg_temp.leaks(
	pg_temp.error_texts('SELECT toms.trust_key($1, $2)', 'regress-msg', decode(repeat('42', 32), 'hex')),
	repeat('42', 32)), 'trust_key errors do not echo the key material');

SELECT * FROM finish();
ROLLBACK;
