-- Sealed columns (docs/encryption.md; measures 6, 7, 9b, 6b).

-- The type: ciphertext only.  Its text form is the armoured ciphertext
-- ("sealed:v1:..."), so dump, restore and COPY move ciphertext unchanged.
CREATE TYPE @extschema@.sealed;

CREATE FUNCTION @extschema@.sealed_in(cstring) RETURNS @extschema@.sealed
	AS 'MODULE_PATHNAME', 'toms_sealed_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.sealed_out(@extschema@.sealed) RETURNS cstring
	AS 'MODULE_PATHNAME', 'toms_sealed_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.sealed_recv(internal) RETURNS @extschema@.sealed
	AS 'MODULE_PATHNAME', 'toms_sealed_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.sealed_send(@extschema@.sealed) RETURNS bytea
	AS 'MODULE_PATHNAME', 'toms_sealed_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Ciphertext does not compress: store it out of line without trying.
CREATE TYPE @extschema@.sealed (
	INPUT = @extschema@.sealed_in,
	OUTPUT = @extschema@.sealed_out,
	RECEIVE = @extschema@.sealed_recv,
	SEND = @extschema@.sealed_send,
	INTERNALLENGTH = VARIABLE,
	STORAGE = external
);
COMMENT ON TYPE @extschema@.sealed IS 'toms: a value sealed (XChaCha20-Poly1305) under its tenant''s data key';

-- Per-tenant keys, stored only wrapped under the master key.  'data' keys
-- have versions (rotation); the 'index' key (blind indexes) does not rotate.
CREATE TABLE @extschema@.tenant_keys (
	tenant		text NOT NULL CHECK (length(tenant) BETWEEN 1 AND 128),
	purpose		text NOT NULL CHECK (purpose IN ('data', 'index')),
	version		integer NOT NULL CHECK (version > 0),
	status		text NOT NULL DEFAULT 'active'
				CHECK (status IN ('active', 'retired', 'destroyed')),
	wrapped		bytea CHECK (length(wrapped) = 72),
	master_key_id bytea CHECK (length(master_key_id) = 8),
	created_at	timestamptz NOT NULL DEFAULT now(),
	retired_at	timestamptz,
	destroyed_at timestamptz,
	PRIMARY KEY (tenant, purpose, version),
	CHECK ((status = 'destroyed') = (wrapped IS NULL)),
	CHECK ((wrapped IS NULL) = (master_key_id IS NULL))
);
CREATE UNIQUE INDEX tenant_keys_active ON @extschema@.tenant_keys (tenant, purpose)
	WHERE status = 'active';
COMMENT ON TABLE @extschema@.tenant_keys IS 'toms: per-tenant data and index keys, wrapped under the master key';

-- Any change, by anyone, makes every backend forget its unwrapped keys.
CREATE FUNCTION @extschema@._tenant_keys_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'toms_tenant_keys_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION @extschema@._tenant_keys_changed() FROM PUBLIC;
CREATE TRIGGER tenant_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.tenant_keys FOR EACH STATEMENT
	EXECUTE FUNCTION @extschema@._tenant_keys_changed();
-- also under session_replication_role = replica (see toms_invalidate)
ALTER TABLE @extschema@.tenant_keys ENABLE ALWAYS TRIGGER tenant_keys_changed;

-- Rotations and the progress of re-sealing the values they left behind.
CREATE TABLE @extschema@.key_rotations (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant		text NOT NULL,
	to_version	integer NOT NULL,
	rotated_at	timestamptz NOT NULL DEFAULT now(),
	rotated_by	name NOT NULL DEFAULT session_user,
	resealed	bigint NOT NULL DEFAULT 0,
	finished_at	timestamptz
);
COMMENT ON TABLE @extschema@.key_rotations IS 'toms: tenant key rotations and re-sealing progress';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.tenant_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.key_rotations', '');

REVOKE ALL ON @extschema@.tenant_keys, @extschema@.key_rotations FROM PUBLIC;
GRANT SELECT ON @extschema@.tenant_keys, @extschema@.key_rotations TO toms_admin, toms_auditor;

-- Sealing and opening, under the current tenant context (what applications need).
CREATE FUNCTION @extschema@.seal(text) RETURNS @extschema@.sealed
	AS 'MODULE_PATHNAME', 'toms_seal_text' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION @extschema@.seal(bytea) RETURNS @extschema@.sealed
	AS 'MODULE_PATHNAME', 'toms_seal_bytea' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION @extschema@.unseal(@extschema@.sealed) RETURNS text
	AS 'MODULE_PATHNAME', 'toms_unseal_text' LANGUAGE C STABLE STRICT;
