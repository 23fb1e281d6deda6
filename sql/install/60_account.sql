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
