-- seal/unseal under tenant contexts: round trips, cross-tenant and
-- cross-key refusal, tampering of each byte region, truncation, blind
-- indexes, destroyed keys.
SET client_min_messages = warning;
CREATE ROLE regress_sa LOGIN;
CREATE ROLE regress_sb LOGIN;
RESET client_min_messages;
SELECT toms.create_tenant('st1', 'Sealed One'), toms.create_tenant('st2', 'Sealed Two');
SELECT toms.add_member('regress_sa', 'st1'), toms.add_member('regress_sb', 'st2');

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.raw(s text) RETURNS bytea LANGUAGE sql AS $$
	SELECT decode(translate(substr(s, 11), '-_', '+/')
	              || repeat('=', (4 - length(substr(s, 11)) % 4) % 4), 'base64')
$$;
CREATE FUNCTION pg_temp.armour(b bytea) RETURNS text LANGUAGE sql AS $$
	SELECT 'sealed:v1:' || translate(rtrim(replace(encode(b, 'base64'), E'\n', ''), '='), '+/', '-_')
$$;
-- Flip one bit of byte n (0-based) of a sealed value and try to open it.
CREATE FUNCTION pg_temp.flip(s text, n int) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)',
		pg_temp.armour(set_byte(pg_temp.raw(s), n, get_byte(pg_temp.raw(s), n) # 1))))
$$;

SET SESSION AUTHORIZATION regress_sa;
SELECT toms.set_tenant('st1');
-- Round trips: text, empty, non-ASCII, 1 MB, bytea.
SELECT toms.unseal(toms.seal('alice@example.com'));
SELECT toms.unseal(toms.seal('')) = '' AS empty_ok;
SELECT toms.unseal(toms.seal('Grüße aus Köln, 東京, 🙂'));
SELECT md5(toms.unseal(toms.seal(repeat('0123456789abcdef', 65536)))) = md5(repeat('0123456789abcdef', 65536)) AS one_mb_ok;
SELECT octet_length(toms.seal(repeat('x', 1048576))::text) AS armoured_len;
SELECT toms.unseal_bytea(toms.seal('\x00ff10'::bytea));
SELECT toms.unseal_bytea(toms.seal(''::bytea)) = ''::bytea AS empty_bytea_ok;
SELECT toms.unseal_bytea(toms.seal('text as bytes')) AS text_as_bytea;
SELECT pg_temp.err($$SELECT toms.unseal(toms.seal('\x00ff'::bytea))$$);
-- Random nonces: the same plaintext seals differently each time.
SELECT toms.seal('same')::text <> toms.seal('same')::text AS differs;
SELECT toms.sealed_key_version(toms.seal('x'));
SELECT length(toms.seal('0123456789abcdefghijklmn')::text) AS armour_len_24b;
-- Blind index: deterministic per tenant and purpose, 32 bytes.
SELECT toms.blind_index('alice@example.com') = toms.blind_index('alice@example.com') AS equal,
       toms.blind_index('alice@example.com') <> toms.blind_index('bob@example.com') AS distinct_values,
       toms.blind_index('alice@example.com', 'email') <> toms.blind_index('alice@example.com') AS per_purpose,
       length(toms.blind_index('x')) AS len;
SELECT encode(toms.blind_index('alice@example.com'), 'hex') AS st1_index \gset
SELECT toms.seal('secret of st1') AS c1 \gset
SELECT toms.seal('\xdeadbeef'::bytea) AS c1b \gset
RESET SESSION AUTHORIZATION;

-- Another tenant cannot open it, and gets a different blind index.
SET SESSION AUTHORIZATION regress_sb;
SELECT toms.set_tenant('st2');
SELECT toms.seal('st2 has a key too') IS NOT NULL AS sealed;
SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)', :'c1'));
SELECT pg_temp.err(format('SELECT toms.unseal_bytea(%L::toms.sealed)', :'c1b'));
SELECT encode(toms.blind_index('alice@example.com'), 'hex') <> :'st1_index' AS other_index;
RESET SESSION AUTHORIZATION;
-- No context, no plaintext.
SELECT toms.clear_tenant();
SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)', :'c1'));

