
-- Citus: one toms installation across a coordinator and its workers (issue 15)
--
-- toms.citus_setup(), run on the coordinator once the workers are added,
-- makes toms' administrative tables Citus reference tables: every
-- administrative act is then one distributed transaction writing the same
-- rows on every node (two-phase commit; a node that cannot be reached fails
-- the act everywhere), and a node added later receives a copy (the
-- coordinator's lifecycle worker asks Citus for it).  toms' C code reads
-- the local shard (src/citus_catalog.c).
-- Outside Citus the function refuses and nothing changes.  docs/scaling.md.

-- The administrative tables that become reference tables, in order (a
-- referenced table before the tables that reference it).
CREATE FUNCTION @extschema@._citus_tables() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY['tenants', 'members', 'grants', 'trusted_keys', 'tenant_keys',
				 'deletion_requests', 'holds', 'retention'];
REVOKE ALL ON FUNCTION @extschema@._citus_tables() FROM PUBLIC;

-- Is relid a Citus table (distributed or reference) here?  false without
-- Citus.
CREATE FUNCTION @extschema@._citus_table(relid oid) RETURNS bool
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	RETURN EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = relid);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_table(oid) FROM PUBLIC;

-- On every node, before toms' administrative tables become reference
-- tables: the foreign keys among toms' tables that point at them go (the
-- coordinator adds back those between reference tables).  A toms function,
-- so that the guard lets it change toms' tables; superusers only.
CREATE FUNCTION @extschema@._citus_drop_fks() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	fk			record;
BEGIN
	FOR fk IN
		SELECT c.conrelid::regclass AS rel, c.conname
		  FROM pg_constraint c
		 WHERE c.contype = 'f' AND c.connamespace = '@extschema@'::regnamespace
		   AND c.confrelid::regclass::text IN
			   (SELECT format('@extschema@.%I', u) FROM unnest(@extschema@._citus_tables()) u)
		   -- a key between two tables that are reference tables already
		   -- (an earlier citus_setup) stays
		   AND NOT (@extschema@._citus_table(c.conrelid) AND @extschema@._citus_table(c.confrelid))
	LOOP
		EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', fk.rel, fk.conname);
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_drop_fks() FROM PUBLIC;

