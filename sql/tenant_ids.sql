-- Tenant ids and what errors reveal (issues 16 and 20): canonical ids for
-- int and uuid tenant columns; no tenant-existence oracle for non-members;
-- toms.context_scope = transaction.
SET client_min_messages = warning;
CREATE ROLE regress_ids_member LOGIN;
CREATE ROLE regress_ids_outsider LOGIN;
CREATE ROLE regress_ids_auditor LOGIN IN ROLE toms_auditor;
RESET client_min_messages;
-- the SQLSTATE and message of a statement, or 'ok'
CREATE FUNCTION regress_ids_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION regress_ids_try(text) TO PUBLIC;

-- Canonical ids: a cast to int or uuid must not read two tenants alike.
SELECT toms.create_tenant('42', 'forty-two');
SELECT t, regress_ids_try(format('SELECT toms.create_tenant(%L, %L)', t, 'look-alike')) AS refused
  FROM unnest(ARRAY['042', '+42', ' 42', '42 ', '-0', '00',
					'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
					'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
					'a0eebc999c0b4ef8bb6d6bb9bd380a11',
					'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11']) t;
SELECT toms.create_tenant('042', 'look-alike');
-- canonical spellings, and ids no cast reads as a number or uuid, are taken
SELECT toms.create_tenant(t, 'canonical')
  FROM unnest(ARRAY['-7', '0', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '42a', '4 2',
					'99999999999999999999', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1']) t;
SELECT tenant FROM toms.tenants WHERE name IN ('canonical', 'forty-two', 'look-alike') ORDER BY tenant;

-- So an int8 tenant column holds one tenant's rows per value.
CREATE TABLE regress_ids_rows (tenant_id int8 NOT NULL, v text);
SELECT toms.protect('regress_ids_rows');
INSERT INTO regress_ids_rows VALUES (42, 'of 42'), (-7, 'of -7');
GRANT SELECT ON regress_ids_rows TO regress_ids_member, regress_ids_outsider;
SELECT toms.add_member('regress_ids_member', '42');
SELECT toms.add_member('regress_ids_member', '-7');
SET SESSION AUTHORIZATION regress_ids_member;
BEGIN;
SELECT toms.set_tenant('42', true);
SELECT v FROM regress_ids_rows;
SET LOCAL toms.context = '042';          -- no such tenant: refused where used
SELECT regress_ids_try('SELECT v FROM regress_ids_rows');
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- No tenant-existence oracle: a non-member gets the same SQLSTATE and
-- message for a tenant that exists, one that does not, and one being deleted.
SELECT toms.create_tenant('regress_ids_gone', 'being deleted');
SELECT toms.add_member('regress_ids_member', 'regress_ids_gone');
UPDATE toms.tenants SET status = 'deleting' WHERE tenant = 'regress_ids_gone';
SET SESSION AUTHORIZATION regress_ids_outsider;
SELECT t, regress_ids_try(format('SELECT toms.set_tenant(%L)', t)) AS set_tenant,
	   regress_ids_try(format('SET toms.context = %L; SELECT toms.current_tenant()', t)) AS setting
  FROM unnest(ARRAY['42', 'regress_ids_nosuch', 'regress_ids_gone']) t;
RESET toms.context;
RESET SESSION AUTHORIZATION;
-- a member of the tenant being deleted is told why
SET SESSION AUTHORIZATION regress_ids_member;
SELECT regress_ids_try($$SELECT toms.set_tenant('regress_ids_gone')$$);
RESET SESSION AUTHORIZATION;
-- those who may read toms.tenants get the precise reason
SET SESSION AUTHORIZATION regress_ids_auditor;
SELECT t, regress_ids_try(format('SELECT toms.set_tenant(%L)', t)) AS set_tenant
  FROM unnest(ARRAY['42', 'regress_ids_nosuch', 'regress_ids_gone']) t;
RESET SESSION AUTHORIZATION;
-- the audit record keeps the real reason
SELECT toms.audit_flush();
SELECT action FROM toms.audit_log
 WHERE session_role = 'regress_ids_outsider' AND kind = 'denied' ORDER BY seq;

-- toms.context_scope = transaction: contexts only for the transaction.
SET toms.context_scope = transaction;   -- superuser-only; ALTER ROLE ... SET in practice
SET SESSION AUTHORIZATION regress_ids_member;
SET toms.context_scope = session;       -- an application role cannot change it back
SELECT regress_ids_try($$SELECT toms.set_tenant('42')$$) AS set_tenant_session;
SELECT regress_ids_try($$SELECT toms.set_tenant('42', false)$$) AS set_tenant_false;
SET toms.context = '42';
SELECT regress_ids_try($$SELECT set_config('toms.context', '42', false)$$) AS set_config_session;
SELECT regress_ids_try('SELECT v FROM regress_ids_rows') AS later_statement;
BEGIN;
SELECT regress_ids_try('SELECT v FROM regress_ids_rows') AS later_transaction;
SELECT toms.set_tenant('-7', true);
SELECT v FROM regress_ids_rows;
SET LOCAL toms.context = '42';
SELECT v FROM regress_ids_rows;
SELECT set_config('toms.context', '-7', true) IS NOT NULL AS local_config;
SELECT v FROM regress_ids_rows;
-- a parallel worker gets the context as a session-level value: still fine
SET LOCAL force_parallel_mode = on;
SELECT v FROM regress_ids_rows;
COMMIT;
SELECT toms.clear_tenant();             -- clearing is always allowed
SELECT regress_ids_try('SELECT v FROM regress_ids_rows') AS after_clear;
RESET SESSION AUTHORIZATION;
RESET toms.context_scope;

SELECT toms.unprotect('regress_ids_rows');
DROP TABLE regress_ids_rows;
DROP FUNCTION regress_ids_try(text);
DELETE FROM toms.members WHERE role::text LIKE 'regress_ids%';
DELETE FROM toms.tenants WHERE name IN ('canonical', 'forty-two', 'being deleted');
DROP ROLE regress_ids_member, regress_ids_outsider, regress_ids_auditor;
