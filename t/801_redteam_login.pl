# Red team, with real logins (what pgTAP's SET SESSION AUTHORIZATION cannot
# show): a non-superuser login cannot take another identity, and a pooled
# connection must be reset between tenants -- a WITH HOLD cursor survives
# COMMIT and a change of tenant context (documented limit), DISCARD ALL
# removes it.
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

# The pool: client 1 (tenant rt_a) leaves a WITH HOLD cursor behind; the
# pool switches the connection to tenant rt_b for client 2.
$out = $node->safe_psql('postgres', q{
	SELECT toms.set_tenant('rt_a');
	BEGIN;
	DECLARE c1 CURSOR WITH HOLD FOR SELECT body FROM notes ORDER BY id;
	COMMIT;
	SELECT toms.set_tenant('rt_b');
	SELECT string_agg(body, ',') FROM notes;
	FETCH ALL FROM c1;
}, extra_params => [ '-U', 'regress_rt_pool' ]);
like($out, qr/^B-100$/m, 'client 2 (rt_b) sees only rt_b through queries');
like($out, qr/^A-1$/m,
	'documented limit: a WITH HOLD cursor opened under rt_a still yields rt_a rows after the switch');

($ret, $out, $err) = $node->psql('postgres', q{
	SELECT toms.set_tenant('rt_a');
	BEGIN;
	DECLARE c1 CURSOR WITH HOLD FOR SELECT body FROM notes ORDER BY id;
	COMMIT;
	DISCARD ALL;
	SELECT toms.current_tenant(true) IS NULL AS context_gone;
	FETCH ALL FROM c1;
}, extra_params => [ '-U', 'regress_rt_pool' ]);
like($out, qr/^t$/m, 'DISCARD ALL (a pool\'s reset query) clears toms.context');
like($err, qr/cursor "c1" does not exist/, 'DISCARD ALL closes the held cursor');

$node->stop;
done_testing();
