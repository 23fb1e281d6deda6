-- Tenant isolation under attack: a member of tenant A tries to reach tenant
-- B's rows through every path of plain SQL.  Runs in one transaction that
-- is rolled back.
BEGIN;
SELECT plan(43);

SET client_min_messages = warning;
CREATE ROLE regress_iso_a LOGIN;
CREATE ROLE regress_iso_b LOGIN;
CREATE ROLE regress_iso_owner LOGIN;
RESET client_min_messages;
SELECT toms.create_tenant('iso_a', 'A'), toms.create_tenant('iso_b', 'B');
SELECT toms.add_member('regress_iso_a', 'iso_a'), toms.add_member('regress_iso_b', 'iso_b');

CREATE SCHEMA regress_iso AUTHORIZATION regress_iso_owner;
GRANT USAGE ON SCHEMA regress_iso TO regress_iso_a, regress_iso_b;
SET SESSION AUTHORIZATION regress_iso_owner;
CREATE TABLE regress_iso.learners (id int PRIMARY KEY, tenant_id text NOT NULL, name text);
CREATE VIEW regress_iso.v_learners AS SELECT * FROM regress_iso.learners;
CREATE FUNCTION regress_iso.all_names() RETURNS SETOF text LANGUAGE sql STABLE
	AS $$ SELECT name FROM regress_iso.learners $$;
CREATE FUNCTION regress_iso.definer_names() RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER
	AS $$ SELECT name FROM regress_iso.learners $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON regress_iso.learners, regress_iso.v_learners TO regress_iso_a, regress_iso_b;
RESET SESSION AUTHORIZATION;
SELECT toms.protect('regress_iso.learners');
CREATE FUNCTION regress_iso.plan_lines(q text, with_analyze bool DEFAULT false) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
	FOR l IN EXECUTE format('EXPLAIN (COSTS OFF%s) %s', CASE WHEN with_analyze THEN ', ANALYZE, TIMING OFF, SUMMARY OFF' ELSE '' END, q) LOOP
		RETURN NEXT l;
	END LOOP;
END $$;
-- a view owned by a superuser would bypass row security: toms refuses it
CREATE VIEW regress_iso.v_super AS SELECT * FROM regress_iso.learners;
GRANT SELECT ON regress_iso.v_super TO regress_iso_a;
-- a security_invoker view owned by a superuser is fine
CREATE VIEW regress_iso.v_invoker WITH (security_invoker) AS SELECT * FROM regress_iso.learners;
GRANT SELECT ON regress_iso.v_invoker TO regress_iso_a;

SET SESSION AUTHORIZATION regress_iso_b;
SELECT toms.set_tenant('iso_b');
INSERT INTO regress_iso.learners (id, name) VALUES (10, 'b-secret-1'), (11, 'b-secret-2');
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION regress_iso_a;
SELECT toms.set_tenant('iso_a');
INSERT INTO regress_iso.learners (id, name) VALUES (1, 'a-one'), (2, 'a-two');

-- Reading
SELECT results_eq('SELECT name FROM regress_iso.learners ORDER BY id', ARRAY['a-one', 'a-two'], 'plain SELECT sees only A');
SELECT is_empty($$SELECT 1 FROM regress_iso.learners WHERE tenant_id = 'iso_b'$$, 'explicit WHERE on B finds nothing');
SELECT is_empty($$SELECT 1 FROM regress_iso.learners WHERE id = 10$$, 'point query on a B key finds nothing');
SELECT results_eq('SELECT count(*)::int FROM regress_iso.v_learners', ARRAY[2], 'owner''s view sees only A');
SELECT results_eq('SELECT count(*)::int FROM regress_iso.v_invoker', ARRAY[2], 'security_invoker view sees only A');
SELECT throws_ok('SELECT count(*) FROM regress_iso.v_super', '42501', 'protected table "learners" is reached through a view owned by a role that bypasses row security', 'superuser-owned view refused');
SELECT results_eq('SELECT count(*)::int FROM regress_iso.all_names()', ARRAY[2], 'function sees only A');
SELECT results_eq('SELECT count(*)::int FROM regress_iso.definer_names()', ARRAY[2], 'owner''s SECURITY DEFINER function sees only A');
SELECT results_eq($$SELECT (regexp_match(l, 'rows=([0-9]+) loops'))[1]::int FROM regress_iso.plan_lines('SELECT * FROM regress_iso.learners', true) AS p(l) WHERE l LIKE '%Scan%'$$,
	ARRAY[2], 'EXPLAIN ANALYZE counts only A rows');
