-- Tenant separation (SPEC section 1; measures 4a, 5a, 5b, 9a, 9b).

CREATE TABLE @extschema@.tenants (
	tenant		text PRIMARY KEY,
	name		text NOT NULL,
	status		text NOT NULL DEFAULT 'active'
				CHECK (status IN ('active', 'deleting', 'deleted')),
	created_at	timestamptz NOT NULL DEFAULT now(),
	created_by	name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE @extschema@.tenants IS 'toms: customer organisations (tenants)';

-- Roles that may enter a tenant with toms.set_tenant().  A row for a group
-- role admits every member of that group.
CREATE TABLE @extschema@.members (
	role		regrole NOT NULL,
	tenant		text NOT NULL REFERENCES @extschema@.tenants ON DELETE CASCADE,
	added_at	timestamptz NOT NULL DEFAULT now(),
	added_by	name NOT NULL DEFAULT session_user,
	PRIMARY KEY (role, tenant)
);
COMMENT ON TABLE @extschema@.members IS 'toms: roles that may enter a tenant';

-- Need-to-know personnel access (measure 5b): time-boxed, justified.
CREATE TABLE @extschema@.grants (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	role		regrole NOT NULL,
	tenant		text NOT NULL REFERENCES @extschema@.tenants ON DELETE CASCADE,
	justification text NOT NULL CHECK (length(btrim(justification)) > 0),
	granted_by	name NOT NULL DEFAULT session_user,
	granted_at	timestamptz NOT NULL DEFAULT now(),
	valid_until	timestamptz NOT NULL,
	revoked_at	timestamptz,
	revoked_by	name
);
CREATE INDEX ON @extschema@.grants (role, tenant);
COMMENT ON TABLE @extschema@.grants IS 'toms: time-boxed need-to-know access to a tenant';

-- Public keys of the identity services that mint tenant tokens.
CREATE TABLE @extschema@.trusted_keys (
	key_id		text PRIMARY KEY CHECK (length(key_id) BETWEEN 1 AND 128),
	public_key	bytea NOT NULL CHECK (length(public_key) = 32),
	added_at	timestamptz NOT NULL DEFAULT now(),
	added_by	name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE @extschema@.trusted_keys IS 'toms: Ed25519 public keys whose PASETO v4.public tokens are accepted';

-- Tables under toms.protect().
CREATE TABLE @extschema@.protected_tables (
	relid		regclass PRIMARY KEY,
	tenant_column name NOT NULL,
	sensitive	name[] NOT NULL DEFAULT '{}',
	subject_column name,
	protected_at timestamptz NOT NULL DEFAULT now(),
	protected_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE @extschema@.protected_tables IS 'toms: tables whose rows are separated by tenant';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.members', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.grants', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.trusted_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.protected_tables', '');

REVOKE ALL ON @extschema@.tenants, @extschema@.members, @extschema@.grants,
	@extschema@.trusted_keys, @extschema@.protected_tables FROM PUBLIC;
GRANT SELECT ON @extschema@.tenants, @extschema@.members, @extschema@.grants,
	@extschema@.trusted_keys, @extschema@.protected_tables TO toms_admin, toms_auditor;

CREATE FUNCTION @extschema@.current_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'toms_current_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;
