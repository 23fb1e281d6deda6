\echo
\echo '=== 3. Sealed columns (measures 6, 7, 9b) ================================='
\echo
\echo 'Learners'' e-mail addresses move into a sealed column: ciphertext under a'
\echo 'per-tenant key (XChaCha20-Poly1305), plus a blind index for lookups.'
SET ROLE schema_owner;
CREATE TABLE training.learner_contacts (
	tenant_id  text NOT NULL,
	learner_id int NOT NULL,
	email      toms.sealed NOT NULL,
	email_idx  bytea NOT NULL,
	PRIMARY KEY (tenant_id, learner_id)
);
CREATE INDEX ON training.learner_contacts (email_idx);
GRANT SELECT, INSERT, UPDATE, DELETE ON training.learner_contacts TO app_pool, trainer_anna, support_sam;
RESET ROLE;
SET client_min_messages = warning;
CREATE ROLE trainer_gus LOGIN;                         -- globex's training manager
RESET client_min_messages;
GRANT USAGE ON SCHEMA training TO trainer_gus;
GRANT SELECT, INSERT, UPDATE, DELETE ON training.learner_contacts TO trainer_gus;
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.protect('training.learner_contacts', sensitive => '{email}') \g /dev/null
SELECT toms.add_member('trainer_gus', 'globex') \g /dev/null
RESET SESSION AUTHORIZATION;

\echo
\echo 'Anna (acme) seals her learners'' addresses; the application would send'
\echo 'them as bound parameters: toms.seal($1), toms.blind_index($1, ''email'').'
SET SESSION AUTHORIZATION trainer_anna;
SELECT toms.set_tenant('acme') \g /dev/null
INSERT INTO training.learner_contacts (learner_id, email, email_idx)
SELECT id, toms.seal(email), toms.blind_index(lower(email), 'email') FROM training.learners;
\echo 'What is stored (and what pg_dump, a backup or a replica sees):'
SELECT learner_id, left(email::text, 44) || '...' AS email FROM training.learner_contacts ORDER BY learner_id;
\echo 'What Anna reads in her tenant:'
SELECT learner_id, toms.unseal(email) AS email FROM training.learner_contacts ORDER BY learner_id;
\echo 'Equality lookup through the blind index (a btree lookup, no decryption):'
SELECT learner_id FROM training.learner_contacts WHERE email_idx = toms.blind_index('grace@acme.example', 'email');
SELECT email AS acme_ciphertext FROM training.learner_contacts WHERE learner_id = 1 \gset
\echo 'A plaintext is never accepted as a sealed value:'
\set ON_ERROR_STOP 0
INSERT INTO training.learner_contacts (learner_id, email, email_idx) VALUES (9, 'eve@acme.example', '\x00');
\set ON_ERROR_STOP 1
RESET SESSION AUTHORIZATION;

\echo
\echo 'Gus (globex) gets hold of acme''s ciphertext.  It does not open in globex,'
\echo 'and it cannot be stored in a globex row:'
SET SESSION AUTHORIZATION trainer_gus;
SELECT toms.set_tenant('globex') \g /dev/null
\set ON_ERROR_STOP 0
SELECT toms.unseal(:'acme_ciphertext');
INSERT INTO training.learner_contacts (learner_id, email, email_idx) VALUES (1, :'acme_ciphertext', '\x00');
\set ON_ERROR_STOP 1
RESET SESSION AUTHORIZATION;

\echo
\echo 'The keys: one per tenant and purpose, stored only wrapped under the master'
\echo 'key (which is read once at server start and never appears in SQL or logs):'
SELECT tenant, purpose, version, status, length(wrapped) AS wrapped_bytes FROM toms.tenant_keys ORDER BY 1, 2, 3;

\echo
\echo 'Key rotation: new values use version 2 at once; a background worker'
\echo 're-seals the old ones in committed batches.'
SET SESSION AUTHORIZATION dba_dora;
SELECT toms.rotate_tenant_key('acme');
RESET SESSION AUTHORIZATION;
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN EXISTS (SELECT 1 FROM toms.key_rotations WHERE tenant = 'acme' AND finished_at IS NOT NULL);
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT tenant, to_version, resealed, finished_at IS NOT NULL AS finished FROM toms.key_rotations;
SET SESSION AUTHORIZATION trainer_anna;
SELECT toms.set_tenant('acme') \g /dev/null
SELECT learner_id, toms.sealed_key_version(email) AS key_version, toms.unseal(email) AS email
  FROM training.learner_contacts ORDER BY learner_id;
SELECT toms.clear_tenant() \g /dev/null
RESET SESSION AUTHORIZATION;