SELECT results_eq('WITH x AS (SELECT * FROM regress_iso.learners) SELECT count(*)::int FROM x', ARRAY[2], 'CTE sees only A');
SELECT results_eq('WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT count(*)::int FROM regress_iso.learners, r', ARRAY[6], 'recursive CTE join sees only A');
SELECT results_eq('SELECT count(*)::int FROM regress_iso.learners l1 JOIN regress_iso.learners l2 ON l1.id <> l2.id', ARRAY[2], 'self-join sees only A');
SELECT results_eq($$SELECT count(*)::int FROM regress_iso.learners WHERE name LIKE 'b-%' OR true$$, ARRAY[2], 'OR true does not widen');
SELECT results_eq('SELECT count(*)::int FROM (SELECT * FROM regress_iso.learners UNION ALL SELECT * FROM regress_iso.learners) u', ARRAY[4], 'UNION sees only A');
SELECT results_eq('SELECT count(*)::int FROM regress_iso.learners WHERE id IN (SELECT id FROM regress_iso.learners)', ARRAY[2], 'subquery sees only A');

-- Writing
SELECT throws_ok($$INSERT INTO regress_iso.learners (id, tenant_id, name) VALUES (20, 'iso_b', 'planted')$$, '42501', 'new row violates row-level security policy for table "learners"', 'insert into B refused');
SELECT throws_ok($$UPDATE regress_iso.learners SET tenant_id = 'iso_b' WHERE id = 1$$, '42501', 'new row violates row-level security policy for table "learners"', 'moving a row to B refused');
SELECT lives_ok($$UPDATE regress_iso.learners SET name = 'x' WHERE id = 10$$, 'update of a B row is a no-op');
SELECT lives_ok($$DELETE FROM regress_iso.learners WHERE id = 11$$, 'delete of a B row is a no-op');
SELECT throws_ok($$INSERT INTO regress_iso.v_learners (id, tenant_id, name) VALUES (21, 'iso_b', 'via view')$$, '42501', 'new row violates row-level security policy for table "learners"', 'insert into B through a view refused');
SELECT throws_ok($$INSERT INTO regress_iso.learners (id, name) VALUES (10, 'collide') ON CONFLICT (id) DO UPDATE SET name = 'stolen'$$, '42501', 'new row violates row-level security policy (USING expression) for table "learners"', 'upsert onto a B row refused');
SELECT results_eq($$WITH m AS (UPDATE regress_iso.learners SET name = name RETURNING tenant_id) SELECT count(*)::int FROM m WHERE tenant_id = 'iso_b'$$, ARRAY[0], 'writable CTE touches no B row');

-- Context switching: prepared statements and plans
PREPARE q AS SELECT string_agg(name, ',' ORDER BY id) FROM regress_iso.learners;
SELECT results_eq('EXECUTE q', ARRAY['a-one,a-two'], 'prepared statement in A');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_iso_b;
SELECT toms.set_tenant('iso_b');
SELECT results_eq('EXECUTE q', ARRAY['b-secret-1,b-secret-2'], 'same prepared statement after a context change sees B only');
SET plan_cache_mode = force_generic_plan;
PREPARE q2(int) AS SELECT count(*)::int FROM regress_iso.learners WHERE id > $1;
SELECT results_eq('EXECUTE q2(0)', ARRAY[2], 'generic plan in B');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_iso_a;
SELECT toms.set_tenant('iso_a');
SELECT results_eq('EXECUTE q2(0)', ARRAY[2], 'generic plan reused in A sees A');
SELECT results_eq('SELECT string_agg(name, '','' ORDER BY id) FROM regress_iso.learners WHERE id > 0', ARRAY['a-one,a-two'], 'A rows only after switching back');
RESET plan_cache_mode;