CREATE FUNCTION @extschema@.citus_setup() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	t text;
	fk record;
	fks text[] := '{}';
	bad text;
	drops text := '';
	saved text[] := '{}';
	cols text;
	vals text;
	row record;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
		RAISE EXCEPTION 'Citus is not installed in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				HINT = 'toms.citus_setup() is for a Citus cluster; on one node there is nothing to set up.';
	END IF;
	IF NOT pg_catalog.citus_is_coordinator() THEN
		RAISE EXCEPTION 'toms.citus_setup() must run on the coordinator'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid = 0) THEN
		RAISE EXCEPTION 'the coordinator is not registered in the Citus metadata'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'toms reads its administrative tables on every node, the coordinator included.',
				HINT = 'Run SELECT citus_set_coordinator_host(''<host>'', <port>) first.';
	END IF;
	-- regrole and regclass values must travel as names, not as OIDs, which
	-- differ between nodes.
	IF current_setting('citus.enable_binary_protocol')::bool THEN
		RAISE EXCEPTION 'citus.enable_binary_protocol must be off on every node'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'toms'' tables hold role names (regrole), which Citus would copy between nodes as OIDs.',
				HINT = 'Set citus.enable_binary_protocol = off in postgresql.conf on every node and reload.';
	END IF;
	-- Every node must have toms, preloaded, in the same version.
	SELECT string_agg(format('%s:%s', r.nodename, r.nodeport), ', ') INTO bad
	  FROM run_command_on_workers(format(
			$q$SELECT (SELECT extversion FROM pg_extension WHERE extname = 'toms') IS NOT DISTINCT FROM %L
			   AND current_setting('shared_preload_libraries') ~ '(^|[ ,])toms($|[ ,])'
			   AND NOT current_setting('citus.enable_binary_protocol')::bool$q$,
			(SELECT extversion FROM pg_extension WHERE extname = 'toms'))) r
	 WHERE NOT r.success OR r.result <> 't';
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'toms is not ready on every node'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = format('Nodes without toms (preloaded, same version, citus.enable_binary_protocol off) or unreachable: %s.', bad),
				HINT = 'Every node needs shared_preload_libraries = ''citus,toms'' and CREATE EXTENSION toms.';
	END IF;

	IF EXISTS (SELECT 1 FROM unnest(@extschema@._citus_tables()) u(t)
				WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition
								   WHERE logicalrelid = format('@extschema@.%I', u.t)::regclass)) THEN
		-- Citus distributes a table only with the tables its foreign keys
		-- connect it to, which must all be Citus tables: the foreign keys
		-- among toms' tables are dropped on every node (workers keep empty
		-- copies of the tables, created with the extension), the tables
		-- become reference tables, and the keys between them come back.
		-- Tables that stay per node (deletion_steps, the coordinator's
		-- stage-2 progress) lose their key to the reference tables.
		FOR fk IN
			SELECT c.conrelid::regclass AS rel, c.conname, pg_get_constraintdef(c.oid) AS def,
				   cl.relname = ANY (@extschema@._citus_tables()) AS keep
			  FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid
			 WHERE c.contype = 'f' AND c.connamespace = '@extschema@'::regnamespace
			   AND c.confrelid::regclass::text IN
				   (SELECT format('@extschema@.%I', u) FROM unnest(@extschema@._citus_tables()) u)
			   AND NOT (@extschema@._citus_table(c.conrelid) AND @extschema@._citus_table(c.confrelid))
		LOOP
			drops := drops || format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I;', fk.rel, fk.conname);
			EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.rel, fk.conname);
			IF fk.keep THEN
				fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.conname, fk.def);
			END IF;
		END LOOP;
		IF drops <> '' THEN
			SELECT string_agg(format('%s:%s', r.nodename, r.nodeport), ', ') INTO bad
			  FROM run_command_on_workers('SELECT @extschema@._citus_drop_fks()') r WHERE NOT r.success;
			IF bad IS NOT NULL THEN
				RAISE EXCEPTION 'toms could not prepare its tables on every node'
					USING ERRCODE = 'object_not_in_prerequisite_state',
						DETAIL = format('Failed on: %s.', bad);
			END IF;
		END IF;
		SET LOCAL citus.enable_unsafe_triggers = on;
		FOREACH t IN ARRAY @extschema@._citus_tables() LOOP
			IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
							WHERE logicalrelid = format('@extschema@.%I', t)::regclass) THEN
				-- Citus copies a table's rows to the new shards in binary,
				-- which would carry role OIDs: rows with regrole/regclass
				-- values are set aside and inserted again, by name.
				IF EXISTS (SELECT 1 FROM pg_attribute
							WHERE attrelid = format('@extschema@.%I', t)::regclass AND attnum > 0
							  AND NOT attisdropped AND atttypid IN ('regrole'::regtype, 'regclass'::regtype)) THEN
					EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS SELECT * FROM @extschema@.%I',
								   '_toms_citus_' || t, t);
					EXECUTE format('DELETE FROM @extschema@.%I', t);
					saved := saved || t;
				END IF;
				PERFORM create_reference_table(format('@extschema@.%I', t)::regclass);
			END IF;
		END LOOP;
		FOREACH t IN ARRAY saved LOOP
			SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
				   string_agg(format('($1->>%L)::%s', attname, format_type(atttypid, atttypmod)), ', '
							  ORDER BY attnum)
			  INTO cols, vals
			  FROM pg_attribute
			 WHERE attrelid = format('@extschema@.%I', t)::regclass AND attnum > 0 AND NOT attisdropped;
			FOR row IN EXECUTE format('SELECT to_jsonb(s) AS j FROM %I s', '_toms_citus_' || t) LOOP
				EXECUTE format('INSERT INTO @extschema@.%I (%s) OVERRIDING SYSTEM VALUE VALUES (%s)',
							   t, cols, vals) USING row.j;
			END LOOP;
		END LOOP;
		FOREACH t IN ARRAY fks LOOP
			EXECUTE t;
		END LOOP;
	END IF;
	-- A node added since: give it its copy now.
	PERFORM replicate_reference_tables('block_writes');
	PERFORM @extschema@._audit_admin_event('citus_setup', NULL, NULL);
END;
$$;
REVOKE ALL ON FUNCTION @extschema@.citus_setup() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.citus_setup() IS
	'toms: on a Citus coordinator, make toms'' administrative tables reference tables (one installation on every node)';

