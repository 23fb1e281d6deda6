-- Red team (issue 16, class 3): interposing on a protected table.
-- The owner (regress_ip_owner, tenant ip_b, owner of the schema) renames
-- or moves the table, or its schema, to put a look-alike view in its
-- place that would see every later query of every tenant; adds an
-- unprotected inheritance child whose rows show up in other tenants'
-- results; and a superuser fills a materialized view from the table
-- (every tenant's rows, readable by whoever it is granted to).
-- Self-contained: one transaction, rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SELECT plan(22);
SET LOCAL client_min_messages = warning;

CREATE ROLE regress_ip_owner LOGIN;
CREATE ROLE regress_ip_alice LOGIN;
CREATE ROLE regress_ip_both LOGIN;
SELECT toms.create_tenant('ip_a', 'Victim'), toms.create_tenant('ip_b', 'Attacker');
SELECT toms.add_member('regress_ip_alice', 'ip_a'), toms.add_member('regress_ip_owner', 'ip_b'),
	   toms.add_member('regress_ip_both', 'ip_a'), toms.add_member('regress_ip_both', 'ip_b');
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_ip_owner', current_database()); END $$;
CREATE SCHEMA ip AUTHORIZATION regress_ip_owner;
CREATE SCHEMA ip2 AUTHORIZATION regress_ip_owner;
GRANT USAGE ON SCHEMA ip, ip2 TO PUBLIC;
SET ROLE regress_ip_owner;
CREATE TABLE ip.notes (id int NOT NULL, tenant_id text NOT NULL, body text);
CREATE TABLE ip.plain (id int, tenant_id text, body text);
RESET ROLE;
GRANT SELECT, INSERT ON ip.notes TO regress_ip_alice, regress_ip_both;
SELECT toms.protect('ip.notes');
SET SESSION AUTHORIZATION regress_ip_alice;
SELECT toms.set_tenant('ip_a', true);
INSERT INTO ip.notes (id, body) VALUES (1, 'A-secret');
RESET SESSION AUTHORIZATION;

-- 1. Renaming and moving, as the owner.
SET SESSION AUTHORIZATION regress_ip_owner;
SELECT throws_ok('ALTER TABLE ip.notes RENAME TO notes_real', '42501', 'cannot rename protected table "notes"',
	'owner: renaming the table (to put a look-alike view in its place) refused');
SELECT throws_ok('ALTER VIEW ip.notes RENAME TO notes_real', '42501', 'cannot rename protected table "notes"',
	'owner: ... also spelt ALTER VIEW');
SELECT throws_ok('ALTER TABLE ip.notes SET SCHEMA ip2', '42501', 'cannot move protected table "notes" to another schema',
	'owner: moving it to another schema refused');
SELECT throws_ok('ALTER SCHEMA ip RENAME TO ip_real', '42501', 'cannot rename schema "ip", which holds protected tables',
	'owner: renaming its schema (and creating a look-alike schema) refused');
SELECT lives_ok('ALTER TABLE ip.plain RENAME TO plain2',
	'owner: renaming a table that is not protected is allowed');
SELECT lives_ok('ALTER SCHEMA ip2 RENAME TO ip3',
	'owner: renaming a schema without protected tables is allowed');
-- 2. Inheritance children.
SELECT throws_ok('CREATE TABLE ip.kid () INHERITS (ip.notes)', '42501',
	'cannot create a table inheriting from protected table "notes"',
	'owner: an unprotected child table (its rows appear in every tenant''s results) refused');
SELECT throws_ok('ALTER TABLE ip.plain2 INHERIT ip.notes', '42501',
	'cannot make a table inherit from protected table "notes"',
	'owner: making an existing table a child refused');
-- 3. Materialized views, as the owner.
SELECT toms.set_tenant('ip_b');
SELECT throws_ok('CREATE MATERIALIZED VIEW ip.mv_owner AS SELECT * FROM ip.notes', '42501',
	'cannot fill a materialized view from protected table "notes"',
	'owner: a materialized view (a copy of its tenant''s rows for anyone it is granted to) refused');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;

-- 4. Materialized views, as a superuser (row security does not apply).
SELECT throws_ok('CREATE MATERIALIZED VIEW ip.mv AS SELECT * FROM ip.notes', '42501',
	'cannot fill a materialized view from protected table "notes"',
	'superuser: a materialized view over the table (every tenant''s rows) refused');
SELECT lives_ok('CREATE MATERIALIZED VIEW ip.mv_empty AS SELECT * FROM ip.notes WITH NO DATA',
	'superuser: ... WITH NO DATA holds no row yet');
SELECT throws_ok('REFRESH MATERIALIZED VIEW ip.mv_empty', '42501',
	'cannot fill a materialized view from protected table "notes"', 'superuser: filling it with REFRESH refused');
CREATE VIEW ip.v AS SELECT * FROM ip.notes;
SELECT throws_ok('CREATE MATERIALIZED VIEW ip.mv_view AS SELECT * FROM ip.v', '42501',
	'cannot fill a materialized view from protected table "notes"', 'superuser: ... also through a view');
CREATE FUNCTION ip.all_notes() RETURNS SETOF ip.notes LANGUAGE plpgsql AS
	$$ BEGIN RETURN QUERY SELECT * FROM ip.notes; END $$;
SELECT throws_ok('CREATE MATERIALIZED VIEW ip.mv_fn AS SELECT * FROM ip.all_notes()', '42501',
	'cannot fill a materialized view from protected table "notes"', 'superuser: ... also through a function');
SELECT throws_ok('CREATE TABLE ip.copy_of () INHERITS (ip.notes)', '42501',
	'cannot create a table inheriting from protected table "notes"', 'superuser: an inheritance child refused too');
SELECT lives_ok('CREATE MATERIALIZED VIEW ip.mv_other AS SELECT * FROM ip.plain2',
	'superuser: a materialized view of an unprotected table is allowed');
SELECT lives_ok('REFRESH MATERIALIZED VIEW ip.mv_other', 'superuser: ... and refreshing it');
SELECT is((SELECT count(*) FROM pg_matviews WHERE schemaname = 'ip' AND ispopulated), 1::bigint,
	'the only populated materialized view is the unprotected table''s');
-- 5. toms_admin (a superuser here) may rename: it is trusted with every row.
SELECT lives_ok('ALTER TABLE ip.notes RENAME TO notes_renamed', 'superuser (toms_admin): may rename a protected table');
ALTER TABLE ip.notes_renamed RENAME TO notes;

-- 6. After all this, each tenant still reads its own rows under the name.
SET SESSION AUTHORIZATION regress_ip_both;
SELECT toms.set_tenant('ip_b');
SELECT is((SELECT count(*) FROM ip.notes), 0::bigint, 'role in two tenants, in ip_b: no ip_a row under the name');
SELECT toms.set_tenant('ip_a');
SELECT results_eq('SELECT body FROM ip.notes', $$VALUES ('A-secret')$$, 'in ip_a: its own row, from the real table');
SELECT is((SELECT c.relkind::text FROM pg_class c WHERE c.oid = 'ip.notes'::regclass), 'r',
	'ip.notes is still the protected table, not a look-alike');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;
