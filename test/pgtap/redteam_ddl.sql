-- Red team: getting around the policy with objects and utility commands.
-- The table owner (regress_rt_owner, e.g. a migration role) and an
-- application role in tenant rt_b (regress_rt_eve) try SECURITY DEFINER
-- functions, views, rules, triggers, COPY, TRUNCATE, trigger switches,
-- publications and DDL that evaluates user code over every row.
-- Self-contained: one transaction, rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SELECT plan(69);
SET LOCAL client_min_messages = warning;

CREATE ROLE regress_rt_owner LOGIN;
CREATE ROLE regress_rt_alice LOGIN;
CREATE ROLE regress_rt_eve LOGIN;
CREATE ROLE regress_rt_bypass NOLOGIN BYPASSRLS;
SELECT toms.create_tenant('rt_a', 'Victim'), toms.create_tenant('rt_b', 'Attacker');
SELECT toms.add_member('regress_rt_alice', 'rt_a'), toms.add_member('regress_rt_eve', 'rt_b'),
	   toms.add_member('regress_rt_owner', 'rt_b');
GRANT CREATE ON DATABASE toms_tap TO regress_rt_owner;
CREATE SCHEMA rt AUTHORIZATION regress_rt_owner;
GRANT USAGE ON SCHEMA rt TO PUBLIC;
GRANT CREATE ON SCHEMA rt TO regress_rt_eve;
SET ROLE regress_rt_owner;
CREATE TABLE rt.notes (id int PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL);
CREATE TABLE rt.audit_copy (tenant_id text, body text);
RESET ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER ON rt.notes TO regress_rt_alice, regress_rt_eve;
SELECT toms.protect('rt.notes');
-- For section 4: a table whose column has a domain (over a domain), with
-- a CHECK constraint and a domain constraint made NOT VALID before the
-- table was protected; both call a function that keeps what it sees.
CREATE TABLE rt.seen0 (body text);
GRANT SELECT ON rt.seen0 TO PUBLIC;
CREATE FUNCTION rt.spy0(t text) RETURNS bool LANGUAGE plpgsql SECURITY DEFINER AS
$$ BEGIN INSERT INTO rt.seen0 VALUES (t); RETURN true; END $$;
SET ROLE regress_rt_owner;
CREATE DOMAIN rt.tag AS text;
CREATE DOMAIN rt.subtag AS rt.tag;
CREATE TABLE rt.tags (id int, tenant_id text NOT NULL, tag rt.subtag);
ALTER TABLE rt.tags ADD CONSTRAINT rt_tags_pre CHECK (rt.spy0(tag)) NOT VALID;
ALTER DOMAIN rt.tag ADD CONSTRAINT rt_tag_pre CHECK (rt.spy0(VALUE)) NOT VALID;
RESET ROLE;
GRANT SELECT, INSERT ON rt.tags TO regress_rt_alice;
SELECT toms.protect('rt.tags');
SET SESSION AUTHORIZATION regress_rt_alice;
SELECT toms.set_tenant('rt_a', true);
INSERT INTO rt.notes (id, body) SELECT g, 'A-note-' || g FROM generate_series(1, 10) g;
INSERT INTO rt.tags (id, tag) VALUES (1, 'A-tag');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b', true);
INSERT INTO rt.notes (id, body) VALUES (101, 'B-note');
RESET SESSION AUTHORIZATION;
SELECT toms.clear_tenant();

-- 1. Writes across the boundary.
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b');
SELECT throws_ok($$INSERT INTO rt.notes VALUES (200, 'rt_a', 'planted')$$, '42501', 'new row violates row-level security policy for table "notes"',
	'INSERT naming another tenant: refused by the policy''s WITH CHECK');
SELECT throws_ok($$UPDATE rt.notes SET tenant_id = 'rt_a' WHERE id = 101$$, '42501', 'new row violates row-level security policy for table "notes"',
	'UPDATE moving a row to another tenant: refused');