-- On the coordinator of a cluster that toms.citus_setup() has set up: the
-- active primary nodes ("host:port") without a placement of one of toms'
-- reference tables -- a node added (citus_add_node) or re-activated
-- (citus_activate_node) since, to which Citus copies reference tables only
-- lazily.  The coordinator's lifecycle worker asks Citus to copy them
-- (replicate_reference_tables); until then such a node fails closed
-- (src/citus_catalog.c).  Empty off Citus, on a worker, and before
-- citus_setup().
CREATE FUNCTION @extschema@._citus_nodes_without_copy() RETURNS text[]
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
		RETURN '{}';
	END IF;
	IF (SELECT l.groupid FROM pg_dist_local_group l) IS DISTINCT FROM 0 THEN
		RETURN '{}';
	END IF;
	RETURN ARRAY(
		SELECT format('%s:%s', n.nodename, n.nodeport)
		  FROM pg_dist_node n
		 WHERE n.isactive AND n.noderole = 'primary'
		   AND EXISTS (SELECT 1
						 FROM unnest(@extschema@._citus_tables()) u(t)
						 JOIN pg_dist_partition p
						   ON p.logicalrelid = format('@extschema@.%I', u.t)::regclass
						  AND p.partmethod = 'n' AND p.repmodel = 't'
						 JOIN pg_dist_shard s ON s.logicalrelid = p.logicalrelid
						WHERE NOT EXISTS (SELECT 1 FROM pg_dist_placement pl
										   WHERE pl.shardid = s.shardid AND pl.groupid = n.groupid))
		 ORDER BY n.nodename, n.nodeport);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_nodes_without_copy() FROM PUBLIC;

-- Audit and self-assessment across the cluster (issue 15) -----------------
--
-- Every node audits what it executes into its own chain; on the
-- coordinator, toms.citus_verify_audit() verifies every node's chain and
-- toms.assess() adds every worker to measures 7, 8a and 9a.  The nodes are
-- reached over Citus' own connections (master_run_on_worker, which
-- run_command_on_all_nodes uses), as the current user.  On a node that is
-- not a Citus coordinator with workers nothing changes.  docs/scaling.md.

-- Is this the coordinator of a Citus cluster with workers?
CREATE FUNCTION @extschema@._citus_coordinator() RETURNS boolean
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
		RETURN false;
	END IF;
	RETURN (SELECT l.groupid FROM pg_dist_local_group l) = 0
		   AND EXISTS (SELECT 1 FROM pg_dist_node n
						WHERE n.groupid <> 0 AND n.noderole = 'primary'
						  AND n.nodecluster = current_setting('citus.cluster_name'));
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_coordinator() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._citus_coordinator() TO toms_auditor, toms_admin;

