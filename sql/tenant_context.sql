-- Tenant context: entering, verifying where used, leaving.
SET client_min_messages = warning;
CREATE ROLE regress_alice LOGIN;
CREATE ROLE regress_bob LOGIN;
CREATE ROLE regress_ops LOGIN;
CREATE ROLE regress_team NOLOGIN;
CREATE ROLE regress_dave LOGIN IN ROLE regress_team;
CREATE ROLE regress_mallory LOGIN NOINHERIT;
RESET client_min_messages;

-- Tenant ids are validated.
SELECT toms.create_tenant('acme', 'Acme Corp');
SELECT toms.create_tenant('globex', 'Globex Inc');
SELECT toms.create_tenant('acme', 'again');
SELECT toms.create_tenant('', 'empty');
SELECT toms.create_tenant(E'bad\nid', 'control');
SELECT toms.create_tenant(repeat('x', 129), 'long');
SELECT toms.create_tenant('v4.public.x', 'looks like a token');
SELECT toms.create_tenant('initech', ' ');
SELECT tenant, name, status FROM toms.tenants ORDER BY tenant;

SELECT toms.add_member('regress_alice', 'acme');
SELECT toms.add_member('regress_bob', 'globex');
SELECT toms.add_member('regress_team', 'globex');  -- a group role admits its members
SELECT toms.add_member('regress_alice', 'nosuch');

-- No context: current_tenant() fails closed; the optional form says NULL.
SET SESSION AUTHORIZATION regress_alice;
SELECT toms.current_tenant();
SELECT toms.current_tenant(true) IS NULL AS no_tenant, toms.current_actor() IS NULL AS no_actor;

-- Entering a tenant one belongs to.
SELECT toms.set_tenant('acme');
SELECT toms.current_tenant(), toms.current_actor();
-- ... and not one one does not belong to, by any route.
SELECT toms.set_tenant('globex');
SELECT toms.current_tenant();            -- the failed set_tenant changed nothing
SET toms.context = 'globex';             -- accepted as a value, refused where used
SELECT toms.current_tenant();
SELECT toms.current_tenant(true) IS NULL AS refused_reads_as_none;
SET toms.context = 'nosuch';
SELECT toms.current_tenant();
SET toms.context = E'acme\x01';
SELECT toms.current_tenant();
SELECT toms.set_tenant(NULL);
SELECT toms.clear_tenant();
SELECT toms.current_tenant(true) IS NULL AS cleared;

-- SET LOCAL / is_local last for the transaction only.
BEGIN;
SET LOCAL toms.context = 'acme';
SELECT toms.current_tenant();
COMMIT;
SELECT toms.current_tenant(true) IS NULL AS gone_after_commit;
BEGIN;
SELECT toms.set_tenant('acme', true);
SELECT toms.current_tenant();
ROLLBACK;
SELECT toms.current_tenant(true) IS NULL AS gone_after_rollback;
RESET SESSION AUTHORIZATION;

-- Membership through a group role.
SET SESSION AUTHORIZATION regress_dave;
SELECT toms.set_tenant('globex');
SELECT toms.current_tenant(), toms.current_actor();
RESET SESSION AUTHORIZATION;

-- Verification follows the session user: neither SET ROLE nor a
-- SECURITY DEFINER function gains or loses a tenant.  (A NOINHERIT role
-- must SET ROLE to use another role's privileges: it does not get its
-- tenants that way.)
GRANT regress_bob TO regress_mallory;
SET SESSION AUTHORIZATION regress_mallory;
SET ROLE regress_bob;
SELECT toms.set_tenant('globex');
SELECT current_user, session_user, toms.current_tenant(true);
RESET ROLE;
RESET SESSION AUTHORIZATION;
SELECT toms.add_member('regress_mallory', 'acme');
SET SESSION AUTHORIZATION regress_mallory;
SELECT toms.set_tenant('acme');
SET ROLE regress_bob;
SELECT current_user, session_user, toms.current_tenant();
RESET ROLE;
RESET SESSION AUTHORIZATION;
SELECT toms.remove_member('regress_mallory', 'acme');
REVOKE regress_bob FROM regress_mallory;

