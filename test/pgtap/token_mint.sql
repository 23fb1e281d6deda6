-- toms_test (the TEST-ONLY minting extension) against the official PASETO
-- v4 vectors: Ed25519 is deterministic, so minting each 4-S-* vector's
-- payload with its secret key must reproduce its token byte for byte.
-- The vectors are read at test time from ../shared beside the checkout
-- (TOMS_PASETO_VECTORS overrides the path); the file must hold the three
-- 4-S cases it holds today, else the suite fails.  Only an explicit
-- TOMS_PASETO_VECTORS_SKIP=<why> skips the vector cases.
-- toms-may-skip: the official PASETO vectors, only when TOMS_PASETO_VECTORS_SKIP is set
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set vpath `echo "${TOMS_PASETO_VECTORS:-$TOMS_SRC/../shared/vectors/paseto/v4.json}"`
\set v4 `cat "${TOMS_PASETO_VECTORS:-$TOMS_SRC/../shared/vectors/paseto/v4.json}" 2>/dev/null || echo null`
\set vskip `echo "${TOMS_PASETO_VECTORS_SKIP:-}"`

BEGIN;
CREATE EXTENSION toms_test;
SELECT plan(20);

CREATE TEMP TABLE vec AS
SELECT t->>'name' AS name, t
  FROM pg_catalog.jsonb_array_elements(
         CASE WHEN :'v4' = 'null' THEN '[]'::jsonb ELSE (:'v4'::jsonb)->'tests' END) AS t
 WHERE t->>'name' LIKE '4-S-%';
SELECT :'vskip' = '' AS use_vectors \gset

-- Keys: a seed gives the same pair every time; random pairs differ.
SELECT is((SELECT length(public_key) FROM toms_test.keypair()), 32, 'keypair: 32-byte public key');
SELECT is((SELECT length(secret_key) FROM toms_test.keypair()), 64, 'keypair: 64-byte secret key');
SELECT isnt((SELECT public_key FROM toms_test.keypair()), (SELECT public_key FROM toms_test.keypair()),
	'keypair(): random pairs differ');
SELECT is((SELECT public_key FROM toms_test.keypair('\x0101010101010101010101010101010101010101010101010101010101010101')),
		  (SELECT public_key FROM toms_test.keypair('\x0101010101010101010101010101010101010101010101010101010101010101')),
	'keypair(seed) is deterministic');
SELECT throws_ok($$SELECT toms_test.keypair('\x01')$$, '22023', 'seed must be 32 bytes',
	'keypair rejects a short seed');
SELECT throws_ok($$SELECT toms_test.mint('\x0102', '{}')$$, '22023', 'secret key must be 64 bytes (or a 32-byte seed)',
	'mint rejects a short secret key');

-- Token shape.
SELECT matches(toms_test.mint((SELECT secret_key FROM toms_test.keypair()), '{"a":1}'),
	'^v4\.public\.[A-Za-z0-9_-]+$', 'mint without footer: v4.public.<body>, no padding');
SELECT matches(toms_test.mint((SELECT secret_key FROM toms_test.keypair()), '{"a":1}', '{"kid":"k1"}'),
	'^v4\.public\.[A-Za-z0-9_-]+\.eyJraWQiOiJrMSJ9$', 'mint with footer: base64url footer appended');
SELECT is(toms_test.mint(sk, 'x'), toms_test.mint(substr(sk, 1, 32), 'x'),
	'mint accepts the 32-byte seed as well as the 64-byte secret key')
  FROM (SELECT secret_key AS sk FROM toms_test.keypair()) k;

-- mint_claims builds the claims toms requires.
CREATE TEMP TABLE mc AS
SELECT toms_test.mint_claims(secret_key, 'acme', 'alice@example.com', '1 hour', 'k1') AS tok
  FROM toms_test.keypair();
-- The body is payload || 64-byte signature: strip the signature.
SELECT is((SELECT (convert_from(substr(d, 1, length(d) - 64), 'UTF8')::jsonb ->> 'tid')
			 FROM (SELECT decode(rpad(translate(split_part(tok, '.', 3), '-_', '+/'),
				(length(split_part(tok, '.', 3)) + 3) / 4 * 4, '='), 'base64') AS d FROM mc) z),
	'acme', 'mint_claims: tid');
SELECT ok((SELECT (convert_from(substr(d, 1, length(d) - 64), 'UTF8')::jsonb ->> 'exp')::timestamptz
				  BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'
			 FROM (SELECT decode(rpad(translate(split_part(tok, '.', 3), '-_', '+/'),
				(length(split_part(tok, '.', 3)) + 3) / 4 * 4, '='), 'base64') AS d FROM mc) z),
	'mint_claims: exp = now() + valid_for, RFC 3339');
SELECT is((SELECT split_part(tok, '.', 4) FROM mc), 'eyJraWQiOiAiazEifQ', 'mint_claims: kid in the footer');

-- The official vectors.
\if :use_vectors
SELECT is((SELECT string_agg(name, ' ' ORDER BY name) FROM vec), '4-S-1 4-S-2 4-S-3',
	'the three 4-S vectors read from ' || :'vpath');
SELECT is((SELECT public_key FROM toms_test.keypair(decode(t->>'secret-key-seed', 'hex'))),
		  decode(t->>'public-key', 'hex'), name || ': keypair(seed) gives the vector''s public key')
  FROM vec ORDER BY name;
SELECT is((SELECT secret_key FROM toms_test.keypair(decode(t->>'secret-key-seed', 'hex'))),
		  decode(t->>'secret-key', 'hex'), 'keypair(seed) gives the vector''s 64-byte secret key')
  FROM vec WHERE name = '4-S-1';
SELECT is(toms_test.mint(decode(t->>'secret-key', 'hex'), t->>'payload', t->>'footer', t->>'implicit-assertion'),
		  t->>'token', name || ': mint reproduces the official token')
  FROM vec ORDER BY name;
\else
\warn 'SKIPPED official PASETO v4 vector cases: TOMS_PASETO_VECTORS_SKIP=' :vskip
SELECT skip('official PASETO v4 vectors: TOMS_PASETO_VECTORS_SKIP=' || :'vskip', 8);
\endif

SELECT * FROM finish();
ROLLBACK;
