-- toms.sealed: the armoured text form is the only input; plaintext and
-- malformed values are refused without being echoed; key administration
-- without a tenant context.
SELECT toms.master_key_loaded();

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' / ' || nullif(d, ''), '');
END $$;
-- Armour of raw bytes (unpadded base64url), for hand-made values.
CREATE FUNCTION pg_temp.armour(b bytea) RETURNS text LANGUAGE sql AS $$
	SELECT 'sealed:v1:' || translate(rtrim(replace(encode(b, 'base64'), E'\n', ''), '='), '+/', '-_')
$$;
-- A well-formed (not authentic) value: version 1, key version 7, key id,
-- plaintext length 3, nonce, 3 bytes of ciphertext, tag.
CREATE TEMP TABLE v AS SELECT '\x01' || '\x00000007'::bytea || '\x0102030405060708'::bytea
	|| '\x00000003'::bytea || decode(repeat('ab', 24), 'hex') || '\xcafe00'::bytea
	|| decode(repeat('11', 16), 'hex') AS raw;

-- Plaintext is refused, and the message does not repeat it.
SELECT 'alice@example.com'::toms.sealed;
SELECT pg_temp.err($$SELECT 'alice@example.com'::toms.sealed$$);
SELECT pg_temp.err($$SELECT ''::toms.sealed$$);
-- Armour errors, each with its own reason.
SELECT 'sealed:v2:AQ'::toms.sealed;
SELECT 'sealed:v1:AQ*x'::toms.sealed;
SELECT 'sealed:v1:AQAAA'::toms.sealed;      -- cut short: says truncated first
SELECT pg_temp.err($$SELECT 'sealed:v1:AQAAAAAB'::toms.sealed$$);
SELECT pg_temp.err($$SELECT 'sealed:v1:Ag'::toms.sealed$$);  -- format version 2 inside
-- Non-canonical base64url (non-zero trailing bits) is refused.
SELECT pg_temp.err(format('SELECT %L::toms.sealed', pg_temp.armour(raw) || 'A')) FROM v;
SELECT pg_temp.err(format('SELECT %L::toms.sealed', left(pg_temp.armour(raw || '\x00'::bytea), -1) || 'B')) FROM v;

-- A well-formed value round-trips byte for byte through text.
SELECT pg_temp.armour(raw)::toms.sealed::text = pg_temp.armour(raw) AS same FROM v;
SELECT toms.sealed_key_version(pg_temp.armour(raw)::toms.sealed) FROM v;
SELECT length(pg_temp.armour(raw)) FROM v;
-- Truncated (one byte short) and too long (one byte more): distinct errors.
SELECT pg_temp.err(format('SELECT %L::toms.sealed', pg_temp.armour(substr(raw, 1, length(raw) - 1)))) FROM v;
SELECT pg_temp.err(format('SELECT %L::toms.sealed', pg_temp.armour(raw || '\x00'::bytea))) FROM v;
SELECT pg_temp.err(format('SELECT %L::toms.sealed', pg_temp.armour(substr(raw, 1, 40)))) FROM v;
-- Plaintext length over the limit.
SELECT pg_temp.err(format('SELECT %L::toms.sealed',
	pg_temp.armour(overlay(raw placing '\x7fffffff'::bytea from 14 for 4)))) FROM v;

-- Binary send/receive (COPY BINARY) moves the bytes unchanged.
CREATE TABLE sealed_bin (id int, s toms.sealed);
INSERT INTO sealed_bin SELECT 1, pg_temp.armour(raw)::toms.sealed FROM v;
DO $$
DECLARE f text := '/tmp/toms_sealed_regress_' || pg_backend_pid() || '.bin';
BEGIN
	EXECUTE format('COPY sealed_bin TO PROGRAM %L (FORMAT binary)', 'cat > ' || f);
	EXECUTE format('COPY sealed_bin FROM PROGRAM %L (FORMAT binary)', 'cat ' || f || ' && rm -f ' || f);
END $$;
SELECT count(*), count(DISTINCT s::text) FROM sealed_bin;
DROP TABLE sealed_bin;

-- text converts only through the input function (which refuses plaintext);
-- bytea does not convert at all.
SELECT pg_temp.err($$SELECT 'x'::text::toms.sealed$$);
SELECT pg_temp.err($$SELECT '\x00'::bytea::toms.sealed$$);

-- Sealing needs a tenant context.
SELECT toms.clear_tenant();
SELECT pg_temp.err($$SELECT toms.seal('x')$$);

-- Key administration (no context needed; toms_admin only).
SELECT pg_temp.err($$SELECT toms.rotate_tenant_key('regress_t1')$$);
SELECT toms.create_tenant('regress_t1', 'Key administration');
SELECT toms.rotate_tenant_key('regress_t1');       -- creates version 1
SELECT toms.rotate_tenant_key('regress_t1', false); -- 2
SELECT tenant, purpose, version, status, length(wrapped) AS wrapped_len,
       length(master_key_id) AS id_len, retired_at IS NOT NULL AS retired
  FROM toms.tenant_keys WHERE tenant = 'regress_t1' ORDER BY purpose, version;
SELECT tenant, to_version, resealed FROM toms.key_rotations WHERE tenant = 'regress_t1';
-- Wrapped keys differ even for the same tenant.
SELECT count(DISTINCT wrapped) FROM toms.tenant_keys WHERE tenant = 'regress_t1';
SELECT toms.destroy_tenant_keys('regress_t1');
SELECT version, status, wrapped IS NULL AS wiped, destroyed_at IS NOT NULL AS destroyed
  FROM toms.tenant_keys WHERE tenant = 'regress_t1' ORDER BY version;
SELECT toms.destroy_tenant_keys('regress_t1');      -- nothing left
SELECT pg_temp.err($$SELECT toms.rotate_tenant_key('regress_t1')$$);
SELECT pg_temp.err($$SELECT toms.rotate_tenant_key('')$$);
-- The key table is dumped with the extension (wrapped keys only).
SELECT c.relname, x.extconfig IS NOT NULL AS dumped
  FROM pg_extension x, unnest(x.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
 WHERE x.extname = 'toms' AND c.relname IN ('tenant_keys', 'key_rotations') ORDER BY 1;

-- Privileges: an ordinary role can seal and open, not administer keys.
SELECT pg_temp.armour(raw) AS fake FROM v \gset
CREATE ROLE regress_sealed_user;
SET ROLE regress_sealed_user;
SELECT pg_temp.err($$SELECT toms.rotate_tenant_key('regress_t2')$$);
SELECT pg_temp.err($$SELECT toms.destroy_tenant_keys('regress_t2')$$);
SELECT pg_temp.err($$SELECT toms.rotate_master_key()$$);
SELECT pg_temp.err($$SELECT toms.reseal_step(10)$$);
SELECT pg_temp.err($$SELECT * FROM toms.tenant_keys$$);
SELECT pg_temp.err(format('SELECT toms._reseal(%L, %L)', :'fake', 'regress_t1'));
RESET ROLE;
DROP ROLE regress_sealed_user;
-- reseal_step needs superuser or BYPASSRLS even for toms_admin.
CREATE ROLE regress_sealed_admin IN ROLE toms_admin;
SET ROLE regress_sealed_admin;
SELECT pg_temp.err($$SELECT toms.reseal_step(10)$$);
RESET ROLE;
DROP ROLE regress_sealed_admin;
DELETE FROM toms.tenant_keys WHERE tenant = 'regress_t1';
DELETE FROM toms.key_rotations WHERE tenant = 'regress_t1';
DELETE FROM toms.tenants WHERE tenant = 'regress_t1';
