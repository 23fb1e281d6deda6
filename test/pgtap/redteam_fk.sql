-- Red team (issue 16, class 2): foreign keys around the tenant filter.
-- PostgreSQL checks and carries out referential constraints as the table
-- owner, outside row security.  The owner (regress_fk_owner, tenant fk_b)
-- probes another tenant's keys with a foreign key from an unprotected
-- table, moves another tenant's rows with ON UPDATE CASCADE onto the
-- tenant column, deletes them with ON DELETE CASCADE from a table of its
-- own, and empties them with TRUNCATE ... CASCADE.  Allowed: foreign keys
-- between protected tables whose tenant columns are paired.
-- Self-contained: one transaction, rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SELECT plan(22);
SET LOCAL client_min_messages = warning;

CREATE ROLE regress_fk_owner LOGIN;
CREATE ROLE regress_fk_alice LOGIN;
CREATE ROLE regress_fk_both LOGIN;
SELECT toms.create_tenant('fk_a', 'Victim'), toms.create_tenant('fk_b', 'Attacker');
SELECT toms.add_member('regress_fk_alice', 'fk_a'), toms.add_member('regress_fk_owner', 'fk_b'),
	   toms.add_member('regress_fk_both', 'fk_a'), toms.add_member('regress_fk_both', 'fk_b');
CREATE SCHEMA fk AUTHORIZATION regress_fk_owner;
GRANT USAGE ON SCHEMA fk TO PUBLIC;
SET ROLE regress_fk_owner;
-- keys made before protection (a table as it was designed)
CREATE TABLE fk.parents (id int NOT NULL, tenant_id text NOT NULL, body text,
						 UNIQUE (id), UNIQUE (tenant_id, id));
CREATE TABLE fk.children (id int NOT NULL, tenant_id text NOT NULL, parent_id int);
CREATE TABLE fk.victims (id int NOT NULL, tenant_id text NOT NULL, kind text);
CREATE TABLE fk.probe (id int);
CREATE TABLE fk.tenant_map (tid text PRIMARY KEY);
CREATE TABLE fk.people (id int NOT NULL, tenant_id text NOT NULL, person text NOT NULL,
						UNIQUE (tenant_id, id), UNIQUE (tenant_id, person, id));
CREATE TABLE fk.results (id int NOT NULL, tenant_id text NOT NULL, person text NOT NULL, people_id int);
CREATE TABLE fk.kinds (kind text PRIMARY KEY);
INSERT INTO fk.tenant_map VALUES ('fk_a'), ('fk_b');
INSERT INTO fk.kinds VALUES ('k');
RESET ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON fk.parents, fk.children, fk.victims
	TO regress_fk_alice, regress_fk_both;
SELECT toms.protect('fk.parents'), toms.protect('fk.children'), toms.protect('fk.victims');
SELECT toms.protect('fk.people', subject_column => 'person'), toms.protect('fk.results', subject_column => 'person');
SET SESSION AUTHORIZATION regress_fk_alice;
SELECT toms.set_tenant('fk_a', true);
INSERT INTO fk.parents (id, body) VALUES (1, 'A1'), (2, 'A2');
INSERT INTO fk.children (id, parent_id) VALUES (1, 1), (2, 2);
INSERT INTO fk.victims (id, kind) VALUES (1, 'k'), (2, 'k');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_fk_both;
SELECT toms.set_tenant('fk_b', true);
INSERT INTO fk.parents (id, body) VALUES (3, 'B3');
INSERT INTO fk.children (id, parent_id) VALUES (3, 3);
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION regress_fk_owner;
SELECT toms.set_tenant('fk_b');
-- 1. Into a protected table.
SELECT throws_ok('ALTER TABLE fk.probe ADD FOREIGN KEY (id) REFERENCES fk.parents (id)', '42501',
	'cannot create a foreign key into protected table "parents" from table "probe", which is not protected',
	'owner: a foreign key from an unprotected table (does another tenant have key 1?) refused');
SELECT throws_ok('CREATE TABLE fk.probe2 (id int REFERENCES fk.parents (id))', '42501',
	'cannot create a foreign key into protected table "parents" from table "probe2", which is not protected',
	'owner: ... also in CREATE TABLE');
SELECT throws_ok('ALTER TABLE fk.children ADD FOREIGN KEY (parent_id) REFERENCES fk.parents (id)', '42501',
	'cannot create a foreign key from "children" into protected table "parents" without pairing the tenant columns',
	'owner: a foreign key between protected tables that does not pair the tenant columns refused');
SELECT throws_ok('ALTER TABLE fk.children ADD FOREIGN KEY (tenant_id, parent_id) REFERENCES fk.parents (tenant_id, id) ON UPDATE CASCADE',
	'42501', 'cannot create a foreign key whose action changes the tenant column of protected table "children"',
	'owner: paired, but ON UPDATE CASCADE onto the tenant column refused');
SELECT throws_ok('ALTER TABLE fk.children ADD FOREIGN KEY (tenant_id, parent_id) REFERENCES fk.parents (tenant_id, id) ON DELETE SET NULL',
	'42501', 'cannot create a foreign key whose action changes the tenant column of protected table "children"',
	'owner: paired, but ON DELETE SET NULL of every key column (the tenant column too) refused');
