-- Red team: side channels.  An application role in tenant rt_b
-- (regress_rt_eve) tries to learn tenant rt_a's rows without reading them:
-- leaky functions in WHERE, EXPLAIN ANALYZE, planner statistics, unique
-- and foreign-key probing, large objects, LISTEN/NOTIFY.  Where PostgreSQL
-- cannot close a channel, the test asserts the documented behaviour (see
-- docs/security-testing.md, "Known limits").  Self-contained: one
-- transaction, rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SELECT plan(31);
SET LOCAL client_min_messages = warning;

CREATE ROLE regress_rt_owner NOLOGIN;
CREATE ROLE regress_rt_alice LOGIN;
CREATE ROLE regress_rt_eve LOGIN;
SELECT toms.create_tenant('rt_a', 'Victim'), toms.create_tenant('rt_b', 'Attacker');
SELECT toms.add_member('regress_rt_alice', 'rt_a'), toms.add_member('regress_rt_eve', 'rt_b');
CREATE SCHEMA rt AUTHORIZATION regress_rt_owner;
GRANT USAGE ON SCHEMA rt TO PUBLIC;
SET ROLE regress_rt_owner;
CREATE TABLE rt.people (id int PRIMARY KEY, tenant_id text NOT NULL, email text NOT NULL, salary int);
CREATE UNIQUE INDEX people_email_global ON rt.people (email);			-- not led by the tenant
CREATE TABLE rt.orders (id int PRIMARY KEY, tenant_id text NOT NULL,
	person_id int REFERENCES rt.people (id));								-- FK on id alone
CREATE TABLE rt.people2 (id int, tenant_id text NOT NULL, email text NOT NULL,
	PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, email));				-- the safe way
CREATE TABLE rt.orders2 (id int, tenant_id text NOT NULL, person_id int, PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, person_id) REFERENCES rt.people2 (tenant_id, id));
RESET ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON rt.people, rt.orders, rt.people2, rt.orders2
	TO regress_rt_alice, regress_rt_eve;
SELECT toms.protect('rt.people'), toms.protect('rt.orders'),
	   toms.protect('rt.people2'), toms.protect('rt.orders2');
SET SESSION AUTHORIZATION regress_rt_alice;
SELECT toms.set_tenant('rt_a', true);
INSERT INTO rt.people (id, email, salary)
	SELECT g, 'victim' || g || '@a.example', 100000 + g FROM generate_series(1, 200) g;
INSERT INTO rt.people2 (id, email) SELECT g, 'victim' || g || '@a.example' FROM generate_series(1, 20) g;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b', true);
INSERT INTO rt.people (id, email, salary) VALUES (1001, 'eve@b.example', 1);
RESET SESSION AUTHORIZATION;
ANALYZE rt.people;

SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b');

-- 1. Leaky function in WHERE: cheap, not leakproof, wants to see every row
-- before the policy removes it (RAISE NOTICE, or a side table).
CREATE TEMP TABLE rt_seen (tenant_id text, email text, salary int);
CREATE FUNCTION pg_temp.peek(t text, e text, s int) RETURNS boolean
	LANGUAGE plpgsql COST 0.0000001 AS
$$ BEGIN RAISE NOTICE 'saw % % %', t, e, s; INSERT INTO rt_seen VALUES (t, e, s); RETURN true; END $$;
SELECT is((SELECT count(*) FROM rt.people WHERE pg_temp.peek(tenant_id, email, salary)), 1::bigint,
	'leaky WHERE: the query returns the attacker''s row only');
SELECT is((SELECT count(*) FROM rt_seen WHERE tenant_id = 'rt_b'), 1::bigint,
	'leaky WHERE: the function did run (on the attacker''s row)');
SELECT is((SELECT count(*) FROM rt_seen WHERE tenant_id <> 'rt_b'), 0::bigint,
	'leaky WHERE: the function never saw another tenant''s row (it runs after the policy)');
SELECT is((SELECT count(*) FROM rt.people WHERE id = 5 AND pg_temp.peek(tenant_id, email, salary)), 0::bigint,
	'leaky WHERE on an index lookup of a victim id: nothing');
SELECT is((SELECT count(*) FROM rt.people p JOIN (SELECT 1) x ON pg_temp.peek(p.tenant_id, p.email, p.salary)), 1::bigint,
	'leaky join qual: nothing either');
SELECT is((SELECT count(*) FROM rt_seen WHERE tenant_id <> 'rt_b'), 0::bigint,
	'... the function still saw no rt_a row');
SELECT throws_ok($$CREATE FUNCTION pg_temp.peek2(text) RETURNS boolean LANGUAGE sql LEAKPROOF AS 'SELECT true'$$,
	'42501', 'only superuser can define a leakproof function', 'only superusers may mark a function LEAKPROOF (to run before the policy)');
-- errors raised from values: a failing cast in WHERE would print the value
SELECT throws_ok($$SELECT count(*) FROM rt.people WHERE (email::int) > 0$$, '22P02',
	'invalid input syntax for type integer: "eve@b.example"',
	'a failing cast in WHERE reports the attacker''s own value, never a victim''s');

-- 2. EXPLAIN (ANALYZE): counts, not contents.
CREATE TEMP TABLE rt_plan (line text);
DO $$ DECLARE l text; BEGIN
	SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
	FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT email FROM rt.people' LOOP
		INSERT INTO rt_plan VALUES (l);
	END LOOP; END $$;
SELECT ok(NOT EXISTS (SELECT 1 FROM rt_plan WHERE line LIKE '%victim%' OR line LIKE '%10000%'),
	'EXPLAIN ANALYZE shows no value of another tenant');
