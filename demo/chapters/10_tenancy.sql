\echo
\echo '=== 1. Tenant separation (measures 9a, 9b, 5b) ==============================='
\echo
\echo 'The DBA registers the customers and puts the tables under toms.  protect()'
\echo 'enables and FORCES row security and attaches a toms-owned policy that'
\echo 'compares the tenant column with toms.current_tenant().'
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.create_tenant('acme', 'ACME Bank'), toms.create_tenant('globex', 'Globex Hospital');
SELECT toms.protect('training.learners', subject_column => 'id'),
       toms.protect('training.campaigns'),
       toms.protect('training.sim_results', subject_column => 'learner_id');
SELECT toms.add_member('trainer_anna', 'acme');
RESET SESSION AUTHORIZATION;
SELECT relid, tenant_column, subject_column FROM toms.protected_tables ORDER BY relid::text;

\echo
\echo 'Anna, acme''s training manager, enters her tenant and sees only acme:'
SET SESSION AUTHORIZATION trainer_anna;
SELECT toms.set_tenant('acme');
SELECT tenant_id, id, name, department FROM training.learners ORDER BY id;
\echo 'New rows get the tenant from the context:'
INSERT INTO training.learners (id, name, email, department) VALUES (4, 'Katherine Johnson', 'kj@acme.example', 'Risk');
SELECT tenant_id, id, name FROM training.learners WHERE id = 4;

\echo
\echo 'She cannot write into globex, move a row there, or enter it:'
\set ON_ERROR_STOP 0
INSERT INTO training.learners (tenant_id, id, name, email) VALUES ('globex', 9, 'Mallory', 'm@evil.example');
UPDATE training.learners SET tenant_id = 'globex' WHERE id = 4;
SELECT toms.set_tenant('globex');
SET toms.context = 'globex';
SELECT count(*) FROM training.learners;
\echo
\echo 'Without a tenant context, queries fail closed instead of returning rows:'
SELECT toms.clear_tenant();
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
SELECT toms.set_tenant('acme');
SELECT toms.current_tenant(), toms.current_actor(), count(*) AS learners FROM training.learners;
\set ON_ERROR_STOP 0
SELECT toms.set_tenant('globex');
\set ON_ERROR_STOP 1
SELECT toms.clear_tenant();
RESET SESSION AUTHORIZATION;
