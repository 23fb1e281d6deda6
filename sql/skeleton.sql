-- The extension installs, its roles exist, and PUBLIC holds nothing in it
-- beyond schema usage and what applications need.
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'toms';
SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles
 WHERE rolname IN ('toms_admin', 'toms_auditor', 'toms_app') ORDER BY rolname;
SELECT current_setting('shared_preload_libraries') ~ 'toms' AS preloaded;
-- No toms table is readable or writable by PUBLIC.
SELECT c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'toms' AND c.relkind IN ('r', 'v', 'p')
   AND (has_table_privilege('public', c.oid, 'SELECT')
        OR has_table_privilege('public', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE'))
 ORDER BY 1;
-- The toms.* prefix is reserved: a typo in a toms setting is an error.
SET toms.no_such_setting = 'x';
