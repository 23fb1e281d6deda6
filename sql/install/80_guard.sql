-- toms' own functions (issue 16; docs/tenancy.md, "toms' own objects").
-- The guard refuses CREATE OR REPLACE, ALTER and DROP of toms' functions
-- outside its extension scripts; a superuser's UPDATE of pg_proc has no
-- hook, so the functions' fingerprints are taken when CREATE or ALTER
-- EXTENSION toms has run (by the guard, not by this script) and compared
-- by toms.check_functions(), which toms.assess() (9a) calls.
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