CREATE FUNCTION regress_enter_globex() RETURNS text
	LANGUAGE plpgsql SECURITY DEFINER AS
$$ BEGIN PERFORM toms.set_tenant('globex'); RETURN toms.current_tenant(); END $$;
ALTER FUNCTION regress_enter_globex() OWNER TO regress_bob;
SET SESSION AUTHORIZATION regress_alice;
SELECT regress_enter_globex();
RESET SESSION AUTHORIZATION;
DROP FUNCTION regress_enter_globex();

-- Changes take effect in sessions that cached the context.
SET SESSION AUTHORIZATION regress_alice;
SELECT toms.set_tenant('acme');
RESET SESSION AUTHORIZATION;
SELECT toms.remove_member('regress_alice', 'acme');
SET SESSION AUTHORIZATION regress_alice;
SET toms.context = 'acme';
SELECT toms.current_tenant();
RESET SESSION AUTHORIZATION;
SELECT toms.add_member('regress_alice', 'acme');
SELECT toms.remove_member('regress_alice', 'acme');
SELECT toms.remove_member('regress_alice', 'acme');

-- Need-to-know grants: justified, time-boxed, revocable.
SELECT toms.grant_access('regress_ops', 'acme', '', '1 hour');
SELECT toms.grant_access('regress_ops', 'acme', 'ticket 42', '-1 hour');
SELECT toms.grant_access('regress_ops', 'acme', 'ticket 42: learner cannot log in', '1 hour') AS grant_id \gset
SET regress.gid = :grant_id;
SELECT justification, valid_until > now() + interval '59 minutes' AS about_an_hour
  FROM toms.grants WHERE id = :grant_id;
SET SESSION AUTHORIZATION regress_ops;
SELECT toms.set_tenant('acme');
SELECT toms.current_tenant(), toms.current_actor();
SELECT toms.set_tenant('globex');
RESET SESSION AUTHORIZATION;
SELECT toms.revoke_access(:grant_id);
DO $$ BEGIN
	PERFORM toms.revoke_access(current_setting('regress.gid')::bigint);
EXCEPTION WHEN undefined_object THEN
	RAISE NOTICE 'second revoke refused: %', regexp_replace(SQLERRM, '[0-9]+', 'N');
END $$;
SET SESSION AUTHORIZATION regress_ops;
SET toms.context = 'acme';
SELECT toms.current_tenant();
RESET SESSION AUTHORIZATION;

-- An expired grant stops working without anyone acting, also in a session
-- that has it cached.
SELECT toms.grant_access('regress_ops', 'acme', 'ticket 43', '1 second') AS grant_id \gset
SET regress.gid = :grant_id;
SET SESSION AUTHORIZATION regress_ops;
SELECT toms.set_tenant('acme');
RESET SESSION AUTHORIZATION;
DO $$
BEGIN
	-- bounded wait for the grant's end (at most 10 s)
	WHILE clock_timestamp() <= (SELECT valid_until FROM toms.grants WHERE id = current_setting('regress.gid')::bigint)
	LOOP
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$ ;
SET SESSION AUTHORIZATION regress_ops;
SELECT toms.current_tenant();
RESET SESSION AUTHORIZATION;

-- A tenant that is not active cannot be entered.
SET SESSION AUTHORIZATION regress_bob;
SELECT toms.set_tenant('globex');
RESET SESSION AUTHORIZATION;
UPDATE toms.tenants SET status = 'deleting' WHERE tenant = 'globex';
SET SESSION AUTHORIZATION regress_bob;
SELECT toms.current_tenant();
RESET SESSION AUTHORIZATION;

-- Only toms_admin administers.
SET SESSION AUTHORIZATION regress_alice;
SELECT toms.create_tenant('evil', 'Evil');
SELECT toms.add_member('regress_alice', 'globex');
SELECT toms.grant_access('regress_alice', 'globex', 'because', '1 day');
SELECT * FROM toms.members;
INSERT INTO toms.members VALUES ('regress_alice', 'globex');
RESET SESSION AUTHORIZATION;

DELETE FROM toms.grants;
DELETE FROM toms.members;
DELETE FROM toms.tenants;
DROP ROLE regress_alice, regress_bob, regress_ops, regress_dave, regress_team, regress_mallory;
