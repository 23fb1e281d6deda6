-- Red team: getting around the tenant filter of a protected partitioned
-- table through its partitions (issue 17).  The table owner
-- (regress_rp_owner, member of rp_b) tries to read and write the victim
-- tenant rp_a's rows through partitions, to bring forged rows in with
-- ATTACH PARTITION, to hang a trigger on a partition, to hide rows in an
-- inheritance child, and to take a partition out of protection.
-- Self-contained: one transaction, rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SELECT plan(24);
SET LOCAL client_min_messages = warning;

CREATE ROLE regress_rp_owner LOGIN;
CREATE ROLE regress_rp_alice LOGIN;
SELECT toms.create_tenant('rp_a', 'Victim'), toms.create_tenant('rp_b', 'Attacker');
SELECT toms.add_member('regress_rp_alice', 'rp_a'), toms.add_member('regress_rp_owner', 'rp_b');
CREATE SCHEMA rp AUTHORIZATION regress_rp_owner;
GRANT USAGE ON SCHEMA rp TO PUBLIC;
SET ROLE regress_rp_owner;
CREATE TABLE rp.notes (tenant_id text NOT NULL, body text NOT NULL, at date NOT NULL DEFAULT '2026-01-01')
	PARTITION BY LIST (tenant_id);
CREATE TABLE rp.notes_a PARTITION OF rp.notes FOR VALUES IN ('rp_a');
CREATE TABLE rp.notes_rest PARTITION OF rp.notes DEFAULT PARTITION BY RANGE (at);
CREATE TABLE rp.notes_rest_old PARTITION OF rp.notes_rest FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
RESET ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON rp.notes, rp.notes_a TO regress_rp_alice;
SELECT toms.protect('rp.notes');
SET ROLE regress_rp_alice;
SELECT toms.set_tenant('rp_a');
INSERT INTO rp.notes (body) VALUES ('A-secret');
SELECT toms.clear_tenant();
RESET ROLE;

-- 1. The owner, in its own tenant, through the partitions.
SET SESSION AUTHORIZATION regress_rp_owner;
SELECT toms.set_tenant('rp_b');
SELECT is((SELECT count(*) FROM rp.notes_a), 0::bigint, 'owner: the victim''s partition read directly shows nothing');
SELECT is((SELECT count(*) FROM ONLY rp.notes_a), 0::bigint, 'owner: ONLY on the partition shows nothing');
SELECT is((SELECT count(*) FROM rp.notes_rest), 0::bigint, 'owner: a sub-partitioned partition shows nothing');
SELECT throws_ok($$INSERT INTO rp.notes_a (tenant_id, body) VALUES ('rp_a', 'forged')$$, '42501',
	'new row violates row-level security policy for table "notes_a"', 'owner: a forged row written straight into the victim''s partition refused');
SELECT lives_ok($$UPDATE rp.notes_a SET body = 'defaced'$$, 'owner: UPDATE of the victim''s partition runs');
SELECT lives_ok($$DELETE FROM rp.notes_a$$, 'owner: DELETE of the victim''s partition runs');

-- 2. Weakening a partition.
SELECT throws_ok('ALTER TABLE rp.notes_a NO FORCE ROW LEVEL SECURITY', '42501',
	'cannot stop forcing row level security on protected table "notes_a"', 'owner: NO FORCE on a partition refused');
SELECT throws_ok('ALTER TABLE rp.notes_a DISABLE ROW LEVEL SECURITY', '42501',
	'cannot disable row level security on protected table "notes_a"', 'owner: DISABLE RLS on a partition refused');
SELECT throws_ok('DROP POLICY toms_tenant ON rp.notes_rest_old', '42501',
	'cannot drop policy "toms_tenant" on protected table "notes_rest_old"', 'owner: DROP POLICY on a sub-partition refused');
SELECT throws_ok('CREATE POLICY open ON rp.notes_a USING (true)', '42501',
	'cannot create a permissive policy on protected table "notes_a"', 'owner: a widening policy on a partition refused');
