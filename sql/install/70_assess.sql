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
	-- toms' own workers (lifecycle, reseal) run as the bootstrap superuser;
	-- their records say so in a way no client can (docs/audit.md).
	SELECT count(*) INTO n
	  FROM @extschema@.audit_log l JOIN pg_roles r ON r.rolname = l.session_role
	 WHERE l.ts > now() - current_setting('toms.assess_period')::interval
	   AND (r.rolsuper OR r.rolbypassrls) AND l.relname IS NOT NULL AND l.action = 'SELECT'
	   AND NOT (l.kind = 'access' AND l.client_addr = 'background' AND l.detail ? 'toms_worker');
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
	full_ts		timestamptz;
	full_to		bigint;
	base		bigint;
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
	-- Reads of tables with sensitive or subject columns should be audited.
	SELECT array_agg(pt.relid::text ORDER BY pt.relid::text) INTO items
	  FROM @extschema@.protected_tables pt
	 WHERE NOT pt.audit_reads AND (cardinality(pt.sensitive) > 0 OR pt.subject_column IS NOT NULL);
	IF cardinality(items) > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('reads not audited on tables with sensitive or subject columns: %s (toms.set_audit_reads(tbl, true))',
						 @extschema@._assess_list(items));
	END IF;
	-- The audit chain: no open chain-break incident, and every record
	-- verified since the last full verification (docs/assess.md).
	SELECT array_agg(format('%s (%s)', i.id, i.detail) ORDER BY i.id) INTO items
	  FROM @extschema@.incidents i
	 WHERE i.kind = 'audit_chain_break'
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c WHERE c.incident_id = i.id);
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('open audit chain break incident(s): %s (investigate, then toms.close_incident(id, note))',
						 @extschema@._assess_list(items, 3));
	END IF;
	SELECT l.ts, (l.detail ->> 'to')::bigint, (l.detail ->> 'ok')::boolean INTO full_ts, full_to, b
	  FROM @extschema@.audit_log l
	 WHERE l.kind = 'admin' AND l.action = 'verify_audit' AND (l.detail ->> 'whole')::boolean
	 ORDER BY l.ts DESC LIMIT 1;
	SELECT max(l.seq) INTO verified_to FROM @extschema@.audit_log l;
	IF full_ts IS NULL OR NOT b OR full_ts < now() - current_setting('toms.assess_period')::interval THEN
		-- no full verification within the period, or the last one failed:
		-- one now (it records itself)
		SELECT r.ok, r.first_bad, r.detail INTO b, n, v FROM @extschema@.verify_audit() r;
		IF b THEN
			e := e || format('audit chain verified in full: %s', v);
		ELSE
			s := 'fail';
			e := e || format('audit chain BROKEN at record %s: %s', coalesce(n::text, '?'), v);
			verified_to := NULL;
		END IF;
	ELSE
		base := greatest(coalesce(prev_verified, 0), coalesce(full_to, 0));
		IF verified_to IS NULL OR verified_to <= base THEN
			e := e || format('audit chain: nothing new since the full verification of %s and the records verified after it (up to %s)',
							 to_char(full_ts, 'YYYY-MM-DD HH24:MI TZ'), base);
			verified_to := base;
		ELSE
			SELECT r.ok, r.first_bad, r.detail INTO b, n, v
			  FROM @extschema@.verify_audit(base + 1, verified_to) r;
			IF b THEN
				e := e || format('audit chain verified from record %s to %s (in full on %s)',
								 base + 1, verified_to, to_char(full_ts, 'YYYY-MM-DD HH24:MI TZ'));
			ELSE
				s := 'fail';
				e := e || format('audit chain BROKEN at record %s: %s', n, v);
				verified_to := NULL;
			END IF;
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
	-- toms' own functions as its extension scripts created them (the filter
	-- calls toms.current_tenant()); a superuser's edit of pg_proc has no
	-- hook: toms.check_functions() compares fingerprints and raises an
	-- incident (issue 16).
	SELECT array_agg(format('%s (%s)', f.function, f.problem) ORDER BY f.function)
	  INTO items FROM @extschema@.check_functions() f;
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('toms'' functions differ from what its extension scripts created: %s (restore them; toms.function_fingerprints says what they were)',
						 @extschema@._assess_list(items));
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

