\echo
\echo '=== 1. Tenant separation (measures 9a, 9b, 5b) ==============================='
\echo
\echo 'The DBA registers the customers and puts the tables under toms.  protect()'
\echo 'enables and FORCES row security and attaches a toms-owned policy that'
\echo 'compares the tenant column with toms.current_tenant().'
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.create_tenant('acme', 'ACME Bank'), toms.create_tenant('globex', 'Globex Hospital') \g /dev/null
SELECT toms.protect('training.learners', subject_column => 'id'),
       toms.protect('training.campaigns'),
       toms.protect('training.sim_results', subject_column => 'learner_id') \g /dev/null
SELECT toms.add_member('trainer_anna', 'acme') \g /dev/null
RESET SESSION AUTHORIZATION;
SELECT relid, tenant_column, subject_column FROM toms.protected_tables ORDER BY relid::text;

\echo
\echo 'Anna, acme''s training manager, enters her tenant and sees only acme:'
SET SESSION AUTHORIZATION trainer_anna;
SELECT toms.set_tenant('acme') \g /dev/null
SELECT tenant_id, id, name, department FROM training.learners ORDER BY id;
\echo 'New rows get the tenant from the context:'
INSERT INTO training.learners (id, name, email, department) VALUES (4, 'Katherine Johnson', 'kj@acme.example', 'Risk');
SELECT tenant_id, id, name FROM training.learners WHERE id = 4;

\echo
\echo 'She cannot write into globex, move a row there, or enter it:'
\set ON_ERROR_STOP 0
INSERT INTO training.learners (tenant_id, id, name, email) VALUES ('globex', 9, 'Mallory', 'm@evil.example');
UPDATE training.learners SET tenant_id = 'globex' WHERE id = 4;
SELECT toms.set_tenant('globex') \g /dev/null
SET toms.context = 'globex';
SELECT count(*) FROM training.learners;
\echo
\echo 'Without a tenant context, queries fail closed instead of returning rows:'
SELECT toms.clear_tenant() \g /dev/null
SELECT count(*) FROM training.learners;
RESET SESSION AUTHORIZATION;

\echo
\echo 'Not even the schema owner -- nor a superuser -- can weaken the filter:'
SET ROLE schema_owner;
ALTER TABLE training.learners DISABLE ROW LEVEL SECURITY;
DROP POLICY toms_tenant ON training.learners;
CREATE POLICY everyone ON training.learners USING (true);
TRUNCATE training.sim_results;
RESET ROLE;
ALTER TABLE training.learners NO FORCE ROW LEVEL SECURITY;
\set ON_ERROR_STOP 1

\echo
\echo 'Need-to-know: support_sam gets one hour in acme, with a justification.'
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.grant_access('support_sam', 'acme', 'ticket 4711: learner cannot see her results', '1 hour') > 0 AS granted;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION support_sam;
SELECT toms.set_tenant('acme') \g /dev/null
SELECT toms.current_tenant(), toms.current_actor(), count(*) AS learners FROM training.learners;
\set ON_ERROR_STOP 0
SELECT toms.set_tenant('globex') \g /dev/null
\set ON_ERROR_STOP 1
SELECT toms.clear_tenant() \g /dev/null
RESET SESSION AUTHORIZATION;

\echo
\echo 'The application pool enters tenants with PASETO v4.public tokens minted by'
\echo 'its identity service.  The database holds only the public key, so an SQL'
\echo 'injection cannot mint or alter a token.  (Here toms_test, a test-only'
\echo 'extension, plays the identity service.)'
CREATE EXTENSION toms_test;
CREATE TEMP TABLE idp AS SELECT * FROM toms_test.keypair();
SELECT encode(public_key, 'hex') AS idp_public_key FROM idp \gset
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.trust_key('idp-2026', decode(:'idp_public_key', 'hex')) \g /dev/null
RESET SESSION AUTHORIZATION;
SELECT toms_test.mint_claims((SELECT secret_key FROM idp), 'globex', 'hedy@globex.example', '15 minutes', 'idp-2026') AS token \gset
SELECT toms_test.mint_claims((SELECT secret_key FROM idp), 'globex', 'hedy@globex.example', '-1 minute', 'idp-2026') AS old_token \gset
SELECT toms_test.mint_claims((SELECT secret_key FROM idp), 'acme', 'mallory', '15 minutes', 'idp-2026') AS acme_token \gset
SELECT left(:'token', 40) || '...' AS "token (shortened)";
SET SESSION AUTHORIZATION app_pool;
BEGIN;
SET LOCAL toms.context = :'token';
SELECT toms.current_tenant(), toms.current_actor(), count(*) AS learners FROM training.learners;
COMMIT;
\echo 'After COMMIT the pooled connection carries no tenant any more:'
SELECT toms.current_tenant(true) IS NULL AS no_tenant;
\echo 'Expired and tampered tokens are refused (and audited):'
\set ON_ERROR_STOP 0
SELECT toms.enter_tenant(:'old_token') \g /dev/null
SELECT toms.enter_tenant(overlay(:'acme_token' placing
	CASE WHEN substr(:'acme_token', 30, 1) = 'A' THEN 'B' ELSE 'A' END from 30 for 1)) \g /dev/null
\set ON_ERROR_STOP 1
\echo 'A cursor opened for one tenant cannot be read once the connection has moved'
\echo 'on to another, and no cursor over tenant data may outlive its transaction:'
BEGIN;
SET LOCAL toms.context = :'token';
DECLARE c CURSOR FOR SELECT name FROM training.learners ORDER BY id;
FETCH 1 FROM c;
SET LOCAL toms.context = :'acme_token';
\set ON_ERROR_STOP 0
FETCH 1 FROM c;
ROLLBACK;
BEGIN;
SET LOCAL toms.context = :'token';
DECLARE h CURSOR WITH HOLD FOR SELECT name FROM training.learners;
ROLLBACK;
\set ON_ERROR_STOP 1
RESET SESSION AUTHORIZATION;