-- Setting the context to a tenant one does not belong to
SELECT throws_ok($$SELECT toms.set_tenant('iso_b')$$, '42501', 'role "regress_iso_a" is not a member of tenant "iso_b"', 'set_tenant to B refused');
SET toms.context = 'iso_b';
SELECT throws_ok('SELECT count(*) FROM regress_iso.learners', '42501', 'role "regress_iso_a" is not a member of tenant "iso_b"', 'SET toms.context to B refused where used');
SELECT throws_ok($$INSERT INTO regress_iso.learners (id, name) VALUES (30, 'x')$$, '42501', 'role "regress_iso_a" is not a member of tenant "iso_b"', 'insert under a foreign context refused');
SELECT set_config('toms.context', 'iso_b', true);
SELECT throws_ok('SELECT count(*) FROM regress_iso.learners', '42501', 'role "regress_iso_a" is not a member of tenant "iso_b"', 'set_config to B refused where used');
SELECT toms.clear_tenant();
SELECT throws_ok('SELECT count(*) FROM regress_iso.learners', '42501', 'no tenant context', 'no context: error, not an empty result');
SELECT throws_ok('SELECT count(*) FROM regress_iso.v_learners', '42501', 'no tenant context', 'no context through a view: error');
SELECT throws_ok('SELECT * FROM regress_iso.all_names()', '42501', 'no tenant context', 'no context through a function: error');
SELECT throws_ok('SET row_security = off; SELECT count(*) FROM regress_iso.learners', '42501', 'query would be affected by row-level security policy for table "learners"', 'row_security = off does not help');
RESET row_security;
SELECT throws_ok('TRUNCATE regress_iso.learners', '42501', 'cannot truncate protected table "learners"', 'TRUNCATE refused');
RESET SESSION AUTHORIZATION;

-- Counting as superuser: the attempts above changed nothing of B.
SELECT results_eq($$SELECT string_agg(name, ',' ORDER BY id) FROM regress_iso.learners WHERE tenant_id = 'iso_b'$$,
	ARRAY['b-secret-1,b-secret-2'], 'B rows intact');
SELECT results_eq($$SELECT count(*)::int FROM regress_iso.learners WHERE tenant_id = 'iso_a'$$, ARRAY[2], 'A rows intact');

-- Index-friendly: the filter is an index condition on (tenant_id, ...).
CREATE TABLE regress_iso.events (tenant_id text NOT NULL, id int NOT NULL, payload text, PRIMARY KEY (tenant_id, id));
INSERT INTO regress_iso.events SELECT 'iso_' || (g % 50), g, 'p' FROM generate_series(1, 20000) g;
SELECT toms.create_tenant('iso_' || n, 'bulk ' || n) FROM generate_series(0, 49) n;
SELECT toms.protect('regress_iso.events');
ANALYZE regress_iso.events;
GRANT SELECT ON regress_iso.events TO regress_iso_a;
SELECT toms.add_member('regress_iso_a', 'iso_7');
SET SESSION AUTHORIZATION regress_iso_a;
SELECT toms.set_tenant('iso_7');
SELECT results_eq('SELECT count(*)::int FROM regress_iso.events', ARRAY[400], 'bulk tenant sees its 400 rows');
-- parallel workers verify the context themselves
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL enable_indexscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT ok(EXISTS (SELECT 1 FROM regress_iso.plan_lines('SELECT count(*) FROM regress_iso.events') AS p(l) WHERE l LIKE '%Parallel Seq Scan%'), 'parallel plan chosen');
SELECT results_eq('SELECT count(*)::int FROM regress_iso.events', ARRAY[400], 'parallel scan sees the same 400 rows');
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET enable_indexscan; RESET enable_bitmapscan;
SELECT ok(EXISTS (SELECT 1 FROM regress_iso.plan_lines('SELECT payload FROM regress_iso.events WHERE id = 77') AS p(l)
	WHERE l LIKE '%Index Cond: ((tenant_id = toms.current_tenant()) AND (id = 77))%'), 'point query: tenant filter is an index condition');
CREATE TEMP TABLE toms_plan AS SELECT array_agg(l) AS lines FROM regress_iso.plan_lines('SELECT payload FROM regress_iso.events WHERE id = 77') AS p(l);
RESET SESSION AUTHORIZATION;
-- the same plan as the hand-written filter, node for node
SELECT is((SELECT array_agg(replace(l, 'toms.current_tenant()', '$1')) FROM unnest((SELECT lines FROM toms_plan)) l),
	(SELECT array_agg(replace(l, '''iso_7''::text', '$1'))
	   FROM regress_iso.plan_lines($$SELECT payload FROM regress_iso.events WHERE tenant_id = 'iso_7' AND id = 77$$) AS p(l)),
	'protected point query plan = hand-written WHERE tenant_id = $1 plan');

SELECT * FROM finish();
ROLLBACK;
