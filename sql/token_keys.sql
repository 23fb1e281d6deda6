-- toms.trust_key / toms.distrust_key: validation, privileges, idempotence;
-- and the diagnostics are for toms_admin only.
CREATE EXTENSION toms_test;
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
CREATE TEMP TABLE k AS
SELECT 'k1' AS name, * FROM toms_test.keypair(decode(repeat('01', 32), 'hex'))
UNION ALL
SELECT 'k2', * FROM toms_test.keypair(decode(repeat('02', 32), 'hex'));
GRANT SELECT ON k TO PUBLIC;

-- Validation: SQLSTATE 22023 with a message that says what is wrong.
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k1', '\x0102')$$);
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k1', NULL)$$);
SELECT pg_temp.try($$SELECT toms.trust_key(NULL, (SELECT public_key FROM k WHERE name = 'k1'))$$);
SELECT pg_temp.try($$SELECT toms.trust_key('', (SELECT public_key FROM k WHERE name = 'k1'))$$);
SELECT pg_temp.try($$SELECT toms.trust_key('bad id', (SELECT public_key FROM k WHERE name = 'k1'))$$);
SELECT pg_temp.try($$SELECT toms.trust_key('bad"id', (SELECT public_key FROM k WHERE name = 'k1'))$$);
SELECT pg_temp.try(format('SELECT toms.trust_key(%L, (SELECT public_key FROM k WHERE name = %L))', repeat('k', 129), 'k1'));
-- 32 bytes, but not an Ed25519 public key (the identity: small order)
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k1', decode('01' || repeat('00', 31), 'hex'))$$);
-- a 32-byte PEM/base64 mix-up is still not a point
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k1', decode(repeat('ff', 32), 'hex'))$$);
SELECT count(*) AS keys_after_invalid_calls FROM toms.trusted_keys;

-- Trusting: once, again with the same key (no-op), not with another key.
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k1', (SELECT public_key FROM k WHERE name = 'k1'))$$);
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k1', (SELECT public_key FROM k WHERE name = 'k1'))$$);
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k1', (SELECT public_key FROM k WHERE name = 'k2'))$$);
SELECT pg_temp.try($$SELECT toms.trust_key('k4.pid.AbC_-9:x/y+z=~', (SELECT public_key FROM k WHERE name = 'k2'))$$);
SELECT key_id, public_key = (SELECT public_key FROM k WHERE name = t.n) AS right_key, added_by
  FROM toms.trusted_keys, LATERAL (SELECT CASE WHEN key_id = 'regress-k1' THEN 'k1' ELSE 'k2' END AS n) t
 ORDER BY key_id;
SELECT pg_temp.try($$SELECT toms.distrust_key('k4.pid.AbC_-9:x/y+z=~')$$);

-- Privileges: PUBLIC has none of these functions; toms_admin has them all.
SELECT p.proname, p.prosecdef,
	   has_function_privilege('public', p.oid, 'EXECUTE') AS public_can,
	   has_function_privilege('toms_admin', p.oid, 'EXECUTE') AS admin_can,
	   has_function_privilege('toms_app', p.oid, 'EXECUTE') AS app_can,
	   p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'toms'::regnamespace
   AND p.proname IN ('trust_key', 'distrust_key', 'verify_token', 'inspect_token')
 ORDER BY 1;

CREATE ROLE regress_token_admin;
CREATE ROLE regress_token_app;
GRANT toms_admin TO regress_token_admin;
GRANT toms_app TO regress_token_app;
SET ROLE regress_token_app;
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k2', (SELECT public_key FROM k WHERE name = 'k2'))$$);
SELECT pg_temp.try($$SELECT toms.distrust_key('regress-k1')$$);
SELECT pg_temp.try($$SELECT toms.inspect_token('v4.public.x')$$);
SELECT pg_temp.try($$SELECT toms.verify_token('v4.public.x', (SELECT public_key FROM k WHERE name = 'k1'))$$);
SELECT pg_temp.try($$INSERT INTO toms.trusted_keys (key_id, public_key) VALUES ('regress-x', (SELECT public_key FROM k WHERE name = 'k2'))$$);
RESET ROLE;
-- toms_admin works through the functions, not by writing the table.
SET ROLE regress_token_admin;
SELECT pg_temp.try($$SELECT toms.trust_key('regress-k2', (SELECT public_key FROM k WHERE name = 'k2'))$$);
SELECT pg_temp.try($$DELETE FROM toms.trusted_keys$$);
SELECT key_id, added_by FROM toms.trusted_keys ORDER BY 1;
SELECT pg_temp.try($$SELECT toms.distrust_key('regress-k2')$$);
SELECT pg_temp.try($$SELECT toms.distrust_key('regress-k2')$$);
SELECT pg_temp.try($$SELECT toms.distrust_key('bad id')$$);
SELECT pg_temp.try($$SELECT toms.distrust_key(NULL)$$);
RESET ROLE;

-- A token whose key is distrusted no longer verifies.
SELECT i.valid, i.reason
  FROM k, toms.inspect_token(toms_test.mint_claims(secret_key, 'acme', 'alice', '1 hour', 'regress-k1')) i
 WHERE name = 'k1';
-- the same under the stricter isolation levels
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT i.valid, i.reason
  FROM k, toms.inspect_token(toms_test.mint_claims(secret_key, 'acme', 'alice', '1 hour', 'regress-k1')) i
 WHERE name = 'k1';
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT i.valid, i.reason
  FROM k, toms.inspect_token(toms_test.mint_claims(secret_key, 'acme', 'alice', '1 hour', 'regress-k1')) i
 WHERE name = 'k1';
COMMIT;
SELECT toms.distrust_key('regress-k1');
SELECT i.valid, i.reason
  FROM k, toms.inspect_token(toms_test.mint_claims(secret_key, 'acme', 'alice', '1 hour', 'regress-k1')) i
 WHERE name = 'k1';
SELECT count(*) AS keys_left FROM toms.trusted_keys;

DROP ROLE regress_token_admin, regress_token_app;
DROP EXTENSION toms_test;