-- Login roles that may use tenant tokens (toms_app members) and would start
-- a session at toms.context_scope = session: the setting a transaction-
-- pooling connection pool needs is 'transaction' (issue 16; docs/tenancy.md,
-- "Behind PgBouncer").  The value a login gets: database-and-role setting,
-- else role, else database, else the server's configuration files.
CREATE FUNCTION @extschema@._assess_session_scope_roles() RETURNS text[]
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(array_agg(r.rolname::text ORDER BY r.rolname), '{}')
	  FROM pg_roles r
	 WHERE r.rolcanlogin AND NOT r.rolsuper
	   AND r.oid <> (SELECT oid FROM pg_roles WHERE rolname = 'toms_app')
	   AND pg_has_role(r.oid, 'toms_app', 'MEMBER')
	   AND coalesce(
			(SELECT substr(c, length('toms.context_scope=') + 1)
			   FROM pg_db_role_setting s, unnest(s.setconfig) c
			  WHERE c LIKE 'toms.context\_scope=%'
				AND (s.setrole, s.setdatabase) IN ((r.oid, (SELECT oid FROM pg_database WHERE datname = current_database())),
												   (r.oid, 0::oid),
												   (0::oid, (SELECT oid FROM pg_database WHERE datname = current_database())))
			  ORDER BY s.setrole = 0, s.setdatabase = 0
			  LIMIT 1),
			(SELECT f.setting FROM pg_file_settings f
			  WHERE f.name = 'toms.context_scope' AND f.applied AND f.error IS NULL
			  ORDER BY f.seqno DESC LIMIT 1),
			'session') <> 'transaction'
$$;
REVOKE ALL ON FUNCTION @extschema@._assess_session_scope_roles() FROM PUBLIC;

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
	-- Pools (issue 16): a context left at session level by one client of a
	-- transaction-pooling pool is the next client's context.
	items := @extschema@._assess_session_scope_roles();
	IF cardinality(items) > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('token-using login roles (toms_app) at toms.context_scope = session (behind a transaction-pooling pool one client''s tenant context reaches the next): %s (ALTER ROLE ... SET toms.context_scope = ''transaction'')',
						 @extschema@._assess_list(items));
	END IF;
	IF s = 'pass' THEN
		e := e || 'every unique index and foreign key of protected tables includes the tenant column; no shared sequences; tenant columns filled from the context; token-using login roles at toms.context_scope = transaction'::text;
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
	-- An incident is closed by its row in incident_closures (close_incident).
	SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c
											   WHERE c.incident_id = i.id)),
		   count(*)
	  INTO n, n2
	  FROM @extschema@.incidents i;
	status := CASE WHEN n > 0 THEN 'warn' ELSE 'pass' END;
	evidence := format('%s open incident(s) of %s recorded', n, n2);
	IF n > 0 THEN
		evidence := evidence || ' (investigate each, then toms.close_incident(id, note))';
	END IF;
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
	citus		boolean := @extschema@._citus_coordinator();
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
		-- on a Citus coordinator: every worker too (90_citus.sql)
		IF citus AND ctl IN ('7', '8a', '9a') THEN
			SELECT c.status, c.evidence INTO status, evidence
			  FROM @extschema@._assess_citus(ctl, status, evidence) c;
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
	-- 'html': the evidence report (80_report.sql)
	IF assess_report.format = 'html' THEN
		RETURN @extschema@._assess_report_html();
	END IF;
	IF assess_report.format IS NULL OR assess_report.format NOT IN ('text', 'markdown') THEN
		RAISE EXCEPTION 'unknown report format "%"', assess_report.format
			USING ERRCODE = '22023', HINT = 'Use ''text'', ''markdown'' or ''html''.';
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
	'toms: the self-assessment as a readable report (''text'' or ''markdown'', ending in a summary line, or ''html'', the evidence report)';

REVOKE ALL ON FUNCTION @extschema@.assess(), @extschema@.assess_report(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.assess(), @extschema@.assess_report(text) TO toms_admin, toms_auditor;
