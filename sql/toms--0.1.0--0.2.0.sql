-- toms 0.1.0 -> 0.2.0
--
-- Every change of SQL objects after the 0.1.0 release goes here (and into
-- sql/install/, which builds a fresh 0.2.0).  t/730_upgrade.pl installs
-- 0.1.0, updates, and compares the schema with a fresh install.
\echo Use "ALTER EXTENSION toms UPDATE TO '0.2.0'" to load this file. \quit
