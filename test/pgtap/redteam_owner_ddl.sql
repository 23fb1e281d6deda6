-- Red team (issue 16, class 1): built-in functions in the owner's DDL.
-- The table owner (regress_ro_owner, a migration role in tenant ro_b)
-- adds objects that PostgreSQL evaluates over every tenant's rows, past
-- row security, using only built-in functions: pg_notify() streams each
-- row out, a cast's error prints another tenant's value, and whether a
-- constraint or key can be added answers yes/no about other tenants'
-- values.  Only LEAKPROOF functions and operators (PostgreSQL's notion)
-- pass, NOT VALID instead of validation, keys with the tenant column.
-- Self-contained: one transaction, rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SELECT plan(33);
SET LOCAL client_min_messages = warning;

CREATE ROLE regress_ro_owner LOGIN;
CREATE ROLE regress_ro_alice LOGIN;
CREATE ROLE regress_ro_both LOGIN;
SELECT toms.create_tenant('ro_a', 'Victim'), toms.create_tenant('ro_b', 'Attacker');
SELECT toms.add_member('regress_ro_alice', 'ro_a'), toms.add_member('regress_ro_owner', 'ro_b'),
	   toms.add_member('regress_ro_both', 'ro_a'), toms.add_member('regress_ro_both', 'ro_b');
CREATE SCHEMA ro AUTHORIZATION regress_ro_owner;
GRANT USAGE ON SCHEMA ro TO PUBLIC;
SET ROLE regress_ro_owner;
CREATE TABLE ro.notes (id int NOT NULL, tenant_id text NOT NULL, body text, n bigint);
RESET ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON ro.notes TO regress_ro_alice, regress_ro_both;
SELECT toms.protect('ro.notes');
SET SESSION AUTHORIZATION regress_ro_alice;
SELECT toms.set_tenant('ro_a', true);
INSERT INTO ro.notes (id, body, n) VALUES (1, 'A-secret-1', 5000000000), (2, '42', 1), (3, NULL, 2);
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION regress_ro_owner;
SELECT toms.set_tenant('ro_b');
INSERT INTO ro.notes (id, body, n) VALUES (10, 'B-note', 1);

-- 1. pg_notify() and friends: side effects per row.
SELECT throws_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c1 CHECK (pg_notify('ro_leak', body) IS NULL) NOT VALID$$,
	'42501', 'cannot add a constraint calling a function that is not leakproof on protected table "notes"',
	'owner: a CHECK calling pg_notify() (every later write of every tenant sent to the owner) refused');
SELECT throws_ok($$CREATE POLICY ro_p1 ON ro.notes AS RESTRICTIVE USING (pg_notify('ro_leak', body) IS NULL)$$,
	'42501', 'cannot create or alter a policy calling a function that is not leakproof on protected table "notes"',
	'owner: a restrictive policy calling pg_notify() (runs before the tenant filter) refused');
SELECT throws_ok($$CREATE POLICY ro_p2 ON ro.notes AS RESTRICTIVE FOR SELECT
	USING (CASE WHEN body = 'A-secret-1' THEN pg_notify('ro_leak', 'hit') IS NULL ELSE true END)$$,
	'42501', 'cannot create or alter a policy calling a function that is not leakproof on protected table "notes"',
	'owner: ... also when the column is only in a CASE that decides whether it runs');
SELECT throws_ok($$CREATE POLICY ro_p3 ON ro.notes AS RESTRICTIVE USING (EXISTS (SELECT 1 FROM pg_class WHERE relname = body))$$,
	'42501', 'cannot create or alter a policy calling a function that is not leakproof on protected table "notes"',
	'owner: a restrictive policy with a sub-query (not leakproof in PostgreSQL''s sense) refused');
SELECT lives_ok($$CREATE POLICY ro_p4 ON ro.notes AS RESTRICTIVE USING (n IS DISTINCT FROM 0::bigint)$$,
	'owner: a restrictive policy with leakproof operators only is allowed');

-- 2. Casts that can fail print, or tell, another tenant's value.
SELECT throws_ok('CREATE INDEX ro_i1 ON ro.notes ((body::int))', '42501',
	'cannot create an index calling a function that is not leakproof on protected table "notes"',
	'owner: an index on a failing cast (text to integer: the error shows another tenant''s value) refused');
SELECT throws_ok('CREATE INDEX ro_i2 ON ro.notes (id) WHERE n::int4 > 0', '42501',
	'cannot create a partial index calling a function that is not leakproof on protected table "notes"',
	'owner: a partial index whose predicate casts bigint to integer (overflow error) refused');
SELECT throws_ok('ALTER TABLE ro.notes ADD COLUMN g int GENERATED ALWAYS AS (body::int) STORED', '42501',
	'cannot add a generated column calling a function that is not leakproof on protected table "notes"',
	'owner: a generated column with a failing cast refused');
SELECT throws_ok('CREATE STATISTICS ro.ro_st ON (body::int) FROM ro.notes', '42501',
	'cannot create statistics calling a function that is not leakproof on protected table "notes"',
	'owner: expression statistics with a failing cast (ANALYZE evaluates it) refused');
SELECT throws_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c2 CHECK ((ARRAY[body])::int[] IS NOT NULL) NOT VALID$$,
	'42501', 'cannot add a constraint calling a function that is not leakproof on protected table "notes"',
	'owner: an array cast whose element cast can fail refused');
SELECT throws_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c3 CHECK (length(body) < 100) NOT VALID$$,
	'42501', 'cannot add a constraint calling a function that is not leakproof on protected table "notes"',
	'owner: a built-in function PostgreSQL does not mark LEAKPROOF (length) refused');