CREATE FUNCTION @extschema@.unseal_bytea(@extschema@.sealed) RETURNS bytea
	AS 'MODULE_PATHNAME', 'toms_unseal_bytea' LANGUAGE C STABLE STRICT;
CREATE FUNCTION @extschema@.blind_index(value text, purpose text DEFAULT '') RETURNS bytea
	AS 'MODULE_PATHNAME', 'toms_blind_index' LANGUAGE C STABLE STRICT;
CREATE FUNCTION @extschema@.sealed_key_version(@extschema@.sealed) RETURNS integer
	AS 'MODULE_PATHNAME', 'toms_sealed_key_version' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Key administration.
CREATE FUNCTION @extschema@.master_key_loaded() RETURNS boolean
	AS 'MODULE_PATHNAME', 'toms_sealed_master_key_loaded' LANGUAGE C STABLE;
-- Internal: the loaded master key's id (tenant_keys.master_key_id), NULL
-- without one; a Citus coordinator compares its workers' with its own
-- before it rotates (90_citus.sql).
CREATE FUNCTION @extschema@._master_key_id() RETURNS bytea
	AS 'MODULE_PATHNAME', 'toms_sealed_master_key_id' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION @extschema@._master_key_id() FROM PUBLIC;
CREATE FUNCTION @extschema@.rotate_tenant_key(tenant text, start_worker boolean DEFAULT true) RETURNS integer
	AS 'MODULE_PATHNAME', 'toms_rotate_tenant_key' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION @extschema@.rotate_master_key() RETURNS bigint
	AS 'MODULE_PATHNAME', 'toms_rotate_master_key' LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.destroy_tenant_keys(tenant text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'toms_destroy_tenant_keys_sql' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION @extschema@.reseal_step(batch integer DEFAULT 500) RETURNS bigint
	AS 'MODULE_PATHNAME', 'toms_reseal_step' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION @extschema@.reseal_start() RETURNS void
	AS 'MODULE_PATHNAME', 'toms_reseal_start' LANGUAGE C VOLATILE;

-- Internal: used by reseal_step (outside row security).
CREATE FUNCTION @extschema@._reseal(@extschema@.sealed, text) RETURNS @extschema@.sealed
	AS 'MODULE_PATHNAME', 'toms_reseal_value' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION @extschema@._active_key_version(text) RETURNS integer
	AS 'MODULE_PATHNAME', 'toms_active_key_version' LANGUAGE C STABLE STRICT;

-- The enforcement trigger of protect(..., sensitive => ...).
CREATE FUNCTION @extschema@._sealed_check() RETURNS trigger
	AS 'MODULE_PATHNAME', 'toms_sealed_check' LANGUAGE C;

REVOKE ALL ON FUNCTION
	@extschema@.sealed_in(cstring), @extschema@.sealed_out(@extschema@.sealed),
	@extschema@.sealed_recv(internal), @extschema@.sealed_send(@extschema@.sealed),
	@extschema@.seal(text), @extschema@.seal(bytea),
	@extschema@.unseal(@extschema@.sealed), @extschema@.unseal_bytea(@extschema@.sealed),
	@extschema@.blind_index(text, text), @extschema@.sealed_key_version(@extschema@.sealed),
	@extschema@.master_key_loaded(), @extschema@.rotate_tenant_key(text, boolean),
	@extschema@.rotate_master_key(), @extschema@.destroy_tenant_keys(text),
	@extschema@.reseal_step(integer), @extschema@.reseal_start(),
	@extschema@._reseal(@extschema@.sealed, text), @extschema@._active_key_version(text),
	@extschema@._sealed_check()
	FROM PUBLIC;
-- Applications seal and open within their verified tenant context; the
-- type's I/O functions are called by the type system without a check.
-- _sealed_check: a restore recreates the trigger as the table's owner, and
-- CREATE TRIGGER needs EXECUTE on the trigger's function.
GRANT EXECUTE ON FUNCTION
	@extschema@.seal(text), @extschema@.seal(bytea),
	@extschema@.unseal(@extschema@.sealed), @extschema@.unseal_bytea(@extschema@.sealed),
	@extschema@.blind_index(text, text), @extschema@.sealed_key_version(@extschema@.sealed),
	@extschema@._sealed_check()
	TO PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.master_key_loaded()
	TO toms_admin, toms_auditor;
GRANT EXECUTE ON FUNCTION
	@extschema@.rotate_tenant_key(text, boolean), @extschema@.rotate_master_key(),
	@extschema@.destroy_tenant_keys(text), @extschema@.reseal_start()
	TO toms_admin;
