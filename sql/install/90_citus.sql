
-- Citus: one toms installation across a coordinator and its workers (issue 15)
--
-- toms.citus_setup(), run on the coordinator once the workers are added
-- (and again after citus_add_node), makes toms' administrative tables
-- Citus reference tables: every administrative act is then one distributed
-- transaction writing the same rows on every node (two-phase commit; a node
-- that cannot be reached fails the act everywhere), and a new node receives
-- a copy.  toms' C code reads the local shard (src/citus_catalog.c).
-- Outside Citus the function refuses and nothing changes.  docs/scaling.md.

-- The administrative tables that become reference tables, in order (a
-- referenced table before the tables that reference it).
CREATE FUNCTION @extschema@._citus_tables() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY['tenants', 'members', 'grants', 'trusted_keys', 'tenant_keys'];
REVOKE ALL ON FUNCTION @extschema@._citus_tables() FROM PUBLIC;

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
		-- Tables that stay on the coordinator (deletion requests, holds)
		-- lose their key to toms.tenants.
		FOR fk IN
			SELECT c.conrelid::regclass AS rel, c.conname, pg_get_constraintdef(c.oid) AS def,
				   cl.relname = ANY (@extschema@._citus_tables()) AS keep
			  FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid
			 WHERE c.contype = 'f' AND c.connamespace = '@extschema@'::regnamespace
			   AND c.confrelid::regclass::text IN
				   (SELECT format('@extschema@.%I', u) FROM unnest(@extschema@._citus_tables()) u)
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