SELECT throws_ok('ALTER TABLE ro.notes ALTER COLUMN n TYPE int4', '42501',
	'cannot convert column "n" of protected table "notes" with a conversion that is not leakproof',
	'owner: retyping bigint to integer (fails on another tenant''s large value) refused');
SELECT throws_ok('ALTER TABLE ro.notes ALTER COLUMN body TYPE varchar(3)', '42501',
	'cannot convert column "body" of protected table "notes" with a conversion that is not leakproof',
	'owner: retyping to a shorter varchar (fails on another tenant''s long value) refused');
SELECT throws_ok('ALTER TABLE ro.notes ALTER COLUMN id TYPE information_schema.cardinal_number', '42501',
	'cannot convert column "id" of protected table "notes" with a conversion that is not leakproof',
	'owner: retyping to a built-in domain (its CHECK) refused');

-- 3. Whether it can be added answers yes/no: validation over every row.
SELECT throws_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c4 CHECK (body <> 'A-secret-1')$$, '42501',
	'cannot add a validated constraint to protected table "notes"',
	'owner: a validated CHECK with leakproof operators only (does any tenant hold ''A-secret-1''?) refused');
SELECT lives_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c4 CHECK (body <> 'A-secret-1') NOT VALID$$,
	'owner: the same constraint NOT VALID (checks only rows written from now on) is allowed');
SELECT throws_ok('ALTER TABLE ro.notes VALIDATE CONSTRAINT ro_c4', '42501',
	'cannot validate a constraint on protected table "notes"',
	'owner: validating it later (the same question) refused');
SELECT throws_ok('ALTER TABLE ro.notes ALTER COLUMN body SET NOT NULL', '42501',
	'cannot set column "body" of protected table "notes" NOT NULL',
	'owner: SET NOT NULL (does any tenant have a NULL?) refused');
SELECT throws_ok('CREATE UNIQUE INDEX ro_u1 ON ro.notes (body)', '42501',
	'cannot create a unique index or exclusion constraint without the tenant column on protected table "notes"',
	'owner: a unique index without the tenant column (a write tells whether another tenant holds a value) refused');
SELECT throws_ok('ALTER TABLE ro.notes ADD PRIMARY KEY (id)', '42501',
	'cannot create a unique index or exclusion constraint without the tenant column on protected table "notes"',
	'owner: a primary key without the tenant column refused');
SELECT throws_ok('ALTER TABLE ro.notes ADD CONSTRAINT ro_x EXCLUDE USING btree (body WITH =)', '42501',
	'cannot create a unique index or exclusion constraint without the tenant column on protected table "notes"',
	'owner: an exclusion constraint without the tenant column refused');
SELECT lives_ok('CREATE UNIQUE INDEX ro_u2 ON ro.notes (tenant_id, id)',
	'owner: a unique index with the tenant column is allowed');
SELECT lives_ok('CREATE INDEX ro_i3 ON ro.notes (tenant_id, body) WHERE id > 0',
	'owner: an index with a leakproof predicate is allowed');
SELECT lives_ok('ALTER TABLE ro.notes ALTER COLUMN body TYPE varchar',
	'owner: a conversion that cannot fail (text to varchar) is allowed');
SELECT lives_ok('ALTER TABLE ro.notes ALTER COLUMN id TYPE bigint',
	'owner: a leakproof widening cast (integer to bigint) is allowed');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;

-- 4. A role in two tenants that owns the table is refused the same way
-- (DDL sees every tenant, not the ones the role belongs to).
ALTER TABLE ro.notes OWNER TO regress_ro_both;
SET SESSION AUTHORIZATION regress_ro_both;
SELECT toms.set_tenant('ro_a');
SELECT throws_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c5 CHECK (pg_notify('ro_leak', body) IS NULL) NOT VALID$$,
	'42501', 'cannot add a constraint calling a function that is not leakproof on protected table "notes"',
	'owner in two tenants: a CHECK calling pg_notify() refused');
SELECT throws_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c6 CHECK (body <> 'x')$$, '42501',
	'cannot add a validated constraint to protected table "notes"',
	'owner in two tenants: a validated CHECK refused');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;

-- 5. An application role (not the owner) cannot run such DDL at all.
SET SESSION AUTHORIZATION regress_ro_alice;
SELECT throws_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c7 CHECK (pg_notify('ro_leak', body) IS NULL)$$,
	'42501', 'must be owner of table notes', 'app role: not the owner, no DDL');
RESET SESSION AUTHORIZATION;

-- 6. toms_admin (here a superuser) vets what runs over every tenant's rows.
SELECT lives_ok($$ALTER TABLE ro.notes ADD CONSTRAINT ro_c8 CHECK (length(body) < 100) NOT VALID$$,
	'superuser (toms_admin): may add a constraint calling a function that is not leakproof');
SELECT throws_ok('ALTER TABLE ro.notes VALIDATE CONSTRAINT ro_c4', '23514',
	'check constraint "ro_c4" of relation "notes" is violated by some row',
	'superuser (toms_admin): may validate, and learns what the owner could not (some tenant holds ''A-secret-1'')');
SELECT is((SELECT count(*) FROM pg_constraint WHERE conrelid = 'ro.notes'::regclass AND contype = 'c' AND convalidated),
	0::bigint, 'no constraint the owner added was validated over other tenants'' rows');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = 'ro.notes'::regclass AND polname <> 'toms_tenant'),
	1::bigint, 'only the leakproof restrictive policy was created');
SELECT is((SELECT count(*) FROM pg_index WHERE indrelid = 'ro.notes'::regclass), 2::bigint,
	'only the two leakproof indexes were created');

SELECT * FROM finish();
ROLLBACK;
