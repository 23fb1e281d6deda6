-- Sealed columns: the API, its privileges and its documented SQLSTATEs.
BEGIN;
SELECT plan(24);

SELECT has_type('toms', 'sealed', 'type toms.sealed exists');
SELECT function_returns('toms', 'seal', ARRAY['text'], 'toms.sealed', 'seal(text) returns toms.sealed');
SELECT function_returns('toms', 'seal', ARRAY['bytea'], 'toms.sealed', 'seal(bytea) returns toms.sealed');
SELECT function_returns('toms', 'unseal', ARRAY['toms.sealed'], 'text', 'unseal returns text');
SELECT function_returns('toms', 'unseal_bytea', ARRAY['toms.sealed'], 'bytea', 'unseal_bytea returns bytea');
SELECT function_returns('toms', 'blind_index', ARRAY['text', 'text'], 'bytea', 'blind_index returns bytea');
SELECT volatility_is('toms', 'seal', ARRAY['text'], 'volatile', 'seal is volatile (random nonce)');
SELECT ok(toms.master_key_loaded(), 'the test clusters load a master key');

-- Privileges: applications seal and open; only toms_admin administers keys.
SELECT ok(has_function_privilege('public', 'toms.seal(text)', 'EXECUTE'), 'PUBLIC may seal');
SELECT ok(has_function_privilege('public', 'toms.unseal(toms.sealed)', 'EXECUTE'), 'PUBLIC may unseal');
SELECT ok(NOT has_function_privilege('public', 'toms.rotate_tenant_key(text, boolean)', 'EXECUTE'), 'PUBLIC may not rotate keys');
SELECT ok(NOT has_function_privilege('public', 'toms.destroy_tenant_keys(text)', 'EXECUTE'), 'PUBLIC may not destroy keys');
SELECT ok(NOT has_function_privilege('public', 'toms._reseal(toms.sealed, text)', 'EXECUTE'), 'PUBLIC may not re-seal for a tenant');
SELECT ok(has_function_privilege('toms_admin', 'toms.rotate_master_key()', 'EXECUTE'), 'toms_admin may rotate the master key');
SELECT ok(NOT has_table_privilege('public', 'toms.tenant_keys', 'SELECT'), 'PUBLIC cannot read the key table');

SELECT toms.create_tenant('tap_s1', 'TAP one'), toms.create_tenant('tap_s2', 'TAP two');
SELECT toms.add_member('postgres', 'tap_s1'), toms.add_member('postgres', 'tap_s2');
SELECT toms.set_tenant('tap_s2', true);
CREATE TEMP TABLE tap_two AS SELECT toms.seal('of tenant two') AS v;
SELECT toms.set_tenant('tap_s1', true);
CREATE TEMP TABLE tap_one AS SELECT toms.seal('of tenant one') AS v;

SELECT is(toms.unseal(toms.seal('Grüße')), 'Grüße', 'round trip of non-ASCII text');
SELECT is(toms.unseal_bytea(toms.seal('\x0001ff'::bytea)), '\x0001ff'::bytea, 'round trip of bytea');
SELECT throws_ok($$SELECT 'alice@example.com'::toms.sealed$$, '22P02',
	'invalid input syntax for type sealed', 'plaintext is refused');
SELECT throws_ok($$SELECT left(v::text, 60)::toms.sealed FROM tap_one$$, '22T01',
	'sealed value is truncated', 'truncated value');
SELECT throws_ok($$SELECT toms.unseal(v) FROM tap_two$$, '28T01',
	'sealed value does not belong to this tenant', 'another tenant''s value does not open');
SELECT throws_ok($$SELECT toms.unseal((left(v::text, 80) || CASE WHEN substr(v::text, 81, 1) = 'A' THEN 'B' ELSE 'A' END
	|| substr(v::text, 82))::toms.sealed) FROM tap_one$$, '22T02',
	'sealed value failed authentication', 'a flipped ciphertext byte is detected');
SELECT throws_ok($$SELECT toms.unseal(toms.seal('\xff'::bytea))$$, '22021', 'sealed value is not valid text in the database encoding', 'non-text plaintext through unseal()');

SELECT toms.destroy_tenant_keys('tap_s2');
SELECT toms.set_tenant('tap_s2', true);
SELECT throws_ok($$SELECT toms.seal('x')$$, '28T02', 'the tenant''s keys have been destroyed', 'destroyed keys');
SELECT toms.clear_tenant();
SELECT throws_ok($$SELECT toms.seal('x')$$, '42501', 'no tenant context', 'no context, no sealing');

SELECT * FROM finish();
ROLLBACK;
