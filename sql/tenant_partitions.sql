-- Partitioned tables (issue 17): toms.protect() of a partitioned table
-- protects every partition, present and future (CREATE TABLE ... PARTITION
-- OF, sub-partitions, ATTACH PARTITION); a partition read or written
-- directly is filtered as the parent; the guard covers partitions;
-- attaching rows toms cannot account for is refused; DETACH PARTITION
-- leaves the detached table protected; pruning still works under the
-- filter; deletion and retention reach every partition, and retention
-- drops whole expired partitions.  Plain inheritance stays refused.
SET client_min_messages = warning;
CREATE ROLE regress_powner LOGIN;
CREATE ROLE regress_pa LOGIN;
CREATE ROLE regress_pb LOGIN;
CREATE ROLE regress_padmin LOGIN IN ROLE toms_admin;
RESET client_min_messages;
CREATE SCHEMA regress_p AUTHORIZATION regress_powner;
GRANT USAGE ON SCHEMA regress_p TO regress_pa, regress_pb, regress_padmin;
SET search_path = regress_p, public;
SELECT toms.create_tenant('p1', 'One'), toms.create_tenant('p5', 'Two'),
       toms.create_tenant('p3', 'Three');
SELECT toms.add_member('regress_pa', 'p1'), toms.add_member('regress_pb', 'p5'),
       toms.add_member('regress_powner', 'p1'), toms.add_member('regress_padmin', 'p3');

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;