SET SESSION AUTHORIZATION regress_sa;
SELECT toms.set_tenant('st1');
SELECT toms.unseal(:'c1');
SELECT toms.unseal_bytea(:'c1b');
-- Tampering with each region of the value:
SELECT pg_temp.flip(:'c1', 0) AS format_version;
SELECT pg_temp.flip(:'c1', 4) AS key_version;
SELECT pg_temp.flip(:'c1', 5) AS key_id_first, pg_temp.flip(:'c1', 12) AS key_id_last;
SELECT pg_temp.flip(:'c1', 16) AS length;
SELECT pg_temp.flip(:'c1', 17) AS nonce_first, pg_temp.flip(:'c1', 40) AS nonce_last;
SELECT pg_temp.flip(:'c1', 41) AS ciphertext_first, pg_temp.flip(:'c1', 53) AS ciphertext_last;
SELECT pg_temp.flip(:'c1', 54) AS tag_first, pg_temp.flip(:'c1', 69) AS tag_last;
SELECT length(pg_temp.raw(:'c1')) AS raw_len;
-- Every byte: never garbage, never success.
SELECT count(*) AS bytes, count(*) FILTER (WHERE pg_temp.flip(:'c1', n) = 'ok') AS opened
  FROM generate_series(0, 69) n;
-- Truncation: one byte, the tag, everything after the header.
SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)',
	pg_temp.armour(substr(pg_temp.raw(:'c1'), 1, 69))));
SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)',
	pg_temp.armour(substr(pg_temp.raw(:'c1'), 1, 54))));
SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)', left(:'c1', 40)));
-- Truncation with a matching length field: the tag no longer verifies.
SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)',
	pg_temp.armour(overlay(substr(pg_temp.raw(:'c1'), 1, 69) placing '\x0000000c'::bytea from 14 for 4))));
RESET SESSION AUTHORIZATION;

-- Rotation: old values still open, new ones use the new version; a value
-- whose header claims the new version but carries the old key is refused.
SELECT toms.rotate_tenant_key('st1', start_worker => false);
SET SESSION AUTHORIZATION regress_sa;
SELECT toms.set_tenant('st1');
SELECT toms.unseal(:'c1') AS old_value;
SELECT toms.sealed_key_version(toms.seal('new'));
SELECT toms.unseal(toms.seal('new'));
SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)',
	pg_temp.armour(overlay(pg_temp.raw(:'c1') placing '\x00000002'::bytea from 2 for 4)))) AS cross_key;
RESET SESSION AUTHORIZATION;

-- Destroyed keys: the documented error, for opening and for sealing.
SELECT toms.destroy_tenant_keys('st1');
SET SESSION AUTHORIZATION regress_sa;
SELECT toms.set_tenant('st1');
SELECT pg_temp.err(format('SELECT toms.unseal(%L::toms.sealed)', :'c1'));
SELECT pg_temp.err($$SELECT toms.seal('after shredding')$$);
SELECT pg_temp.err($$SELECT toms.blind_index('after shredding')$$);
RESET SESSION AUTHORIZATION;
-- The other tenant is unaffected.
SET SESSION AUTHORIZATION regress_sb;
SELECT toms.set_tenant('st2');
SELECT toms.unseal(toms.seal('still fine'));
RESET SESSION AUTHORIZATION;

DELETE FROM toms.tenant_keys WHERE tenant IN ('st1', 'st2');
DELETE FROM toms.key_rotations WHERE tenant IN ('st1', 'st2');
DELETE FROM toms.members WHERE tenant IN ('st1', 'st2');
DELETE FROM toms.tenants WHERE tenant IN ('st1', 'st2');
DROP ROLE regress_sa, regress_sb;
