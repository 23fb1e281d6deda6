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