-- What a protected tree looks like: every table forced, with its policy
-- and its row; the sealed-column trigger on the root, cloned below.
CREATE VIEW pg_temp.tree AS
SELECT c.relname, c.relkind, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
       (SELECT string_agg(p.polname, ',' ORDER BY p.polname) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
       (SELECT string_agg(t.tgname || CASE WHEN t.tgparentid <> 0 THEN '(clone)' ELSE '' END, ',')
          FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) AS triggers,
       EXISTS (SELECT 1 FROM toms.protected_tables pt WHERE pt.relid = c.oid) AS registered
  FROM pg_class c
 WHERE c.relnamespace = 'regress_p'::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY c.relname;

-- 1. Hash partitions on the tenant column, one of them sub-partitioned by
-- month; a sealed column and a subject column.
SET SESSION AUTHORIZATION regress_powner;
CREATE TABLE results (tenant_id text NOT NULL, learner text NOT NULL, at timestamptz NOT NULL DEFAULT now(),
                      score int, secret toms.sealed) PARTITION BY HASH (tenant_id);
CREATE TABLE results_h0 PARTITION OF results FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE results_h1 PARTITION OF results FOR VALUES WITH (MODULUS 2, REMAINDER 1)
	PARTITION BY RANGE (at);
CREATE TABLE results_h1_old PARTITION OF results_h1 FOR VALUES FROM ('1950-01-01') TO ('2000-01-01');
GRANT SELECT, INSERT, UPDATE, DELETE ON results, results_h0, results_h1, results_h1_old TO regress_pa, regress_pb;
RESET SESSION AUTHORIZATION;

-- Plain inheritance and lone partitions stay refused.
CREATE TABLE inh_parent (tenant_id text NOT NULL);
CREATE TABLE inh_child () INHERITS (inh_parent);
SELECT toms.protect('inh_parent');
SELECT toms.protect('inh_child');
DROP TABLE inh_child, inh_parent;
SELECT toms.protect('results_h0');
SELECT toms.protect('results_h1_old');

SELECT toms.protect('results', sensitive => '{secret}', subject_column => 'learner');
SELECT * FROM pg_temp.tree;
SELECT relid, tenant_column, sensitive, subject_column FROM toms.protected_tables
 WHERE relid::text LIKE 'results%' ORDER BY relid::text;
SELECT toms.protect('results_h0');

-- 2. Future partitions, at every level, created by the owner: protected
-- when they are created.
SET SESSION AUTHORIZATION regress_powner;
CREATE TABLE results_h1_new PARTITION OF results_h1 FOR VALUES FROM ('2000-01-01') TO (MAXVALUE)
	PARTITION BY LIST (learner);
CREATE TABLE results_h1_new_any PARTITION OF results_h1_new DEFAULT;
GRANT SELECT, INSERT, UPDATE, DELETE ON results_h1_new, results_h1_new_any TO regress_pa, regress_pb;
RESET SESSION AUTHORIZATION;
SELECT * FROM pg_temp.tree;

-- 3. Reads and writes, through the parent and straight into partitions.
SET SESSION AUTHORIZATION regress_pa;
SELECT toms.set_tenant('p1');
INSERT INTO results (learner, score, secret) VALUES ('ann', 1, toms.seal('a1')), ('amy', 2, toms.seal('a2'));
INSERT INTO results (learner, at, score) VALUES ('abe', '1999-01-01', 3);
SELECT toms.set_tenant('p1');
SELECT pg_temp.err($$INSERT INTO results (tenant_id, learner, score) VALUES ('p5', 'x', 0)$$);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_pb;
SELECT toms.set_tenant('p5');
INSERT INTO results (learner, score, secret) VALUES ('bob', 10, toms.seal('b1')), ('bea', 20, NULL);
INSERT INTO results (learner, at, score) VALUES ('bud', '1999-01-01', 30);
RESET SESSION AUTHORIZATION;
SELECT tableoid::regclass AS part, tenant_id, learner, score FROM results ORDER BY tenant_id, learner;
SET SESSION AUTHORIZATION regress_pa;
SELECT toms.set_tenant('p1');
-- Every partition read directly shows p1's rows only.
SELECT 'results_h0' AS part, tenant_id, learner FROM results_h0
UNION ALL SELECT 'results_h1', tenant_id, learner FROM results_h1
UNION ALL SELECT 'results_h1_old', tenant_id, learner FROM results_h1_old
UNION ALL SELECT 'results_h1_new_any', tenant_id, learner FROM results_h1_new_any
ORDER BY 1, 3;
-- Writes straight into partitions: another tenant's row is refused; an
-- update or delete reaches no other tenant's row; a row cannot move.
SELECT pg_temp.err($$INSERT INTO results_h0 (tenant_id, learner) VALUES ('p5', 'x')$$);
SELECT pg_temp.err($$INSERT INTO results_h1_new_any (tenant_id, learner) VALUES ('p5', 'x')$$);
SELECT pg_temp.err($$INSERT INTO results_h1_old (tenant_id, learner, at) VALUES ('p5', 'x', '1990-01-01')$$);
UPDATE results_h0 SET score = score + 100;
UPDATE results_h1 SET score = score + 100;
UPDATE results_h1_new_any SET score = score + 100;
DELETE FROM results_h1_old WHERE learner = 'bud';
SELECT pg_temp.err($$UPDATE results SET tenant_id = 'p5' WHERE learner = 'abe'$$);
SELECT pg_temp.err($$UPDATE results_h1_old SET tenant_id = 'p5' WHERE learner = 'abe'$$);
SELECT toms.unseal(secret) FROM results WHERE learner = 'ann';
SELECT toms.clear_tenant();
-- No context: a partition read directly fails closed, as the parent.
SELECT pg_temp.err('SELECT count(*) FROM results_h1_new_any');
SELECT pg_temp.err('SELECT count(*) FROM results');
RESET SESSION AUTHORIZATION;
SELECT tenant_id, learner, score FROM results ORDER BY tenant_id, learner;
-- A sealed value of p1 written into p5's rows through a partition.
SET SESSION AUTHORIZATION regress_pb;
SELECT toms.set_tenant('p5');
CREATE TEMP TABLE stolen AS SELECT toms.seal('b-secret') AS s;
GRANT SELECT ON stolen TO regress_pa;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_pa;
SELECT toms.set_tenant('p1');
SELECT pg_temp.err($$INSERT INTO results_h0 (learner, secret) SELECT 'x', s FROM stolen$$);
SELECT pg_temp.err($$INSERT INTO results_h1_new_any (learner, secret) SELECT 'x', s FROM stolen$$);
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
DROP TABLE stolen;

-- 4. Partition pruning under the filter: with hash partitions on the
-- tenant column, one partition is scanned (the others are removed when
-- the executor starts: toms.current_tenant() is stable).
SET SESSION AUTHORIZATION regress_pb;
SELECT toms.set_tenant('p5');
EXPLAIN (COSTS OFF) SELECT count(*) FROM results;
SET SESSION AUTHORIZATION regress_powner;
CREATE TABLE byt (tenant_id text, v int) PARTITION BY LIST (tenant_id);
CREATE TABLE byt_p1 PARTITION OF byt FOR VALUES IN ('p1');
CREATE TABLE byt_p5 PARTITION OF byt FOR VALUES IN ('p5');
CREATE TABLE byt_p3 PARTITION OF byt FOR VALUES IN ('p3');
GRANT SELECT ON byt TO regress_pb;
RESET SESSION AUTHORIZATION;
SELECT toms.protect('byt');
INSERT INTO byt SELECT t, g FROM unnest('{p1,p5,p3}'::text[]) t, generate_series(1, 10) g;
SET SESSION AUTHORIZATION regress_pb;
SELECT toms.set_tenant('p5');
EXPLAIN (COSTS OFF) SELECT sum(v) FROM byt;
EXPLAIN (COSTS OFF, ANALYZE, TIMING OFF, SUMMARY OFF) SELECT sum(v) FROM byt;
SELECT sum(v), count(*) FROM byt;
RESET SESSION AUTHORIZATION;
SELECT toms.clear_tenant();
-- Rows without a tenant would be invisible: not attached, even by a
-- superuser.
CREATE TABLE byt_rest (tenant_id text, v int);
INSERT INTO byt_rest VALUES (NULL, 1), (NULL, 2);
SELECT pg_temp.err('ALTER TABLE byt ATTACH PARTITION byt_rest DEFAULT');
DELETE FROM byt_rest;
SELECT pg_temp.err('ALTER TABLE byt ATTACH PARTITION byt_rest DEFAULT');
SELECT relname, relforcerowsecurity FROM pg_class WHERE relname = 'byt_rest';

-- 5. The guard covers partitions: the owner can weaken none of them.
SET SESSION AUTHORIZATION regress_powner;
SELECT pg_temp.err('DROP POLICY toms_tenant ON results_h1_new_any');
SELECT pg_temp.err('DROP POLICY toms_subject ON results_h0');
SELECT pg_temp.err('ALTER TABLE results_h1_old NO FORCE ROW LEVEL SECURITY');
SELECT pg_temp.err('ALTER TABLE results_h1 DISABLE ROW LEVEL SECURITY');
SELECT pg_temp.err('ALTER POLICY toms_tenant ON results_h0 USING (true)');
SELECT pg_temp.err('CREATE POLICY open ON results_h0 USING (true)');
SELECT pg_temp.err('DROP TRIGGER toms_sealed_check ON results_h0');
SELECT pg_temp.err('DROP TRIGGER toms_sealed_check ON results');
SELECT pg_temp.err('ALTER TABLE results_h0 DISABLE TRIGGER toms_sealed_check');
SELECT pg_temp.err('TRUNCATE results_h1_old');
SELECT pg_temp.err('DROP TABLE results_h1_old');
SELECT pg_temp.err('ALTER TABLE results_h0 ALTER COLUMN tenant_id TYPE varchar');
SELECT pg_temp.err('CREATE TABLE results_kid () INHERITS (results_h0)');
SELECT pg_temp.err('CREATE TABLE loose_kid (tenant_id text); ALTER TABLE loose_kid INHERIT results_h0');
SELECT pg_temp.err($$CREATE RULE r AS ON INSERT TO results_h0 DO ALSO NOTHING$$);
RESET SESSION AUTHORIZATION;
SELECT pg_temp.err('SELECT toms.unprotect(''results_h1_old'')');

-- 6. ATTACH PARTITION.  The owner may bring rows of its own tenant only;
-- nobody may bring rows that would be invisible (no tenant, or one toms
-- does not know); the attached table is protected as the parent.
SET SESSION AUTHORIZATION regress_powner;
CREATE TABLE results_h1_mid (LIKE results);
INSERT INTO results_h1_mid (tenant_id, learner, at, score) VALUES ('p5', 'forged', '1999-06-01', 666);
SELECT toms.set_tenant('p1');
SELECT pg_temp.err($$ALTER TABLE results_h1 ATTACH PARTITION results_h1_mid FOR VALUES FROM ('1900-01-01') TO ('1950-01-01')$$);
DELETE FROM results_h1_mid;
INSERT INTO results_h1_mid (tenant_id, learner, at, score) VALUES ('p1', 'old', '1920-06-01', 7);
-- Nor a trigger, rule or publication of its own (each would see every
-- tenant's rows written into the partition).
CREATE FUNCTION regress_p.spy() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$;
CREATE TRIGGER spy BEFORE INSERT ON results_h1_mid FOR EACH ROW EXECUTE FUNCTION regress_p.spy();
SELECT pg_temp.err($$ALTER TABLE results_h1 ATTACH PARTITION results_h1_mid FOR VALUES FROM ('1900-01-01') TO ('1950-01-01')$$);
DROP TRIGGER spy ON results_h1_mid;
CREATE RULE spy AS ON INSERT TO results_h1_mid DO ALSO NOTHING;
SELECT pg_temp.err($$ALTER TABLE results_h1 ATTACH PARTITION results_h1_mid FOR VALUES FROM ('1900-01-01') TO ('1950-01-01')$$);
DROP RULE spy ON results_h1_mid;
DROP FUNCTION regress_p.spy();
SELECT pg_temp.err($$ALTER TABLE results_h1 ATTACH PARTITION results_h1_mid FOR VALUES FROM ('1900-01-01') TO ('1950-01-01')$$);
SELECT tenant_id, learner FROM results_h1_mid;
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
-- An admin may attach other tenants' rows, but not rows without a tenant
-- or of a tenant toms does not know.
CREATE TABLE regress_p.results_x (LIKE results);
ALTER TABLE results_x OWNER TO regress_powner;
INSERT INTO results_x (tenant_id, learner, at) VALUES ('zz', 'ghost', '1850-01-01'), ('p1', 'real', '1850-01-01');
SELECT pg_temp.err($$ALTER TABLE results_h1 ATTACH PARTITION results_x FOR VALUES FROM ('1800-01-01') TO ('1900-01-01')$$);
DELETE FROM results_x WHERE tenant_id = 'zz';
SELECT pg_temp.err($$ALTER TABLE results_h1 ATTACH PARTITION results_x FOR VALUES FROM ('1800-01-01') TO ('1900-01-01')$$);
SELECT * FROM pg_temp.tree;
-- A protected table attached must be protected the same way.
CREATE TABLE other_prot (tenant_id text NOT NULL, learner text NOT NULL, at timestamptz NOT NULL DEFAULT now(),
                         score int, secret toms.sealed);
SELECT toms.protect('other_prot');
SELECT pg_temp.err($$ALTER TABLE results_h1 ATTACH PARTITION other_prot FOR VALUES FROM ('1700-01-01') TO ('1800-01-01')$$);
SELECT toms.unprotect('other_prot');
-- A protected table cannot become a partition of an unprotected one.
CREATE TABLE loose_parent (tenant_id text NOT NULL, learner text NOT NULL, at timestamptz NOT NULL DEFAULT now(),
                           score int, secret toms.sealed) PARTITION BY RANGE (at);
SELECT pg_temp.err($$ALTER TABLE loose_parent ATTACH PARTITION results_h1_old FOR VALUES FROM (MINVALUE) TO ('2000-01-01')$$);
DROP TABLE loose_parent, other_prot;

-- 7. DETACH PARTITION: the detached table stays protected (policies, forced
-- row security, its row, its own sealed-column trigger in place of the
-- clone); only toms.unprotect() takes it out.
ALTER TABLE results_h1 DETACH PARTITION results_h1_old;
SELECT * FROM pg_temp.tree WHERE relname = 'results_h1_old';
SELECT action, relname, detail FROM toms.audit_log WHERE action = 'detach' ORDER BY ts DESC LIMIT 1;
SET SESSION AUTHORIZATION regress_powner;
SELECT pg_temp.err('SELECT count(*) FROM results_h1_old');
SELECT toms.set_tenant('p1');
SELECT tenant_id, learner FROM results_h1_old;
SELECT pg_temp.err('DROP TABLE results_h1_old');
SELECT pg_temp.err('ALTER TABLE results_h1_old NO FORCE ROW LEVEL SECURITY');
-- The owner re-attaches it: a protected table with the same protection
-- (other tenants' rows in it were written under the filter).
SELECT pg_temp.err($$ALTER TABLE results_h1 ATTACH PARTITION results_h1_old FOR VALUES FROM ('1950-01-01') TO ('2000-01-01')$$);
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT * FROM pg_temp.tree WHERE relname = 'results_h1_old';
SELECT tableoid::regclass AS part, tenant_id, learner FROM results ORDER BY 1::text, 2, 3;

-- 8. Audit: a statement on the parent is one record for the parent, not
-- one per partition scanned or written; a partition read directly is a
-- record of its own.
SELECT toms.audit_flush();
SELECT max(seq) AS start_seq FROM toms.audit_log \gset
SET SESSION AUTHORIZATION regress_pa;
SELECT toms.set_tenant('p1');
SELECT count(*) FROM results;
SELECT count(*) FROM results_h0;
UPDATE results SET score = score + 1;
INSERT INTO results (learner, score) VALUES ('ava', 5);
DELETE FROM results WHERE learner = 'ava';
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT toms.audit_flush();
SELECT kind, action, relname, tenant, row_count, fate FROM toms.audit_log
 WHERE seq > :start_seq AND relname LIKE 'regress_p.%' ORDER BY relname, action;

-- 9. Subject deletion (stage 1) hides the subject in every partition, read
-- directly or through the parent.
SELECT toms.request_deletion('p1', 'ann', grace => '1 day') AS req \gset
SET SESSION AUTHORIZATION regress_pa;
SELECT toms.set_tenant('p1');
SELECT learner FROM results ORDER BY 1;
SELECT learner FROM results_h0 ORDER BY 1;
SELECT learner FROM results_h1_new_any ORDER BY 1;
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT toms.cancel_deletion(:'req');

-- 10. toms.unprotect() of a partitioned table takes out every partition.
SELECT toms.unprotect('byt');
SELECT count(*) FROM toms.protected_tables WHERE relid::text LIKE 'byt%';
SELECT count(*) FROM pg_policy WHERE polrelid::regclass::text LIKE 'byt%';
DROP TABLE byt;
SELECT toms.unprotect('results');
SELECT * FROM pg_temp.tree;
DROP VIEW pg_temp.tree;
DROP TABLE results;
DELETE FROM toms.deletion_requests WHERE tenant IN ('p1', 'p5', 'p3');
DELETE FROM toms.members WHERE tenant IN ('p1', 'p5', 'p3');
DELETE FROM toms.tenants WHERE tenant IN ('p1', 'p5', 'p3');
DROP SCHEMA regress_p CASCADE;
DROP ROLE regress_powner, regress_pa, regress_pb, regress_padmin;
