-- toms 0.1.0 -> 0.2.0
--
-- Every change of SQL objects after the 0.1.0 release goes here (and into
-- sql/install/, which builds a fresh 0.2.0).  t/730_upgrade.pl installs
-- 0.1.0, updates, and compares the schema with a fresh install.
\echo Use "ALTER EXTENSION toms UPDATE TO '0.2.0'" to load this file. \quit

-- toms' own functions and the guard (issue 16): fingerprints of toms'
-- functions, and toms.assess() (9a) comparing them.
CREATE TABLE @extschema@.function_fingerprints (
	fn			oid PRIMARY KEY,
	signature	text NOT NULL,
	fingerprint text NOT NULL
);
COMMENT ON TABLE @extschema@.function_fingerprints IS
	'toms: its functions as its extension scripts created them (written by CREATE/ALTER EXTENSION toms)';
REVOKE ALL ON @extschema@.function_fingerprints FROM PUBLIC;
GRANT SELECT ON @extschema@.function_fingerprints TO toms_admin, toms_auditor;

CREATE FUNCTION @extschema@.check_functions(OUT function text, OUT problem text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'toms_check_functions'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.check_functions() IS
	'toms: its functions added, dropped or changed since its extension scripts ran (raises an incident)';
REVOKE ALL ON FUNCTION @extschema@.check_functions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.check_functions() TO toms_admin, toms_auditor;

CREATE OR REPLACE FUNCTION @extschema@._assess_9a(OUT control text, OUT title text, OUT status text, OUT evidence text)
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
