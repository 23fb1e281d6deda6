-- Each backend remembers whether toms is installed in its database (and
-- toms' schema) instead of two catalog lookups per statement.  The memory
-- follows the catalogs: a backend that saw toms absent protects a table as
-- soon as toms is installed.
SELECT current_database() AS home \gset
CREATE DATABASE regress_ext_cache;
\c regress_ext_cache
CREATE TABLE learners (tenant_id text NOT NULL, name text);
ALTER TABLE learners NO FORCE ROW LEVEL SECURITY;	-- no toms here yet: nothing to refuse
CREATE EXTENSION toms;
SELECT toms.create_tenant('ec1', 'Extension cache');
SELECT toms.protect('learners');
\set VERBOSITY terse
ALTER TABLE learners NO FORCE ROW LEVEL SECURITY;	-- refused at once
SELECT toms.unprotect('learners');
ALTER TABLE learners DISABLE ROW LEVEL SECURITY;	-- unprotected: allowed again
\c :home
DROP DATABASE regress_ext_cache WITH (FORCE);
