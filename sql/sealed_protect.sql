-- protect(..., sensitive => ...): sealed columns enforced by a trigger;
-- key rotation and re-sealing of older values in committed batches.
SET client_min_messages = warning;
CREATE ROLE regress_pa LOGIN;
CREATE ROLE regress_pb LOGIN;
RESET client_min_messages;
SELECT toms.create_tenant('pt1', 'Protected One'), toms.create_tenant('pt2', 'Protected Two');
SELECT toms.add_member('regress_pa', 'pt1'), toms.add_member('regress_pb', 'pt2');

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- Sensitive columns must be toms.sealed.
CREATE TABLE plain_people (tenant_id text NOT NULL, email text);
SELECT toms.protect('plain_people', sensitive => '{email}');
SELECT count(*) FROM toms.protected_tables WHERE relid = 'plain_people'::regclass;
DROP TABLE plain_people;

CREATE TABLE people (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     tenant_id text NOT NULL, name text,
                     email toms.sealed, email_idx bytea, note toms.sealed);
GRANT SELECT, INSERT, UPDATE, DELETE ON people TO regress_pa, regress_pb;
CREATE INDEX ON people (email_idx);
SELECT toms.protect('people', sensitive => '{email,note}');
SELECT tgname, tgenabled, pg_get_triggerdef(oid) ~ 'toms\._sealed_check\(''email'', ''note''\)' AS args
  FROM pg_trigger WHERE tgrelid = 'people'::regclass AND NOT tgisinternal;

SET SESSION AUTHORIZATION regress_pa;
SELECT toms.set_tenant('pt1');
INSERT INTO people (name, email, email_idx)
SELECT n, toms.seal(n || '@one.example'), toms.blind_index(n || '@one.example', 'email')
  FROM unnest(ARRAY['ann', 'abe', 'amy']) n;
-- Equality lookup through the blind index, then unseal.
SELECT name, toms.unseal(email) FROM people
 WHERE email_idx = toms.blind_index('abe@one.example', 'email');
SELECT toms.seal('pt1 secret') AS pt1_value \gset
-- A plaintext never gets in (the type refuses it).
SELECT pg_temp.err($$INSERT INTO people (name, email) VALUES ('p', 'ann@one.example')$$);
-- Updating other columns leaves sealed values alone.
UPDATE people SET name = 'ann2' WHERE name = 'ann';
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION regress_pb;
SELECT toms.set_tenant('pt2');
INSERT INTO people (name, email) VALUES ('bob', toms.seal('bob@two.example'));
-- Another tenant's ciphertext is refused, on insert and on update.
SELECT pg_temp.err(format('INSERT INTO people (name, email) VALUES (%L, %L)', 'copy', :'pt1_value'));
SELECT pg_temp.err(format('UPDATE people SET note = %L', :'pt1_value'));
SELECT name, toms.unseal(email) FROM people;
RESET SESSION AUTHORIZATION;

-- Rotation: pt1 gets key version 2; its old values still open.  (Without
-- the reseal worker here, so that the batches below are deterministic.)
SELECT toms.rotate_tenant_key('pt1', start_worker => false);
SET SESSION AUTHORIZATION regress_pa;
SELECT toms.set_tenant('pt1');
INSERT INTO people (name, email) VALUES ('ada', toms.seal('ada@one.example'));
SELECT name, toms.sealed_key_version(email) AS v, toms.unseal(email) FROM people ORDER BY id;
RESET SESSION AUTHORIZATION;
-- Re-sealing in batches converts pt1's old values and leaves pt2's alone.
SELECT toms.reseal_step(2);
SELECT tenant, to_version, resealed, finished_at IS NULL AS running
  FROM toms.key_rotations WHERE tenant IN ('pt1', 'pt2');
SELECT toms.reseal_step(100);
SELECT toms.reseal_step(100);
SELECT tenant, to_version, resealed, finished_at IS NOT NULL AS finished
  FROM toms.key_rotations WHERE tenant IN ('pt1', 'pt2');
SELECT tenant_id, toms.sealed_key_version(email) AS v, count(*)
  FROM people GROUP BY 1, 2 ORDER BY 1, 2;
SET SESSION AUTHORIZATION regress_pa;
SELECT toms.set_tenant('pt1');
SELECT name, toms.unseal(email) FROM people ORDER BY id;
-- The blind index did not change with the data key.
SELECT name FROM people WHERE email_idx = toms.blind_index('amy@one.example', 'email');
RESET SESSION AUTHORIZATION;

-- The trigger is toms' own: nobody drops or disables it; unprotect removes it.
SELECT pg_temp.err('DROP TRIGGER toms_sealed_check ON people') AS drop_refused;
SELECT pg_temp.err('ALTER TABLE people DISABLE TRIGGER toms_sealed_check') AS disable_refused;
SELECT toms.unprotect('people');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'people'::regclass AND NOT tgisinternal;

DROP TABLE people;
DELETE FROM toms.tenant_keys WHERE tenant IN ('pt1', 'pt2');
DELETE FROM toms.key_rotations WHERE tenant IN ('pt1', 'pt2');
DELETE FROM toms.members WHERE tenant IN ('pt1', 'pt2');
DELETE FROM toms.tenants WHERE tenant IN ('pt1', 'pt2');
DROP ROLE regress_pa, regress_pb;
