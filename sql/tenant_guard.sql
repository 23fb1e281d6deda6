-- Nobody weakens a protected table's tenant filter: not its owner, not a
-- superuser.  Every way is refused with 42501 and a hint.
SET client_min_messages = warning;
CREATE ROLE regress_owner LOGIN;
CREATE ROLE regress_admin LOGIN IN ROLE toms_admin;
RESET client_min_messages;
CREATE TABLE campaigns (id int PRIMARY KEY, tenant_id text NOT NULL, title text, owner_email text);
ALTER TABLE campaigns OWNER TO regress_owner;
SELECT toms.protect('campaigns', subject_column => 'owner_email');
CREATE TABLE other (tenant_id text);
ALTER TABLE other OWNER TO regress_owner;
CREATE FUNCTION regress_copy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;

\set VERBOSITY default
SET SESSION AUTHORIZATION regress_owner;
ALTER TABLE campaigns DISABLE ROW LEVEL SECURITY;
ALTER TABLE campaigns NO FORCE ROW LEVEL SECURITY;
ALTER TABLE campaigns ADD COLUMN x int, NO FORCE ROW LEVEL SECURITY;
DROP POLICY toms_tenant ON campaigns;
ALTER POLICY toms_tenant ON campaigns USING (true);
ALTER POLICY toms_tenant ON campaigns RENAME TO mine;
CREATE POLICY open_all ON campaigns USING (true);
CREATE POLICY open_all ON campaigns AS PERMISSIVE FOR SELECT USING (true);
CREATE POLICY toms_fake ON campaigns AS RESTRICTIVE USING (true);
ALTER TABLE campaigns DROP COLUMN tenant_id;
ALTER TABLE campaigns DROP COLUMN tenant_id CASCADE;
ALTER TABLE campaigns ALTER COLUMN tenant_id TYPE varchar(10);
ALTER TABLE campaigns RENAME COLUMN tenant_id TO t;
ALTER TABLE campaigns DROP COLUMN owner_email CASCADE;
TRUNCATE campaigns;
TRUNCATE other, campaigns;
DROP TABLE campaigns;
DROP TABLE other, campaigns;
ALTER TABLE campaigns INHERIT other;
ALTER TABLE campaigns DISABLE TRIGGER ALL;
ALTER TABLE campaigns DISABLE TRIGGER USER;
CREATE TRIGGER leak AFTER INSERT ON campaigns FOR EACH ROW EXECUTE FUNCTION regress_copy();
CREATE RULE leak AS ON INSERT TO campaigns DO ALSO INSERT INTO other VALUES (NEW.tenant_id);
DROP OWNED BY regress_owner;
DO $$ BEGIN EXECUTE 'ALTER TABLE campaigns DISABLE ROW LEVEL SECURITY'; END $$;
RESET SESSION AUTHORIZATION;

-- Superusers get the same answers.
ALTER TABLE campaigns DISABLE ROW LEVEL SECURITY;
DROP POLICY toms_tenant ON campaigns;
DROP TABLE campaigns CASCADE;
TRUNCATE campaigns;
CREATE SCHEMA regress_s;
GRANT USAGE, CREATE ON SCHEMA regress_s TO regress_owner, regress_admin;
ALTER TABLE campaigns SET SCHEMA regress_s;
DROP SCHEMA regress_s CASCADE;
DROP EXTENSION toms CASCADE;
CREATE TABLE parted (tenant_id text) PARTITION BY LIST (tenant_id);
ALTER TABLE parted ATTACH PARTITION regress_s.campaigns FOR VALUES IN ('t1');
DROP TABLE parted;

-- What stays allowed: restrictive policies, ordinary changes, triggers by
-- toms_admin.
SET SESSION AUTHORIZATION regress_owner;
CREATE POLICY only_titled ON regress_s.campaigns AS RESTRICTIVE USING (title IS NOT NULL);
ALTER TABLE regress_s.campaigns ADD COLUMN starts date;
CREATE INDEX ON regress_s.campaigns (tenant_id, starts);
DROP POLICY only_titled ON regress_s.campaigns;
RESET SESSION AUTHORIZATION;
GRANT CREATE ON SCHEMA regress_s TO regress_admin;
SET SESSION AUTHORIZATION regress_admin;
CREATE FUNCTION regress_s.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
RESET SESSION AUTHORIZATION;
GRANT TRIGGER ON regress_s.campaigns TO regress_admin;
SET SESSION AUTHORIZATION regress_admin;
CREATE TRIGGER audited BEFORE INSERT ON regress_s.campaigns FOR EACH ROW EXECUTE FUNCTION regress_s.noop();
CREATE TRIGGER toms_mine BEFORE INSERT ON regress_s.campaigns FOR EACH ROW EXECUTE FUNCTION regress_s.noop();
RESET SESSION AUTHORIZATION;

-- unprotect, then everything is ordinary again.
SELECT toms.unprotect('regress_s.campaigns');
DROP SCHEMA regress_s CASCADE;
DROP TABLE other;
DROP FUNCTION regress_copy();
DROP ROLE regress_owner, regress_admin;

-- pg_restore puts toms' policy back after the data of toms.protected_tables:
-- a superuser may re-create a missing toms_tenant policy, in its canonical
-- form only.
CREATE TABLE regress_restored (tenant_id text NOT NULL, v int);
SELECT toms.protect('regress_restored');
-- as if not yet restored:
DELETE FROM pg_depend WHERE classid = 'pg_policy'::regclass
   AND objid IN (SELECT oid FROM pg_policy WHERE polrelid = 'regress_restored'::regclass);
DELETE FROM pg_policy WHERE polrelid = 'regress_restored'::regclass;
CREATE POLICY toms_tenant ON regress_restored USING (true);
CREATE POLICY toms_tenant ON regress_restored USING ((tenant_id = toms.current_tenant()));
CREATE POLICY toms_tenant ON regress_restored USING ((tenant_id = toms.current_tenant())) WITH CHECK ((tenant_id = toms.current_tenant()));
CREATE POLICY toms_tenant ON regress_restored USING ((tenant_id = toms.current_tenant())) WITH CHECK ((tenant_id = toms.current_tenant()));
CREATE POLICY toms_other ON regress_restored USING (true);
SELECT polname, pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = 'regress_restored'::regclass;
SELECT toms.unprotect('regress_restored');
DROP TABLE regress_restored;

-- A restrictive policy already on a table runs before the tenant filter:
-- protect() names those calling a user-defined function, and from then on
-- only toms_admin may change such a function.
SET client_min_messages = warning;
CREATE ROLE regress_rp_owner;
RESET client_min_messages;
GRANT CREATE ON SCHEMA public TO regress_rp_owner;
CREATE TABLE regress_rp (tenant_id text NOT NULL, body text);
CREATE FUNCTION regress_rp_check(t text) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true';
ALTER FUNCTION regress_rp_check(text) OWNER TO regress_rp_owner;
CREATE POLICY rp ON regress_rp AS RESTRICTIVE USING (regress_rp_check(body));
SELECT toms.protect('regress_rp');
SET SESSION AUTHORIZATION regress_rp_owner;
CREATE OR REPLACE FUNCTION regress_rp_check(t text) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT t IS NOT NULL';
RESET SESSION AUTHORIZATION;
SELECT toms.unprotect('regress_rp');
DROP TABLE regress_rp;
DROP FUNCTION regress_rp_check(text);
REVOKE CREATE ON SCHEMA public FROM regress_rp_owner;
DROP ROLE regress_rp_owner;