SELECT throws_ok('TRUNCATE rp.notes_a', '42501', 'cannot truncate protected table "notes_a"', 'owner: TRUNCATE of a partition refused');
SELECT throws_ok('DROP TABLE rp.notes_a', '42501', 'cannot drop protected table "notes_a"', 'owner: DROP TABLE of a partition refused');
CREATE FUNCTION rp.spy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
SELECT throws_ok('CREATE TRIGGER spy BEFORE INSERT ON rp.notes_a FOR EACH ROW EXECUTE FUNCTION rp.spy()', '42501',
	'cannot create a trigger on protected table "notes_a"', 'owner: a trigger on a partition refused');

-- 3. New partitions: protected at once, so the owner gains nothing.
CREATE TABLE rp.notes_rest_new PARTITION OF rp.notes_rest FOR VALUES FROM ('2026-01-01') TO (MAXVALUE);
SELECT ok((SELECT relforcerowsecurity FROM pg_class WHERE oid = 'rp.notes_rest_new'::regclass),
	'owner: a partition it creates is protected at once');
SELECT throws_ok('CREATE TRIGGER spy BEFORE INSERT ON rp.notes_rest_new FOR EACH ROW EXECUTE FUNCTION rp.spy()', '42501',
	'cannot create a trigger on protected table "notes_rest_new"', 'owner: and cannot get a trigger either');

-- 4. ATTACH PARTITION: forged rows, a spy trigger.
CREATE TABLE rp.forged (tenant_id text NOT NULL, body text NOT NULL, at date NOT NULL);
INSERT INTO rp.forged VALUES ('rp_a', 'planted', '2020-01-01');
SELECT throws_ok($$ALTER TABLE rp.notes_rest ATTACH PARTITION rp.forged FOR VALUES FROM ('2000-01-01') TO ('2025-01-01')$$,
	'42501', 'cannot attach "forged" to protected table "notes_rest"', 'owner: attaching rows of another tenant refused');
UPDATE rp.forged SET tenant_id = 'nobody-knows';
SELECT throws_ok($$ALTER TABLE rp.notes_rest ATTACH PARTITION rp.forged FOR VALUES FROM ('2000-01-01') TO ('2025-01-01')$$,
	'42501', 'cannot attach "forged" to protected table "notes_rest"', 'owner: attaching rows of an unknown tenant refused (without saying so)');
UPDATE rp.forged SET tenant_id = 'rp_b';
CREATE TRIGGER spy BEFORE INSERT ON rp.forged FOR EACH ROW EXECUTE FUNCTION rp.spy();
SELECT throws_ok($$ALTER TABLE rp.notes_rest ATTACH PARTITION rp.forged FOR VALUES FROM ('2000-01-01') TO ('2025-01-01')$$,
	'42501', 'cannot attach "forged" to protected table "notes_rest"', 'owner: attaching a table with its own trigger refused');
DROP TRIGGER spy ON rp.forged;
SELECT lives_ok($$ALTER TABLE rp.notes_rest ATTACH PARTITION rp.forged FOR VALUES FROM ('2000-01-01') TO ('2025-01-01')$$,
	'owner: attaching rows of its own tenant works');
SELECT ok((SELECT relforcerowsecurity FROM pg_class WHERE oid = 'rp.forged'::regclass), 'the attached table is protected');

-- 5. Inheritance and detaching.
SELECT throws_ok('CREATE TABLE rp.kid () INHERITS (rp.notes_a)', '42501',
	'cannot create a table inheriting from protected table "notes_a"', 'owner: an inheritance child of a partition refused');
ALTER TABLE rp.notes DETACH PARTITION rp.notes_a;
SELECT is((SELECT count(*) FROM rp.notes_a), 0::bigint, 'owner: a detached partition is still filtered');
SELECT throws_ok('ALTER TABLE rp.notes_a NO FORCE ROW LEVEL SECURITY', '42501',
	'cannot stop forcing row level security on protected table "notes_a"', 'owner: a detached partition is still guarded');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;

-- The victim's row survived all of it.
SET ROLE regress_rp_alice;
SELECT toms.set_tenant('rp_a');
SELECT is((SELECT string_agg(body, ',') FROM rp.notes_a), 'A-secret', 'the victim''s row is untouched');
SELECT toms.clear_tenant();
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
