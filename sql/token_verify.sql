-- toms_token_verify() (through the toms.inspect_token diagnostic): strict
-- token syntax, tampering, keys, claims.  Tokens are minted by the
-- TEST-ONLY extension toms_test with deterministic keys.
CREATE EXTENSION toms_test;
SET client_min_messages = warning;

CREATE TEMP TABLE k AS
SELECT 'k1' AS name, * FROM toms_test.keypair(decode(repeat('01', 32), 'hex'))
UNION ALL
SELECT 'k2', * FROM toms_test.keypair(decode(repeat('02', 32), 'hex'));
CREATE FUNCTION pg_temp.sk(n text) RETURNS bytea LANGUAGE sql AS
	$$ SELECT secret_key FROM k WHERE name = n $$;
CREATE FUNCTION pg_temp.ts(i interval) RETURNS text LANGUAGE sql AS
	$$ SELECT toms_test.rfc3339(now() + i) $$;
-- claims: tid, sub, exp = now + 1 hour, merged with (and overridden by) extra
CREATE FUNCTION pg_temp.claims(extra jsonb DEFAULT '{}') RETURNS text LANGUAGE sql AS
	$$ SELECT (jsonb_build_object('tid', 'acme', 'sub', 'alice@example.com',
			'exp', pg_temp.ts('1 hour')) || extra)::text $$;
-- unpadded base64url, both ways
CREATE FUNCTION pg_temp.b64e(b bytea) RETURNS text LANGUAGE sql AS
	$$ SELECT translate(rtrim(replace(encode(b, 'base64'), E'\n', ''), '='), '+/', '-_') $$;
CREATE FUNCTION pg_temp.b64d(s text) RETURNS bytea LANGUAGE sql AS
	$$ SELECT decode(rpad(translate(s, '-_', '+/'), (length(s) + 3) / 4 * 4, '='), 'base64') $$;
-- flip one bit of byte pos (1-based; negative counts from the end)
CREATE FUNCTION pg_temp.flip(b bytea, pos int) RETURNS bytea LANGUAGE sql AS
	$$ SELECT set_byte(b, p, get_byte(b, p) # 1)
		 FROM (SELECT CASE WHEN pos > 0 THEN pos - 1 ELSE length(b) + pos END AS p) x $$;

SELECT toms.trust_key('regress-k1', public_key) FROM k WHERE name = 'k1';

CREATE TEMP TABLE good AS
SELECT toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), '{"kid":"regress-k1"}') AS tok;
-- the body is "v4.public." || b64url(m || sig), the footer part follows
CREATE TEMP TABLE parts AS
SELECT split_part(tok, '.', 3) AS body, split_part(tok, '.', 4) AS foot FROM good;

CREATE TEMP TABLE cases (n serial, label text, tok text);
INSERT INTO cases (label, tok)
-- well-formed
SELECT 'valid, kid in footer', tok FROM good
UNION ALL SELECT 'valid, no footer: each trusted key tried',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims())
UNION ALL SELECT 'valid, footer not JSON: no kid',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), 'just a footer')
UNION ALL SELECT 'valid, footer JSON without kid',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), '{"v":[1,{"a":null}],"w":"x"}')
UNION ALL SELECT 'valid, kid escaped in footer',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), '{"k\u0069d":"regress\u002dk1"}')
UNION ALL SELECT 'valid, extra claims ignored',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"aud":"x","jti":["a"],"n":1}'))
UNION ALL SELECT 'valid, nbf within the clock skew',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(jsonb_build_object('nbf', pg_temp.ts('10 seconds'))))
UNION ALL SELECT 'valid, nbf and iat in the past',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(jsonb_build_object('nbf', pg_temp.ts('-1 minute'),
		'iat', pg_temp.ts('-1 minute'))))
UNION ALL SELECT 'valid, exp with fraction and offset',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(jsonb_build_object('exp', '2999-01-01T01:00:00.123456+01:00')))
-- malformed
UNION ALL SELECT 'empty', ''
UNION ALL SELECT 'header only', 'v4.public.'
UNION ALL SELECT 'v4.local header', 'v4.local.' || body FROM parts
UNION ALL SELECT 'v3.public header', 'v3.public.' || body FROM parts
UNION ALL SELECT 'upper-case header', 'V4.PUBLIC.' || body FROM parts
UNION ALL SELECT 'leading space', ' ' || tok FROM good
UNION ALL SELECT 'trailing newline', tok || E'\n' FROM good
UNION ALL SELECT 'standard base64 char +', 'v4.public.+' || substr(body, 2) FROM parts
UNION ALL SELECT 'standard base64 char /', 'v4.public./' || substr(body, 2) FROM parts
UNION ALL SELECT 'padding =', 'v4.public.' || body || '=' FROM parts
UNION ALL SELECT 'whitespace in body', 'v4.public.' || substr(body, 1, 8) || ' ' || substr(body, 9) FROM parts
UNION ALL SELECT 'non-canonical trailing bits (4 spare)',
	'v4.public.' || left(b, length(b) - 1) || translate(right(b, 1), 'AQgw', 'BRhx')
  FROM (SELECT split_part(toms_test.mint(pg_temp.sk('k1'),
		'{"tid":"acme","sub":"alice","exp":"2999-01-01T00:00:00Z"}'), '.', 3) AS b) x
