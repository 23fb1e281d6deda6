-- toms 0.1.0 -> 0.2.0
--
-- Every change of SQL objects after the 0.1.0 release goes here (and into
-- sql/install/, which builds a fresh 0.2.0).  t/730_upgrade.pl installs
-- 0.1.0, updates, and compares the schema with a fresh install.
\echo Use "ALTER EXTENSION toms UPDATE TO '0.2.0'" to load this file. \quit

-- Audit records and incidents, per-table read audit (issues 20 and 17)
--
-- toms.audit_log.detail becomes jsonb.  The records 0.1.0 wrote keep their
-- text under "text_0_1_0" next to what it says (its JSON, or its key=value
-- pairs); the hash chain covers that text as it did when they were written,
-- and verify_audit checks that the rest is exactly its conversion
-- (src/audit_record.c).
CREATE FUNCTION @extschema@._audit_detail_0_1_0(text) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'toms_audit_detail_0_1_0'
	LANGUAGE C IMMUTABLE STRICT;
ALTER TABLE @extschema@.audit_log ALTER COLUMN detail TYPE jsonb
	USING @extschema@._audit_detail_0_1_0(detail);
DROP FUNCTION @extschema@._audit_detail_0_1_0(text);

-- Incidents are closed by appending the closing (0.1.0 had no way to close
-- one: closed_at was never set).
DROP INDEX @extschema@.incidents_open;
ALTER TABLE @extschema@.incidents DROP COLUMN closed_at;
CREATE INDEX incidents_key ON @extschema@.incidents (kind, (coalesce(tenant, '')), detail);
-- An incident is closed by appending its closing (toms.close_incident),
-- never by updating it; an open incident is one without a closing.
CREATE TABLE @extschema@.incident_closures (
	incident_id bigint PRIMARY KEY REFERENCES @extschema@.incidents (id),
	closed_at	timestamptz NOT NULL,
	closed_by	name NOT NULL,
	note		text NOT NULL
);
COMMENT ON TABLE @extschema@.incident_closures IS 'toms: the closing of each closed incident (append-only)';
CREATE TRIGGER incident_closures_append_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.incident_closures FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();
REVOKE ALL ON @extschema@.incident_closures FROM PUBLIC;
GRANT SELECT ON @extschema@.incident_closures TO toms_auditor, toms_admin;

ALTER TABLE @extschema@.protected_tables
	ADD COLUMN audit_reads boolean NOT NULL DEFAULT true;	-- toms.set_audit_reads (docs/audit.md)
DROP FUNCTION @extschema@.protect(regclass, name, name[], name);
CREATE FUNCTION @extschema@.protect(tbl regclass, tenant_column name DEFAULT 'tenant_id',
									sensitive name[] DEFAULT '{}', subject_column name DEFAULT NULL,
									audit_reads boolean DEFAULT true)
	RETURNS void
	AS 'MODULE_PATHNAME', 'toms_protect'
	LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.protect(regclass, name, name[], name, boolean) IS
	'toms: put a table under tenant separation (forced row security, toms-owned policy)';
REVOKE ALL ON FUNCTION @extschema@.protect(regclass, name, name[], name, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.protect(regclass, name, name[], name, boolean) TO toms_admin;

CREATE FUNCTION @extschema@.close_incident(id bigint, note text) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_close_incident'
	LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.close_incident(bigint, text) IS
	'toms: close an incident, with a note (appended to toms.incident_closures, audited)';
REVOKE ALL ON FUNCTION @extschema@.close_incident(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.close_incident(bigint, text) TO toms_auditor, toms_admin;

-- The per-table read audit (docs/audit.md, "Read audit per table").
CREATE FUNCTION @extschema@.set_audit_reads(tbl regclass, "on" boolean) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_set_audit_reads'
	LANGUAGE C VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.set_audit_reads(regclass, boolean) IS
	'toms: turn the per-statement read records of one protected table on or off (audited)';
REVOKE ALL ON FUNCTION @extschema@.set_audit_reads(regclass, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.set_audit_reads(regclass, boolean) TO toms_admin;

CREATE OR REPLACE FUNCTION @extschema@._assess_5a(OUT control text, OUT title text, OUT status text, OUT evidence text)
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
CREATE OR REPLACE FUNCTION @extschema@._assess_7(prev_verified bigint,
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
CREATE OR REPLACE FUNCTION @extschema@._assess_10a(OUT control text, OUT title text, OUT status text, OUT evidence text)
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

-- Audit records and incidents (issue 20): the admin acts of tenancy pass
-- their detail as a JSON object (0.1.0 passed key=value text).
CREATE OR REPLACE FUNCTION @extschema@.add_member(role regrole, tenant text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.tenants t WHERE t.tenant = add_member.tenant) THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	INSERT INTO @extschema@.members (role, tenant) VALUES (add_member.role, add_member.tenant)
		ON CONFLICT DO NOTHING;
	PERFORM @extschema@._audit_admin_event('add_member', tenant, json_build_object('role', role::text)::text);
END
$$;
CREATE OR REPLACE FUNCTION @extschema@.remove_member(role regrole, tenant text) RETURNS void
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
CREATE OR REPLACE FUNCTION @extschema@.grant_access(role regrole, tenant text, justification text,
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
		json_build_object('grant', gid, 'role', role::text, 'valid_for', valid_for::text,
						  'justification', justification)::text);
	RETURN gid;
END
$$;
CREATE OR REPLACE FUNCTION @extschema@.revoke_access(grant_id bigint) RETURNS void
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
	PERFORM @extschema@._audit_admin_event('revoke_access', t, json_build_object('grant', grant_id)::text);
END
$$;
