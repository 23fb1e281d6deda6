-- Password policy: check_password_hook (measures 4a, 4c).
-- Every refusal is 22023, names the rule, and never shows the password.
\set VERBOSITY default
SELECT (now() + interval '30 days')::text AS soon \gset
SELECT (now() + interval '200 days')::text AS late \gset
SET toms.password_history = 2;

-- VALID UNTIL is required, at most toms.password_max_age (90 days) ahead.
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Correct-Horse-Battery-9';
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Correct-Horse-Battery-9' VALID UNTIL 'infinity';
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Correct-Horse-Battery-9' VALID UNTIL :'late';
-- toms.password_max_age = 0 turns the rule off (superuser only).
SET toms.password_max_age = 0;
CREATE ROLE regress_acct_noexp LOGIN PASSWORD 'Correct-Horse-Battery-9';
RESET toms.password_max_age;
DROP ROLE regress_acct_noexp;

-- Minimum length (12 characters by default, counted in characters).
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Sh0rt-Pw!' VALID UNTIL :'soon';
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Äöü-Äöü-Äö1' VALID UNTIL :'soon';
SET toms.password_min_length = 20;
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Correct-Horse-9' VALID UNTIL :'soon';
RESET toms.password_min_length;

-- Character classes: 3 of lower, upper, digit, other by default.
CREATE ROLE regress_acct_a LOGIN PASSWORD 'onlylowercaseletters' VALID UNTIL :'soon';
CREATE ROLE regress_acct_a LOGIN PASSWORD 'lowercase-and-symbols' VALID UNTIL :'soon';

-- Role name, either direction, ignoring case.
CREATE ROLE regress_acct_alice LOGIN PASSWORD 'X1-REGRESS_ACCT_ALICE' VALID UNTIL :'soon';
CREATE ROLE regress_acct_alice LOGIN PASSWORD 'X1-ecila_tcca_sserger' VALID UNTIL :'soon';
CREATE ROLE regress_acct_superlongname123 LOGIN PASSWORD 'Superlongname12' VALID UNTIL :'soon';

-- Common passwords, also decorated or with look-alike characters.
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Password123!' VALID UNTIL :'soon';
CREATE ROLE regress_acct_a LOGIN PASSWORD 'P@ssw0rd2024!' VALID UNTIL :'soon';
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Sunsh1ne#2024' VALID UNTIL :'soon';
CREATE ROLE regress_acct_a LOGIN PASSWORD '!!Dr4g0n!!2024' VALID UNTIL :'soon';
SET toms.password_classes = 1;
CREATE ROLE regress_acct_a LOGIN PASSWORD 'LeaveMeAlone' VALID UNTIL :'soon';
RESET toms.password_classes;

-- A good password.
CREATE ROLE regress_acct_a LOGIN PASSWORD 'Correct-Horse-Battery-9' VALID UNTIL :'soon';
SELECT rolname, rolcanlogin, rolpassword LIKE 'SCRAM-SHA-256$%' AS scram
FROM pg_authid WHERE rolname = 'regress_acct_a';

-- VALID UNTIL alone may not extend a password past the limit either.
ALTER ROLE regress_acct_a VALID UNTIL 'infinity';
ALTER ROLE regress_acct_a VALID UNTIL :'late';
ALTER ROLE regress_acct_a VALID UNTIL :'soon';
CREATE ROLE regress_acct_nopw LOGIN;
ALTER ROLE regress_acct_nopw VALID UNTIL 'infinity';
DROP ROLE regress_acct_nopw;

-- History: only slow hashes are stored, never the password.
SELECT count(*) AS entries,
       bool_and(hash LIKE '$argon2id$v=19$m=65536,t=2,p=1$%') AS argon2id,
       bool_and(position('Correct' in hash) = 0) AS no_plaintext
FROM toms.password_history WHERE role = 'regress_acct_a';
-- The current password and the previous ones (toms.password_history = 2).
ALTER ROLE regress_acct_a PASSWORD 'Correct-Horse-Battery-9';
ALTER ROLE regress_acct_a PASSWORD 'Second-Staple-Horse-7';
ALTER ROLE regress_acct_a PASSWORD 'Correct-Horse-Battery-9';
ALTER ROLE regress_acct_a PASSWORD 'Third-Battery-Staple-8';
-- The first has now left the window of 2.
ALTER ROLE regress_acct_a PASSWORD 'Correct-Horse-Battery-9';
SELECT count(*) AS entries FROM toms.password_history WHERE role = 'regress_acct_a';
-- A refused change leaves no history row behind (same transaction).
BEGIN;
ALTER ROLE regress_acct_a PASSWORD 'Fourth-Staple-Correct-1' VALID UNTIL :'soon';
ALTER ROLE regress_acct_a PASSWORD 'short';
ROLLBACK;
SELECT count(*) AS entries FROM toms.password_history WHERE role = 'regress_acct_a';
ALTER ROLE regress_acct_a PASSWORD 'Fourth-Staple-Correct-1';

-- A role changing its own password: the rules and the history apply, and
-- the role still cannot read the history.
SET SESSION AUTHORIZATION regress_acct_a;
ALTER ROLE regress_acct_a PASSWORD 'Correct-Horse-Battery-9';
ALTER ROLE regress_acct_a PASSWORD 'Fifth-Horse-Correct-22';
SELECT count(*) FROM toms.password_history;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS entries FROM toms.password_history WHERE role = 'regress_acct_a';

-- The history follows a renamed role.
ALTER ROLE regress_acct_a RENAME TO regress_acct_renamed;
SELECT role, count(*) FROM toms.password_history WHERE role LIKE 'regress_acct%' GROUP BY role;
ALTER ROLE regress_acct_renamed RENAME TO regress_acct_a;

-- Pre-hashed: SCRAM verifiers refused unless allowed; MD5 always refused.
SELECT rolpassword AS verifier FROM pg_authid WHERE rolname = 'regress_acct_a' \gset
CREATE ROLE regress_acct_b LOGIN PASSWORD :'verifier' VALID UNTIL :'soon';
SET toms.password_allow_prehashed = on;
CREATE ROLE regress_acct_b LOGIN PASSWORD :'verifier' VALID UNTIL :'soon';
CREATE ROLE regress_acct_c LOGIN PASSWORD :'verifier';
ALTER ROLE regress_acct_b PASSWORD 'md5a6a3ef5ab4e0e2b0d3bd3cf10a1d2d50';
RESET toms.password_allow_prehashed;
SET password_encryption = md5;
ALTER ROLE regress_acct_b PASSWORD 'Correct-Horse-Battery-9';
RESET password_encryption;

-- The SQLSTATE of every policy refusal.
\set VERBOSITY sqlstate
CREATE ROLE regress_acct_d LOGIN PASSWORD 'short' VALID UNTIL :'soon';
CREATE ROLE regress_acct_d LOGIN PASSWORD 'Correct-Horse-Battery-10';
\set VERBOSITY default

-- The settings are not for ordinary roles.
SET SESSION AUTHORIZATION regress_acct_a;
SET toms.password_min_length = 1;
SET toms.password_allow_prehashed = on;
RESET SESSION AUTHORIZATION;

DROP ROLE regress_acct_a, regress_acct_b;
DELETE FROM toms.password_history WHERE role LIKE 'regress_acct%';
