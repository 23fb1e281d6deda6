# Red team, with real logins (what pgTAP's SET SESSION AUTHORIZATION cannot
# show): a non-superuser login cannot take another identity; on a pooled
# connection no cursor carries one tenant's rows to the next client (WITH
# HOLD is refused, a cursor read under another tenant fails) and DISCARD
# ALL clears the context.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('redteam');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	CREATE ROLE regress_rt_eve LOGIN;
	CREATE ROLE regress_rt_alice LOGIN;
	CREATE ROLE regress_rt_pool LOGIN;
	SELECT toms.create_tenant('rt_a', 'A'), toms.create_tenant('rt_b', 'B');
	SELECT toms.add_member('regress_rt_eve', 'rt_b'), toms.add_member('regress_rt_alice', 'rt_a'),
	       toms.add_member('regress_rt_pool', 'rt_a'), toms.add_member('regress_rt_pool', 'rt_b');
	CREATE TABLE notes (id int PRIMARY KEY, tenant_id text NOT NULL, body text);
	GRANT SELECT, INSERT ON notes TO regress_rt_eve, regress_rt_alice, regress_rt_pool;
	SELECT toms.protect('notes');
	SET toms.context = 'rt_a';
	INSERT INTO notes (id, body) SELECT g, 'A-' || g FROM generate_series(1, 5) g;
	SET toms.context = 'rt_b';
	INSERT INTO notes (id, body) VALUES (100, 'B-100');
});

# A non-superuser login cannot switch identity.
my ($ret, $out, $err) = $node->psql('postgres', 'SET SESSION AUTHORIZATION regress_rt_alice',
	extra_params => [ '-U', 'regress_rt_eve' ]);
isnt($ret, 0, 'SET SESSION AUTHORIZATION from a non-superuser login fails');
like($err, qr/permission denied to set session authorization/, '... with permission denied');
($ret, $out, $err) = $node->psql('postgres', 'SET ROLE regress_rt_alice',
	extra_params => [ '-U', 'regress_rt_eve' ]);
like($err, qr/permission denied to set role/, 'SET ROLE to a non-granted role fails');
($ret, $out, $err) = $node->psql('postgres',
	"SET toms.context = 'rt_a'; SELECT count(*) FROM notes",
	extra_params => [ '-U', 'regress_rt_eve' ]);
like($err, qr/is not a member of tenant "rt_a"/, 'a real login naming a foreign tenant is refused');

# The pool: client 1 (tenant rt_a) would leave a WITH HOLD cursor behind
# for the next client on the connection: refused when it is declared.
($ret, $out, $err) = $node->psql('postgres', q{
	BEGIN;
	SET LOCAL toms.context = 'rt_a';
	DECLARE c1 CURSOR WITH HOLD FOR SELECT body FROM notes ORDER BY id;
	COMMIT;
	SET toms.context = 'rt_b';
	FETCH ALL FROM c1;
}, extra_params => [ '-U', 'regress_rt_pool' ]);
like($err, qr/cursor "c1" cannot be declared WITH HOLD: it reads protected table "notes"/,
	'a WITH HOLD cursor on a protected table is refused');
unlike($out, qr/A-1/, '... and no rt_a row reaches the next client');

# Inside one transaction: a cursor opened under rt_a, the context switched.
($ret, $out, $err) = $node->psql('postgres', q{
	BEGIN;
	SELECT toms.set_tenant('rt_a', true);
	DECLARE c2 CURSOR FOR SELECT body FROM notes ORDER BY id;
	FETCH 1 FROM c2;
	SELECT toms.set_tenant('rt_b', true);
	SELECT string_agg(body, ',') FROM notes;
	FETCH ALL FROM c2;
	COMMIT;
}, extra_params => [ '-U', 'regress_rt_pool' ]);
like($out, qr/^A-1$/m, 'the cursor reads under the tenant it was opened under');
like($out, qr/^B-100$/m, 'after the switch, queries see only rt_b');
like($err, qr/cursor "c2" was opened under another tenant context/,
	'reading the cursor under rt_b is refused');
unlike($out, qr/A-2/, '... and no further rt_a row is returned');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM toms.audit_log
	 WHERE kind = 'denied' AND action = 'cursor read under another tenant context'
	   AND tenant = 'rt_b' AND session_role = 'regress_rt_pool' AND relname = 'public.notes'}),
	'the refusal is audited');

($ret, $out, $err) = $node->psql('postgres', q{
	SELECT toms.set_tenant('rt_a');
	DISCARD ALL;
	SELECT toms.current_tenant(true) IS NULL AS context_gone;
}, extra_params => [ '-U', 'regress_rt_pool' ]);
like($out, qr/^t$/m, 'DISCARD ALL (a pool\'s reset query) clears toms.context');

$node->stop;
done_testing();