SELECT is((SELECT count(*) FROM (SELECT 1 FROM rt.notes WHERE id <= 10) x), 0::bigint, 'rt_a rows invisible');
UPDATE rt.notes SET body = 'defaced' WHERE id <= 10;
DELETE FROM rt.notes WHERE id <= 10;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM rt.notes WHERE tenant_id = 'rt_a' AND body LIKE 'A-note-%'), 10::bigint,
	'UPDATE/DELETE of rt_a rows from rt_b touched nothing');
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b');

-- 2. Utility commands.
SELECT throws_ok('TRUNCATE rt.notes', '42501', 'cannot truncate protected table "notes"', 'TRUNCATE of a protected table: refused (it bypasses row security)');
SELECT throws_ok($$COPY rt.notes FROM PROGRAM 'true'$$, '42501', 'must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program', 'COPY FROM PROGRAM: superusers only');
RESET SESSION AUTHORIZATION;
SELECT toms.clear_tenant();
SET SESSION AUTHORIZATION regress_rt_owner;
SELECT toms.set_tenant('rt_b');
SELECT throws_ok('ALTER TABLE rt.notes DISABLE ROW LEVEL SECURITY', '42501', 'cannot disable row level security on protected table "notes"', 'owner: DISABLE ROW LEVEL SECURITY refused');
SELECT throws_ok('ALTER TABLE rt.notes NO FORCE ROW LEVEL SECURITY', '42501', 'cannot stop forcing row level security on protected table "notes"', 'owner: NO FORCE ROW LEVEL SECURITY refused');
SELECT throws_ok('DROP POLICY toms_tenant ON rt.notes', '42501', 'cannot drop policy "toms_tenant" on protected table "notes"', 'owner: DROP POLICY refused');
SELECT throws_ok('ALTER POLICY toms_tenant ON rt.notes USING (true)', '42501', 'cannot alter policy "toms_tenant" on protected table "notes"', 'owner: ALTER POLICY refused');
SELECT throws_ok('CREATE POLICY rt_open ON rt.notes USING (true)', '42501', 'cannot create a permissive policy on protected table "notes"', 'owner: a widening (permissive) policy refused');
SELECT throws_ok('ALTER TABLE rt.notes DISABLE TRIGGER ALL', '42501', 'cannot disable all triggers at once on protected table "notes"', 'owner: DISABLE TRIGGER ALL refused');
SELECT throws_ok('ALTER TABLE rt.notes DISABLE TRIGGER USER', '42501', 'cannot disable all triggers at once on protected table "notes"', 'owner: DISABLE TRIGGER USER refused');
SELECT throws_ok('ALTER TABLE rt.notes ALTER COLUMN tenant_id TYPE varchar', '42501', 'cannot change the type of column "tenant_id" of protected table "notes"', 'owner: retyping the tenant column refused');
SELECT throws_ok('ALTER TABLE rt.notes RENAME COLUMN tenant_id TO t', '42501', 'cannot rename column "tenant_id" of protected table "notes"', 'owner: renaming the tenant column refused');
SELECT throws_ok('ALTER TABLE rt.notes DROP COLUMN tenant_id', '42501', 'cannot drop column "tenant_id" of protected table "notes"', 'owner: dropping the tenant column refused');
SELECT throws_ok('DROP TABLE rt.notes', '42501', 'cannot drop protected table "notes"', 'owner: DROP TABLE refused (toms.request_deletion is the way)');
SELECT throws_ok('CREATE TABLE rt.notes_child () INHERITS (rt.audit_copy); ALTER TABLE rt.notes INHERIT rt.audit_copy',
	'42501', 'cannot add a parent table to protected table "notes"', 'owner: making the table a child of another (rows visible through the parent) refused');
SELECT throws_ok($$CREATE RULE rt_copy AS ON INSERT TO rt.notes DO ALSO INSERT INTO rt.audit_copy VALUES (NEW.tenant_id, NEW.body)$$,
	'42501', 'cannot create a rule on protected table "notes"', 'owner: CREATE RULE on a protected table refused');
