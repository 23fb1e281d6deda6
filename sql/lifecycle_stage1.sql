-- Two-stage deletion, stage 1 (measure 6b): a request hides a tenant or a
-- data subject in the caller's transaction, cancel restores it, approval
-- needs a second role, holds, and the refusals.  Every request here asks
-- for a grace period of a day, so the worker never starts stage 2.
SET client_min_messages = warning;
CREATE ROLE regress_lc_owner LOGIN;
CREATE ROLE regress_lc_app LOGIN;
CREATE ROLE regress_lc_admin1 LOGIN IN ROLE toms_admin;
CREATE ROLE regress_lc_admin2 LOGIN IN ROLE toms_admin;
RESET client_min_messages;
\set VERBOSITY terse
SELECT toms.create_tenant('lc1', 'Tenant One'), toms.create_tenant('lc2', 'Tenant Two');
SELECT toms.add_member('regress_lc_app', 'lc1'), toms.add_member('regress_lc_app', 'lc2');

CREATE TABLE lc_learners (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                          tenant_id text NOT NULL, email text);
CREATE TABLE lc_results (tenant_id text NOT NULL, email text, score int);
ALTER TABLE lc_learners OWNER TO regress_lc_owner;
ALTER TABLE lc_results OWNER TO regress_lc_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON lc_learners, lc_results TO regress_lc_app;
SELECT toms.protect('lc_learners', subject_column => 'email');
SELECT toms.protect('lc_results', subject_column => 'email');
SELECT polname, polpermissive, pg_get_expr(polqual, polrelid) AS using_expr
  FROM pg_policy WHERE polrelid = 'lc_learners'::regclass ORDER BY polname;

SET SESSION AUTHORIZATION regress_lc_app;
SELECT toms.set_tenant('lc1');
INSERT INTO lc_learners (email) VALUES ('ann@x'), ('bob@x');
INSERT INTO lc_results (email, score) VALUES ('ann@x', 90), ('bob@x', 70), ('ann@x', 95);
SELECT toms.set_tenant('lc2');
INSERT INTO lc_learners (email) VALUES ('ann@x'), ('cid@y');
INSERT INTO lc_results (email, score) VALUES ('ann@x', 50);
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;

