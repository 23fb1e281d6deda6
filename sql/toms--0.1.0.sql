-- toms install script.  Assembled by the Makefile from sql/install/*.sql in
-- file-name order; each piece belongs to the concern named in its file name.

\echo Use "CREATE EXTENSION toms" to load this file. \quit

-- Least-privilege roles (docs/getting-started.md, Roles).  Roles are
-- cluster-wide: a second database that installs toms reuses them, and DROP
-- EXTENSION keeps them.
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'toms_admin') THEN
		CREATE ROLE toms_admin NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'toms_auditor') THEN
		CREATE ROLE toms_auditor NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'toms_app') THEN
		CREATE ROLE toms_app NOLOGIN;
	END IF;
END
$roles$;

COMMENT ON ROLE toms_admin IS 'toms: administers tenants, keys, protection and deletions';
COMMENT ON ROLE toms_auditor IS 'toms: reads the audit trail and incidents, verifies, assesses';
COMMENT ON ROLE toms_app IS 'toms: application pools that enter tenant contexts with tokens';

-- Everyone who reads a protected table evaluates its policy, which calls
-- toms.current_tenant(): so the schema is usable by PUBLIC, and each object
-- in it states its own privileges (nothing else is granted to PUBLIC).
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
-- Tenant separation (docs/tenancy.md; measures 4a, 5a, 5b, 9a, 9b).

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
CREATE INDEX members_tenant_idx ON @extschema@.members (tenant);
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
CREATE INDEX grants_tenant_idx ON @extschema@.grants (tenant);
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

-- Every change to these tables resets the verified-context caches of all
-- backends when it commits (relcache invalidation, transactional).
CREATE FUNCTION @extschema@._invalidate_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'toms_invalidate_trigger' LANGUAGE C;
REVOKE ALL ON FUNCTION @extschema@._invalidate_trigger() FROM PUBLIC;
CREATE TRIGGER toms_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.tenants FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._invalidate_trigger();
CREATE TRIGGER toms_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.members FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._invalidate_trigger();
CREATE TRIGGER toms_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.grants FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._invalidate_trigger();
CREATE TRIGGER toms_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.trusted_keys FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._invalidate_trigger();

-- The tenant context -------------------------------------------------------

CREATE FUNCTION @extschema@.current_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'toms_current_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.current_tenant() IS
	'toms: the verified tenant of this session; raises 42501 when there is none';

CREATE FUNCTION @extschema@.current_tenant(missing_ok boolean) RETURNS text
	AS 'MODULE_PATHNAME', 'toms_current_tenant_opt'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.current_tenant(boolean) IS
	'toms: the verified tenant of this session, or NULL (with missing_ok) when there is none';

CREATE FUNCTION @extschema@.current_actor() RETURNS text
	AS 'MODULE_PATHNAME', 'toms_current_actor'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.current_actor() IS
	'toms: the end user of the tenant context (token "sub", or the session user), NULL without one';

CREATE FUNCTION @extschema@.set_tenant(tenant text, is_local boolean DEFAULT false) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_set_tenant'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.set_tenant(text, boolean) IS
	'toms: enter a tenant the session user is a member of, or holds a live grant for';

CREATE FUNCTION @extschema@.enter_tenant(token text, is_local boolean DEFAULT false) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_enter_tenant'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.enter_tenant(text, boolean) IS
	'toms: enter the tenant named by a PASETO v4.public token from a trusted identity service';

CREATE FUNCTION @extschema@.clear_tenant() RETURNS void
	AS 'MODULE_PATHNAME', 'toms_clear_tenant'
	LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION @extschema@.enter_tenant(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.enter_tenant(text, boolean) TO toms_app;

-- Internal helpers (no privileges for anyone; used by the functions below).
CREATE FUNCTION @extschema@._validate_tenant_id(tenant text) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_validate_tenant'
	LANGUAGE C IMMUTABLE STRICT;
CREATE FUNCTION @extschema@._audit_admin_event(action text, tenant text, detail text) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_audit_admin_sql'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@._validate_tenant_id(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._audit_admin_event(text, text, text) FROM PUBLIC;

-- Administration (toms_admin) ----------------------------------------------

CREATE FUNCTION @extschema@.create_tenant(tenant text, name text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._validate_tenant_id(tenant);
	IF name IS NULL OR btrim(name) = '' THEN
		RAISE EXCEPTION 'tenant name must not be empty' USING ERRCODE = '22023';
	END IF;
	INSERT INTO @extschema@.tenants (tenant, name) VALUES (create_tenant.tenant, create_tenant.name);
	PERFORM @extschema@._audit_admin_event('create_tenant', tenant, NULL);
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'tenant "%" already exists', tenant USING ERRCODE = '42710';
END
$$;

CREATE FUNCTION @extschema@.add_member(role regrole, tenant text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.tenants t WHERE t.tenant = add_member.tenant) THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	INSERT INTO @extschema@.members (role, tenant) VALUES (add_member.role, add_member.tenant)
		ON CONFLICT DO NOTHING;
	PERFORM @extschema@._audit_admin_event('add_member', tenant, 'role=' || role::text);
END
$$;

CREATE FUNCTION @extschema@.remove_member(role regrole, tenant text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM @extschema@.members m WHERE m.role = remove_member.role AND m.tenant = remove_member.tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role "%" is not a member of tenant "%"', role, tenant USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._audit_admin_event('remove_member', tenant, 'role=' || role::text);
END
$$;

CREATE FUNCTION @extschema@.grant_access(role regrole, tenant text, justification text,
										 valid_for interval) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	gid bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.tenants t WHERE t.tenant = grant_access.tenant) THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	IF justification IS NULL OR btrim(justification) = '' THEN
		RAISE EXCEPTION 'a grant needs a justification' USING ERRCODE = '22023';
	END IF;
	IF valid_for IS NULL OR valid_for <= interval '0' THEN
		RAISE EXCEPTION 'valid_for must be a positive interval' USING ERRCODE = '22023';
	END IF;
	INSERT INTO @extschema@.grants (role, tenant, justification, valid_until)
		VALUES (grant_access.role, grant_access.tenant, grant_access.justification,
				clock_timestamp() + valid_for)
		RETURNING id INTO gid;
	PERFORM @extschema@._audit_admin_event('grant_access', tenant,
		format('grant=%s role=%s valid_for=%s justification=%s', gid, role, valid_for, justification));
	RETURN gid;
END
$$;

CREATE FUNCTION @extschema@.revoke_access(grant_id bigint) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t text;
BEGIN
	UPDATE @extschema@.grants g SET revoked_at = clock_timestamp(), revoked_by = session_user
	 WHERE g.id = grant_id AND g.revoked_at IS NULL
	RETURNING g.tenant INTO t;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'grant % does not exist or is already revoked', grant_id USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._audit_admin_event('revoke_access', t, 'grant=' || grant_id);
END
$$;

CREATE FUNCTION @extschema@.protect(tbl regclass, tenant_column name DEFAULT 'tenant_id',
									sensitive name[] DEFAULT '{}', subject_column name DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'toms_protect'
	LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.protect(regclass, name, name[], name) IS
	'toms: put a table under tenant separation (forced row security, toms-owned policy)';

CREATE FUNCTION @extschema@.unprotect(tbl regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_unprotect'
	LANGUAGE C VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'create_tenant(text, text)', 'add_member(regrole, text)', 'remove_member(regrole, text)',
		'grant_access(regrole, text, text, interval)', 'revoke_access(bigint)',
		'protect(regclass, name, name[], name)', 'unprotect(regclass)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION @extschema@.%s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION @extschema@.%s TO toms_admin', f);
	END LOOP;
END
$grants$;
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
-- Access audit (docs/audit.md; measures 4b, 4e, 5a, 5c, 7, 10b).

-- The trail.  seq is the record's place in the hash chain: NULL for the few
-- milliseconds between the commit of a write and the audit worker chaining
-- it.  hash = BLAKE2b-256(previous hash || canonical encoding of seq..detail).
CREATE TABLE @extschema@.audit_log (
	seq			bigint,
	ts			timestamptz NOT NULL,
	kind		text NOT NULL,		-- access, denied, login, admin, seal
	action		text,				-- SELECT/INSERT/.../COPY/TRUNCATE, LOGIN, reason
	session_role text,
	effective_role text,
	actor		text,				-- token "sub", or the session role
	tenant		text,
	grant_id	bigint,
	justification text,
	relname		text,
	row_count	bigint,
	query_id	bigint,
	client_addr text,
	application_name text,
	pid			integer,
	xid			bigint,
	fate		text,				-- committed, rolled back, failed, denied, ...
	statement	text,
	detail		text,
	hash		bytea
);
CREATE UNIQUE INDEX audit_log_seq ON @extschema@.audit_log (seq);
CREATE INDEX audit_log_unchained ON @extschema@.audit_log (xid) WHERE seq IS NULL;
COMMENT ON TABLE @extschema@.audit_log IS 'toms: append-only, hash-chained audit trail';

CREATE TABLE @extschema@.incidents (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind		text NOT NULL,
	severity	text NOT NULL,
	tenant		text,
	detail		text NOT NULL DEFAULT '',
	first_seen	timestamptz NOT NULL,
	last_seen	timestamptz NOT NULL,
	count		bigint NOT NULL DEFAULT 1,
	closed_at	timestamptz
);
CREATE UNIQUE INDEX incidents_open ON @extschema@.incidents (kind, (coalesce(tenant, '')), detail)
	WHERE closed_at IS NULL;
COMMENT ON TABLE @extschema@.incidents IS 'toms: suspicious events, deduplicated (NOTIFY toms_incident)';

CREATE FUNCTION @extschema@._audit_log_guard() RETURNS trigger
	AS 'MODULE_PATHNAME', 'toms_audit_log_guard' LANGUAGE C;
REVOKE ALL ON FUNCTION @extschema@._audit_log_guard() FROM PUBLIC;

-- Statement triggers: they fire even when no row matches, and cost one
-- call per statement.  session_replication_role = replica skips them; the
-- hash chain catches what is done that way.
CREATE TRIGGER audit_log_append_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.audit_log FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();
CREATE TRIGGER incidents_append_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.incidents FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();

-- Not marked with pg_extension_config_dump: the trail belongs to the
-- cluster that wrote it (and to the SIEM copy), and a restore into a fresh
-- database starts a new chain instead of colliding with it.

REVOKE ALL ON @extschema@.audit_log, @extschema@.incidents FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_log, @extschema@.incidents TO toms_auditor, toms_admin;

CREATE FUNCTION @extschema@.verify_audit(from_seq bigint DEFAULT NULL, to_seq bigint DEFAULT NULL,
	OUT ok boolean, OUT first_bad bigint, OUT detail text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'toms_verify_audit'
	LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.verify_audit(bigint, bigint) IS
	'toms: recompute the audit hash chain; ok, the first bad record, and why';
REVOKE ALL ON FUNCTION @extschema@.verify_audit(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.verify_audit(bigint, bigint) TO toms_auditor, toms_admin;

CREATE FUNCTION @extschema@.audit_flush(timeout_ms integer DEFAULT 10000) RETURNS boolean
	AS 'MODULE_PATHNAME', 'toms_audit_flush'
	LANGUAGE C;
COMMENT ON FUNCTION @extschema@.audit_flush(integer) IS
	'toms: wait until every audit record queued so far is committed; false on timeout';
REVOKE ALL ON FUNCTION @extschema@.audit_flush(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.audit_flush(integer) TO toms_auditor, toms_admin;

-- Behind the view toms.audit_stats; executable by its readers (a view
-- calls functions with its reader's privileges).
CREATE FUNCTION @extschema@._audit_stats(OUT queue_size integer, OUT queued bigint,
	OUT enqueued bigint, OUT written bigint, OUT queue_waits bigint,
	OUT queue_full_errors bigint, OUT written_to_log bigint, OUT incidents_notified bigint,
	OUT workers integer, OUT launcher_pid integer)
	RETURNS record
	AS 'MODULE_PATHNAME', 'toms_audit_stats'
	LANGUAGE C;
REVOKE ALL ON FUNCTION @extschema@._audit_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._audit_stats() TO toms_auditor, toms_admin;

CREATE VIEW @extschema@.audit_stats AS SELECT * FROM @extschema@._audit_stats();
COMMENT ON VIEW @extschema@.audit_stats IS 'toms: audit queue and worker counters (since server start)';
REVOKE ALL ON @extschema@.audit_stats FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_stats TO toms_auditor, toms_admin;
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
-- Two-stage deletion and data-lifecycle retention (docs/deletion.md;
-- measures 6b, 8a).  Stage 1 (request_deletion) runs in the caller's
-- transaction; stage 2 is carried out by the lifecycle background worker
-- (src/lifecycle_worker.c), one committed transaction per batch, through the
-- internal functions at the end of this file.

-- One row per deletion request.  state moves pending -> purging ->
-- shredding (whole tenant only) -> vacuuming -> waiting_copies -> done, or
-- pending -> cancelled.  Every transition and every batch commits together
-- with the work it records, so a crash resumes exactly where it stopped.
CREATE TABLE @extschema@.deletion_requests (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant		text NOT NULL REFERENCES @extschema@.tenants,
	subject		text CHECK (subject IS NULL OR length(subject) BETWEEN 1 AND 256),
	reason		text,
	requested_by name NOT NULL DEFAULT session_user,
	requested_at timestamptz NOT NULL DEFAULT now(),
	grace		interval NOT NULL,
	not_before	timestamptz NOT NULL,
	approval_required bool NOT NULL,
	approved_by name,
	approved_at timestamptz,
	cancelled_by name,
	cancelled_at timestamptz,
	state		text NOT NULL DEFAULT 'pending'
				CHECK (state IN ('pending', 'purging', 'shredding', 'vacuuming',
								 'waiting_copies', 'done', 'cancelled')),
	started_at	timestamptz,
	purged_at	timestamptz,
	finished_at timestamptz,
	keys		jsonb,
	purge_xid	xid8,
	purge_lsn	pg_lsn,
	expected_copies text[],
	copies_required int,
	copies		jsonb NOT NULL DEFAULT '{}',
	waiting_since timestamptz,
	last_error	text,
	certificate jsonb
);
-- At most one live request per tenant and per subject of a tenant.
CREATE UNIQUE INDEX deletion_requests_scope
	ON @extschema@.deletion_requests (tenant, coalesce(subject, ''))
	WHERE state <> 'cancelled';
COMMENT ON TABLE @extschema@.deletion_requests IS 'toms: two-stage deletion requests and their certificates';

-- The tables stage 2 purges for a request, fixed when stage 2 starts.
CREATE TABLE @extschema@.deletion_steps (
	request		uuid NOT NULL REFERENCES @extschema@.deletion_requests ON DELETE CASCADE,
	relid		oid NOT NULL,
	relname		text NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('protected', 'copy')),
	ord			int NOT NULL,
	tenant_column name NOT NULL,
	subject_column name,
	scope		text,			-- WHERE clause, fixed by _deletion_plan()
	rows_estimated bigint NOT NULL DEFAULT 0,
	rows_deleted bigint NOT NULL DEFAULT 0,
	batches		int NOT NULL DEFAULT 0,
	last_tid	tid,
	purged_at	timestamptz,
	vacuumed_at timestamptz,
	PRIMARY KEY (request, relid)
);
COMMENT ON TABLE @extschema@.deletion_steps IS 'toms: per-table progress of stage-2 deletions';

-- Archive, history and reporting tables that hold tenant data without
-- being protected: stage 2 purges them too.
CREATE TABLE @extschema@.copies (
	relid		regclass PRIMARY KEY,
	tenant_column name NOT NULL,
	subject_column name,
	registered_by name NOT NULL DEFAULT session_user,
	registered_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.copies IS 'toms: registered copies of tenant data purged by deletions';

-- Legal holds: stage 2 does not start, or continue, for a held tenant.
CREATE TABLE @extschema@.holds (
	tenant		text PRIMARY KEY REFERENCES @extschema@.tenants,
	reason		text NOT NULL CHECK (length(btrim(reason)) > 0),
	held_by		name NOT NULL DEFAULT session_user,
	held_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.holds IS 'toms: legal holds that block stage-2 deletion';

-- Data-lifecycle retention rules.
CREATE TABLE @extschema@.retention (
	relid		regclass PRIMARY KEY,
	time_column name NOT NULL,
	keep		interval NOT NULL CHECK (keep > interval '0'),
	set_by		name NOT NULL DEFAULT session_user,
	set_at		timestamptz NOT NULL DEFAULT now(),
	last_run_at timestamptz,
	rows_purged bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE @extschema@.retention IS 'toms: retention rules purged by the lifecycle worker';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.deletion_requests', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.deletion_steps', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.copies', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.holds', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.retention', '');

REVOKE ALL ON @extschema@.deletion_requests, @extschema@.deletion_steps,
	@extschema@.copies, @extschema@.holds, @extschema@.retention FROM PUBLIC;
GRANT SELECT ON @extschema@.deletion_requests, @extschema@.deletion_steps,
	@extschema@.copies, @extschema@.holds, @extschema@.retention TO toms_admin, toms_auditor;

-- C helpers (src/lifecycle.c).

-- The restrictive policy toms_subject on every protected table with a
-- subject column calls this for each row: false for a subject of the
-- current tenant whose deletion was requested.
CREATE FUNCTION @extschema@.subject_visible(subject text) RETURNS bool
	AS 'MODULE_PATHNAME', 'toms_subject_visible'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
REVOKE ALL ON FUNCTION @extschema@.subject_visible(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.subject_visible(text) TO PUBLIC;

-- Audit an administrative act of this part and, with invalidate, make every
-- backend reload what it caches about deletions (at commit).
CREATE FUNCTION @extschema@._lifecycle_event(action text, tenant text, detail text, invalidate bool)
	RETURNS void
	AS 'MODULE_PATHNAME', 'toms_lifecycle_event'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_event(text, text, text, bool) FROM PUBLIC;

-- Stage 1 ---------------------------------------------------------------

CREATE FUNCTION @extschema@.request_deletion(tenant text, subject text DEFAULT NULL,
	reason text DEFAULT NULL, grace interval DEFAULT NULL)
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	t			record;
	dflt		interval := current_setting('toms.deletion_grace')::interval;
	g			interval := coalesce(grace, dflt);
	req			uuid;
BEGIN
	IF tenant IS NULL THEN
		RAISE EXCEPTION 'tenant must not be null' USING ERRCODE = '22004';
	END IF;
	IF subject IS NOT NULL AND (length(subject) = 0 OR octet_length(subject) > 256) THEN
		RAISE EXCEPTION 'subject must be between 1 and 256 bytes long' USING ERRCODE = '22023';
	END IF;
	IF g < interval '0' THEN
		RAISE EXCEPTION 'grace period must not be negative' USING ERRCODE = '22023';
	END IF;
	IF g < dflt AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
		RAISE EXCEPTION 'only a superuser may shorten the deletion grace period'
			USING ERRCODE = '42501',
				DETAIL = format('toms.deletion_grace is %s; the request asked for %s.', dflt, g);
	END IF;

	SELECT * INTO t FROM @extschema@.tenants AS x WHERE x.tenant = request_deletion.tenant FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	IF t.status <> 'active' THEN
		RAISE EXCEPTION 'tenant "%" is already being deleted', tenant
			USING ERRCODE = '55000', DETAIL = format('Its status is %s.', t.status);
	END IF;
	IF subject IS NOT NULL AND EXISTS (
		SELECT 1 FROM @extschema@.deletion_requests r
		 WHERE r.tenant = request_deletion.tenant AND r.subject = request_deletion.subject
		   AND r.state <> 'cancelled') THEN
		RAISE EXCEPTION 'deletion of subject "%" of tenant "%" has already been requested', subject, tenant
			USING ERRCODE = '55000';
	END IF;

	INSERT INTO @extschema@.deletion_requests AS r
		(tenant, subject, reason, grace, not_before, approval_required)
	VALUES (request_deletion.tenant, request_deletion.subject, request_deletion.reason, g,
			now() + g, current_setting('toms.deletion_approval')::bool)
	RETURNING r.id INTO req;

	IF subject IS NULL THEN
		UPDATE @extschema@.tenants AS x SET status = 'deleting' WHERE x.tenant = request_deletion.tenant;
	END IF;

	PERFORM @extschema@._lifecycle_event('deletion_requested', tenant,
		json_build_object('request', req, 'scope', CASE WHEN subject IS NULL THEN 'tenant' ELSE 'subject' END,
						  'reason', reason, 'grace', g::text)::text, true);
	RETURN req;
END
$fn$;

CREATE FUNCTION @extschema@.cancel_deletion(id uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests x WHERE x.id = cancel_deletion.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'deletion request % does not exist', id USING ERRCODE = '42704';
	END IF;
	IF r.state <> 'pending' THEN
		RAISE EXCEPTION 'deletion request can no longer be cancelled'
			USING ERRCODE = '55000',
				DETAIL = CASE WHEN r.state = 'cancelled' THEN format('Request %s was cancelled already.', id)
						 ELSE format('Stage 2 of request %s started at %s.', id, r.started_at) END;
	END IF;
	UPDATE @extschema@.deletion_requests x
	   SET state = 'cancelled', cancelled_by = session_user, cancelled_at = now()
	 WHERE x.id = cancel_deletion.id;
	IF r.subject IS NULL THEN
		UPDATE @extschema@.tenants SET status = 'active' WHERE tenant = r.tenant;
	END IF;
	PERFORM @extschema@._lifecycle_event('deletion_cancelled', r.tenant,
		json_build_object('request', id)::text, true);
END
$fn$;

CREATE FUNCTION @extschema@.approve_deletion(id uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests x WHERE x.id = approve_deletion.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'deletion request % does not exist', id USING ERRCODE = '42704';
	END IF;
	IF r.state IN ('done', 'cancelled') THEN
		RAISE EXCEPTION 'deletion request is %', r.state
			USING ERRCODE = '55000', DETAIL = format('Request %s.', id);
	END IF;
	IF r.requested_by = session_user THEN
		RAISE EXCEPTION 'a deletion must be approved by a role other than its requester'
			USING ERRCODE = '42501', DETAIL = format('Role %s requested it.', r.requested_by);
	END IF;
	IF r.approved_by IS NOT NULL THEN
		RAISE EXCEPTION 'deletion request is already approved'
			USING ERRCODE = '55000', DETAIL = format('Role %s approved request %s.', r.approved_by, id);
	END IF;
	UPDATE @extschema@.deletion_requests x
	   SET approved_by = session_user, approved_at = now()
	 WHERE x.id = approve_deletion.id;
	PERFORM @extschema@._lifecycle_event('deletion_approved', r.tenant,
		json_build_object('request', id)::text, false);
END
$fn$;

-- Withdrawing an approval stops stage 2 at its next batch when approval is
-- required.
CREATE FUNCTION @extschema@.withdraw_approval(id uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests x WHERE x.id = withdraw_approval.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'deletion request % does not exist', id USING ERRCODE = '42704';
	END IF;
	IF r.approved_by IS NULL OR r.state IN ('done', 'cancelled') THEN
		RAISE EXCEPTION 'deletion request has no approval to withdraw'
			USING ERRCODE = '55000', DETAIL = format('Request %s.', id);
	END IF;
	UPDATE @extschema@.deletion_requests x
	   SET approved_by = NULL, approved_at = NULL
	 WHERE x.id = withdraw_approval.id;
	PERFORM @extschema@._lifecycle_event('deletion_approval_withdrawn', r.tenant,
		json_build_object('request', id, 'approved_by', r.approved_by)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.hold(tenant text, reason text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.tenants x WHERE x.tenant = hold.tenant) THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	IF reason IS NULL OR length(btrim(reason)) = 0 THEN
		RAISE EXCEPTION 'a legal hold needs a reason' USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = hold.tenant) THEN
		RAISE EXCEPTION 'tenant "%" is already on hold', tenant USING ERRCODE = '55000';
	END IF;
	INSERT INTO @extschema@.holds (tenant, reason) VALUES (hold.tenant, hold.reason);
	PERFORM @extschema@._lifecycle_event('hold_placed', tenant,
		json_build_object('reason', reason)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.release_hold(tenant text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	h			record;
BEGIN
	DELETE FROM @extschema@.holds x WHERE x.tenant = release_hold.tenant RETURNING * INTO h;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant "%" is not on hold', tenant USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._lifecycle_event('hold_released', tenant,
		json_build_object('reason', h.reason, 'held_by', h.held_by, 'held_at', h.held_at)::text, false);
END
$fn$;

-- Copies and retention rules ---------------------------------------------

-- Check that tbl has a column col; returns its type.
CREATE FUNCTION @extschema@._lifecycle_column(tbl regclass, col name) RETURNS regtype
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	typ			regtype;
BEGIN
	SELECT a.atttypid INTO typ FROM pg_attribute a
	 WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl USING ERRCODE = '42703';
	END IF;
	RETURN typ;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_column(regclass, name) FROM PUBLIC;

CREATE FUNCTION @extschema@.register_copy(tbl regclass, tenant_column name,
	subject_column name DEFAULT NULL) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.protected_tables p WHERE p.relid = tbl) THEN
		RAISE EXCEPTION 'table "%" is protected', tbl USING ERRCODE = '55000',
			DETAIL = 'Deletions purge protected tables already; register only unprotected copies.';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.copies c WHERE c.relid = tbl) THEN
		RAISE EXCEPTION 'table "%" is already registered as a copy', tbl USING ERRCODE = '42710';
	END IF;
	PERFORM @extschema@._lifecycle_column(tbl, tenant_column);
	IF subject_column IS NOT NULL THEN
		PERFORM @extschema@._lifecycle_column(tbl, subject_column);
	END IF;
	INSERT INTO @extschema@.copies (relid, tenant_column, subject_column)
	VALUES (tbl, tenant_column, subject_column);
	PERFORM @extschema@._lifecycle_event('copy_registered', NULL,
		json_build_object('table', tbl::text, 'tenant_column', tenant_column,
						  'subject_column', subject_column)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.unregister_copy(tbl regclass) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	DELETE FROM @extschema@.copies c WHERE c.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" is not registered as a copy', tbl USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._lifecycle_event('copy_unregistered', NULL,
		json_build_object('table', tbl::text)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.set_retention(tbl regclass, time_column name, keep interval)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	typ			regtype;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.protected_tables p WHERE p.relid = tbl)
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.copies c WHERE c.relid = tbl) THEN
		RAISE EXCEPTION 'table "%" is neither protected nor a registered copy', tbl
			USING ERRCODE = '55000',
				HINT = 'Protect it with toms.protect() or register it with toms.register_copy() first.';
	END IF;
	typ := @extschema@._lifecycle_column(tbl, time_column);
	IF typ NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
		RAISE EXCEPTION 'column "%" of relation "%" is of type %, not a date or timestamp', time_column, tbl, typ
			USING ERRCODE = '42804';
	END IF;
	IF keep IS NULL OR keep <= interval '0' THEN
		RAISE EXCEPTION 'retention period must be positive' USING ERRCODE = '22023';
	END IF;
	INSERT INTO @extschema@.retention AS r (relid, time_column, keep)
	VALUES (tbl, time_column, keep)
	ON CONFLICT (relid) DO UPDATE
		SET time_column = excluded.time_column, keep = excluded.keep,
			set_by = session_user, set_at = now();
	PERFORM @extschema@._lifecycle_event('retention_set', NULL,
		json_build_object('table', tbl::text, 'time_column', time_column, 'keep', keep::text)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.clear_retention(tbl regclass) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	DELETE FROM @extschema@.retention r WHERE r.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" has no retention rule', tbl USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._lifecycle_event('retention_cleared', NULL,
		json_build_object('table', tbl::text)::text, false);
END
$fn$;

-- Certificate and progress ----------------------------------------------

-- NULL while the request is not complete.
CREATE FUNCTION @extschema@.deletion_certificate(id uuid) RETURNS jsonb
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	c			jsonb;
BEGIN
	SELECT r.certificate INTO c FROM @extschema@.deletion_requests r WHERE r.id = deletion_certificate.id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'deletion request % does not exist', id USING ERRCODE = '42704';
	END IF;
	RETURN c;
END
$fn$;

CREATE VIEW @extschema@.deletion_progress AS
SELECT r.id AS request, r.tenant, r.subject,
	   CASE
		   WHEN r.state <> 'pending' THEN
			   CASE WHEN r.state IN ('purging', 'shredding')
						 AND EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = r.tenant)
					THEN 'held'
					WHEN r.state IN ('purging', 'shredding') AND r.approved_by IS NULL
						 AND (r.approval_required OR current_setting('toms.deletion_approval')::bool)
					THEN 'awaiting approval'
					ELSE r.state END
		   WHEN EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = r.tenant) THEN 'held'
		   WHEN now() < r.not_before THEN 'grace'
		   WHEN r.approved_by IS NULL
				AND (r.approval_required OR current_setting('toms.deletion_approval')::bool)
			   THEN 'awaiting approval'
		   ELSE 'starting'
	   END AS phase,
	   (SELECT s.relname FROM @extschema@.deletion_steps s
		 WHERE s.request = r.id AND s.purged_at IS NULL ORDER BY s.ord, s.relid LIMIT 1) AS current_table,
	   coalesce((SELECT sum(s.rows_deleted) FROM @extschema@.deletion_steps s WHERE s.request = r.id), 0)::bigint AS rows_done,
	   coalesce((SELECT sum(s.rows_estimated) FROM @extschema@.deletion_steps s WHERE s.request = r.id), 0)::bigint AS rows_total,
	   (SELECT count(*) FROM @extschema@.deletion_steps s WHERE s.request = r.id AND s.purged_at IS NOT NULL) AS tables_done,
	   (SELECT count(*) FROM @extschema@.deletion_steps s WHERE s.request = r.id) AS tables_total,
	   (SELECT count(*) FROM jsonb_object_keys(r.copies)) AS copies_confirmed,
	   r.copies_required,
	   r.not_before,
	   r.started_at,
	   r.last_error
  FROM @extschema@.deletion_requests r
 WHERE r.state NOT IN ('done', 'cancelled');
COMMENT ON VIEW @extschema@.deletion_progress IS 'toms: one row per deletion request not yet complete';
REVOKE ALL ON @extschema@.deletion_progress FROM PUBLIC;
GRANT SELECT ON @extschema@.deletion_progress TO toms_admin, toms_auditor;

-- Stage 2 and retention: called by the lifecycle worker only ------------------

-- The WHERE clause that selects a request's rows in one table ($1 tenant,
-- $2 subject), with casts to the columns' own types so indexes are used.
CREATE FUNCTION @extschema@._lifecycle_scope(tbl oid, tenant_column name, subject_column name,
	with_subject bool) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	w			text;
BEGIN
	SELECT format('%I = CAST($1 AS %s)', a.attname, format_type(a.atttypid, a.atttypmod)) INTO w
	  FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = tenant_column AND NOT a.attisdropped;
	IF w IS NULL THEN
		RAISE EXCEPTION 'column "%" of relation "%" does not exist', tenant_column, tbl::regclass
			USING ERRCODE = '42703';
	END IF;
	IF with_subject THEN
		SELECT w || format(' AND %I = CAST($2 AS %s)', a.attname, format_type(a.atttypid, a.atttypmod)) INTO w
		  FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = subject_column AND NOT a.attisdropped;
		IF w IS NULL THEN
			RAISE EXCEPTION 'column "%" of relation "%" does not exist', subject_column, tbl::regclass
				USING ERRCODE = '42703';
		END IF;
	END IF;
	RETURN w;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_scope(oid, name, name, bool) FROM PUBLIC;

-- The tables that hold a table's rows: itself, or for a partitioned table
-- its leaf partitions.
CREATE FUNCTION @extschema@._lifecycle_leaves(tbl oid) RETURNS SETOF oid
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	SELECT t.relid::oid FROM pg_partition_tree(tbl) t
	 WHERE t.isleaf AND (SELECT relkind FROM pg_class WHERE oid = tbl) = 'p'
	UNION ALL
	SELECT tbl WHERE (SELECT relkind FROM pg_class WHERE oid = tbl) = 'r';
$fn$;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_leaves(oid) FROM PUBLIC;

-- Fix the tables of a request: protected tables and registered copies in
-- scope (for a subject: those with a subject column), partitioned tables
-- replaced by their leaf partitions, ordered so that tables referencing
-- others by a foreign key come before the tables they reference.
CREATE FUNCTION @extschema@._deletion_plan(req uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	s			record;
	n			bigint;
	i			int;
	w			text;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests WHERE id = req;
	INSERT INTO @extschema@.deletion_steps (request, relid, relname, kind, ord, tenant_column, subject_column)
	SELECT DISTINCT ON (leaf.relid) req, leaf.relid, leaf.relid::regclass::text, src.kind, 0,
		   src.tenant_column, src.subject_column
	  FROM (SELECT p.relid::oid AS relid, 'protected' AS kind, p.tenant_column, p.subject_column
			  FROM @extschema@.protected_tables p
			UNION ALL
			SELECT c.relid::oid, 'copy', c.tenant_column, c.subject_column
			  FROM @extschema@.copies c) src
	  JOIN pg_class k ON k.oid = src.relid
	 CROSS JOIN LATERAL @extschema@._lifecycle_leaves(src.relid) AS leaf(relid)
	 WHERE (r.subject IS NULL OR src.subject_column IS NOT NULL)
	 ORDER BY leaf.relid, src.kind DESC;

	-- Children first: ord = 1 + the highest ord of any table in the plan
	-- that references it (bounded by the number of tables, for cycles).
	n := (SELECT count(*) FROM @extschema@.deletion_steps WHERE request = req);
	FOR i IN 1 .. n LOOP
		UPDATE @extschema@.deletion_steps p
		   SET ord = sub.ord
		  FROM (SELECT ref.confrelid AS relid, max(c.ord) + 1 AS ord
				  FROM pg_constraint ref
				  JOIN @extschema@.deletion_steps c ON c.request = req AND c.relid = ref.conrelid
				 WHERE ref.contype = 'f' AND ref.conrelid <> ref.confrelid
				 GROUP BY ref.confrelid) sub
		 WHERE p.request = req AND p.relid = sub.relid AND p.ord < sub.ord;
		EXIT WHEN NOT FOUND;
	END LOOP;

	FOR s IN SELECT * FROM @extschema@.deletion_steps WHERE request = req LOOP
		w := @extschema@._lifecycle_scope(s.relid, s.tenant_column, s.subject_column,
										  r.subject IS NOT NULL);
		EXECUTE format('SELECT count(*) FROM ONLY %s WHERE %s', s.relid::regclass, w)
			INTO n USING r.tenant, r.subject;
		UPDATE @extschema@.deletion_steps SET rows_estimated = n, scope = w
		 WHERE request = req AND relid = s.relid;
	END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_plan(uuid) FROM PUBLIC;

-- One batch of one step: delete up to batch rows in scope and record them,
-- in the caller's (the worker's) transaction.  last_tid is the step's
-- cursor: every row in scope at or before it has been deleted.
--
-- Where the scope fills at least one row per page on average (a tenant's
-- bulk), a batch is one pass over the next window of pages: the tuple id
-- of the batch-th row in scope after the cursor ends the window (a probe
-- that reads the pages in physical order: the row filter is kept away from
-- the index, synchronized scans are off), and one DELETE over that tuple
-- id range removes the window's rows -- each row is read once, as by a
-- bulk DELETE's heap scan.  A sparse scope (a subject, a small tenant in a
-- big table) goes through the index instead: the tuple ids of up to batch
-- rows after the cursor, then a DELETE of those tuple ids.
--
-- A step is complete only after a pass that started without a cursor
-- reached the end of the table (a window) or found fewer rows than a batch
-- (the closing pass, whose path the planner chooses): a row moved behind
-- the cursor meanwhile is caught there.  No row locks are taken (they would
-- double the writes): a row updated meanwhile fails the DELETE's recheck
-- of its tuple id or the window's filter and is caught by a later batch.
CREATE FUNCTION @extschema@._deletion_batch(req uuid, tbl oid, batch int) RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	SET synchronize_seqscans = off
	SET max_parallel_workers_per_gather = 0
	AS $fn$
DECLARE
	r			record;
	s			record;
	w			text;
	n			bigint;
	top			tid;
	windowed	bool;
	more		bool;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests WHERE id = req;
	SELECT * INTO s FROM @extschema@.deletion_steps WHERE request = req AND relid = tbl FOR UPDATE;
	IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = tbl) THEN
		UPDATE @extschema@.deletion_steps SET purged_at = now(), vacuumed_at = now()
		 WHERE request = req AND relid = tbl;
		RETURN 0;
	END IF;
	w := coalesce(s.scope, @extschema@._lifecycle_scope(tbl, s.tenant_column, s.subject_column,
														 r.subject IS NOT NULL));
	-- Windows from the first batch on, and as long as the cursor is set;
	-- the closing pass (batches > 0, no cursor) lets the planner choose.
	windowed := (s.batches = 0 OR s.last_tid IS NOT NULL)
		AND s.rows_estimated >= pg_relation_size(tbl) / current_setting('block_size')::int;
	IF windowed THEN
		EXECUTE format('SELECT ctid FROM ONLY %s WHERE ctid > $3 AND (%s) IS TRUE OFFSET %s LIMIT 1',
					   tbl::regclass, w, batch - 1)
			INTO top USING r.tenant, r.subject, coalesce(s.last_tid, '(0,0)'::tid);
		EXECUTE format('DELETE FROM ONLY %s WHERE ctid > $3 AND ctid <= $4 AND %s', tbl::regclass, w)
			USING r.tenant, r.subject, coalesce(s.last_tid, '(0,0)'::tid),
				  coalesce(top, '(4294967295,65535)'::tid);
		GET DIAGNOSTICS n = ROW_COUNT;
		more := top IS NOT NULL;	-- else the window ran to the end of the table
	ELSE
		IF s.last_tid IS NOT NULL THEN
			w := w || ' AND ctid > $3';
		END IF;
		EXECUTE format('WITH d AS (DELETE FROM ONLY %1$s WHERE ctid = ANY (ARRAY('
					   'SELECT ctid FROM ONLY %1$s WHERE %2$s LIMIT %3$s)) RETURNING ctid) '
					   'SELECT count(*), max(ctid) FROM d', tbl::regclass, w, batch)
			INTO n, top USING r.tenant, r.subject, s.last_tid;
		more := n >= batch;
	END IF;
	UPDATE @extschema@.deletion_steps
	   SET rows_deleted = rows_deleted + n,
		   batches = batches + 1,
		   last_tid = CASE WHEN more THEN top END,
		   purged_at = CASE WHEN NOT more AND s.last_tid IS NULL THEN now() END
	 WHERE request = req AND relid = tbl;
	RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_batch(uuid, oid, int) FROM PUBLIC;

-- Has every transaction and snapshot that could still see rows deleted by
-- transactions before xid ended?  The same sources as PostgreSQL's removal
-- horizon: backends (any database, to be safe), hot-standby feedback,
-- replication slots and prepared transactions.
CREATE FUNCTION @extschema@._lifecycle_horizon_passed(x xid8) RETURNS bool
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	SELECT x IS NULL OR NOT EXISTS (
		SELECT 1 FROM (
			SELECT backend_xmin AS h FROM pg_stat_activity WHERE pid <> pg_backend_pid()
			UNION ALL
			SELECT backend_xid FROM pg_stat_activity WHERE pid <> pg_backend_pid()
			UNION ALL
			SELECT backend_xmin FROM pg_stat_replication
			UNION ALL
			SELECT xmin FROM pg_replication_slots
			UNION ALL
			SELECT transaction FROM pg_prepared_xacts) o
		 WHERE o.h IS NOT NULL AND age(o.h) >= age(xid(x)));
$fn$;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_horizon_passed(xid8) FROM PUBLIC;

-- The certificate of a request whose copies have confirmed.
CREATE FUNCTION @extschema@._deletion_certify(req uuid, shortfall bool) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	cert		jsonb;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests WHERE id = req;
	cert := jsonb_build_object(
		'request', r.id,
		'database', current_database(),
		'system_identifier', (SELECT system_identifier::text FROM pg_control_system()),
		'scope', CASE WHEN r.subject IS NULL THEN 'tenant' ELSE 'subject' END,
		'tenant', r.tenant,
		'subject', r.subject,
		'reason', r.reason,
		'requested_by', r.requested_by,
		'requested_at', r.requested_at,
		'grace', r.grace::text,
		'approved_by', r.approved_by,
		'approved_at', r.approved_at,
		'started_at', r.started_at,
		'purged_at', r.purged_at,
		'finished_at', clock_timestamp(),
		'tables', coalesce((SELECT jsonb_agg(jsonb_build_object(
								'table', s.relname, 'kind', s.kind,
								'rows_deleted', s.rows_deleted, 'batches', s.batches,
								'vacuumed_at', s.vacuumed_at) ORDER BY s.ord, s.relname)
							  FROM @extschema@.deletion_steps s WHERE s.request = req), '[]'),
		'rows_deleted', coalesce((SELECT sum(s.rows_deleted) FROM @extschema@.deletion_steps s
								   WHERE s.request = req), 0),
		'keys', r.keys,
		'purge_lsn', r.purge_lsn::text,
		'copies_required', r.copies_required,
		'copies_confirmed', (SELECT count(*) FROM jsonb_object_keys(r.copies)),
		'standbys', coalesce((SELECT jsonb_agg(jsonb_build_object('application_name', k) || v ORDER BY k)
								FROM jsonb_each(r.copies) AS e(k, v)), '[]'),
		'proceeded_with_fewer_copies', shortfall,
		'missing_standbys', CASE WHEN shortfall THEN
			to_jsonb(ARRAY(SELECT x FROM unnest(r.expected_copies) x
							WHERE NOT r.copies ? x ORDER BY x)) END);
	RETURN cert;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_certify(uuid, bool) FROM PUBLIC;

-- The worker's next unit of work, done in the caller's transaction:
--   ('batch', request, table)   a batch was deleted (or stage 2 started)
--   ('step', request, NULL)     a phase ended
--   ('vacuum', request, table)  the worker must VACUUM table, then call
--                                _deletion_vacuumed()
--   ('done', request, NULL)     a certificate was stored
--   ('idle', NULL, NULL)        nothing to do now (waiting, held, in grace)
-- Requests in skip are passed over (they failed in this round).
CREATE FUNCTION @extschema@._deletion_work(skip uuid[] DEFAULT '{}',
	OUT action text, OUT request uuid, OUT relid oid)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	s			record;
	blocked		bool;
	approval	bool := current_setting('toms.deletion_approval')::bool;
	batch		int := current_setting('toms.deletion_batch_size')::int;
	want		int := current_setting('toms.deletion_copies')::int;
	patience	interval := current_setting('toms.deletion_copies_timeout')::interval;
	nkeys		bigint;
	confirmed	jsonb;
	ok			bool;
	cert		jsonb;
	msg			text;
BEGIN
	FOR r IN SELECT * FROM @extschema@.deletion_requests d
			  WHERE d.state NOT IN ('done', 'cancelled') AND d.id <> ALL (skip)
			  ORDER BY d.requested_at, d.id
	LOOP
		request := r.id;
		BEGIN
		blocked := EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = r.tenant)
			OR ((r.approval_required OR approval) AND r.approved_by IS NULL);

		IF r.state = 'pending' THEN
			CONTINUE WHEN blocked OR now() < r.not_before;
			PERFORM @extschema@._deletion_plan(r.id);
			UPDATE @extschema@.deletion_requests d
			   SET state = 'purging', started_at = clock_timestamp(), last_error = NULL,
				   expected_copies = ARRAY(SELECT application_name FROM pg_stat_replication
											WHERE state = 'streaming' ORDER BY 1),
				   copies_required = CASE WHEN want >= 0 THEN want
									 ELSE (SELECT count(*) FROM pg_stat_replication
											WHERE state = 'streaming') END
			 WHERE d.id = r.id;
			PERFORM @extschema@._lifecycle_event('deletion_started', r.tenant,
				json_build_object('request', r.id)::text, false);
			action := 'batch';
			RETURN;

		ELSIF r.state = 'purging' THEN
			CONTINUE WHEN blocked;
			SELECT * INTO s FROM @extschema@.deletion_steps st
			 WHERE st.request = r.id AND st.purged_at IS NULL ORDER BY st.ord, st.relid LIMIT 1;
			IF FOUND THEN
				PERFORM @extschema@._deletion_batch(r.id, s.relid, batch);
				action := 'batch';
				relid := s.relid;
				RETURN;
			END IF;
			UPDATE @extschema@.deletion_requests d
			   SET state = CASE WHEN r.subject IS NULL THEN 'shredding' ELSE 'vacuuming' END,
				   purged_at = clock_timestamp(), purge_xid = pg_current_xact_id()
			 WHERE d.id = r.id;
			action := 'step';
			RETURN;

		ELSIF r.state = 'shredding' THEN
			CONTINUE WHEN blocked;
			PERFORM set_config('synchronous_commit', 'on', true);
			nkeys := @extschema@.destroy_tenant_keys(r.tenant);
			UPDATE @extschema@.deletion_requests d
			   SET keys = jsonb_build_object('destroyed', true, 'destroyed_at', clock_timestamp(),
											 'keys_destroyed', nkeys)
			 WHERE d.id = r.id;
			UPDATE @extschema@.deletion_requests d SET state = 'vacuuming' WHERE d.id = r.id;
			action := 'step';
			RETURN;

		ELSIF r.state = 'vacuuming' THEN
			-- VACUUM can remove the deleted tuples only once no snapshot or
			-- transaction older than the purge remains; until then, wait.
			IF NOT @extschema@._lifecycle_horizon_passed(r.purge_xid) THEN
				IF r.last_error IS DISTINCT FROM 'waiting for transactions older than the purge to end' THEN
					UPDATE @extschema@.deletion_requests d
					   SET last_error = 'waiting for transactions older than the purge to end'
					 WHERE d.id = r.id;
				END IF;
				CONTINUE;
			END IF;
			SELECT * INTO s FROM @extschema@.deletion_steps st
			 WHERE st.request = r.id AND st.vacuumed_at IS NULL ORDER BY st.ord, st.relid LIMIT 1;
			IF FOUND THEN
				action := 'vacuum';
				relid := s.relid;
				RETURN;
			END IF;
			UPDATE @extschema@.deletion_requests d
			   SET state = 'waiting_copies', purge_lsn = pg_current_wal_insert_lsn(),
				   waiting_since = clock_timestamp(), last_error = NULL
			 WHERE d.id = r.id;
			action := 'step';
			RETURN;

		ELSIF r.state = 'waiting_copies' THEN
			SELECT coalesce(jsonb_object_agg(application_name,
						jsonb_build_object('replay_lsn', replay_lsn::text, 'confirmed_at', clock_timestamp())), '{}')
			  INTO confirmed
			  FROM (SELECT DISTINCT ON (application_name) application_name, replay_lsn
					  FROM pg_stat_replication
					 WHERE replay_lsn >= r.purge_lsn AND NOT r.copies ? application_name
					 ORDER BY application_name, replay_lsn DESC) x;
			IF confirmed <> '{}' THEN
				UPDATE @extschema@.deletion_requests d SET copies = confirmed || d.copies
				 WHERE d.id = r.id RETURNING * INTO r;
			END IF;
			IF want < 0 THEN
				ok := NOT EXISTS (SELECT 1 FROM unnest(r.expected_copies) x WHERE NOT r.copies ? x);
			ELSE
				ok := (SELECT count(*) FROM jsonb_object_keys(r.copies)) >= r.copies_required;
			END IF;
			IF NOT ok AND (patience = interval '0' OR clock_timestamp() < r.waiting_since + patience) THEN
				IF confirmed <> '{}' THEN
					action := 'step';
					RETURN;
				END IF;
				CONTINUE;
			END IF;
			PERFORM set_config('synchronous_commit', 'on', true);
			cert := @extschema@._deletion_certify(r.id, NOT ok);
			UPDATE @extschema@.deletion_requests d
			   SET state = 'done', finished_at = (cert->>'finished_at')::timestamptz, certificate = cert
			 WHERE d.id = r.id;
			IF r.subject IS NULL THEN
				UPDATE @extschema@.tenants t SET status = 'deleted' WHERE t.tenant = r.tenant;
			END IF;
			PERFORM @extschema@._lifecycle_event('deletion_certificate', r.tenant, cert::text, false);
			action := 'done';
			RETURN;
		END IF;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			UPDATE @extschema@.deletion_requests d SET last_error = msg WHERE d.id = r.id;
			RAISE WARNING 'toms deletion request % failed: %', r.id, msg;
			action := 'error';
			RETURN;
		END;
	END LOOP;
	request := NULL;
	action := 'idle';
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_work(uuid[]) FROM PUBLIC;

CREATE FUNCTION @extschema@._deletion_vacuumed(req uuid, tbl oid) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	UPDATE @extschema@.deletion_steps SET vacuumed_at = clock_timestamp()
	 WHERE request = req AND relid = tbl;
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_vacuumed(uuid, oid) FROM PUBLIC;

-- Record a failure of a request's unit of work (in a new transaction).
CREATE FUNCTION @extschema@._deletion_failed(req uuid, message text) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	UPDATE @extschema@.deletion_requests SET last_error = message WHERE id = req;
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_failed(uuid, text) FROM PUBLIC;

-- Retention: the leaf tables of every rule whose table still exists.
CREATE FUNCTION @extschema@._retention_targets(OUT rule oid, OUT leaf oid)
	RETURNS SETOF record
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	SELECT r.relid::oid, t.relid::oid
	  FROM @extschema@.retention r
	  JOIN pg_class k ON k.oid = r.relid
	 CROSS JOIN LATERAL @extschema@._lifecycle_leaves(r.relid) AS t(relid)
	 ORDER BY 1, 2;
$fn$;
REVOKE ALL ON FUNCTION @extschema@._retention_targets() FROM PUBLIC;

-- One retention batch on one leaf of a rule; counted in the rule.  With
-- an index led by the time column the batch takes the oldest expired rows
-- through it (last is NULL).  Without one, a batch goes on from tuple id
-- "after" in physical order (a TID range scan) and returns the tuple id
-- of its last row, so that a long first purge does not read the rows its
-- earlier batches left dead again and again; every row in (after, last]
-- that had expired is gone.  A pass ends with a batch of fewer rows.
CREATE FUNCTION @extschema@._retention_batch(rule oid, leaf oid, batch int, after tid DEFAULT '(0,0)',
	OUT purged bigint, OUT last tid)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	-- a large purge must not fall back to a sequential scan from the start
	SET enable_seqscan = off
	SET enable_bitmapscan = off
	AS $fn$
DECLARE
	r			record;
	indexed		bool;
BEGIN
	purged := 0;
	SELECT * INTO r FROM @extschema@.retention WHERE relid = rule FOR UPDATE;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a
					 ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
					WHERE i.indrelid = leaf AND a.attname = r.time_column
					  AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL)
	  INTO indexed;
	BEGIN
		EXECUTE format('WITH d AS (DELETE FROM ONLY %1$s WHERE ctid = ANY (ARRAY('
					   'SELECT ctid FROM ONLY %1$s WHERE %4$s%2$I < $1 LIMIT %3$s)) RETURNING ctid) '
					   'SELECT count(*), max(ctid) FROM d', leaf::regclass, r.time_column, batch,
					   CASE WHEN indexed THEN '' ELSE 'ctid > $2 AND ' END)
			INTO purged, last USING now() - r.keep, coalesce(after, '(0,0)');
		IF indexed THEN
			last := NULL;		-- no cursor: the index finds the oldest rows
		END IF;
	EXCEPTION WHEN OTHERS THEN
		-- A broken rule (column dropped, foreign key in the way) must not
		-- stop the others; it is retried at the next round.
		RAISE WARNING 'toms retention rule on % failed: %', rule::regclass, SQLERRM;
		purged := 0;
		last := NULL;
		RETURN;
	END;
	UPDATE @extschema@.retention SET rows_purged = rows_purged + purged, last_run_at = now()
	 WHERE relid = rule;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._retention_batch(oid, oid, int, tid) FROM PUBLIC;

CREATE FUNCTION @extschema@._retention_done(rule oid, purged bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	IF purged > 0 THEN
		PERFORM @extschema@._lifecycle_event('retention_purge', NULL,
			json_build_object('table', rule::regclass::text, 'rows_deleted', purged)::text, false);
	END IF;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._retention_done(oid, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	@extschema@.request_deletion(text, text, text, interval),
	@extschema@.cancel_deletion(uuid),
	@extschema@.approve_deletion(uuid),
	@extschema@.withdraw_approval(uuid),
	@extschema@.hold(text, text),
	@extschema@.release_hold(text),
	@extschema@.register_copy(regclass, name, name),
	@extschema@.unregister_copy(regclass),
	@extschema@.set_retention(regclass, name, interval),
	@extschema@.clear_retention(regclass),
	@extschema@.deletion_certificate(uuid)
	TO toms_admin;
GRANT EXECUTE ON FUNCTION @extschema@.deletion_certificate(uuid) TO toms_auditor;
REVOKE EXECUTE ON FUNCTION
	@extschema@.request_deletion(text, text, text, interval),
	@extschema@.cancel_deletion(uuid),
	@extschema@.approve_deletion(uuid),
	@extschema@.withdraw_approval(uuid),
	@extschema@.hold(text, text),
	@extschema@.release_hold(text),
	@extschema@.register_copy(regclass, name, name),
	@extschema@.unregister_copy(regclass),
	@extschema@.set_retention(regclass, name, interval),
	@extschema@.clear_retention(regclass),
	@extschema@.deletion_certificate(uuid),
	@extschema@._lifecycle_scope(oid, name, name, bool)
	FROM PUBLIC;
-- Account security (docs/accounts.md; measures 4a-4e, 6a).

-- Previous passwords of each role, as Argon2id strings (libsodium
-- crypto_pwhash_str) only; written by toms' check_password_hook inside the
-- CREATE/ALTER ROLE transaction.  Keyed by name: at CREATE ROLE the role
-- has no OID yet.  Nobody reads it through SQL.
CREATE TABLE @extschema@.password_history (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	role		name NOT NULL,
	hash		text NOT NULL CHECK (hash LIKE '$argon2id$%'),
	set_at		timestamptz NOT NULL DEFAULT now(),
	set_by		name NOT NULL DEFAULT session_user
);
CREATE INDEX ON @extschema@.password_history (role, id);
COMMENT ON TABLE @extschema@.password_history IS 'toms: slow hashes of recent passwords, to refuse their reuse';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.password_history', '');
REVOKE ALL ON @extschema@.password_history FROM PUBLIC;

-- Roles taken out of service by toms.deactivate_role().
CREATE TABLE @extschema@.deactivated_roles (
	role		regrole PRIMARY KEY,
	reason		text NOT NULL CHECK (length(btrim(reason)) > 0),
	deactivated_at timestamptz NOT NULL DEFAULT now(),
	deactivated_by name NOT NULL DEFAULT session_user,
	tenants		text[] NOT NULL DEFAULT '{}',	-- memberships removed
	grants		bigint[] NOT NULL DEFAULT '{}'	-- toms.grants rows revoked
);
COMMENT ON TABLE @extschema@.deactivated_roles IS 'toms: deactivated roles, with what was taken from them';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.deactivated_roles', '');
REVOKE ALL ON @extschema@.deactivated_roles FROM PUBLIC;
GRANT SELECT ON @extschema@.deactivated_roles TO toms_admin, toms_auditor;

-- Login state kept in shared memory (and the state file) by the
-- authentication hook.
CREATE FUNCTION @extschema@.login_state(
	OUT role name, OUT failed_logins integer, OUT last_failure timestamptz,
	OUT locked_at timestamptz, OUT locked_until timestamptz,
	OUT last_login timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'toms_login_state'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION @extschema@.login_state() IS 'toms: failed logins, locks and last successful login per role name';
REVOKE ALL ON FUNCTION @extschema@.login_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.login_state() TO toms_admin, toms_auditor;

CREATE VIEW @extschema@.locked_roles AS
	SELECT role, locked_at, locked_until, last_failure
	FROM @extschema@.login_state()
	WHERE locked_until IS NOT NULL;
COMMENT ON VIEW @extschema@.locked_roles IS 'toms: roles locked after too many failed logins';
REVOKE ALL ON @extschema@.locked_roles FROM PUBLIC;
GRANT SELECT ON @extschema@.locked_roles TO toms_admin, toms_auditor;

-- The lock-out state is kept by role name (a login attempt may name a role
-- that does not exist); toms.unlock_role() and reactivate_role() pass the
-- name of an existing role.
CREATE FUNCTION @extschema@._unlock_role(role name) RETURNS boolean
	AS 'MODULE_PATHNAME', 'toms_unlock_role'
	LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION @extschema@._unlock_role(name) FROM PUBLIC;

CREATE FUNCTION @extschema@.unlock_role(role regrole) RETURNS boolean
	LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	rname	name;
BEGIN
	SELECT r.rolname INTO rname FROM pg_catalog.pg_roles r WHERE r.oid = role;
	IF rname IS NULL THEN
		RAISE EXCEPTION 'role with OID % does not exist', role::oid USING ERRCODE = '42704';
	END IF;
	RETURN @extschema@._unlock_role(rname);
END
$$;
COMMENT ON FUNCTION @extschema@.unlock_role(regrole) IS 'toms: lift a lock-out; true if the role was locked';
REVOKE ALL ON FUNCTION @extschema@.unlock_role(regrole) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.unlock_role(regrole) TO toms_admin;

-- Login roles without a successful login for older_than (measure 4d).  A
-- role with no recorded login shows last_login NULL: toms records logins
-- from the moment it is preloaded.
CREATE FUNCTION @extschema@.stale_roles(older_than interval)
	RETURNS TABLE (role name, last_login timestamptz)
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT r.rolname, s.last_login
	FROM pg_catalog.pg_roles r
	LEFT JOIN @extschema@.login_state() s ON s.role = r.rolname
	WHERE r.rolcanlogin
	  AND (s.last_login IS NULL OR s.last_login < pg_catalog.now() - older_than)
	ORDER BY s.last_login NULLS FIRST, r.rolname
$$;
REVOKE ALL ON FUNCTION @extschema@.stale_roles(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.stale_roles(interval) TO toms_admin, toms_auditor;

-- Take a role out of service (measure 4d): NOLOGIN, its tenant memberships
-- removed, its need-to-know grants revoked, its sessions ended, audited.
CREATE FUNCTION @extschema@.deactivate_role(role regrole, reason text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	rname	name;
	rsuper	boolean;
	v_tenants text[];
	v_grants bigint[];
	v_sessions integer;
	v_pid	integer;
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null' USING ERRCODE = '22004';
	END IF;
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to deactivate a role' USING ERRCODE = '22023';
	END IF;
	SELECT r.rolname, r.rolsuper INTO rname, rsuper FROM pg_catalog.pg_roles r WHERE r.oid = role;
	IF rname IS NULL THEN
		RAISE EXCEPTION 'role with OID % does not exist', role::oid USING ERRCODE = '42704';
	END IF;
	IF rname = session_user THEN
		RAISE EXCEPTION 'a role cannot deactivate itself' USING ERRCODE = '22023';
	END IF;
	IF rsuper AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user) THEN
		RAISE EXCEPTION 'only a superuser may deactivate superuser "%"', rname USING ERRCODE = '42501';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.deactivated_roles d WHERE d.role = deactivate_role.role) THEN
		RAISE EXCEPTION 'role "%" is already deactivated', rname USING ERRCODE = '55000';
	END IF;

	EXECUTE pg_catalog.format('ALTER ROLE %I NOLOGIN', rname);

	WITH d AS (
		DELETE FROM @extschema@.members m WHERE m.role OPERATOR(pg_catalog.=) deactivate_role.role
		RETURNING m.tenant)
	SELECT coalesce(pg_catalog.array_agg(d.tenant ORDER BY d.tenant), '{}') INTO v_tenants FROM d;

	WITH g AS (
		UPDATE @extschema@.grants g SET revoked_at = pg_catalog.now(), revoked_by = session_user
		WHERE g.role OPERATOR(pg_catalog.=) deactivate_role.role AND g.revoked_at IS NULL
		RETURNING g.id)
	SELECT coalesce(pg_catalog.array_agg(g.id ORDER BY g.id), '{}') INTO v_grants FROM g;

	INSERT INTO @extschema@.deactivated_roles (role, reason, tenants, grants)
		VALUES (deactivate_role.role, reason, v_tenants, v_grants);

	-- One at a time: a qual would let the planner call
	-- pg_terminate_backend() before the other conditions.
	v_sessions := 0;
	FOR v_pid IN
		SELECT a.pid FROM pg_catalog.pg_stat_activity a
		WHERE a.usesysid OPERATOR(pg_catalog.=) deactivate_role.role::oid
		  AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
	LOOP
		IF pg_catalog.pg_terminate_backend(v_pid) THEN
			v_sessions := v_sessions + 1;
		END IF;
	END LOOP;

	PERFORM @extschema@._audit_admin_event('deactivate_role', NULL,
		pg_catalog.json_build_object('role', rname, 'reason', reason, 'tenants', v_tenants,
			'grants', v_grants, 'sessions_terminated', v_sessions)::text);
END
$$;
COMMENT ON FUNCTION @extschema@.deactivate_role(regrole, text) IS 'toms: NOLOGIN, memberships and grants revoked, sessions ended, audited';
REVOKE ALL ON FUNCTION @extschema@.deactivate_role(regrole, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.deactivate_role(regrole, text) TO toms_admin;

-- Undo deactivate_role(): LOGIN again.  Memberships and grants are not
-- restored (they are listed in toms.deactivated_roles until now); grant
-- them anew where still needed.
CREATE FUNCTION @extschema@.reactivate_role(role regrole, reason text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	rname	name;
	rsuper	boolean;
	d		record;
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null' USING ERRCODE = '22004';
	END IF;
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to reactivate a role' USING ERRCODE = '22023';
	END IF;
	SELECT r.rolname, r.rolsuper INTO rname, rsuper FROM pg_catalog.pg_roles r WHERE r.oid = role;
	IF rname IS NULL THEN
		RAISE EXCEPTION 'role with OID % does not exist', role::oid USING ERRCODE = '42704';
	END IF;
	IF rsuper AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user) THEN
		RAISE EXCEPTION 'only a superuser may reactivate superuser "%"', rname USING ERRCODE = '42501';
	END IF;
	DELETE FROM @extschema@.deactivated_roles x WHERE x.role = reactivate_role.role RETURNING x.* INTO d;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role "%" is not deactivated', rname USING ERRCODE = '55000';
	END IF;

	EXECUTE pg_catalog.format('ALTER ROLE %I LOGIN', rname);
	PERFORM @extschema@._unlock_role(rname);

	PERFORM @extschema@._audit_admin_event('reactivate_role', NULL,
		pg_catalog.json_build_object('role', rname, 'reason', reason,
			'deactivated_at', d.deactivated_at, 'deactivation_reason', d.reason,
			'tenants_not_restored', d.tenants, 'grants_not_restored', d.grants)::text);
END
$$;
COMMENT ON FUNCTION @extschema@.reactivate_role(regrole, text) IS 'toms: allow a deactivated role to log in again, audited';
REVOKE ALL ON FUNCTION @extschema@.reactivate_role(regrole, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.reactivate_role(regrole, text) TO toms_admin;
-- Self-assessment (measures 11a and 2, and evidence for every measure it
-- can see; docs/assess.md).
--
-- toms.assess() runs one function per control, toms._assess_<control>(),
-- in the order of the measures.  Each reads the catalogs, the statistics
-- views and toms' own tables, and runs in its own subtransaction (the
-- EXCEPTION clause of its body), so a check that cannot run reports 'n/a'
-- with the error instead of taking the others down.

-- Every assessment is recorded: the evidence that audits are regular (11a),
-- and the point up to which the audit chain has been verified, so the next
-- assessment verifies only what was added since.
CREATE TABLE @extschema@.assessments (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	run_at		timestamptz NOT NULL DEFAULT now(),
	run_by		name NOT NULL DEFAULT session_user,
	n_pass		int NOT NULL,
	n_warn		int NOT NULL,
	n_fail		int NOT NULL,
	n_na		int NOT NULL,
	failed		text[] NOT NULL DEFAULT '{}',
	audit_verified_to bigint
);
COMMENT ON TABLE @extschema@.assessments IS 'toms: one row per run of toms.assess()';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.assessments', '');
REVOKE ALL ON @extschema@.assessments FROM PUBLIC;
GRANT SELECT ON @extschema@.assessments TO toms_admin, toms_auditor;

-- Helpers -------------------------------------------------------------------

-- "a, b, c and 4 more": evidence stays short however much is wrong.
CREATE FUNCTION @extschema@._assess_list(items text[], max_items int DEFAULT 8) RETURNS text
	LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN cardinality(items) IS NULL OR cardinality(items) = 0 THEN 'none'
		WHEN cardinality(items) <= max_items THEN array_to_string(items, ', ')
		ELSE array_to_string(items[1:max_items], ', ') || format(' and %s more', cardinality(items) - max_items)
	END
$$;

-- Is the object part of an installed extension (vetted by its installer)?
CREATE FUNCTION @extschema@._assess_in_extension(classid regclass, objid oid) RETURNS boolean
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM pg_depend d
					WHERE d.classid = $1 AND d.objid = $2 AND d.deptype = 'e')
$$;

-- The worse of two statuses: fail > warn > pass > n/a.
CREATE FUNCTION @extschema@._assess_worst(a text, b text) RETURNS text
	LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN 'fail' IN (a, b) THEN 'fail'
		WHEN 'warn' IN (a, b) THEN 'warn'
		WHEN 'pass' IN (a, b) THEN 'pass'
		ELSE 'n/a'
	END
$$;

-- The policy expression toms.protect() creates for a tenant column of this
-- type, as pg_get_expr() prints it (search_path without toms).
CREATE FUNCTION @extschema@._assess_policy_expr(col name, typ oid) RETURNS text
	LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE typ
		WHEN 'text'::regtype THEN format('(%s = @extschema@.current_tenant())', quote_ident(col))
		WHEN 'varchar'::regtype THEN format('((%s)::text = @extschema@.current_tenant())', quote_ident(col))
		WHEN 'uuid'::regtype THEN format('(%s = (@extschema@.current_tenant())::uuid)', quote_ident(col))
		WHEN 'int4'::regtype THEN format('(%s = (@extschema@.current_tenant())::integer)', quote_ident(col))
		WHEN 'int8'::regtype THEN format('(%s = (@extschema@.current_tenant())::bigint)', quote_ident(col))
	END
$$;

-- The names in toms.tenant_column_names, parsed as its check hook parses
-- them (src/assess.c).
CREATE FUNCTION @extschema@._tenant_column_names() RETURNS name[]
	AS 'MODULE_PATHNAME', 'toms_tenant_column_names'
	LANGUAGE C STABLE;

REVOKE ALL ON FUNCTION @extschema@._assess_list(text[], int), @extschema@._assess_worst(text, text),
	@extschema@._assess_in_extension(regclass, oid),
	@extschema@._assess_policy_expr(name, oid), @extschema@._tenant_column_names() FROM PUBLIC;

-- The checks ------------------------------------------------------------------
--
-- Each returns one row (control, title, status, evidence).  The evidence is
-- built as one sentence per part (e) and joined with '; '; the status (s)
-- is the worst of its parts.

-- 4a: least privilege.
CREATE FUNCTION @extschema@._assess_4a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	items		text[];
	items2		text[];
	n			bigint;
	admin_names text[] := ARRAY[
		'create_tenant', 'add_member', 'remove_member', 'grant_access', 'revoke_access',
		'protect', 'unprotect', 'trust_key', 'distrust_key',
		'rotate_tenant_key', 'rotate_master_key', 'destroy_tenant_keys', 'reseal_start', 'reseal_step',
		'request_deletion', 'cancel_deletion', 'approve_deletion', 'withdraw_approval',
		'hold', 'release_hold', 'register_copy', 'unregister_copy', 'set_retention', 'clear_retention',
		'deactivate_role', 'reactivate_role', 'unlock_role'];
BEGIN
	control := '4a';
	title := 'access only for roles that need it';
	-- Admin functions: those granted to toms_admin, the administration
	-- functions by name, and the internal _* helpers beyond the grants
	-- toms installs on some of them (the trigger function a restore
	-- recreates, the function behind toms.audit_stats); nobody else may run
	-- them.
	SELECT array_agg(DISTINCT format('%s(%s) executable by %s', p.proname,
									 pg_get_function_identity_arguments(p.oid),
									 CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END)
					 ORDER BY format('%s(%s) executable by %s', p.proname,
									 pg_get_function_identity_arguments(p.oid),
									 CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END))
	  INTO items
	  FROM pg_proc p
	  CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
	 WHERE p.pronamespace = '@extschema@'::regnamespace
	   AND a.privilege_type = 'EXECUTE'
	   AND a.grantee <> p.proowner
	   AND a.grantee <> 'toms_admin'::regrole
	   AND (p.proname = ANY (admin_names)
			OR (p.proname LIKE '\_%'
				AND NOT EXISTS (SELECT 1 FROM pg_init_privs ip, aclexplode(ip.initprivs) ia
								 WHERE ip.objoid = p.oid AND ip.classoid = 'pg_proc'::regclass
								   AND ip.objsubid = 0 AND ia.grantee = a.grantee
								   AND ia.privilege_type = 'EXECUTE'))
			OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) x
						WHERE x.grantee = 'toms_admin'::regrole AND x.privilege_type = 'EXECUTE'
						  AND NOT EXISTS (SELECT 1 FROM aclexplode(p.proacl) y
										   WHERE y.grantee IN ('toms_auditor'::regrole, 'toms_app'::regrole)
											 AND y.privilege_type = 'EXECUTE')));
	-- Whatever was granted on toms' functions and tables since they were
	-- installed (pg_init_privs keeps the extension's own grants).
	WITH acl AS (
		SELECT p.oid, 'pg_proc'::regclass AS cls,
			   format('%s(%s)', p.proname, pg_get_function_identity_arguments(p.oid)) AS obj,
			   p.proowner AS owner, a.grantee, a.privilege_type
		  FROM pg_proc p
		  CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
		 WHERE p.pronamespace = '@extschema@'::regnamespace
		UNION ALL
		SELECT c.oid, 'pg_class'::regclass, c.oid::regclass::text, c.relowner, a.grantee, a.privilege_type
		  FROM pg_class c
		  CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) a
		 WHERE c.relnamespace = '@extschema@'::regnamespace AND c.relkind IN ('r', 'v', 'p', 'S'))
	SELECT array_agg(format('%s %s granted to %s', acl.obj, acl.privilege_type,
							CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE acl.grantee::regrole::text END)
					 ORDER BY acl.obj, acl.privilege_type)
	  INTO items2
	  FROM acl
	 WHERE acl.grantee <> acl.owner
	   AND EXISTS (SELECT 1 FROM pg_init_privs ip
					WHERE ip.objoid = acl.oid AND ip.classoid = acl.cls AND ip.objsubid = 0)
	   AND NOT EXISTS (SELECT 1 FROM pg_init_privs ip, aclexplode(ip.initprivs) ia
						WHERE ip.objoid = acl.oid AND ip.classoid = acl.cls AND ip.objsubid = 0
						  AND ia.grantee = acl.grantee AND ia.privilege_type = acl.privilege_type);
	items2 := array(SELECT DISTINCT x FROM unnest(coalesce(items2, '{}')) x
					 WHERE NOT EXISTS (SELECT 1 FROM unnest(coalesce(items, '{}')) y
										WHERE y = replace(x, ' EXECUTE granted to ', ' executable by '))
					 ORDER BY x);
	items := coalesce(items, '{}') || coalesce(items2, '{}');
	-- Application roles (toms_app members, tenant members) must not own
	-- protected tables: an owner may drop the table, or grant it away.
	-- (pg_has_role() would count every superuser as a member.)
	WITH RECURSIVE app(r) AS (
		SELECT 'toms_app'::regrole::oid
		UNION SELECT m.role::oid FROM @extschema@.members m
		UNION SELECT g.role::oid FROM @extschema@.grants g
		UNION SELECT am.member FROM pg_auth_members am JOIN app ON am.roleid = app.r)
	SELECT array_agg(format('%s owned by application role %s', c.oid::regclass, c.relowner::regrole) ORDER BY 1)
	  INTO items2
	  FROM @extschema@.protected_tables pt
	  JOIN pg_class c ON c.oid = pt.relid
	 WHERE c.relowner IN (SELECT app.r FROM app);
	items := items || coalesce(items2, '{}');
	SELECT count(*) INTO n FROM pg_auth_members m WHERE m.roleid = 'toms_admin'::regrole;
	IF cardinality(items) > 0 THEN
		status := 'fail';
		evidence := format('%s privilege problem(s): %s (revoke them: admin functions belong to toms_admin, protected tables to a non-application owner)',
						   cardinality(items), @extschema@._assess_list(items));
	ELSE
		status := 'pass';
		evidence := format('admin functions executable only by toms_admin (%s member(s)); no privilege on toms functions and tables granted beyond the installed ones; no protected table owned by an application role', n);
	END IF;
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 4b: unique identifiers in the audit trail.
CREATE FUNCTION @extschema@._assess_4b(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	n			bigint;
	n2			bigint;
BEGIN
	control := '4b';
	title := 'every access carries a unique identifier';
	s := 'pass';
	-- The launcher is permanent; database workers come and go with the
	-- queue.
	SELECT count(*) FILTER (WHERE a.backend_type ILIKE 'toms audit launcher%'),
		   count(*) FILTER (WHERE a.backend_type ILIKE 'toms audit worker%')
	  INTO n, n2 FROM pg_stat_activity a;
	IF pg_is_in_recovery() THEN
		s := 'n/a'; e := e || 'this server is a standby: the audit workers run on the primary'::text;
	ELSIF n + n2 = 0 THEN
		s := 'fail'; e := e || 'no toms audit launcher or worker is running'::text;
	ELSE
		e := e || format('audit launcher %s, %s database worker(s) active',
						 CASE WHEN n > 0 THEN 'running' ELSE 'not running' END, n2);
	END IF;
	SELECT count(*), count(*) FILTER (WHERE l.session_role IS NULL OR l.session_role = '')
	  INTO n, n2
	  FROM @extschema@.audit_log l
	 WHERE l.ts > now() - current_setting('toms.assess_period')::interval;
	IF n2 > 0 THEN
		s := 'fail';
	ELSIF s = 'n/a' AND n > 0 THEN
		s := 'pass';
	END IF;
	e := e || format('%s audit record(s) in the last %s, %s without a session role',
					 n, current_setting('toms.assess_period'), n2);
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 4c: passwords.
CREATE FUNCTION @extschema@._assess_4c(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	v			text;
BEGIN
	control := '4c';
	title := 'password policy, scram-sha-256, expiry';
	s := 'pass';
	v := current_setting('password_encryption');
	IF v <> 'scram-sha-256' THEN
		s := 'fail';
		e := e || format('password_encryption = %s (set it to scram-sha-256)', v);
	ELSE
		e := e || 'password_encryption = scram-sha-256'::text;
	END IF;
	IF has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
		SELECT array_agg(a.rolname::text ORDER BY a.rolname) INTO items
		  FROM pg_authid a WHERE a.rolcanlogin AND a.rolpassword LIKE 'md5%';
		IF cardinality(items) > 0 THEN
			s := 'fail';
			e := e || format('login roles with md5 passwords: %s (set a new password so it is stored as scram-sha-256)',
							 @extschema@._assess_list(items));
		ELSE
			e := e || 'no md5 password stored'::text;
		END IF;
		SELECT array_agg(a.rolname::text ORDER BY a.rolname) INTO items
		  FROM pg_authid a
		 WHERE a.rolcanlogin AND a.rolpassword IS NOT NULL AND a.rolvaliduntil IS NULL
		   AND a.oid <> 10;
		IF cardinality(items) > 0 THEN
			s := @extschema@._assess_worst(s, 'warn');
			e := e || format('login roles with a password and no VALID UNTIL: %s', @extschema@._assess_list(items));
		END IF;
	ELSE
		e := e || 'stored passwords not checked (pg_authid is not readable by the extension owner)'::text;
	END IF;
	e := e || format('password policy hook active (minimum length %s)',
					 current_setting('toms.password_min_length'));
	IF current_setting('toms.password_allow_prehashed') = 'on' THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || 'toms.password_allow_prehashed = on lets pre-hashed passwords past the policy'::text;
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 4d: leavers.  A role with no recorded login is new, or older than the
-- record: counted, not called stale.
CREATE FUNCTION @extschema@._assess_4d(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	items		text[];
	n			bigint;
	stale_after interval;
BEGIN
	control := '4d';
	title := 'roles of leavers deactivated';
	stale_after := current_setting('toms.assess_period')::interval * 13;
	SELECT array_agg(s.role::text ORDER BY s.role) FILTER (WHERE s.last_login IS NOT NULL),
		   count(*) FILTER (WHERE s.last_login IS NULL)
	  INTO items, n
	  FROM @extschema@.stale_roles(stale_after) s
	 WHERE s.role::text <> (SELECT r.rolname FROM pg_roles r WHERE r.oid = 10);
	IF cardinality(items) > 0 THEN
		status := 'warn';
		evidence := format('login roles with no login for %s days: %s (toms.deactivate_role() those who left)',
						   floor(extract(epoch FROM stale_after) / 86400), @extschema@._assess_list(items));
	ELSE
		status := 'pass';
		evidence := format('no login role idle for longer than %s days', floor(extract(epoch FROM stale_after) / 86400));
	END IF;
	evidence := evidence || format('; %s login role(s) with no login recorded', n);
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 4e: access and attempts logged.
CREATE FUNCTION @extschema@._assess_4e(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
BEGIN
	control := '4e';
	title := 'access and attempted access logged';
	s := 'pass';
	e := e || 'statements on protected tables and denied attempts are audited (toms.audit_log)'::text;
	IF current_setting('toms.max_failed_logins')::int <= 0 THEN
		s := 'warn';
		e := e || 'lock-out is off (toms.max_failed_logins = 0)'::text;
	ELSE
		e := e || format('logins audited; lock-out after %s failures within %s for %s',
						 current_setting('toms.max_failed_logins'),
						 current_setting('toms.lockout_window'),
						 current_setting('toms.lockout_duration'));
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 5a: no access to customer data as a matter of course.
CREATE FUNCTION @extschema@._assess_5a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	n			bigint;
	b			boolean;
BEGIN
	control := '5a';
	title := 'no stray superuser or BYPASSRLS roles';
	s := 'pass';
	SELECT array_agg(format('%s (%s%s)', r.rolname,
							concat_ws(', ', CASE WHEN r.rolsuper THEN 'superuser' END,
									  CASE WHEN r.rolbypassrls THEN 'bypassrls' END),
							CASE WHEN r.rolcanlogin THEN ', login' ELSE '' END)
					 ORDER BY r.rolname),
		   bool_or(r.rolcanlogin)
	  INTO items, b
	  FROM pg_roles r
	 WHERE (r.rolsuper OR r.rolbypassrls) AND r.oid <> 10;
	IF cardinality(items) > 0 THEN
		s := CASE WHEN b THEN 'fail' ELSE 'warn' END;
		e := e || format('roles outside row security besides the bootstrap superuser: %s (ALTER ROLE ... NOSUPERUSER NOBYPASSRLS)',
						 @extschema@._assess_list(items));
	ELSE
		e := e || 'only the bootstrap superuser bypasses row security'::text;
	END IF;
	SELECT count(*) INTO n
	  FROM @extschema@.audit_log l JOIN pg_roles r ON r.rolname = l.session_role
	 WHERE l.ts > now() - current_setting('toms.assess_period')::interval
	   AND (r.rolsuper OR r.rolbypassrls) AND l.relname IS NOT NULL AND l.action = 'SELECT';
	IF n > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
	END IF;
	e := e || format('%s read(s) of protected tables by roles outside row security in the last %s',
					 n, current_setting('toms.assess_period'));
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 5b: need-to-know access.
CREATE FUNCTION @extschema@._assess_5b(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			bigint;
	n2			bigint;
BEGIN
	control := '5b';
	title := 'need-to-know access, justified and time-boxed';
	SELECT count(*) FILTER (WHERE g.revoked_at IS NULL AND g.valid_until > now()),
		   count(*) FILTER (WHERE g.justification IS NULL OR btrim(g.justification) = '')
	  INTO n, n2
	  FROM @extschema@.grants g;
	IF n2 > 0 THEN
		status := 'fail';
		evidence := format('%s grant(s) without a justification', n2);
	ELSE
		status := 'pass';
		evidence := format('%s live grant(s), every grant justified and time-boxed', n);
	END IF;
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 5c: access under a grant logged.
CREATE FUNCTION @extschema@._assess_5c(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			bigint;
	n2			bigint;
	n3			bigint;
BEGIN
	control := '5c';
	title := 'access under a grant logged with its justification';
	SELECT count(*),
		   count(*) FILTER (WHERE l.justification IS NULL),
		   count(*) FILTER (WHERE l.ts > coalesce(least(g.valid_until, g.revoked_at), g.valid_until))
	  INTO n, n2, n3
	  FROM @extschema@.audit_log l JOIN @extschema@.grants g ON g.id = l.grant_id
	 WHERE l.ts > now() - current_setting('toms.assess_period')::interval;
	status := CASE WHEN n2 > 0 OR n3 > 0 THEN 'fail' ELSE 'pass' END;
	evidence := format('%s audited statement(s) under grants in the last %s: %s without justification, %s after the grant ended',
					   n, current_setting('toms.assess_period'), n2, n3);
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 6a: TLS.
CREATE FUNCTION @extschema@._assess_6a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	v			text;
BEGIN
	control := '6a';
	title := 'connections protected by current TLS';
	s := 'pass';
	v := current_setting('listen_addresses');
	IF btrim(v) = '' THEN
		s := 'n/a';
		e := e || 'listen_addresses is empty: the server accepts Unix-socket connections only'::text;
	ELSIF current_setting('ssl') <> 'on' THEN
		s := 'fail';
		e := e || format('ssl = off while listening on %s', v);
	ELSE
		e := e || 'ssl = on'::text;
		v := current_setting('ssl_min_protocol_version');
		IF v NOT IN ('TLSv1.2', 'TLSv1.3') THEN
			s := 'fail';
			e := e || format('ssl_min_protocol_version = %s (set TLSv1.2 or later)', v);
		ELSE
			e := e || format('ssl_min_protocol_version = %s', v);
		END IF;
	END IF;
	IF s <> 'n/a' THEN
		-- TCP without TLS is refused by pg_hba.conf (hostssl only) or by
		-- toms.require_tls; either is enough.
		IF has_function_privilege('pg_catalog.pg_hba_file_rules()', 'EXECUTE') THEN
			SELECT coalesce(array_agg(format('line %s', h.line_number) ORDER BY h.line_number), '{}')
			  INTO items
			  FROM pg_hba_file_rules h WHERE h.type = 'host' AND h.auth_method <> 'reject';
		END IF;
		v := current_setting('toms.require_tls');
		IF v = 'on' THEN
			e := e || format('toms.require_tls = on (minimum %s)', current_setting('toms.min_tls_version'));
		ELSIF items IS NULL THEN
			s := @extschema@._assess_worst(s, 'warn');
			e := e || format('toms.require_tls is %s and pg_hba.conf could not be read', v);
		ELSIF cardinality(items) > 0 THEN
			s := @extschema@._assess_worst(s, 'warn');
			e := e || format('pg_hba.conf admits TCP connections without TLS (%s): use hostssl, or toms.require_tls = on',
							 @extschema@._assess_list(items));
		ELSE
			e := e || 'pg_hba.conf admits TCP connections only with TLS (hostssl)'::text;
		END IF;
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 6b: two-stage deletion on time.
CREATE FUNCTION @extschema@._assess_6b(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			bigint;
	n2			bigint;
	n3			bigint;
BEGIN
	control := '6b';
	title := 'deletion requests completed on time';
	SELECT count(*) FILTER (WHERE r.state NOT IN ('done', 'cancelled')),
		   count(*) FILTER (WHERE r.state NOT IN ('done', 'cancelled', 'waiting_copies')
							  AND r.not_before < now() - interval '1 hour'
							  AND (NOT r.approval_required OR r.approved_at IS NOT NULL)
							  AND NOT EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = r.tenant)),
		   count(*) FILTER (WHERE r.state = 'waiting_copies')
	  INTO n, n2, n3
	  FROM @extschema@.deletion_requests r;
	status := CASE WHEN n2 > 0 THEN 'fail' WHEN n3 > 0 THEN 'warn' ELSE 'pass' END;
	SELECT count(*) INTO n FROM @extschema@.holds;
	evidence := format('%s overdue by more than an hour past their grace period, %s waiting on standby copies, %s legal hold(s)',
					   n2, n3, n);
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 7: confidentiality and integrity.  The audit chain is verified from
-- where the last recorded assessment left it (prev_verified) to the newest
-- record; verified_to is the new point for assess() to record (NULL when
-- the chain is broken, so the stretch is verified again next time).
CREATE FUNCTION @extschema@._assess_7(prev_verified bigint,
	OUT control text, OUT title text, OUT status text, OUT evidence text, OUT verified_to bigint)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	n			bigint;
	n2			bigint;
	b			boolean;
	v			text;
BEGIN
	control := '7';
	title := 'data confidential and intact: keys, sealed columns, audit chain';
	-- Declared sensitive columns must be toms.sealed.
	SELECT array_agg(format('%s.%s', pt.relid, col) ORDER BY 1)
	  INTO items
	  FROM @extschema@.protected_tables pt
	  CROSS JOIN LATERAL unnest(pt.sensitive) col
	  LEFT JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = col AND NOT a.attisdropped
	 WHERE a.atttypid IS DISTINCT FROM '@extschema@.sealed'::regtype;
	SELECT count(*) INTO n2 FROM @extschema@.protected_tables pt, unnest(pt.sensitive);
	IF @extschema@.master_key_loaded() THEN
		s := 'pass'; e := e || 'master key loaded'::text;
	ELSIF n2 > 0 THEN
		s := 'fail'; e := e || 'master key NOT loaded while sealed columns exist'::text;
	ELSE
		s := 'warn'; e := e || 'master key not loaded (toms.master_key_file or toms.master_key_command)'::text;
	END IF;
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('sensitive columns not of type toms.sealed: %s', @extschema@._assess_list(items));
	END IF;
	e := e || format('%s sensitive column(s) declared', n2);
	SELECT count(*) FILTER (WHERE k.status <> 'destroyed'),
		   count(*) FILTER (WHERE k.status <> 'destroyed' AND k.wrapped IS NULL)
	  INTO n, n2
	  FROM @extschema@.tenant_keys k;
	IF n2 > 0 THEN
		s := 'fail';
	END IF;
	e := e || format('%s tenant key(s) held, %s not wrapped', n, n2);
	SELECT max(l.seq) INTO verified_to FROM @extschema@.audit_log l;
	IF verified_to IS NULL OR verified_to <= coalesce(prev_verified, 0) THEN
		e := e || format('audit chain: nothing new since the last assessment (verified up to %s)',
						 coalesce(prev_verified, 0));
		verified_to := prev_verified;
	ELSE
		SELECT r.ok, r.first_bad, r.detail INTO b, n, v
		  FROM @extschema@.verify_audit(coalesce(prev_verified, 0) + 1, verified_to) r;
		IF b THEN
			e := e || format('audit chain verified from record %s to %s',
							 coalesce(prev_verified, 0) + 1, verified_to);
		ELSE
			s := 'fail';
			e := e || format('audit chain BROKEN at record %s: %s', n, v);
			verified_to := NULL;
		END IF;
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
	verified_to := NULL;
END
$$;

-- 8a: three copies.
CREATE FUNCTION @extschema@._assess_8a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	n			bigint;
	v			text;
BEGIN
	control := '8a';
	title := 'data held in three copies (primary + two standbys)';
	IF pg_is_in_recovery() THEN
		status := 'n/a';
		evidence := 'this server is a standby; assess the copies on the primary';
		RETURN;
	END IF;
	s := 'pass';
	SELECT count(*) FILTER (WHERE r.state = 'streaming'),
		   array_agg(format('%s (%s, %s)', r.application_name, r.state, r.sync_state)
					 ORDER BY r.application_name)
	  INTO n, items
	  FROM pg_stat_replication r;
	IF n < 2 THEN
		s := 'warn';
	END IF;
	e := e || format('%s streaming standby(s) of 2 required for three copies: %s', n,
					 @extschema@._assess_list(items));
	v := current_setting('synchronous_standby_names');
	IF v = '' THEN
		e := e || 'replication is asynchronous (synchronous_standby_names is empty)'::text;
	ELSE
		e := e || format('synchronous_standby_names = %s, synchronous_commit = %s', v,
						 current_setting('synchronous_commit'));
	END IF;
	v := current_setting('toms.deletion_copies');
	IF v::int < 0 THEN
		e := e || 'toms.deletion_copies = -1: deletions wait for every streaming standby'::text;
	ELSIF v::int < 2 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('toms.deletion_copies = %s: deletions are confirmed on fewer than two standbys', v);
	ELSIF v::int > n THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('toms.deletion_copies = %s but only %s standby(s) stream: deletions will wait', v, n);
	ELSE
		e := e || format('toms.deletion_copies = %s', v);
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 9a: logical separation.
CREATE FUNCTION @extschema@._assess_9a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	n			bigint;
BEGIN
	control := '9a';
	title := 'tenant tables protected, row security forced, policy intact';
	s := 'pass';
	-- Tables with a tenant column that toms does not protect.
	SELECT array_agg(format('%s (column %s)', c.oid::regclass, a.attname) ORDER BY c.oid::regclass::text)
	  INTO items
	  FROM pg_class c
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE a.attname = ANY (@extschema@._tenant_column_names())
	   AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
	   AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
								  '@extschema@'::regnamespace)
	   AND NOT @extschema@._assess_in_extension('pg_class', c.oid)
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.protected_tables pt WHERE pt.relid = c.oid);
	SELECT count(*) INTO n FROM @extschema@.protected_tables;
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('tables with a tenant column (toms.tenant_column_names = %s) not protected: %s (toms.protect() them)',
						 current_setting('toms.tenant_column_names'), @extschema@._assess_list(items));
	ELSE
		e := e || format('every table with a tenant column (%s) is protected: %s table(s)',
						 current_setting('toms.tenant_column_names'), n);
	END IF;
	-- Protected tables whose row security or policy was altered behind the
	-- guard (a superuser editing the catalogs, say).
	SELECT array_agg(format('%s (%s)', x.rel, x.problem) ORDER BY x.rel)
	  INTO items
	  FROM (
		SELECT pt.relid::text AS rel,
			   concat_ws(', ',
						 CASE WHEN NOT c.relrowsecurity THEN 'row security disabled' END,
						 CASE WHEN NOT c.relforcerowsecurity THEN 'row security not forced' END,
						 CASE WHEN p.oid IS NULL THEN 'policy toms_tenant missing'
							  WHEN NOT p.polpermissive OR p.polcmd <> '*' OR p.polroles <> '{0}'
								OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM
									@extschema@._assess_policy_expr(pt.tenant_column, a.atttypid)
								OR pg_get_expr(p.polwithcheck, p.polrelid) IS DISTINCT FROM
									@extschema@._assess_policy_expr(pt.tenant_column, a.atttypid)
							  THEN 'policy toms_tenant altered' END,
						 CASE WHEN EXISTS (SELECT 1 FROM pg_policy o
											WHERE o.polrelid = pt.relid AND o.polpermissive
											  AND o.polname <> 'toms_tenant')
							  THEN 'another permissive policy widens the filter' END,
						 CASE WHEN a.attnum IS NULL THEN 'tenant column missing' END) AS problem
		  FROM @extschema@.protected_tables pt
		  JOIN pg_class c ON c.oid = pt.relid
		  LEFT JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = pt.tenant_column
								   AND NOT a.attisdropped
		  LEFT JOIN pg_policy p ON p.polrelid = pt.relid AND p.polname = 'toms_tenant'
	  ) x
	 WHERE x.problem <> '';
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('protected tables weakened: %s (toms.unprotect() and toms.protect() again)',
						 @extschema@._assess_list(items));
	ELSE
		e := e || 'every protected table forces row security with its toms_tenant policy intact'::text;
	END IF;
	-- Paths around the filter that PostgreSQL cannot close (docs/tenancy.md,
	-- Known limits): warned about, naming the objects.
	-- SECURITY DEFINER functions of roles outside row security whose body
	-- names a protected table: they read every tenant's rows.
	SELECT array_agg(format('%s owned by %s (names %s)', p.oid::regprocedure,
							p.proowner::regrole, x.tabs) ORDER BY p.oid::regprocedure::text)
	  INTO items
	  FROM pg_proc p
	  JOIN pg_roles r ON r.oid = p.proowner
	  CROSS JOIN LATERAL (
		SELECT string_agg(c.relname, ', ' ORDER BY c.relname) AS tabs
		  FROM @extschema@.protected_tables pt JOIN pg_class c ON c.oid = pt.relid
		 WHERE p.prosrc ~* ('\m' || regexp_replace(c.relname, '([^[:alnum:]_])', '\\\1', 'g') || '\M')) x
	 WHERE p.prosecdef AND (r.rolsuper OR r.rolbypassrls)
	   AND x.tabs IS NOT NULL
	   AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
								  '@extschema@'::regnamespace)
	   AND NOT @extschema@._assess_in_extension('pg_proc', p.oid);
	IF cardinality(items) > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('SECURITY DEFINER functions owned by roles outside row security name protected tables (refused to callers under the tenant filter, every tenant''s rows to anyone else): %s (give them an owner subject to row security)',
						 @extschema@._assess_list(items));
	END IF;
	-- User-defined functions in a protected table's index, constraint,
	-- default or statistics expressions: REINDEX, VACUUM FULL, ANALYZE run
	-- them over every row, and what they call inside is untracked.
	SELECT array_agg(DISTINCT format('%s in %s', d.refobjid::regprocedure, t.relid::regclass))
	  INTO items
	  FROM @extschema@.protected_tables pt
	  CROSS JOIN LATERAL (
		SELECT 'pg_class'::regclass AS classid, i.indexrelid AS objid, i.indrelid AS relid
		  FROM pg_index i WHERE i.indrelid = pt.relid
		UNION ALL
		SELECT 'pg_constraint'::regclass, k.oid, k.conrelid FROM pg_constraint k WHERE k.conrelid = pt.relid
		UNION ALL
		SELECT 'pg_attrdef'::regclass, ad.oid, ad.adrelid FROM pg_attrdef ad WHERE ad.adrelid = pt.relid
		UNION ALL
		SELECT 'pg_statistic_ext'::regclass, x.oid, x.stxrelid FROM pg_statistic_ext x WHERE x.stxrelid = pt.relid
	  ) t
	  JOIN pg_depend d ON d.classid = t.classid AND d.objid = t.objid
					  AND d.refclassid = 'pg_proc'::regclass AND d.refobjid >= 16384
	 WHERE NOT @extschema@._assess_in_extension('pg_proc', d.refobjid);
	IF cardinality(items) > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('user-defined functions in expressions of protected tables (maintenance runs them over every tenant''s rows): %s (use built-in functions, or functions owned by toms_admin)',
						 @extschema@._assess_list(items));
	END IF;
	-- Large objects have per-object ACLs and no row security.
	IF n > 0 THEN
		SELECT array_agg(DISTINCT lo.lomowner::regrole::text ORDER BY lo.lomowner::regrole::text)
		  INTO items FROM pg_largeobject_metadata lo;
		IF cardinality(items) > 0 THEN
			s := @extschema@._assess_worst(s, 'warn');
			e := e || format('large objects exist, owned by %s: row security does not apply to them (keep tenant data in protected tables)',
							 @extschema@._assess_list(items));
		END IF;
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 9b: the tenant identifier at every step (side channels).
CREATE FUNCTION @extschema@._assess_9b(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
BEGIN
	control := '9b';
	title := 'tenant identifier in every key, reference and sequence';
	s := 'pass';
	-- A unique index that does not lead with the tenant column answers
	-- "does this value exist in another tenant?" with a unique violation.
	SELECT array_agg(format('%s on %s', i.indexrelid::regclass, i.indrelid::regclass)
					 ORDER BY i.indexrelid::regclass::text)
	  INTO items
	  FROM pg_index i
	  JOIN @extschema@.protected_tables pt ON pt.relid = i.indrelid
	  JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = pt.tenant_column
	 WHERE i.indisunique AND i.indkey[0] <> a.attnum;
	IF cardinality(items) > 0 THEN
		s := 'warn';
		e := e || format('unique indexes not leading with the tenant column (they reveal values of other tenants): %s (make the tenant column their first column)',
						 @extschema@._assess_list(items));
	END IF;
	-- A foreign key into a protected table without the tenant column can
	-- point at (and probe for) another tenant's row.
	SELECT array_agg(format('%s on %s', k.conname, k.conrelid::regclass) ORDER BY k.conname)
	  INTO items
	  FROM pg_constraint k
	  JOIN @extschema@.protected_tables pt ON pt.relid = k.confrelid
	  JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = pt.tenant_column
	 WHERE k.contype = 'f' AND NOT (a.attnum = ANY (k.confkey));
	IF cardinality(items) > 0 THEN
		s := 'warn';
		e := e || format('foreign keys into protected tables without the tenant column: %s (reference (tenant column, key) instead)',
						 @extschema@._assess_list(items));
	END IF;
	-- serial / identity columns: one sequence for all tenants reveals how
	-- many rows the others create.
	SELECT array_agg(format('%s.%s', a.attrelid::regclass, quote_ident(a.attname)) ORDER BY 1)
	  INTO items
	  FROM @extschema@.protected_tables pt
	  JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE a.attidentity <> ''
		OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class q ON q.oid = d.objid AND q.relkind = 'S'
					WHERE d.refobjid = pt.relid AND d.refobjsubid = a.attnum
					  AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
		OR EXISTS (SELECT 1 FROM pg_attrdef ad
					WHERE ad.adrelid = pt.relid AND ad.adnum = a.attnum
					  AND pg_get_expr(ad.adbin, ad.adrelid) LIKE 'nextval(%');
	IF cardinality(items) > 0 THEN
		s := 'warn';
		e := e || format('columns drawing from a sequence shared by all tenants (it reveals their activity): %s (use uuid keys, gen_random_uuid())',
						 @extschema@._assess_list(items));
	END IF;
	-- The tenant column is filled from the context.
	SELECT array_agg(pt.relid::text ORDER BY pt.relid::text) INTO items
	  FROM @extschema@.protected_tables pt
	  JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = pt.tenant_column
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = pt.relid AND ad.adnum = a.attnum
	 WHERE pg_get_expr(ad.adbin, ad.adrelid) IS NULL
		OR pg_get_expr(ad.adbin, ad.adrelid) NOT LIKE '%@extschema@.current_tenant()%';
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('tenant column not filled from the tenant context: %s', @extschema@._assess_list(items));
	END IF;
	IF s = 'pass' THEN
		e := e || 'every unique index and foreign key of protected tables includes the tenant column; no shared sequences; tenant columns filled from the context'::text;
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 10a: incidents recorded.
CREATE FUNCTION @extschema@._assess_10a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			bigint;
	n2			bigint;
BEGIN
	control := '10a';
	title := 'incidents recorded';
	SELECT count(*) FILTER (WHERE i.closed_at IS NULL), count(*)
	  INTO n, n2
	  FROM @extschema@.incidents i;
	status := CASE WHEN n > 0 THEN 'warn' ELSE 'pass' END;
	evidence := format('%s open incident(s) of %s recorded', n, n2);
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 10b: someone is told.  pg_listening_channels() only shows this session's
-- channels; the closest another session can see is a listener whose last
-- statement was its LISTEN.
CREATE FUNCTION @extschema@._assess_10b(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	items		text[];
BEGIN
	control := '10b';
	title := 'incidents announced without undue delay';
	SELECT array_agg(DISTINCT format('%s (pid %s)', a.usename, a.pid)) INTO items
	  FROM pg_stat_activity a
	 WHERE a.query ~* '^\s*listen\s+"?toms_incident"?\s*;?\s*$' AND a.pid <> pg_backend_pid();
	IF cardinality(items) > 0 THEN
		status := 'pass';
		evidence := format('a session listens on toms_incident: %s', @extschema@._assess_list(items));
	ELSE
		status := 'warn';
		evidence := 'no session seen listening on toms_incident (only a listener whose last statement was its LISTEN is visible from another session): run one that forwards the notifications';
	END IF;
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- 11a: regular audits.
CREATE FUNCTION @extschema@._assess_11a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			bigint;
	ts			timestamptz;
BEGIN
	control := '11a';
	title := 'security practice audited regularly';
	SELECT count(*), max(a.run_at) INTO n, ts FROM @extschema@.assessments a;
	status := 'pass';
	IF n = 0 THEN
		evidence := 'first recorded assessment';
	ELSE
		evidence := format('%s earlier assessment(s), the last at %s', n,
						   to_char(ts, 'YYYY-MM-DD HH24:MI TZ'));
		IF ts < now() - current_setting('toms.assess_period')::interval * 5 THEN
			status := 'warn';
			evidence := evidence || format(', longer ago than %s x 5', current_setting('toms.assess_period'));
		END IF;
	END IF;
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

REVOKE ALL ON FUNCTION @extschema@._assess_4a(), @extschema@._assess_4b(), @extschema@._assess_4c(),
	@extschema@._assess_4d(), @extschema@._assess_4e(), @extschema@._assess_5a(),
	@extschema@._assess_5b(), @extschema@._assess_5c(), @extschema@._assess_6a(),
	@extschema@._assess_6b(), @extschema@._assess_7(bigint), @extschema@._assess_8a(),
	@extschema@._assess_9a(), @extschema@._assess_9b(), @extschema@._assess_10a(),
	@extschema@._assess_10b(), @extschema@._assess_11a() FROM PUBLIC;

-- The assessment -------------------------------------------------------------

CREATE FUNCTION @extschema@.assess()
	RETURNS TABLE (control text, title text, status text, evidence text)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $assess$
DECLARE
	ctl			text;
	prev_verified bigint;
	verified_to bigint;
	statuses	text[] := '{}';
	controls	text[] := '{}';
BEGIN
	SELECT a.audit_verified_to INTO prev_verified
	  FROM @extschema@.assessments a WHERE a.audit_verified_to IS NOT NULL
	 ORDER BY a.id DESC LIMIT 1;

	FOREACH ctl IN ARRAY ARRAY['4a', '4b', '4c', '4d', '4e', '5a', '5b', '5c', '6a', '6b',
							   '7', '8a', '9a', '9b', '10a', '10b', '11a']
	LOOP
		IF ctl = '7' THEN
			SELECT * INTO control, title, status, evidence, verified_to
			  FROM @extschema@._assess_7(prev_verified);
		ELSE
			EXECUTE format('SELECT * FROM @extschema@.%I()', '_assess_' || ctl)
			   INTO control, title, status, evidence;
		END IF;
		RETURN NEXT;
		statuses := statuses || status;
		controls := controls || control;
	END LOOP;

	-- Record this run (not on a standby or in a read-only transaction).
	IF NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off' THEN
		INSERT INTO @extschema@.assessments (n_pass, n_warn, n_fail, n_na, failed, audit_verified_to)
		SELECT count(*) FILTER (WHERE x.st = 'pass'), count(*) FILTER (WHERE x.st = 'warn'),
			   count(*) FILTER (WHERE x.st = 'fail'), count(*) FILTER (WHERE x.st = 'n/a'),
			   coalesce(array_agg(x.ctl ORDER BY x.i) FILTER (WHERE x.st = 'fail'), '{}'),
			   coalesce(verified_to, prev_verified)
		  FROM unnest(statuses, controls) WITH ORDINALITY AS x(st, ctl, i);
	END IF;
END
$assess$;
COMMENT ON FUNCTION @extschema@.assess() IS
	'toms: self-assessment, one row per checkable measure (pass, warn, fail, n/a) with the evidence seen';
CREATE FUNCTION @extschema@.assess_report(format text DEFAULT 'text') RETURNS text
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $report$
DECLARE
	r			record;
	md			boolean;
	lines		text[];
	np int := 0; nw int := 0; nf int := 0; nn int := 0;
BEGIN
	IF assess_report.format IS NULL OR assess_report.format NOT IN ('text', 'markdown') THEN
		RAISE EXCEPTION 'unknown report format "%"', assess_report.format
			USING ERRCODE = '22023', HINT = 'Use ''text'' or ''markdown''.';
	END IF;
	md := assess_report.format = 'markdown';
	IF md THEN
		lines := ARRAY['# toms self-assessment', '',
					   format('Database `%s`, %s, by `%s`.', current_database(),
							  to_char(now(), 'YYYY-MM-DD HH24:MI:SS TZ'), session_user), '',
					   '| control | measure | status | evidence |', '|---|---|---|---|'];
	ELSE
		lines := ARRAY[format('toms self-assessment of database "%s" at %s by %s', current_database(),
							  to_char(now(), 'YYYY-MM-DD HH24:MI:SS TZ'), session_user), ''];
	END IF;
	FOR r IN SELECT * FROM @extschema@.assess() LOOP
		CASE r.status
			WHEN 'pass' THEN np := np + 1;
			WHEN 'warn' THEN nw := nw + 1;
			WHEN 'fail' THEN nf := nf + 1;
			ELSE nn := nn + 1;
		END CASE;
		IF md THEN
			lines := lines || format('| %s | %s | %s | %s |', r.control, r.title,
									 CASE WHEN r.status IN ('fail', 'warn') THEN '**' || r.status || '**' ELSE r.status END,
									 replace(replace(r.evidence, '|', '\|'), E'\n', ' '));
		ELSE
			lines := lines || format('%-4s %-5s %s', r.control, r.status, r.title)
						   || ('           ' || r.evidence);
		END IF;
	END LOOP;
	lines := lines || ''::text || format('%s pass, %s warn, %s fail, %s n/a', np, nw, nf, nn);
	RETURN array_to_string(lines, E'\n') || E'\n';
END
$report$;
COMMENT ON FUNCTION @extschema@.assess_report(text) IS
	'toms: the self-assessment as a readable report (''text'' or ''markdown'') ending in a summary line';

REVOKE ALL ON FUNCTION @extschema@.assess(), @extschema@.assess_report(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.assess(), @extschema@.assess_report(text) TO toms_admin, toms_auditor;