CREATE FUNCTION rt.copy_row() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO rt.audit_copy VALUES (NEW.tenant_id, NEW.body); RETURN NEW; END $$;
SELECT throws_ok('CREATE TRIGGER rt_copy AFTER INSERT OR UPDATE ON rt.notes FOR EACH ROW EXECUTE FUNCTION rt.copy_row()',
	'42501', 'cannot create a trigger on protected table "notes"', 'owner: CREATE TRIGGER refused (a trigger sees every tenant''s rows): toms_admin only');

-- 3. Publications: logical replication ships every row, past row security.
SET LOCAL client_min_messages = error;	-- wal_level is not logical here
SELECT lives_ok('CREATE PUBLICATION rt_pub_other FOR TABLE rt.audit_copy',
	'owner: publishing an unprotected table is allowed');
SELECT throws_ok('CREATE PUBLICATION rt_pub FOR TABLE rt.notes', '42501', 'cannot publish protected table "notes"',
	'owner: publishing a protected table (subscribers get every tenant''s rows) refused');
SELECT throws_ok('ALTER PUBLICATION rt_pub_other ADD TABLE rt.notes', '42501', 'cannot publish protected table "notes"',
	'owner: adding a protected table to a publication refused');
SELECT throws_ok('ALTER PUBLICATION rt_pub_other SET TABLE rt.audit_copy, rt.notes', '42501', 'cannot publish protected table "notes"',
	'owner: setting a publication''s tables to include a protected one refused');
RESET SESSION AUTHORIZATION;
GRANT toms_admin TO regress_rt_owner;
SET SESSION AUTHORIZATION regress_rt_owner;
SELECT lives_ok('ALTER PUBLICATION rt_pub_other ADD TABLE rt.notes',
	'owner who is toms_admin: may publish a protected table');
RESET SESSION AUTHORIZATION;
REVOKE toms_admin FROM regress_rt_owner;
SET SESSION AUTHORIZATION regress_rt_owner;

