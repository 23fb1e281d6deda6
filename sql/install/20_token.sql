-- Tenant tokens: PASETO v4.public (Ed25519) tokens signed by the
-- application's identity service (docs/tokens.md; measures 5a, 9a).
-- The database holds only public keys.

-- Accept tokens signed by this key.  Audited.
CREATE FUNCTION @extschema@.trust_key(key_id text, public_key bytea)
	RETURNS void
	AS 'MODULE_PATHNAME', 'toms_trust_key'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.trust_key(text, bytea) IS
	'toms: accept PASETO v4.public tokens signed by this raw 32-byte Ed25519 public key';

-- Stop accepting tokens signed by this key.  Audited.
CREATE FUNCTION @extschema@.distrust_key(key_id text)
	RETURNS void
	AS 'MODULE_PATHNAME', 'toms_distrust_key'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.distrust_key(text) IS
	'toms: stop accepting tokens signed by this key';

-- Diagnostic: the payload of a v4.public token signed by public_key
-- (format and signature only; no claims, no trusted keys).
CREATE FUNCTION @extschema@.verify_token(token text, public_key bytea,
	implicit_assertion text DEFAULT '')
	RETURNS text
	AS 'MODULE_PATHNAME', 'toms_verify_token'
	LANGUAGE C IMMUTABLE STRICT
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.verify_token(text, bytea, text) IS
	'toms: diagnostic: payload of a PASETO v4.public token signed by this key';

-- Diagnostic: what toms makes of a tenant token against the trusted keys.
CREATE FUNCTION @extschema@.inspect_token(token text,
	OUT valid boolean, OUT reason text, OUT tenant text, OUT subject text,
	OUT key_id text, OUT expires timestamptz)
	AS 'MODULE_PATHNAME', 'toms_inspect_token'
	LANGUAGE C VOLATILE STRICT
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.inspect_token(text) IS
	'toms: diagnostic: would this tenant token verify, and with which claims';

REVOKE ALL ON FUNCTION @extschema@.trust_key(text, bytea),
	@extschema@.distrust_key(text),
	@extschema@.verify_token(text, bytea, text),
	@extschema@.inspect_token(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.trust_key(text, bytea),
	@extschema@.distrust_key(text),
	@extschema@.verify_token(text, bytea, text),
	@extschema@.inspect_token(text) TO toms_admin;