-- The primary workers, as host:port: active or not (audit and assessment:
-- a disabled node is reported, not skipped), or the active ones only (the
-- deletion steps: those that hold the shards' placements).
CREATE FUNCTION @extschema@._citus_workers(active_only boolean DEFAULT false) RETURNS SETOF text
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY SELECT format('%s:%s', n.nodename, n.nodeport)
				   FROM pg_dist_node n
				  WHERE n.groupid <> 0 AND n.noderole = 'primary'
					AND n.nodecluster = current_setting('citus.cluster_name')
					AND (n.isactive OR NOT active_only)
				  ORDER BY n.nodename, n.nodeport;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_workers(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._citus_workers(boolean) TO toms_auditor, toms_admin;

-- Run commands[i] on nodes[i] (host:port), in parallel, each in a new
-- connection Citus opens as the current user; a node that cannot be
-- reached gives success = false and Citus' message.
CREATE FUNCTION @extschema@._citus_run(nodes text[], commands text[],
	OUT node text, OUT success boolean, OUT result text)
	RETURNS SETOF record
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	hosts		text[] := '{}';
	ports		int[] := '{}';
	i			int;
BEGIN
	FOR i IN 1 .. coalesce(cardinality(nodes), 0) LOOP
		hosts := hosts || substring(nodes[i] FROM '^(.*):[0-9]+$');
		ports := ports || substring(nodes[i] FROM ':([0-9]+)$')::int;
	END LOOP;
	IF cardinality(hosts) = 0 THEN
		RETURN;
	END IF;
	RETURN QUERY SELECT format('%s:%s', r.node_name, r.node_port), r.success, r.result
				   FROM pg_catalog.master_run_on_worker(hosts, ports, commands, true) r;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_run(text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._citus_run(text[], text[]) TO toms_auditor, toms_admin;

-- What the coordinator asks each node: this node's chain verified, and its
-- open chain-break incidents.  In full (recorded, as every whole
-- verify_audit()), unless since is given: the record up to which the
-- coordinator's last assessment verified this node, on the server whose
-- system identifier is since_system.  Then, as toms.assess() does on one
-- node (control 7), only the records added since are verified, while this
-- node's last verification of its whole chain passed within
-- toms.assess_period.
CREATE FUNCTION @extschema@._citus_verify_node(since bigint DEFAULT NULL, since_system text DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v			record;
	n			bigint;
	sysid		text;
	head		bigint;
	full_ts		timestamptz;
	full_to		bigint;
	full_ok		boolean;
	base		bigint;
BEGIN
	SELECT c.system_identifier::text INTO sysid FROM pg_control_system() c;
	SELECT max(l.seq) INTO head FROM @extschema@.audit_log l;
	IF since IS NOT NULL AND since_system = sysid AND since <= coalesce(head, 0) THEN
		SELECT l.ts, (l.detail ->> 'to')::bigint, (l.detail ->> 'ok')::boolean
		  INTO full_ts, full_to, full_ok
		  FROM @extschema@.audit_log l
		 WHERE l.kind = 'admin' AND l.action = 'verify_audit' AND (l.detail ->> 'whole')::boolean
		 ORDER BY l.ts DESC LIMIT 1;
		IF full_ok AND full_ts >= now() - current_setting('toms.assess_period')::interval THEN
			base := greatest(since, full_to);
		END IF;
	END IF;
	IF base IS NULL THEN
		SELECT r.ok, r.first_bad, r.detail INTO v FROM @extschema@.verify_audit() r;
	ELSIF head <= base THEN
		SELECT true AS ok, NULL::bigint AS first_bad,
			   format('nothing new since the full verification of %s and the records verified after it (up to %s)',
					  to_char(full_ts, 'YYYY-MM-DD HH24:MI TZ'), base) AS detail
		  INTO v;
	ELSE
		SELECT r.ok, r.first_bad, r.detail INTO v FROM @extschema@.verify_audit(base + 1, head) r;
		IF v.ok THEN
			v.detail := format('verified from record %s to %s (in full on %s)',
							   base + 1, head, to_char(full_ts, 'YYYY-MM-DD HH24:MI TZ'));
		END IF;
	END IF;
	SELECT count(*) INTO n FROM @extschema@.incidents i
	 WHERE i.kind = 'audit_chain_break'
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c WHERE c.incident_id = i.id);
	RETURN jsonb_build_object('ok', v.ok, 'first_bad', v.first_bad, 'detail', v.detail,
							  'records', CASE WHEN v.ok AND base IS NULL THEN
								  coalesce((regexp_match(v.detail, '^([0-9]+) records verified'))[1]::bigint, 0)
								  WHEN v.ok THEN greatest(coalesce(head, 0) - base, 0) END,
							  'open_breaks', n, 'whole', base IS NULL,
							  'verified_to', CASE WHEN v.ok THEN greatest(coalesce(head, 0), coalesce(base, 0)) END,
							  'system', sysid);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_verify_node(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._citus_verify_node(bigint, text) TO toms_auditor, toms_admin;

-- toms.assess() on a coordinator: up to which record, and on which server,
-- each worker's audit chain was last verified (control 7), so that the
-- next assessment verifies only what was added since.  Written by
-- toms._assess_citus() only; a node whose verification failed is removed
-- (its next assessment verifies it in full).
CREATE TABLE @extschema@.citus_verified (
	node		text PRIMARY KEY,
	system		text NOT NULL,
	verified_to	bigint NOT NULL,
	verified_at	timestamptz NOT NULL
);
COMMENT ON TABLE @extschema@.citus_verified IS 'toms: up to where toms.assess() on a Citus coordinator last verified each worker''s audit chain';
REVOKE ALL ON @extschema@.citus_verified FROM PUBLIC;
GRANT SELECT ON @extschema@.citus_verified TO toms_admin, toms_auditor;

-- On a worker: which of these shards lost what protects them (row security
-- enabled and forced, toms' policy on the tenant column, no other
-- permissive policy).  {"checked": n, "problems": ["shard (problem)", …]}.
CREATE FUNCTION @extschema@._citus_shard_problems(shards text[], tenant_columns text[]) RETURNS jsonb
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	items		text[];
BEGIN
	SELECT array_agg(format('%s (%s)', x.shard, x.problem) ORDER BY x.shard)
	  INTO items
	  FROM (
		SELECT u.shard,
			   CASE WHEN c.oid IS NULL THEN 'shard missing' ELSE
			   concat_ws(', ',
						 CASE WHEN NOT c.relrowsecurity THEN 'row security disabled' END,
						 CASE WHEN NOT c.relforcerowsecurity THEN 'row security not forced' END,
						 CASE WHEN p.oid IS NULL THEN 'policy toms_tenant missing'
							  WHEN NOT p.polpermissive OR p.polcmd <> '*' OR p.polroles <> '{0}'
								OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM
									@extschema@._assess_policy_expr(u.col::name, a.atttypid)
								OR pg_get_expr(p.polwithcheck, p.polrelid) IS DISTINCT FROM
									@extschema@._assess_policy_expr(u.col::name, a.atttypid)
							  THEN 'policy toms_tenant altered' END,
						 CASE WHEN EXISTS (SELECT 1 FROM pg_policy o
											WHERE o.polrelid = c.oid AND o.polpermissive
											  AND o.polname <> 'toms_tenant')
							  THEN 'another permissive policy widens the filter' END,
						 CASE WHEN a.attnum IS NULL THEN 'tenant column missing' END) END AS problem
		  FROM unnest(shards, tenant_columns) u(shard, col)
		  LEFT JOIN pg_class c ON c.oid = to_regclass(u.shard)
		  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = u.col AND NOT a.attisdropped
		  LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = 'toms_tenant'
	  ) x
	 WHERE x.problem <> '';
	RETURN jsonb_build_object('checked', coalesce(cardinality(shards), 0),
							  'problems', to_jsonb(coalesce(items, '{}')));
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_shard_problems(text[], text[]) FROM PUBLIC;

-- toms.citus_verify_audit(): on the coordinator, every node's chain, one
-- row per node (the coordinator first).  A node that cannot be reached is
-- not verified: ok = false, reachable = false, Citus' message in detail.
-- SECURITY INVOKER: each node verifies as the caller (a toms_auditor or
-- toms_admin member, a login role on every node, as Citus propagates
-- roles), and records that verification in its own trail.
CREATE FUNCTION @extschema@.citus_verify_audit(OUT node text, OUT ok boolean, OUT reachable boolean,
	OUT records bigint, OUT first_bad bigint, OUT detail text)
	RETURNS SETOF record
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j			jsonb;
	r			record;
	nodes		text[];
BEGIN
	IF NOT @extschema@._citus_coordinator() THEN
		RAISE EXCEPTION 'toms.citus_verify_audit() must run on the coordinator of a Citus cluster with workers'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				HINT = 'On one node, or on a worker, run toms.verify_audit().';
	END IF;
	-- the coordinator, in this session
	SELECT coalesce(format('%s:%s', n.nodename, n.nodeport), 'coordinator') INTO node
	  FROM pg_dist_node n WHERE n.groupid = 0 AND n.noderole = 'primary' LIMIT 1;
	node := coalesce(node, 'coordinator');
	j := @extschema@._citus_verify_node();
	ok := (j ->> 'ok')::boolean;
	reachable := true;
	records := (j ->> 'records')::bigint;
	first_bad := (j ->> 'first_bad')::bigint;
	detail := j ->> 'detail';
	RETURN NEXT;
	-- every worker, over Citus' connections
	nodes := ARRAY(SELECT w FROM @extschema@._citus_workers() w);
	FOR r IN SELECT * FROM @extschema@._citus_run(nodes,
						array_fill('SELECT @extschema@._citus_verify_node()'::text, ARRAY[cardinality(nodes)]))
	LOOP
		node := r.node;
		IF r.success THEN
			j := r.result::jsonb;
			ok := (j ->> 'ok')::boolean;
			reachable := true;
			records := (j ->> 'records')::bigint;
			first_bad := (j ->> 'first_bad')::bigint;
			detail := j ->> 'detail';
		ELSE
			ok := false;
			reachable := r.result NOT LIKE 'failed to connect%' AND r.result NOT LIKE 'connection%';
			records := NULL;
			first_bad := NULL;
			detail := CASE WHEN reachable THEN format('not verified: %s', r.result)
					  ELSE format('not verified: the node could not be reached (%s)', r.result) END;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.citus_verify_audit() IS
	'toms: on a Citus coordinator, verify the audit chain of every node (one row per node; an unreachable node is not ok)';
REVOKE ALL ON FUNCTION @extschema@.citus_verify_audit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.citus_verify_audit() TO toms_auditor, toms_admin;

-- toms.assess() on a coordinator: the workers' part of measures 7, 8a and
-- 9a, merged into the row the coordinator's own check made.  Every part
-- names its node; a node that cannot be reached fails the measure.
CREATE FUNCTION @extschema@._assess_citus(ctl text, INOUT status text, INOUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text := 'pass';
	e			text[] := '{}';
	r			record;
	j			jsonb;
	nodes		text[];
	cmds		text[];
	n			bigint;
BEGIN
	IF ctl = '9a' THEN
		-- every shard placed on a worker, of every table protected here
		SELECT array_agg(x.node ORDER BY x.node),
			   array_agg(format('SELECT @extschema@._citus_shard_problems(%L::text[], %L::text[])',
								x.shards, x.cols) ORDER BY x.node)
		  INTO nodes, cmds
		  FROM (SELECT format('%s:%s', dn.nodename, dn.nodeport) AS node,
					   array_agg(shard_name(sh.logicalrelid, sh.shardid, false)::text ORDER BY sh.shardid) AS shards,
					   array_agg(pt.tenant_column::text ORDER BY sh.shardid) AS cols
				  FROM @extschema@.protected_tables pt
				  JOIN pg_dist_shard sh ON sh.logicalrelid = pt.relid
				  JOIN pg_dist_placement pl ON pl.shardid = sh.shardid
				  JOIN pg_dist_node dn ON dn.groupid = pl.groupid AND dn.noderole = 'primary'
									  AND dn.groupid <> 0
				 GROUP BY dn.nodename, dn.nodeport) x;
	ELSIF ctl = '7' THEN
		-- from where the last assessment verified each worker
		SELECT array_agg(u.node ORDER BY u.i),
			   array_agg(format('SELECT @extschema@._citus_verify_node(%L, %L)', cv.verified_to, cv.system)
						 ORDER BY u.i)
		  INTO nodes, cmds
		  FROM unnest(ARRAY(SELECT w FROM @extschema@._citus_workers() w)) WITH ORDINALITY u(node, i)
		  LEFT JOIN @extschema@.citus_verified cv ON cv.node = u.node;
	ELSE
		nodes := ARRAY(SELECT w FROM @extschema@._citus_workers() w);
		-- 8a: each worker's own streaming standbys
		cmds := array_fill($q$SELECT pg_catalog.jsonb_build_object('streaming', count(*) FILTER (WHERE state = 'streaming'),
					'standbys', coalesce(string_agg(format('%s (%s, %s)', application_name, state, sync_state),
												', ' ORDER BY application_name), 'none'))
					FROM pg_catalog.pg_stat_replication$q$::text, ARRAY[cardinality(nodes)]);
	END IF;
	FOR r IN SELECT * FROM @extschema@._citus_run(nodes, cmds) LOOP
		IF NOT r.success THEN
			s := 'fail';
			e := e || format('node %s could not be checked: %s', r.node, r.result);
			CONTINUE;
		END IF;
		j := r.result::jsonb;
		IF ctl = '7' THEN
			IF (j ->> 'ok')::boolean THEN
				e := e || format(CASE WHEN (j ->> 'whole')::boolean THEN 'node %s: audit chain verified in full: %s'
								 ELSE 'node %s: audit chain %s' END, r.node, j ->> 'detail');
				INSERT INTO @extschema@.citus_verified AS cv (node, system, verified_to, verified_at)
				VALUES (r.node, j ->> 'system', (j ->> 'verified_to')::bigint, now())
				ON CONFLICT (node) DO UPDATE
				   SET system = excluded.system, verified_to = excluded.verified_to,
					   verified_at = excluded.verified_at;
			ELSE
				s := 'fail';
				e := e || format('node %s: audit chain BROKEN at record %s: %s', r.node,
								 coalesce(j ->> 'first_bad', '?'), j ->> 'detail');
				DELETE FROM @extschema@.citus_verified cv WHERE cv.node = r.node;
			END IF;
			IF (j ->> 'open_breaks')::bigint > 0 THEN
				s := 'fail';
				e := e || format('node %s: %s open audit chain break incident(s) (investigate, then toms.close_incident(id, note) on that node)',
								 r.node, j ->> 'open_breaks');
			END IF;
		ELSIF ctl = '8a' THEN
			n := (j ->> 'streaming')::bigint;
			IF n < 2 THEN
				s := @extschema@._assess_worst(s, 'warn');
			END IF;
			e := e || format('node %s: %s streaming standby(s) of 2 required for three copies: %s',
							 r.node, n, j ->> 'standbys');
		ELSE
			IF jsonb_array_length(j -> 'problems') > 0 THEN
				s := 'fail';
				e := e || format('node %s: shards weakened: %s (toms.unprotect() and toms.protect() the table again)',
								 r.node, @extschema@._assess_list(ARRAY(SELECT jsonb_array_elements_text(j -> 'problems'))));
			ELSE
				e := e || format('node %s: %s shard(s) force row security with their toms_tenant policy intact',
								 r.node, j ->> 'checked');
			END IF;
		END IF;
	END LOOP;
	IF ctl = '9a' AND cardinality(e) = 0 THEN
		e := e || 'no shard of a protected table on the workers'::text;
	END IF;
	status := @extschema@._assess_worst(status, s);
	evidence := evidence || '; ' || array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'fail';
	evidence := evidence || '; the workers could not be checked: ' || SQLERRM;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._assess_citus(text, text, text) FROM PUBLIC;

-- Deletions, holds and retention on Citus (docs/deletion.md, "On Citus").
-- Requests, approvals, holds and retention rules are reference tables
-- (above): administered on the coordinator, in force on every node in the
-- same distributed transaction; each node hides a requested subject by its
-- own copy (src/lifecycle.c).  Stage 2 runs on the coordinator; for each
-- worker it waits out the worker's own transaction horizon, vacuums the
-- shards there, and waits for the worker's streaming standbys, through the
-- functions below.  Retention: every node's lifecycle worker purges the
-- expired rows of its own shards (_retention_targets).

-- Are toms' deletion tables Citus reference tables here?
CREATE FUNCTION @extschema@._citus_lifecycle() RETURNS bool
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN @extschema@._citus_table('@extschema@.deletion_requests'::regclass);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_lifecycle() FROM PUBLIC;

-- A Citus worker holding copies of toms' deletion tables (not the
-- coordinator)?
CREATE FUNCTION @extschema@._citus_worker_node() RETURNS bool
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF NOT @extschema@._citus_lifecycle() THEN
		RETURN false;
	END IF;
	RETURN (SELECT groupid FROM pg_dist_local_group) <> 0;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_worker_node() FROM PUBLIC;

-- This node's name in the Citus metadata, "host:port".
CREATE FUNCTION @extschema@._citus_self() RETURNS text
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF to_regclass('pg_catalog.pg_dist_node') IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN (SELECT format('%s:%s', n.nodename, n.nodeport)
			  FROM pg_dist_node n JOIN pg_dist_local_group l USING (groupid)
			 WHERE n.noderole = 'primary' ORDER BY n.nodeid LIMIT 1);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_self() FROM PUBLIC;

-- On the coordinator, run cmd (one value) on every active primary Citus
-- worker (over toms._citus_run's connections): its results by node,
-- {"host:port": "result"}; '{}' off Citus.  A worker that cannot be
-- reached, or fails the command, fails the call, naming it: the lifecycle
-- worker records the error and retries the step.
CREATE FUNCTION @extschema@._citus_on_workers(cmd text) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	w			record;
	nodes		text[];
	res			jsonb := '{}';
BEGIN
	IF NOT @extschema@._citus_lifecycle() OR @extschema@._citus_worker_node() THEN
		RETURN res;
	END IF;
	-- the active primary workers: those holding the shards' placements
	-- (Citus refuses to disable a node holding a shard's only placement)
	nodes := ARRAY(SELECT n FROM @extschema@._citus_workers(active_only => true) n);
	FOR w IN SELECT * FROM @extschema@._citus_run(nodes, array_fill(cmd, ARRAY[cardinality(nodes)]))
			  ORDER BY node LOOP
		IF NOT w.success THEN
			RAISE EXCEPTION 'toms could not complete a deletion step on Citus node %', w.node
				USING ERRCODE = 'connection_failure',
					DETAIL = format('The node answered: %s', w.result),
					HINT = 'The step is retried; a deletion is certified only once every node has done its part.';
		END IF;
		res := res || jsonb_build_object(w.node, w.result);
	END LOOP;
	RETURN res;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_on_workers(text) FROM PUBLIC;

-- On a worker: have all transactions that could see the rows its shards
-- lost ended?  xids: {"host:port": "this node's xid after the purge"}.
CREATE FUNCTION @extschema@._deletion_node_horizon(xids jsonb) RETURNS bool
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN @extschema@._lifecycle_horizon_passed((xids->>@extschema@._citus_self())::xid8);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._deletion_node_horizon(jsonb) FROM PUBLIC;

-- Stage 2 on the coordinator: VACUUM a distributed table's shards on
-- their nodes (the lifecycle worker's own VACUUM reaches only the
-- coordinator's table).  A node that fails is named.
CREATE FUNCTION @extschema@._citus_vacuum(tbl oid) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	p			record;
BEGIN
	IF NOT @extschema@._citus_table(tbl) OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = tbl) THEN
		RETURN;
	END IF;
	FOR p IN SELECT * FROM run_command_on_placements(tbl::regclass, 'VACUUM (INDEX_CLEANUP ON) %s')
			  ORDER BY nodename, nodeport, shardid LOOP
		IF NOT p.success THEN
			RAISE EXCEPTION 'toms could not complete a deletion step on Citus node %:%', p.nodename, p.nodeport
				USING ERRCODE = 'connection_failure',
					DETAIL = format('VACUUM of shard %s of %s: %s', p.shardid, tbl::regclass, p.result),
					HINT = 'The step is retried; a deletion is certified only once every node has done its part.';
		END IF;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_vacuum(oid) FROM PUBLIC;

-- Master key rotation on Citus (docs/encryption.md, "On Citus"):
-- toms.rotate_master_key() (sealed_admin.c) calls this first, as the owner
-- of toms.tenant_keys.  Once toms.tenant_keys is a reference table the
-- rewrap writes every node's copy in one distributed transaction, under the
-- master key of the node that runs it: refused on a worker, and on the
-- coordinator unless every worker has the coordinator's master key loaded
-- (a node without it could open none of the rewrapped keys); the node at
-- fault is named and nothing is rewrapped.
CREATE FUNCTION @extschema@._citus_master_key_check() RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	mine		text := encode(@extschema@._master_key_id(), 'hex');
	r			record;
BEGIN
	IF NOT @extschema@._citus_table('@extschema@.tenant_keys'::regclass) THEN
		RETURN;
	END IF;
	IF (SELECT l.groupid FROM pg_dist_local_group l) <> 0 THEN
		RAISE EXCEPTION 'toms.rotate_master_key() must run on the coordinator'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'toms.tenant_keys is a Citus reference table: the coordinator rewraps the copy of every node.';
	END IF;
	FOR r IN SELECT * FROM run_command_on_workers(
					'SELECT pg_catalog.encode(@extschema@._master_key_id(), ''hex'')')
			  ORDER BY nodename, nodeport LOOP
		IF NOT r.success THEN
			RAISE EXCEPTION 'toms could not check the master key of Citus node %:%', r.nodename, r.nodeport
				USING ERRCODE = 'connection_failure',
					DETAIL = format('The node answered: %s', r.result),
					HINT = 'Every node must be reachable: the rotation rewraps the copy of toms.tenant_keys on every node.';
		END IF;
		IF r.result IS DISTINCT FROM mine THEN
			RAISE EXCEPTION 'Citus node %:% does not have the master key of the coordinator', r.nodename, r.nodeport
				USING ERRCODE = 'object_not_in_prerequisite_state',
					DETAIL = 'The rotation rewraps the tenant keys of every node under the coordinator''s master key, which that node could not open.',
					HINT = 'On every node set toms.master_key_file (or _command) to the new key and toms.previous_master_key_file (or _command) to the old one, restart it, then run toms.rotate_master_key() again.';
		END IF;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_master_key_check() FROM PUBLIC;