-- 4. DDL that runs the owner's code over every row, past row security:
-- refused when it calls a function that is not built in (directly, through
-- an operator, or through a domain's CHECK), allowed with built-in ones.
CREATE TABLE rt.seen (body text);
CREATE FUNCTION rt.spy_write(t text) RETURNS void LANGUAGE sql AS $$ INSERT INTO rt.seen VALUES (t) $$;
CREATE FUNCTION rt.spy(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS
$$ BEGIN RAISE NOTICE 'saw %', t; PERFORM rt.spy_write(t); RETURN t; END $$;
CREATE FUNCTION rt.spy_eq(a text, b text) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS
$$ BEGIN PERFORM rt.spy_write(a); RETURN a = b; END $$;
CREATE OPERATOR rt.=== (FUNCTION = rt.spy_eq, LEFTARG = text, RIGHTARG = text);
CREATE DOMAIN rt.spied AS text CHECK (rt.spy(VALUE) IS NOT NULL);
SELECT throws_ok('CREATE INDEX rt_spy_idx ON rt.notes (rt.spy(body))', '42501',
	'cannot create an index calling a function that is not leakproof on protected table "notes"',
	'owner: an expression index calling a user function (runs over every tenant''s rows) refused');
SELECT throws_ok('CREATE INDEX rt_spy_idx ON rt.notes (id) WHERE rt.spy(body) IS NOT NULL', '42501', 'cannot create a partial index calling a function that is not leakproof on protected table "notes"',
	'owner: a partial index whose predicate calls a user function refused');
SELECT throws_ok('ALTER TABLE rt.notes ADD CONSTRAINT rt_spy CHECK (rt.spy(body) IS NOT NULL)', '42501', 'cannot add a constraint calling a function that is not leakproof on protected table "notes"',
	'owner: a CHECK constraint calling a user function (validated over every row) refused');
SELECT throws_ok('ALTER TABLE rt.notes ADD CONSTRAINT rt_spy CHECK (body OPERATOR(rt.===) body)', '42501', 'cannot add a constraint calling a function that is not leakproof on protected table "notes"',
	'owner: a CHECK constraint using a user-defined operator refused');
SELECT throws_ok('ALTER TABLE rt.notes ADD COLUMN spied text GENERATED ALWAYS AS (rt.spy(body)) STORED', '42501', 'cannot add a generated column calling a function that is not leakproof on protected table "notes"',
	'owner: a generated column calling a user function (computed for every row) refused');
SELECT throws_ok('CREATE STATISTICS rt.rt_spy_st ON (rt.spy(body)) FROM rt.notes', '42501', 'cannot create statistics calling a function that is not leakproof on protected table "notes"',
	'owner: extended statistics on a user function (ANALYZE evaluates it on rows) refused');
SELECT throws_ok('ALTER TABLE rt.notes ALTER COLUMN body TYPE text USING rt.spy(body)', '42501', 'cannot convert column "body" of protected table "notes" with USING or through a type that is not built in',
	'owner: a column rewrite USING a user function (evaluated over every row) refused');
SELECT throws_ok('ALTER TABLE rt.notes ALTER COLUMN body TYPE rt.spied', '42501', 'cannot convert column "body" of protected table "notes" with USING or through a type that is not built in',
	'owner: retyping a column to a domain whose CHECK calls a user function refused');
-- PostgreSQL evaluates restrictive policies before the permissive tenant
-- filter: a user-defined function in one sees the rows of every tenant the
-- scan reads, on every user's query.
SELECT throws_ok('CREATE POLICY rt_spy_pol ON rt.notes AS RESTRICTIVE USING (rt.spy(body) IS NOT NULL)', '42501',
	'cannot create or alter a policy calling a function that is not leakproof on protected table "notes"',
	'owner: a restrictive policy calling a user function (it runs before the tenant filter) refused');
SELECT throws_ok('CREATE POLICY rt_spy_pol ON rt.notes AS RESTRICTIVE USING (EXISTS (SELECT 1 WHERE rt.spy(body) IS NOT NULL))',
	'42501', 'cannot create or alter a policy calling a function that is not leakproof on protected table "notes"', 'owner: ... also inside a sub-query');
SELECT lives_ok($$CREATE POLICY rt_len_pol ON rt.notes AS RESTRICTIVE USING (body <> '')$$,
	'owner: a restrictive policy with leakproof operators only is allowed');
SELECT throws_ok('ALTER POLICY rt_len_pol ON rt.notes USING (rt.spy(body) IS NOT NULL)', '42501', 'cannot create or alter a policy calling a function that is not leakproof on protected table "notes"',
	'owner: altering it to call a user function refused');
DROP POLICY rt_len_pol ON rt.notes;
SELECT lives_ok('CREATE INDEX rt_lower_idx ON rt.notes (body) WHERE id > 0',
	'owner: a partial index whose predicate uses leakproof operators only is allowed');
SELECT throws_ok('ALTER TABLE rt.notes ADD CONSTRAINT rt_ext CHECK (toms.current_tenant() IS NOT NULL OR body IS NOT NULL)',
	'42501', 'cannot add a constraint calling a function that is not leakproof on protected table "notes"',
	'owner: a CHECK constraint calling an installed extension''s function that is not leakproof is refused');
SELECT lives_ok('ALTER TABLE rt.notes ADD CONSTRAINT rt_len CHECK (id > 0) NOT VALID',
	'owner: a NOT VALID CHECK constraint with leakproof operators only is allowed');
SELECT is((SELECT count(*) FROM rt.seen WHERE body LIKE 'A-%'), 0::bigint,
	'the owner''s function saw no rt_a row');
-- Constraints checked over every row later: VALIDATE of one made NOT VALID
-- before the table was protected, and a domain's constraint (checked over
-- every column of that domain, or of a domain over it).
SELECT count(*) AS rt_seen0 FROM rt.seen0 \gset
SELECT throws_ok('ALTER TABLE rt.tags VALIDATE CONSTRAINT rt_tags_pre', '42501',
	'cannot validate a constraint calling a function that is not leakproof on protected table "tags"',
	'owner: VALIDATE of a NOT VALID CHECK constraint calling a user function refused');
SELECT throws_ok('ALTER DOMAIN rt.tag VALIDATE CONSTRAINT rt_tag_pre', '42501',
	'cannot validate a constraint calling a function that is not leakproof on domain "rt.tag", which a protected table uses',
	'owner: VALIDATE of a domain constraint calling a user function refused (column of a domain over it)');
SELECT throws_ok('ALTER DOMAIN rt.tag ADD CONSTRAINT rt_tag_spy CHECK (rt.spy(VALUE) IS NOT NULL)', '42501',
	'cannot add a constraint calling a function that is not leakproof on domain "rt.tag", which a protected table uses',
	'owner: a domain constraint calling a user function (checked over every row) refused');
SELECT throws_ok('ALTER DOMAIN rt.subtag ADD CONSTRAINT rt_tag_spy CHECK (rt.spy(VALUE) IS NOT NULL) NOT VALID', '42501', 'cannot add a constraint calling a function that is not leakproof on domain "rt.subtag", which a protected table uses',
	'owner: ... NOT VALID too (it could be validated later)');
SELECT lives_ok($$ALTER DOMAIN rt.tag ADD CONSTRAINT rt_tag_len CHECK (VALUE <> '') NOT VALID$$,
	'owner: a NOT VALID domain constraint with leakproof operators only is allowed');
SELECT is((SELECT count(*) FROM rt.seen0), :rt_seen0::bigint,
	'no validation ran the owner''s function over the rows');
RESET SESSION AUTHORIZATION;
GRANT toms_admin TO regress_rt_owner;
SET SESSION AUTHORIZATION regress_rt_owner;
SELECT lives_ok('CREATE INDEX rt_spy_idx ON rt.notes (rt.spy(body))',
	'owner who is toms_admin: may create such an index');
CREATE FUNCTION rt.spy_inner(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT t';
CREATE FUNCTION rt.spy_wrap(t text) RETURNS text LANGUAGE sql IMMUTABLE RETURN rt.spy_inner(t);
CREATE INDEX rt_wrap_idx ON rt.notes (rt.spy_wrap(body));
ALTER TABLE rt.notes ADD CONSTRAINT rt_op CHECK (body OPERATOR(rt.===) body) NOT VALID;
RESET SESSION AUTHORIZATION;
CREATE TRIGGER rt_copy AFTER INSERT OR UPDATE ON rt.notes FOR EACH ROW EXECUTE FUNCTION rt.copy_row();
REVOKE toms_admin FROM regress_rt_owner;
-- Once vetted and in place, the functions must not change under it: the
-- next REINDEX, CLUSTER or VACUUM FULL (the owner may run them) would run
-- the new code over every row.
SET SESSION AUTHORIZATION regress_rt_owner;
SELECT throws_ok($q$CREATE OR REPLACE FUNCTION rt.spy(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS
	$b$ BEGIN PERFORM rt.spy_write('new ' || t); RETURN t; END $b$ $q$, '42501',
	'cannot change function rt.spy(text): it is evaluated over the rows of protected table "notes"',
	'owner: replacing a function an index of a protected table evaluates refused');
SELECT throws_ok('ALTER FUNCTION rt.spy(text) SET search_path = rt', '42501', 'cannot change function rt.spy(text): it is evaluated over the rows of protected table "notes"',
	'owner: altering it (its search path) refused');
SELECT throws_ok($q$CREATE OR REPLACE FUNCTION rt.spy_inner(t text) RETURNS text LANGUAGE sql IMMUTABLE AS
	$b$ SELECT t || rt.spy_write(t) $b$ $q$, '42501',
	'cannot change function rt.spy_inner(text): it is evaluated over the rows of protected table "notes"',
	'owner: replacing a function that an index''s function calls from its SQL-standard body refused');
SELECT throws_ok($$CREATE OR REPLACE FUNCTION rt.spy_eq(a text, b text) RETURNS bool LANGUAGE sql IMMUTABLE AS
	'SELECT a = b'$$, '42501', 'cannot change function rt.spy_eq(text,text): it is evaluated over the rows of protected table "notes"',
	'owner: replacing the function behind an operator a constraint uses refused');
SELECT throws_ok($q$CREATE OR REPLACE FUNCTION rt.copy_row() RETURNS trigger LANGUAGE plpgsql AS
	$b$ BEGIN INSERT INTO rt.audit_copy VALUES (NEW.tenant_id, 'copied ' || NEW.body); RETURN NEW; END $b$ $q$,
	'42501', 'cannot change function rt.copy_row(): it is evaluated over the rows of protected table "notes"', 'owner: replacing the function of a trigger a superuser put on a protected table refused');
SELECT lives_ok($q$CREATE OR REPLACE FUNCTION rt.spy_write(t text) RETURNS void LANGUAGE sql AS
	$b$ INSERT INTO rt.seen VALUES (t) $b$ $q$,
	'owner: a function no protected table evaluates directly may change (calls inside bodies are not tracked)');
RESET SESSION AUTHORIZATION;
DROP INDEX rt.rt_spy_idx, rt.rt_wrap_idx;
ALTER TABLE rt.notes DROP CONSTRAINT rt_op;
DROP TRIGGER rt_copy ON rt.notes;
SELECT toms.clear_tenant();

-- 5. SECURITY DEFINER functions and views.
-- Owned by the (non-superuser) table owner: row security is forced on the
-- owner too, and the context is verified for session_user.
CREATE FUNCTION rt.all_notes_owner() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT body FROM rt.notes $$;
ALTER FUNCTION rt.all_notes_owner() OWNER TO regress_rt_owner;
CREATE VIEW rt.v_owner AS SELECT * FROM rt.notes;
ALTER VIEW rt.v_owner OWNER TO regress_rt_owner;
CREATE VIEW rt.v_invoker WITH (security_invoker = true) AS SELECT * FROM rt.notes;
ALTER VIEW rt.v_invoker OWNER TO regress_rt_owner;
-- Owned by a superuser / a BYPASSRLS role: PostgreSQL skips row security.
CREATE FUNCTION rt.all_notes_super() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT body FROM rt.notes $$;
CREATE VIEW rt.v_super AS SELECT * FROM rt.notes;
CREATE VIEW rt.v_bypass AS SELECT * FROM rt.notes;
GRANT SELECT ON rt.notes TO regress_rt_bypass;
GRANT USAGE ON SCHEMA rt TO regress_rt_bypass;
ALTER VIEW rt.v_bypass OWNER TO regress_rt_bypass;
CREATE FUNCTION rt.all_notes_bypass() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT body FROM rt.notes $$;
ALTER FUNCTION rt.all_notes_bypass() OWNER TO regress_rt_bypass;
CREATE FUNCTION rt.count_notes() RETURNS bigint LANGUAGE plpgsql AS
	$$ BEGIN RETURN (SELECT count(*) FROM rt.notes); END $$;
CREATE FUNCTION rt.all_notes_wrapped() RETURNS bigint LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT rt.count_notes() $$;
GRANT EXECUTE ON FUNCTION rt.all_notes_wrapped() TO regress_rt_eve;
GRANT regress_rt_bypass TO regress_rt_eve;
GRANT SELECT ON rt.v_owner, rt.v_invoker, rt.v_super, rt.v_bypass TO regress_rt_eve;
GRANT EXECUTE ON FUNCTION rt.all_notes_owner(), rt.all_notes_super(), rt.all_notes_bypass() TO regress_rt_eve;

SET SESSION AUTHORIZATION regress_rt_eve;
SELECT throws_ok('SELECT count(*) FROM rt.all_notes_owner()', '42501', 'no tenant context',
	'owner''s SECURITY DEFINER function: fails closed without a context');
SELECT toms.set_tenant('rt_b');
SELECT results_eq('SELECT * FROM rt.all_notes_owner()', $$VALUES ('B-note')$$,
	'owner''s SECURITY DEFINER function: only the caller''s tenant');
SELECT results_eq('SELECT body FROM rt.v_owner', $$VALUES ('B-note')$$, 'owner''s view: only the caller''s tenant');
SELECT results_eq('SELECT body FROM rt.v_invoker', $$VALUES ('B-note')$$, 'security_invoker view: only the caller''s tenant');
SELECT throws_ok('SELECT count(*) FROM rt.all_notes_super()', '42501',
	'protected table "notes" is reached through a SECURITY DEFINER function owned by a role that bypasses row security',
	'a superuser-owned SECURITY DEFINER function (inside it row security is off): refused for callers subject to the policy');
SELECT throws_ok('SELECT count(*) FROM rt.all_notes_bypass()', '42501', 'protected table "notes" is reached through a SECURITY DEFINER function owned by a role that bypasses row security',
	'a BYPASSRLS-owned SECURITY DEFINER function: refused too');
SELECT throws_ok('SELECT rt.all_notes_wrapped()', '42501', 'protected table "notes" is reached through a SECURITY DEFINER function owned by a role that bypasses row security',
	'... also when it reaches the table through a function without SECURITY DEFINER');
-- The refusal unwinds cleanly: afterwards, a role the session may SET ROLE
-- to (outside row security, no SECURITY DEFINER function involved) reads
-- as before.
DO $$ BEGIN PERFORM rt.all_notes_super(); EXCEPTION WHEN insufficient_privilege THEN NULL; END $$;
SET ROLE regress_rt_bypass;
SELECT is((SELECT count(*) FROM rt.notes), 11::bigint,
	'after a caught refusal, SET ROLE to a BYPASSRLS role the login belongs to still reads (nothing left on the definer stack)');
RESET ROLE;

SELECT throws_ok('SELECT count(*) FROM rt.v_super', '42501',
	'protected table "notes" is reached through a view owned by a role that bypasses row security',
	'a superuser-owned view over a protected table: refused for callers subject to the policy');
SELECT throws_ok('SELECT count(*) FROM rt.v_bypass', '42501', 'protected table "notes" is reached through a view owned by a role that bypasses row security',
	'a BYPASSRLS-owned view: refused too');
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM rt.all_notes_super()), 11::bigint,
	'a superuser session calling it: unaffected (outside row security anyway)');

-- 6. COPY.
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b');
SELECT throws_ok($$COPY rt.notes FROM STDIN$$, '0A000', 'cannot COPY to/from client in PL/pgSQL',
	'COPY FROM into a table under row security: not supported, refused');
RESET SESSION AUTHORIZATION;
GRANT pg_write_server_files TO regress_rt_eve;
SELECT current_setting('data_directory') AS rt_dd \gset
\set rt_f1 :rt_dd/rt_notes_table.csv
\set rt_f2 :rt_dd/rt_notes_query.csv
\set rt_f3 :rt_dd/rt_notes_noctx.csv
SET SESSION AUTHORIZATION regress_rt_eve;
SELECT toms.set_tenant('rt_b');
COPY rt.notes TO :'rt_f1';
COPY (SELECT * FROM rt.notes) TO :'rt_f2';
SELECT toms.clear_tenant();
SELECT throws_ok(format('COPY rt.notes TO %L', :'rt_f3'), '42501', 'no tenant context',
	'COPY table TO without a context: fails closed');
RESET SESSION AUTHORIZATION;
SELECT is(pg_read_file(:'rt_f1'), E'101\trt_b\tB-note\n', 'COPY table TO: only the caller''s tenant');
SELECT is(pg_read_file(:'rt_f2'), E'101\trt_b\tB-note\n', 'COPY (query) TO: only the caller''s tenant');

SELECT * FROM finish();
ROLLBACK;