SELECT ok(EXISTS (SELECT 1 FROM rt_plan WHERE line LIKE '%Rows Removed by Filter: 200%'),
	'documented limit: EXPLAIN ANALYZE counts the rows the policy removed (other tenants'' row count)');
SELECT cmp_ok((SELECT reltuples FROM pg_class WHERE oid = 'rt.people'::regclass), '>', 1::real,
	'documented limit: pg_class.reltuples (the whole table''s size) is readable by everyone');

-- 3. Planner statistics.
SELECT is((SELECT count(*) FROM pg_stats WHERE schemaname = 'rt' AND tablename = 'people'), 0::bigint,
	'pg_stats hides the statistics of a table under row security (most_common_vals would show values)');
SELECT throws_ok('SELECT count(*) FROM pg_statistic', '42501', 'permission denied for table pg_statistic', 'pg_statistic is for superusers only');
SELECT is((SELECT count(*) FROM pg_stats_ext WHERE schemaname = 'rt'), 0::bigint, 'pg_stats_ext: nothing either');
-- selectivity estimates read the statistics on the attacker's behalf
CREATE TEMP TABLE rt_est (line text);
DO $$ DECLARE l text; BEGIN
	FOR l IN EXECUTE 'EXPLAIN SELECT * FROM rt.people WHERE email = ''victim7@a.example''' LOOP
		INSERT INTO rt_est VALUES (l);
	END LOOP; END $$;
SELECT ok(EXISTS (SELECT 1 FROM rt_est WHERE line LIKE '%rows=%'),
	'documented limit: EXPLAIN row estimates come from all tenants'' statistics (estimates, not values)');

-- 4. Unique index not led by the tenant column: existence oracle.
SELECT throws_ok($$INSERT INTO rt.people (id, email) VALUES (1002, 'victim7@a.example')$$, '23505', 'duplicate key value violates unique constraint "people_email_global"',
	'documented limit: a unique index not led by the tenant column reveals that a value exists in another tenant');
SELECT lives_ok($$INSERT INTO rt.people2 (id, email) VALUES (1002, 'victim7@a.example')$$,
	'a unique index led by the tenant column reveals nothing');
SELECT throws_ok($$INSERT INTO rt.people (id, email) VALUES (7, 'eve2@b.example')$$, '23505', 'duplicate key value violates unique constraint "people_pkey"',
	'documented limit: so does a primary key on id alone (ids of other tenants)');
SELECT throws_ok($$INSERT INTO rt.people (id, email) VALUES (1003, 'victim8@a.example')
	ON CONFLICT (email) DO UPDATE SET salary = 0$$, '42501', 'new row violates row-level security policy (USING expression) for table "people"',
	'ON CONFLICT DO UPDATE on another tenant''s row: refused (the policy''s USING check), no update');

-- 5. Foreign keys: the referential check reads past row security.
SELECT lives_ok($$INSERT INTO rt.orders (id, person_id) VALUES (1, 5)$$,
	'documented limit: a foreign key on id alone accepts another tenant''s id (existence oracle)');
SELECT throws_ok($$INSERT INTO rt.orders (id, person_id) VALUES (2, 99999)$$, '23503', 'insert or update on table "orders" violates foreign key constraint "orders_person_id_fkey"',
	'... and refuses an id that exists nowhere');
SELECT is((SELECT count(*) FROM rt.orders o JOIN rt.people p ON p.id = o.person_id), 0::bigint,
	'... but the referenced row stays invisible');
SELECT throws_ok($$INSERT INTO rt.orders2 (id, person_id) VALUES (1, 5)$$, '23503', 'insert or update on table "orders2" violates foreign key constraint "orders2_tenant_id_person_id_fkey"',
	'a foreign key that includes the tenant column refuses another tenant''s id');

-- The self-assessment names both probing channels (control 9b).
RESET SESSION AUTHORIZATION;
CREATE TEMP TABLE rt_assess AS SELECT * FROM toms.assess() WHERE control = '9b';
SELECT is((SELECT status FROM rt_assess), 'warn', 'toms.assess() 9b warns about these tables');
SELECT matches((SELECT evidence FROM rt_assess), 'people_email_global on rt\.people',
	'... naming the unique index not led by the tenant column');
SELECT matches((SELECT evidence FROM rt_assess), 'orders_person_id_fkey on rt\.orders',
	'... and the foreign key without the tenant column');
SELECT doesnt_match((SELECT evidence FROM rt_assess), 'people2|orders2',
	'... but not the tables keyed by (tenant, id)');

-- 6. Large objects: outside row security.
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_rt_alice;
SELECT toms.set_tenant('rt_a');
CREATE TEMP TABLE rt_lo AS SELECT lo_from_bytea(0, 'salary list of rt_a') AS loid;
GRANT SELECT ON rt_lo TO PUBLIC;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b');
SELECT throws_ok(format('SELECT lo_get(%s)', (SELECT loid FROM rt_lo)), '42501', format('permission denied for large object %s', (SELECT loid FROM rt_lo)),
	'another role''s large object: permission denied (per role, not per tenant)');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_rt_alice;
SELECT toms.clear_tenant();
SELECT is(convert_from(lo_get((SELECT loid FROM rt_lo)), 'UTF8'), 'salary list of rt_a',
	'documented limit: a large object is readable by its owner role with no tenant context at all');
RESET SESSION AUTHORIZATION;

-- 7. LISTEN/NOTIFY: channels are global, payloads are not filtered.
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT lives_ok('LISTEN rt_a_events', 'documented limit: any role may LISTEN on any channel (payloads must not carry tenant data)');
SELECT lives_ok('LISTEN toms_incident', '... including toms_incident (its payload carries no personal data)');
UNLISTEN *;
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;