CREATE FUNCTION pg_temp.seen(t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	PERFORM toms.set_tenant(t);
	SELECT (SELECT string_agg(email, ',' ORDER BY email) FROM lc_learners) || ' / ' ||
	       (SELECT string_agg(email || ':' || score, ',' ORDER BY email, score) FROM lc_results)
	  INTO r;
	PERFORM toms.clear_tenant();
	RETURN r;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.seen(text) TO regress_lc_app;

-- Refusals.
SET SESSION AUTHORIZATION regress_lc_app;
SELECT toms.request_deletion('lc1');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_lc_admin1;
SELECT toms.request_deletion('nope');
SELECT toms.request_deletion(NULL);
SELECT toms.request_deletion('lc1', '');
SELECT toms.request_deletion('lc1', grace => '-1 day');
SELECT toms.request_deletion('lc1', grace => '0s');
SELECT toms.cancel_deletion('00000000-0000-0000-0000-000000000000');
SELECT toms.approve_deletion('00000000-0000-0000-0000-000000000000');
SELECT toms.deletion_certificate('00000000-0000-0000-0000-000000000000');

-- Subject scope: hidden in the requesting transaction; rollback undoes it.
BEGIN;
SELECT toms.request_deletion('lc1', 'ann@x', 'erasure request', '1 day') IS NOT NULL AS requested;
SET LOCAL SESSION AUTHORIZATION regress_lc_app;
SELECT pg_temp.seen('lc1') AS lc1, pg_temp.seen('lc2') AS lc2;
ROLLBACK;
SET SESSION AUTHORIZATION regress_lc_app;
SELECT pg_temp.seen('lc1') AS lc1_after_rollback;
RESET SESSION AUTHORIZATION;

-- Committed: hidden from every later query; writes for the subject refused;
-- the same subject id in another tenant is untouched.
SET SESSION AUTHORIZATION regress_lc_admin1;
SELECT toms.request_deletion('lc1', 'ann@x', 'erasure request', '1 day') AS subj \gset
SELECT toms.request_deletion('lc1', 'ann@x', grace => '1 day');
SET SESSION AUTHORIZATION regress_lc_app;
SELECT pg_temp.seen('lc1') AS lc1, pg_temp.seen('lc2') AS lc2;
SELECT toms.set_tenant('lc1');
INSERT INTO lc_learners (email) VALUES ('ann@x');
UPDATE lc_learners SET email = 'ann@x' WHERE email = 'bob@x';
SELECT toms.clear_tenant();
-- Without a context even the owner sees nothing (fail closed); a
-- superuser is outside row security and still sees every row.
SET SESSION AUTHORIZATION regress_lc_owner;
SELECT count(*) FROM lc_learners;
RESET SESSION AUTHORIZATION;
SELECT tenant_id, email FROM lc_learners ORDER BY tenant_id, email;

-- Cancel restores it.
SET SESSION AUTHORIZATION regress_lc_admin2;
SELECT toms.cancel_deletion(:'subj');
SELECT toms.cancel_deletion(:'subj');
SET SESSION AUTHORIZATION regress_lc_app;
SELECT pg_temp.seen('lc1') AS lc1_after_cancel;
RESET SESSION AUTHORIZATION;

-- A whole tenant: status deleting, no longer enterable, until cancelled.
SET SESSION AUTHORIZATION regress_lc_admin1;
SELECT toms.request_deletion('lc2', reason => 'contract ended', grace => '2 days') AS whole \gset
SELECT toms.request_deletion('lc2', grace => '2 days');
SELECT toms.request_deletion('lc2', 'cid@y', grace => '2 days');
SELECT tenant, status FROM toms.tenants WHERE tenant LIKE 'lc%' ORDER BY tenant;
SET SESSION AUTHORIZATION regress_lc_app;
SELECT toms.set_tenant('lc2');
SELECT pg_temp.seen('lc1') AS lc1_untouched;
SET SESSION AUTHORIZATION regress_lc_admin1;
SELECT request = :'whole' AS is_whole, tenant, subject, phase, rows_done, rows_total,
       not_before - now() > interval '1 day' AS grace_kept
  FROM toms.deletion_progress ORDER BY tenant;
SELECT toms.deletion_certificate(:'whole') IS NULL AS no_certificate_yet;

-- Four eyes: the requester may not approve; another admin may, once.
SELECT toms.approve_deletion(:'whole');
SET SESSION AUTHORIZATION regress_lc_admin2;
SELECT toms.approve_deletion(:'whole');
SELECT toms.approve_deletion(:'whole');
SELECT approved_by FROM toms.deletion_requests WHERE id = :'whole';
SELECT toms.withdraw_approval(:'whole');
SELECT toms.withdraw_approval(:'whole');

-- Legal holds.
SELECT toms.hold('lc2', '');
SELECT toms.hold('nope', 'litigation');
SELECT toms.hold('lc2', 'litigation 2026-17');
SELECT toms.hold('lc2', 'again');
SELECT phase FROM toms.deletion_progress WHERE request = :'whole';
SELECT toms.release_hold('lc2');
SELECT toms.release_hold('lc2');

SELECT toms.cancel_deletion(:'whole');
SELECT tenant, status FROM toms.tenants WHERE tenant LIKE 'lc%' ORDER BY tenant;
SELECT state, cancelled_by FROM toms.deletion_requests WHERE id = :'whole';
SET SESSION AUTHORIZATION regress_lc_app;
SELECT pg_temp.seen('lc2') AS lc2_after_cancel;
RESET SESSION AUTHORIZATION;

-- Clean up.
SELECT toms.unprotect('lc_learners'), toms.unprotect('lc_results');
DROP TABLE lc_learners, lc_results;
DELETE FROM toms.deletion_requests WHERE tenant LIKE 'lc%';
DELETE FROM toms.members WHERE tenant LIKE 'lc%';
DELETE FROM toms.tenants WHERE tenant LIKE 'lc%';
DROP FUNCTION pg_temp.seen(text);
DROP ROLE regress_lc_owner, regress_lc_app, regress_lc_admin1, regress_lc_admin2;
