-- Access records: one per statement and protected table, with who, what,
-- tenant, grant, rows and fate.  Reads and denials go through the queue,
-- writes are recorded in the writing transaction, and writes that roll
-- back (whole transaction or savepoint) or fail are recorded too.
SET client_min_messages = warning;
CREATE ROLE regress_aud_app LOGIN;
CREATE ROLE regress_aud_staff LOGIN;
RESET client_min_messages;
SELECT toms.create_tenant('aud1', 'Audit One'), toms.create_tenant('aud2', 'Audit Two');
SELECT toms.add_member('regress_aud_app', 'aud1');
CREATE TABLE aud_learners (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                           tenant_id text NOT NULL, name text);
GRANT SELECT, INSERT, UPDATE, DELETE ON aud_learners TO regress_aud_app, regress_aud_staff;
SELECT toms.protect('aud_learners');
CREATE TABLE aud_plain (id int);
GRANT SELECT ON aud_plain TO regress_aud_app;
SELECT toms.audit_flush();
SELECT max(seq) AS start_seq FROM toms.audit_log \gset

SET SESSION AUTHORIZATION regress_aud_app;
SELECT toms.set_tenant('aud1');
INSERT INTO aud_learners (name) VALUES ('Ann'), ('Alf');
SELECT name FROM aud_learners ORDER BY name;
SELECT a.name FROM aud_learners a JOIN aud_learners b ON a.id = b.id WHERE a.name = 'Ann';
UPDATE aud_learners SET name = 'Anne' WHERE name = 'Ann';
SELECT count(*) FROM aud_plain;              -- not protected: no record
EXPLAIN (COSTS OFF) SELECT * FROM aud_learners;   -- not run: no record
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
COPY aud_learners (name) FROM stdin;
Cat
\.
COPY aud_learners (name) TO stdout;
SELECT toms.clear_tenant();
SELECT name FROM aud_learners;
RESET SESSION AUTHORIZATION;

-- Need-to-know access: the grant and its justification are recorded.
SELECT toms.grant_access('regress_aud_staff', 'aud1', 'ticket 4711: learner cannot log in',
                         '1 hour') IS NOT NULL AS granted;
SET SESSION AUTHORIZATION regress_aud_staff;
SELECT toms.set_tenant('aud1');
SELECT count(*) FROM aud_learners;
RESET SESSION AUTHORIZATION;

-- Statement text only when asked for, and with secrets blanked out.
SET toms.audit_statement_text = on;
SET SESSION AUTHORIZATION regress_aud_app;
SELECT toms.set_tenant('aud1');
SELECT count(*) FROM aud_learners WHERE name <> 'host=db password=hunter2 user=x'
   OR name = 'postgresql://app:s3cret@db/x';
RESET SESSION AUTHORIZATION;
RESET toms.audit_statement_text;

SELECT toms.audit_flush();
SELECT kind, action, session_role, actor, tenant, relname, row_count, fate,
       grant_id IS NOT NULL AS has_grant, justification,
       query_id IS NOT NULL AS has_qid, pid = pg_backend_pid() AS same_pid,
       client_addr, xid IS NOT NULL AS has_xid, seq IS NOT NULL AS chained
  FROM toms.audit_log
 WHERE seq > :start_seq AND (relname = 'public.aud_learners' OR session_role LIKE 'regress_aud%')
 ORDER BY kind, action, fate COLLATE "C", row_count, session_role;
SELECT statement FROM toms.audit_log
 WHERE seq > :start_seq AND statement IS NOT NULL;
-- Admin acts of toms are recorded with the change.
SELECT kind, action, tenant, regexp_replace(detail, 'grant=[0-9]+', 'grant=N') AS detail FROM toms.audit_log
 WHERE seq > :start_seq - 20 AND kind = 'admin' AND (tenant LIKE 'aud%' OR detail LIKE '%aud_learners%')
 ORDER BY seq;
SELECT ok FROM toms.verify_audit();

SELECT toms.unprotect('aud_learners');
DROP TABLE aud_learners, aud_plain;
DROP ROLE regress_aud_app, regress_aud_staff;
DELETE FROM toms.tenants WHERE tenant IN ('aud1', 'aud2');