UNION ALL SELECT 'non-canonical trailing bits (2 spare)',
	'v4.public.' || left(b, length(b) - 1) || translate(right(b, 1), 'AEIMQUYcgkosw048', 'BFJNRVZdhlptx159')
  FROM (SELECT split_part(toms_test.mint(pg_temp.sk('k1'),
		'{"tid":"acme","sub":"alice","exp":"2999-01-01T00:00:00Z","p":""}'), '.', 3) AS b) x
UNION ALL SELECT 'canonical control (4 spare)',
	toms_test.mint(pg_temp.sk('k1'), '{"tid":"acme","sub":"alice","exp":"2999-01-01T00:00:00Z"}')
UNION ALL SELECT 'canonical control (2 spare)',
	toms_test.mint(pg_temp.sk('k1'), '{"tid":"acme","sub":"alice","exp":"2999-01-01T00:00:00Z","p":""}')
UNION ALL SELECT 'truncated below a signature', 'v4.public.' || left(body, 80) FROM parts
UNION ALL SELECT 'truncated by 4 characters', 'v4.public.' || left(body, length(body) - 4) FROM parts
UNION ALL SELECT 'truncated by 1 character', 'v4.public.' || left(body, length(body) - 1) FROM parts
UNION ALL SELECT 'empty footer part', 'v4.public.' || body || '.' FROM parts
UNION ALL SELECT 'third dot', tok || '.e30' FROM good
UNION ALL SELECT 'too long (8193 bytes)',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(jsonb_build_object('pad', repeat('x', 9000))))
UNION ALL SELECT 'footer JSON malformed',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), '{"kid":"regress-k1"')
UNION ALL SELECT 'footer with two kids',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), '{"kid":"regress-k1","kid":"regress-k1"}')
UNION ALL SELECT 'footer kid not a string',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), '{"kid":1}')
-- tampering and keys
UNION ALL SELECT 'tampered payload',
	'v4.public.' || pg_temp.b64e(pg_temp.flip(pg_temp.b64d(body), 5)) || '.' || foot FROM parts
UNION ALL SELECT 'tampered signature',
	'v4.public.' || pg_temp.b64e(pg_temp.flip(pg_temp.b64d(body), -1)) || '.' || foot FROM parts
UNION ALL SELECT 'tampered footer (kid kept)',
	'v4.public.' || body || '.' || pg_temp.b64e(convert_to('{"kid":"regress-k1","x":1}', 'UTF8')) FROM parts
UNION ALL SELECT 'footer stripped',
	'v4.public.' || body FROM parts
UNION ALL SELECT 'signed by another key, kid of a trusted one',
	toms_test.mint(pg_temp.sk('k2'), pg_temp.claims(), '{"kid":"regress-k1"}')
UNION ALL SELECT 'signed by another key, no kid',
	toms_test.mint(pg_temp.sk('k2'), pg_temp.claims())
UNION ALL SELECT 'unknown kid',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), '{"kid":"regress-nope"}')
UNION ALL SELECT 'kid longer than any key_id',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), jsonb_build_object('kid', repeat('k', 129))::text)
UNION ALL SELECT 'implicit assertion toms does not use',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(), '', 'some-assertion')
-- time
UNION ALL SELECT 'expired', toms_test.mint_claims(pg_temp.sk('k1'), 'acme', 'alice', '-1 second')
UNION ALL SELECT 'nbf in the future',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(jsonb_build_object('nbf', pg_temp.ts('1 hour'))))
UNION ALL SELECT 'iat in the future',
	toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(jsonb_build_object('iat', pg_temp.ts('1 hour'))))
