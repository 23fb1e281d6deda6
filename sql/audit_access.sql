-- Access records: one per statement and protected table, with who, what,
-- tenant, rows and fate; reads and denials through the queue, writes in
-- the writing transaction, rolled-back writes still recorded.
SET client_min_messages = warning;
CREATE ROLE regress_aud_app LOGIN;
CREATE ROLE regress_aud_other LOGIN;
RESET client_min_messages;
SELECT toms.create_tenant('aud1', 'Audit One'), toms.create_tenant('aud2', 'Audit Two');
SELECT toms.add_member('regress_aud_app', 'aud1'), toms.add_member('regress_aud_other', 'aud2');
CREATE TABLE aud_learners (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                           tenant_id text NOT NULL, name text);
GRANT SELECT, INSERT, UPDATE, DELETE ON aud_learners TO regress_aud_app, regress_aud_other;
SELECT toms.protect('aud_learners');
CREATE TABLE aud_plain (id int);
GRANT SELECT ON aud_plain TO regress_aud_app;

SET SESSION AUTHORIZATION regress_aud_app;
SELECT toms.set_tenant('aud1');
INSERT INTO aud_learners (name) VALUES ('Ann'), ('Alf');
SELECT name FROM aud_learners ORDER BY name;
UPDATE aud_learners SET name = 'Anne' WHERE name = 'Ann';
SELECT count(*) FROM aud_plain;              -- not protected: no record
BEGIN;
DELETE FROM aud_learners WHERE name = 'Alf';
ROLLBACK;
BEGIN;
INSERT INTO aud_learners (name) VALUES ('Sub');
SAVEPOINT s1;
DELETE FROM aud_learners;
ROLLBACK TO s1;
COMMIT;
INSERT INTO aud_learners (tenant_id, name) VALUES ('aud2', 'Intruder');
SELECT toms.clear_tenant();
SELECT name FROM aud_learners;
RESET SESSION AUTHORIZATION;

SELECT toms.audit_flush();
SELECT kind, action, session_role, effective_role, actor, tenant, relname, row_count, fate,
       statement IS NULL AS no_text, query_id IS NOT NULL AS has_qid, pid = pg_backend_pid() AS same_pid,
       client_addr, seq IS NOT NULL AS chained
  FROM toms.audit_log
 WHERE relname = 'public.aud_learners' OR session_role = 'regress_aud_app'
 ORDER BY kind, action, fate, row_count;
SELECT * FROM toms.verify_audit();

SELECT toms.unprotect('aud_learners');
DROP TABLE aud_learners, aud_plain;
DROP ROLE regress_aud_app, regress_aud_other;
