\echo
\echo '=== 7. Self-assessment (measures 11a, 2) ===================================='
\echo
\echo 'An auditor checks what the database enforces: toms.assess() returns one row'
\echo 'per measure (pass / warn / fail / n/a) with the evidence it saw.'
SET client_min_messages = warning;
CREATE ROLE auditor_ida LOGIN IN ROLE toms_auditor;
RESET client_min_messages;

\echo
\echo 'A developer adds a table for training certificates -- and forgets toms:'
SET ROLE schema_owner;
CREATE TABLE training.certificates (
	tenant_id  text NOT NULL,
	learner_id int NOT NULL,
	course     text NOT NULL,
	issued     date NOT NULL,
	PRIMARY KEY (tenant_id, learner_id, course)
);
RESET ROLE;
SET SESSION AUTHORIZATION auditor_ida;
SELECT control, status, evidence FROM toms.assess() WHERE control IN ('9a', '9b');
RESET SESSION AUTHORIZATION;

\echo
\echo 'The DBA protects it; the next assessment passes 9a:'
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.protect('training.certificates') \g /dev/null
RESET SESSION AUTHORIZATION;
-- a foreign key into a protected table is taken from a protected table
-- whose tenant column it pairs (an unprotected one is refused)
SET ROLE schema_owner;
ALTER TABLE training.certificates
	ADD FOREIGN KEY (tenant_id, learner_id) REFERENCES training.learners;
RESET ROLE;
SET SESSION AUTHORIZATION auditor_ida;
SELECT control, status FROM toms.assess() WHERE control IN ('9a', '9b');

\echo
\echo 'The full report (toms.assess_report(); ''markdown'' gives a table).  n/a'
\echo 'says why -- a part of toms not installed, or a setting that does not apply'
\echo '(this demo cluster listens on a Unix socket only, and has no standbys):'
\echo
\pset format unaligned
\pset tuples_only on
SELECT regexp_replace(toms.assess_report(), '\n$', '');

\echo
\echo 'For the auditor, the same as one self-contained HTML page: every measure with'
\echo 'its status, the evidence and the tests that prove the control, the whole audit'
\echo 'chain verified, and a chart of audit volume and denials per day.'
\o :report
SELECT toms.assess_report('html');
\o
\pset tuples_only off
\pset format aligned
RESET SESSION AUTHORIZATION;