-- claims
UNION ALL SELECT 'no tid', toms_test.mint(pg_temp.sk('k1'), (pg_temp.claims()::jsonb - 'tid')::text)
UNION ALL SELECT 'no sub', toms_test.mint(pg_temp.sk('k1'), (pg_temp.claims()::jsonb - 'sub')::text)
UNION ALL SELECT 'no exp', toms_test.mint(pg_temp.sk('k1'), (pg_temp.claims()::jsonb - 'exp')::text)
UNION ALL SELECT 'empty tid', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"tid":""}'))
UNION ALL SELECT 'tid too long', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims(jsonb_build_object('tid', repeat('t', 129))))
UNION ALL SELECT 'tid not a string', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"tid":42}'))
UNION ALL SELECT 'tid an object', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"tid":{"x":"acme"}}'))
UNION ALL SELECT 'sub with a control character', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"sub":"a\nb"}'))
UNION ALL SELECT 'duplicate tid', toms_test.mint(pg_temp.sk('k1'),
	'{"tid":"acme","sub":"alice","exp":"2999-01-01T00:00:00Z","tid":"other"}')
UNION ALL SELECT 'exp a number', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"exp":32503680000}'))
UNION ALL SELECT 'exp without zone', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"exp":"2999-01-01T00:00:00"}'))
UNION ALL SELECT 'exp month 13', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"exp":"2999-13-01T00:00:00Z"}'))
UNION ALL SELECT 'exp 30 February', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"exp":"2999-02-30T00:00:00Z"}'))
UNION ALL SELECT 'exp as a date only', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"exp":"2999-01-01"}'))
UNION ALL SELECT 'nbf malformed', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"nbf":"yesterday"}'))
UNION ALL SELECT 'payload not JSON', toms_test.mint(pg_temp.sk('k1'), 'tid=acme')
UNION ALL SELECT 'payload a JSON array', toms_test.mint(pg_temp.sk('k1'), '[' || pg_temp.claims() || ']')
UNION ALL SELECT 'payload nested 40 deep',
	toms_test.mint(pg_temp.sk('k1'), rtrim(pg_temp.claims(), '}') || ',"d":' || repeat('[', 40) || repeat(']', 40) || '}')
UNION ALL SELECT 'payload with \u0000', toms_test.mint(pg_temp.sk('k1'), pg_temp.claims('{"x":"a"}')::text)
;
-- the last case: an escaped NUL, which PostgreSQL text cannot hold
UPDATE cases SET tok = toms_test.mint(pg_temp.sk('k1'),
	rtrim(pg_temp.claims(), '}') || ', "x": "a\u0000b"}') WHERE label = 'payload with \u0000';

-- the length limit, exactly: payload || signature of 6136 bytes encodes to
-- 8182 characters, so the token has 8192 bytes; one byte more is too long
INSERT INTO cases (label, tok)
SELECT 'exactly 8192 bytes', toms_test.mint(pg_temp.sk('k1'),
	pg_temp.claims(jsonb_build_object('pad', repeat('x', 6072 - length(pg_temp.claims('{"pad":""}'))))))
UNION ALL
SELECT '8193 bytes', toms_test.mint(pg_temp.sk('k1'),
	pg_temp.claims(jsonb_build_object('pad', repeat('x', 6073 - length(pg_temp.claims('{"pad":""}'))))));
SELECT label, length(tok) FROM cases WHERE label IN ('exactly 8192 bytes', '8193 bytes') ORDER BY n;

-- the shape of the tokens, as the cases assume
SELECT label, length(split_part(tok, '.', 3)) % 4 AS body_len_mod_4
  FROM cases WHERE label LIKE 'canonical control%' ORDER BY n;
SELECT length(tok) > 8192 AS too_long_is_too_long FROM cases WHERE label LIKE 'too long%';

SELECT n, label, i.valid, i.reason
  FROM cases, toms.inspect_token(tok) i ORDER BY n;

-- what a valid token yields
SELECT i.valid, i.reason, i.tenant, i.subject, i.key_id, i.expires > now() AS in_future
  FROM good, toms.inspect_token(tok) i;
SELECT i.expires = '2999-01-01T00:00:00.123456Z'::timestamptz AS exp_parsed
  FROM cases, toms.inspect_token(tok) i WHERE label = 'valid, exp with fraction and offset';
SELECT toms.inspect_token(NULL) IS NULL AS null_token_null_result;

-- a distrusted key stops verifying at once, in the same transaction
BEGIN;
SELECT toms.distrust_key('regress-k1');
SELECT i.valid, i.reason FROM good, toms.inspect_token(tok) i;
ROLLBACK;
SELECT i.valid, i.reason FROM good, toms.inspect_token(tok) i;

SELECT toms.distrust_key('regress-k1');
DROP EXTENSION toms_test;
