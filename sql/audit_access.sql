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
   OR name = 'postgresql://app:s3cret@db/x'
   OR name = $q$ALTER ROLE x PASSWORD E'Esc\'aped-0815' VALID UNTIL 'y'$q$
   OR name = $q$ALTER ROLE x PASSWORD $$Dollar S3cret$$$q$;
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
SELECT kind, action, tenant, regexp_replace(detail::text, '"grant": [0-9]+', '"grant": N') AS detail FROM toms.audit_log
 WHERE seq > :start_seq - 20 AND kind = 'admin' AND (tenant LIKE 'aud%' OR relname LIKE '%aud_learners%')
 ORDER BY seq;
SELECT ok FROM toms.verify_audit();

-- Reads nested in a statement (foreign-key checks, a function's loop) are
-- merged into the records of the statement the client sent, rows added up:
-- one record per table, not one per row checked.
CREATE TABLE aud_parents (tenant_id text NOT NULL, id int, PRIMARY KEY (tenant_id, id));
CREATE TABLE aud_children (tenant_id text NOT NULL, parent_id int,
                           FOREIGN KEY (tenant_id, parent_id) REFERENCES aud_parents);
GRANT SELECT, INSERT ON aud_parents, aud_children TO regress_aud_app;
SELECT toms.protect('aud_parents'), toms.protect('aud_children');
CREATE FUNCTION aud_count_loop() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 5 LOOP
		PERFORM count(*) FROM aud_learners;
	END LOOP;
	RETURN 5;
END $$;
SELECT toms.audit_flush();
SELECT max(seq) AS nested_seq FROM toms.audit_log \gset
SELECT count(*) AS incidents_before FROM toms.incidents WHERE kind = 'privileged_access' \gset
SET SESSION AUTHORIZATION regress_aud_app;
SELECT toms.set_tenant('aud1');
INSERT INTO aud_parents (id) VALUES (1), (2);
INSERT INTO aud_children (parent_id) VALUES (1), (1), (2);
SELECT aud_count_loop();
RESET SESSION AUTHORIZATION;
SELECT toms.audit_flush();
SELECT action, relname, row_count, fate, count(*) AS records
  FROM toms.audit_log
 WHERE seq > :nested_seq AND kind = 'access' AND session_role = 'regress_aud_app'
 GROUP BY 1, 2, 3, 4 ORDER BY 2, 1;
-- the foreign-key checks ran as the superuser owner: not an incident
SELECT count(*) - :incidents_before AS new_privileged_incidents
  FROM toms.incidents WHERE kind = 'privileged_access';
SELECT toms.unprotect('aud_children'), toms.unprotect('aud_parents');
DROP TABLE aud_children, aud_parents;
DROP FUNCTION aud_count_loop();

SELECT toms.unprotect('aud_learners');
DROP TABLE aud_learners, aud_plain;
DROP ROLE regress_aud_app, regress_aud_staff;
DELETE FROM toms.tenants WHERE tenant IN ('aud1', 'aud2');
