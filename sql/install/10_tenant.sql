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
	protected_by name NOT NULL DEFAULT session_user,
	audit_reads	boolean NOT NULL DEFAULT true	-- toms.set_audit_reads (docs/audit.md)
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
-- They fire under session_replication_role = replica too (a superuser's
-- session, a logical replication apply worker, a restore): a change made
-- there must still reach every backend's cache.
ALTER TABLE @extschema@.tenants ENABLE ALWAYS TRIGGER toms_invalidate;
ALTER TABLE @extschema@.members ENABLE ALWAYS TRIGGER toms_invalidate;
ALTER TABLE @extschema@.grants ENABLE ALWAYS TRIGGER toms_invalidate;
ALTER TABLE @extschema@.trusted_keys ENABLE ALWAYS TRIGGER toms_invalidate;

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
DECLARE
	who			name := session_user;	-- a value: Citus evaluates no session_user
BEGIN
	PERFORM @extschema@._validate_tenant_id(tenant);
	IF name IS NULL OR btrim(name) = '' THEN
		RAISE EXCEPTION 'tenant name must not be empty' USING ERRCODE = '22023';
	END IF;
	INSERT INTO @extschema@.tenants (tenant, name, created_by)
		VALUES (create_tenant.tenant, create_tenant.name, who);
	PERFORM @extschema@._audit_admin_event('create_tenant', tenant, NULL);
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'tenant "%" already exists', tenant USING ERRCODE = '42710';
END
$$;

CREATE FUNCTION @extschema@.add_member(role regrole, tenant text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	who			name := session_user;	-- see create_tenant()
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.tenants t WHERE t.tenant = add_member.tenant) THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	INSERT INTO @extschema@.members (role, tenant, added_by) VALUES (add_member.role, add_member.tenant, who)
		ON CONFLICT DO NOTHING;
	PERFORM @extschema@._audit_admin_event('add_member', tenant, json_build_object('role', role::text)::text);
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
	PERFORM @extschema@._audit_admin_event('remove_member', tenant, json_build_object('role', role::text)::text);
END
$$;

CREATE FUNCTION @extschema@.grant_access(role regrole, tenant text, justification text,
										 valid_for interval) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	gid bigint;
	who			name := session_user;	-- see create_tenant()
	until		timestamptz := clock_timestamp() + valid_for;
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
	INSERT INTO @extschema@.grants (role, tenant, justification, valid_until, granted_by)
		VALUES (grant_access.role, grant_access.tenant, grant_access.justification, until, who)
		RETURNING id INTO gid;
	PERFORM @extschema@._audit_admin_event('grant_access', tenant,
		json_build_object('grant', gid, 'role', role::text, 'valid_for', valid_for::text,
						  'justification', justification)::text);
	RETURN gid;
END
$$;

CREATE FUNCTION @extschema@.revoke_access(grant_id bigint) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t text;
	who			name := session_user;	-- values: Citus refuses clock_timestamp()
	now_ts		timestamptz := clock_timestamp();	-- in a reference table's UPDATE
BEGIN
	UPDATE @extschema@.grants g SET revoked_at = now_ts, revoked_by = who
	 WHERE g.id = grant_id AND g.revoked_at IS NULL
	RETURNING g.tenant INTO t;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'grant % does not exist or is already revoked', grant_id USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._audit_admin_event('revoke_access', t, json_build_object('grant', grant_id)::text);
END
$$;

CREATE FUNCTION @extschema@.protect(tbl regclass, tenant_column name DEFAULT 'tenant_id',
									sensitive name[] DEFAULT '{}', subject_column name DEFAULT NULL,
									audit_reads boolean DEFAULT true)
	RETURNS void
	AS 'MODULE_PATHNAME', 'toms_protect'
	LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.protect(regclass, name, name[], name, boolean) IS
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
		'protect(regclass, name, name[], name, boolean)', 'unprotect(regclass)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION @extschema@.%s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION @extschema@.%s TO toms_admin', f);
	END LOOP;
END
$grants$;
