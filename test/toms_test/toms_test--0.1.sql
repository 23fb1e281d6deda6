-- toms_test: TEST-ONLY helpers for toms' suites.  They hold secret keys in
-- plain SQL values, which is exactly what toms itself never does: never
-- install this extension outside a test cluster.

\echo Use "CREATE EXTENSION toms_test" to load this file. \quit

-- An Ed25519 key pair: from a 32-byte seed (deterministic), or random.
-- secret_key is libsodium's 64-byte form (seed || public key), the form the
-- PASETO test vectors use.
CREATE FUNCTION @extschema@.keypair(seed bytea DEFAULT NULL,
	OUT public_key bytea, OUT secret_key bytea)
	AS 'MODULE_PATHNAME', 'toms_test_keypair'
	LANGUAGE C VOLATILE;

-- A PASETO v4.public token: v4.public.<b64url(m || sig)>[.<b64url(footer)>],
-- sig = Ed25519(PAE("v4.public.", m, footer, implicit_assertion)).
-- Ed25519 is deterministic, so the official vectors are reproduced exactly.
CREATE FUNCTION @extschema@.mint(secret_key bytea, payload text,
	footer text DEFAULT '', implicit_assertion text DEFAULT '')
	RETURNS text
	AS 'MODULE_PATHNAME', 'toms_test_mint'
	LANGUAGE C IMMUTABLE STRICT;

-- RFC 3339 (UTC, whole seconds) as tokens carry it.
CREATE FUNCTION @extschema@.rfc3339(ts timestamptz) RETURNS text
	LANGUAGE sql STABLE STRICT
	AS $$ SELECT pg_catalog.to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- A tenant token as an identity service would mint it: tid, sub, iat = now,
-- exp = now + valid_for; kid (when given) in the footer.
CREATE FUNCTION @extschema@.mint_claims(secret_key bytea, tid text, sub text,
	valid_for interval, kid text DEFAULT NULL)
	RETURNS text
	LANGUAGE sql VOLATILE
	AS $$
	SELECT @extschema@.mint(secret_key,
		pg_catalog.jsonb_build_object(
			'tid', tid, 'sub', sub,
			'iat', @extschema@.rfc3339(pg_catalog.now()),
			'exp', @extschema@.rfc3339(pg_catalog.now() + valid_for))::text,
		CASE WHEN kid IS NULL THEN ''
			 ELSE pg_catalog.jsonb_build_object('kid', kid)::text END)
	$$;
