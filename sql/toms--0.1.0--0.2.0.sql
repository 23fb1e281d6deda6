-- toms 0.1.0 -> 0.2.0
--
-- Every change of SQL objects after the 0.1.0 release goes here (and into
-- sql/install/, which builds a fresh 0.2.0).  t/730_upgrade.pl installs
-- 0.1.0, updates, and compares the schema with a fresh install.
\echo Use "ALTER EXTENSION toms UPDATE TO '0.2.0'" to load this file. \quit

-- pools: toms.context_scope, pooled roles in assess 9b (issue 16)
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

CREATE OR REPLACE FUNCTION @extschema@._assess_9b(OUT control text, OUT title text, OUT status text, OUT evidence text)
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