SELECT lives_ok('ALTER TABLE fk.children ADD CONSTRAINT fk_c FOREIGN KEY (tenant_id, parent_id) REFERENCES fk.parents (tenant_id, id) ON DELETE CASCADE',
	'owner: paired tenant columns, ON DELETE CASCADE (stays inside one tenant) allowed');
SELECT throws_ok('ALTER TABLE fk.results ADD FOREIGN KEY (tenant_id, people_id) REFERENCES fk.people (tenant_id, id) ON DELETE CASCADE',
	'42501', 'cannot create a foreign key with a cascading delete into protected table "results" without pairing the subject columns',
	'owner: a cascading delete into a table with a subject column, subjects not paired (it would reach a subject hidden by a pending deletion) refused');
SELECT lives_ok('ALTER TABLE fk.results ADD FOREIGN KEY (tenant_id, person, people_id) REFERENCES fk.people (tenant_id, person, id) ON DELETE CASCADE',
	'owner: ... with tenant and subject columns paired, allowed');
-- 2. From a protected table into one of the owner's own.
SELECT throws_ok('ALTER TABLE fk.victims ADD FOREIGN KEY (tenant_id) REFERENCES fk.tenant_map (tid) ON UPDATE CASCADE',
	'42501', 'cannot create a foreign key whose action changes the tenant column of protected table "victims"',
	'owner: ON UPDATE CASCADE onto the tenant column (renaming fk_a to fk_b in its own table would move fk_a''s rows) refused');
SELECT throws_ok('ALTER TABLE fk.victims ADD FOREIGN KEY (tenant_id) REFERENCES fk.tenant_map (tid) ON DELETE SET DEFAULT',
	'42501', 'cannot create a foreign key whose action changes the tenant column of protected table "victims"',
	'owner: ON DELETE SET DEFAULT onto the tenant column refused');
SELECT throws_ok('ALTER TABLE fk.victims ADD FOREIGN KEY (kind) REFERENCES fk.kinds (kind) ON DELETE CASCADE',
	'42501', 'cannot create a foreign key with a cascading action from protected table "victims" into "kinds"',
	'owner: ON DELETE CASCADE from a table of its own (one DELETE there deletes every tenant''s rows, past the two-stage deletion) refused');
SELECT throws_ok('ALTER TABLE fk.victims ADD FOREIGN KEY (kind) REFERENCES fk.kinds (kind) ON UPDATE SET NULL',
	'42501', 'cannot create a foreign key with a cascading action from protected table "victims" into "kinds"',
	'owner: ON UPDATE SET NULL from a table of its own refused');
SELECT lives_ok('ALTER TABLE fk.victims ADD CONSTRAINT fk_k FOREIGN KEY (kind) REFERENCES fk.kinds (kind)',
	'owner: NO ACTION into a shared lookup table of its own is allowed');
-- 3. TRUNCATE ... CASCADE reaches the referencing tables.
SELECT throws_ok('TRUNCATE fk.kinds CASCADE', '42501',
	'cannot truncate protected table "victims" through TRUNCATE ... CASCADE',
	'owner: TRUNCATE CASCADE of its own table that a protected table references refused');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT throws_ok('TRUNCATE fk.kinds CASCADE', '42501',
	'cannot truncate protected table "victims" through TRUNCATE ... CASCADE',
	'superuser: the same TRUNCATE CASCADE refused too (the TRUNCATE ban is for everyone)');
SELECT is((SELECT count(*) FROM fk.victims WHERE tenant_id = 'fk_a'), 2::bigint,
	'every fk_a row of the referencing table is still there');
-- 4. toms_admin (a superuser here) vets keys into protected tables.
SELECT lives_ok('ALTER TABLE fk.probe ADD FOREIGN KEY (id) REFERENCES fk.parents (id)',
	'superuser (toms_admin): may add a foreign key from an unprotected table');

-- 5. The allowed cascade stays in one tenant: a role in two tenants
-- deletes parent 1 of fk_a; only fk_a's child goes.
SET SESSION AUTHORIZATION regress_fk_both;
SELECT toms.set_tenant('fk_b');
SELECT is((SELECT count(*) FROM fk.children), 1::bigint, 'role in two tenants, in fk_b: sees fk_b''s child only');
DELETE FROM fk.parents WHERE id IN (1, 2);
SELECT toms.set_tenant('fk_a');
SELECT is((SELECT count(*) FROM fk.children), 2::bigint, 'its DELETE in fk_b cascaded to no fk_a child');
DELETE FROM fk.parents WHERE id = 1;
SELECT results_eq('SELECT id FROM fk.children ORDER BY id', 'VALUES (2)',
	'in fk_a: deleting parent 1 cascaded to fk_a''s child 1 only');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM fk.children WHERE tenant_id = 'fk_b'), 1::bigint,
	'fk_b''s child is untouched');
SELECT is((SELECT count(*) FROM fk.parents), 2::bigint, 'parents left: fk_a''s 2 and fk_b''s 3');

SELECT * FROM finish();
ROLLBACK;
