# Citus (issue 15, point 1): one toms installation across a coordinator and
# two workers.  Administrative acts run on the coordinator take effect on
# every node in the same distributed transaction; each worker verifies the
# tenant context itself against them; a worker that cannot be reached
# fails the act everywhere; a node added or re-activated later receives
# them from the coordinator's lifecycle worker, with no manual step, and
# fails closed until then.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use TomsCitus;

my ($coord, $w1, $w2) = citus_cluster(no_setup => 1);

# Roles created before anything else on the coordinator only, so role
# OIDs differ between the nodes (a membership copied as an OID would name
# another role, or none, on a worker).
$coord->safe_psql('postgres', q{
	SET citus.enable_ddl_propagation = off;
	CREATE ROLE regress_coord_only1; CREATE ROLE regress_coord_only2;
});
$coord->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE app LOGIN;
	GRANT toms_app TO app;
	SELECT toms.create_tenant('acme', 'Acme');
	SELECT toms.add_member('alice', 'acme');
});
isnt($coord->safe_psql('postgres', q{SELECT 'alice'::regrole::oid}),
	$w1->safe_psql('postgres', q{SELECT 'alice'::regrole::oid}),
	'role OIDs differ between coordinator and worker');

# Before setup the tables are per node: the worker does not know acme.
my ($ret, $out, $err) = $w1->psql('postgres',
	q{SET toms.context = 'acme'; SELECT toms.current_tenant()}, extra_params => [ '-U', 'alice' ]);
like($err, qr/role "alice" is not a member of tenant "acme"/, 'before citus_setup a worker does not know the tenant (and, to a non-member, does not say whether it exists)');

# citus_setup() refuses what would not work, saying why.
($ret, $out, $err) = $coord->psql('postgres',
	'SET citus.enable_binary_protocol = on; SELECT toms.citus_setup()', extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  55000: citus.enable_binary_protocol must be off on every node/,
	'citus_setup() refuses with the binary protocol on (55000)');
($ret, $out, $err) = $w1->psql('postgres', 'SELECT toms.citus_setup()');
like($err, qr/toms.citus_setup\(\) must run on the coordinator/, 'citus_setup() refuses on a worker');

$coord->safe_psql('postgres', 'SELECT toms.citus_setup()');
is($coord->safe_psql('postgres', q{
	SELECT string_agg(logicalrelid::text, ',' ORDER BY logicalrelid::text) FROM pg_dist_partition
	 WHERE partmethod = 'n' AND logicalrelid::text LIKE 'toms.%'}),
	'toms.deletion_requests,toms.grants,toms.holds,toms.members,toms.retention,toms.tenant_keys,toms.tenants,toms.trusted_keys',
	'toms.citus_setup() made the administrative tables reference tables');
$coord->safe_psql('postgres', 'SELECT toms.citus_setup()');
pass('toms.citus_setup() runs again');

# Acts after setup, on the coordinator.
$coord->safe_psql('postgres', q{
	SELECT toms.create_tenant('globex', 'Globex');
	SELECT toms.add_member('bob', 'globex');
	CREATE EXTENSION toms_test;
	CREATE TABLE k AS SELECT * FROM toms_test.keypair(decode(repeat('42', 32), 'hex'));
	SELECT toms.trust_key('regress-citus', public_key) FROM k;
});
my $token = $coord->safe_psql('postgres',
	q{SELECT toms_test.mint_claims(secret_key, 'globex', 'carol', '1 hour', 'regress-citus') FROM k});

# Every node: a member enters its tenant, not another; a token is verified.
sub ctx
{
	my ($node, $user, $context) = @_;
	my ($r, $o, $e) = $node->psql('postgres',
		"BEGIN; SET LOCAL toms.context = '$context'; SELECT toms.current_tenant(); COMMIT;",
		extra_params => [ '-U', $user ]);
	return $r == 0 ? $o : "ERROR: $e";
}
for my $n ([ 'coordinator', $coord ], [ 'worker1', $w1 ], [ 'worker2', $w2 ])
{
	my ($name, $node) = @$n;
	is(ctx($node, 'alice', 'acme'), 'acme', "$name: alice enters acme (member since before setup)");
	is(ctx($node, 'bob', 'globex'), 'globex', "$name: bob enters globex (member added after setup)");
	like(ctx($node, 'bob', 'acme'), qr/role "bob" is not a member of tenant "acme"/,
		"$name: bob cannot enter acme");
	is(ctx($node, 'app', $token), 'globex', "$name: a token signed by a key trusted on the coordinator");
}

# Tenant keys: the key a seal() on the coordinator creates, and the one a
# rotation adds, are on every node (one master key), so a worker unseals.
sub in_tenant
{
	my ($node, $user, $tenant, $sql) = @_;
	my ($r, $o, $e) = $node->psql('postgres', "BEGIN; SET LOCAL toms.context = '$tenant'; $sql; COMMIT;",
		extra_params => [ '-U', $user ]);
	return $r == 0 ? $o : "ERROR: $e";
}
my $sealed1 = in_tenant($coord, 'alice', 'acme', q{SELECT toms.seal('secret one')});
like($sealed1, qr/^\S+$/, 'coordinator: seal() created the tenant key');
is(in_tenant($w1, 'alice', 'acme', "SELECT toms.unseal('$sealed1'::toms.sealed)"), 'secret one',
	'worker1 unseals with the key created on the coordinator');
$coord->safe_psql('postgres', q{SELECT toms.rotate_tenant_key('acme', start_worker => false)});
my $sealed2 = in_tenant($coord, 'alice', 'acme', q{SELECT toms.seal('secret two')});
is(in_tenant($w2, 'alice', 'acme', "SELECT toms.sealed_key_version('$sealed2'::toms.sealed) || ':' || toms.unseal('$sealed2'::toms.sealed)"),
	'2:secret two', 'worker2 unseals with the key rotated on the coordinator');
is($w2->safe_psql('postgres', q{SELECT count(*) FROM toms.tenant_keys WHERE tenant = 'acme' AND purpose = 'data'}),
	'2', 'worker2 holds both key versions');

# remove_member on the coordinator: the worker refuses at once, also in a
# session that had verified the context before.
my $bg = $w2->background_psql('postgres', extra_params => [ '-U', 'bob' ], on_error_stop => 0);
is($bg->query_safe(q{BEGIN; SET LOCAL toms.context = 'globex'; SELECT toms.current_tenant(); COMMIT;}),
	'globex', 'worker2 session: bob in globex');
$coord->safe_psql('postgres', q{SELECT toms.remove_member('bob', 'globex')});
$bg->query(q{BEGIN; SET LOCAL toms.context = 'globex'; SELECT toms.current_tenant();});
my $bgerr = $bg->{stderr};
$bg->query('ROLLBACK');
like($bgerr, qr/role "bob" is not a member of tenant "globex"/,
	'worker2 session: membership removed on the coordinator is gone at once');
$bg->quit;
# Grants made and revoked by an administrator who is not a superuser: every
# node's copy names that administrator (not the connection's user), and a
# revocation reaches every node.
$coord->safe_psql('postgres', q{CREATE ROLE regress_citus_admin LOGIN IN ROLE toms_admin});
my $gid = $coord->safe_psql('postgres',
	q{SELECT toms.grant_access('bob', 'globex', 'ticket 42', interval '1 hour')},
	extra_params => [ '-U', 'regress_citus_admin' ]);
is(ctx($w1, 'bob', 'globex'), 'globex', 'worker1: a grant made on the coordinator admits bob');
$coord->safe_psql('postgres', q{SELECT toms.grant_access('bob', 'globex', 'ticket 43', interval '1 hour')},
	extra_params => [ '-U', 'regress_citus_admin' ]);
$coord->safe_psql('postgres', "SELECT toms.revoke_access($gid)",
	extra_params => [ '-U', 'regress_citus_admin' ]);
for my $n ([ 'coordinator', $coord ], [ 'worker1', $w1 ], [ 'worker2', $w2 ])
{
	is($n->[1]->safe_psql('postgres',
			"SELECT granted_by || '/' || coalesce(revoked_by::text, '-') || '/' || (revoked_at IS NOT NULL) FROM toms.grants WHERE id = $gid"),
		'regress_citus_admin/regress_citus_admin/true',
		"$n->[0]: the revoked grant names its administrator");
}
$coord->safe_psql('postgres', q{SELECT toms.distrust_key('regress-citus')});
like(ctx($w2, 'app', $token), qr/ERROR/, 'worker2: a key distrusted on the coordinator is refused');

# A worker that cannot be reached: the act fails, naming the node, and
# nothing is applied anywhere.
$w2->stop;
($ret, $out, $err) = $coord->psql('postgres', q{SELECT toms.create_tenant('initech', 'Initech')});
isnt($ret, 0, 'create_tenant with worker2 down fails');
like($err, qr/127\.0\.0\.1:${\ $w2->port}/, 'the error names the unreachable node');
$w2->start;
for my $n ([ 'coordinator', $coord ], [ 'worker1', $w1 ], [ 'worker2', $w2 ])
{
	is($n->[1]->safe_psql('postgres', q{SELECT count(*) FROM toms.tenants WHERE tenant = 'initech'}),
		'0', "$n->[0]: the failed create_tenant left nothing");
}
$coord->safe_psql('postgres', q{SELECT toms.create_tenant('initech', 'Initech')});
is($w2->safe_psql('postgres', q{SELECT count(*) FROM toms.tenants WHERE tenant = 'initech'}),
	'1', 'with worker2 back, create_tenant reaches it');

# A node added after tenants, members and keys exist comes up to date with
# no manual step: the coordinator's lifecycle worker asks Citus to copy
# toms' tables to it (replicate_reference_tables).  Until the copy lands
# the node fails closed; a session holding the lifecycle worker's lock
# keeps the worker out meanwhile, so that the window can be seen.
my $lifecycle_lock = q{SELECT pg_advisory_lock(hashtext('toms lifecycle worker'))};
my $w3 = citus_node('worker3');
my $w3name = '127.0.0.1:' . $w3->port;
$w3->safe_psql('postgres', q{
	SET citus.enable_ddl_propagation = off;
	CREATE ROLE regress_w3_only1; CREATE ROLE regress_w3_only2; CREATE ROLE regress_w3_only3;
});
my $hold = $coord->background_psql('postgres');
$hold->query_safe($lifecycle_lock);
citus_add_worker($coord, $w3);
is($coord->safe_psql('postgres', q{SELECT toms._citus_nodes_without_copy()}), "{$w3name}",
	'the coordinator sees that worker3 (just added) has no copy of toms\' tables');
like(ctx($w3, 'alice', 'acme'), qr/toms' administrative tables have no copy on this node/,
	'worker3, before the copy lands: alice\'s context is refused (fails closed)');
like(ctx($w3, 'bob', 'acme'), qr/toms' administrative tables have no copy on this node/,
	'worker3, before the copy lands: so is a non-member\'s');
my $logpos = -s $coord->logfile;
$hold->quit;
ok(poll_until($coord, q{SELECT cardinality(toms._citus_nodes_without_copy())}, '0'),
	'the lifecycle worker copied toms\' tables to worker3, with no manual step');
is(ctx($w3, 'alice', 'acme'), 'acme', 'worker3 (added later): alice enters acme');
like(ctx($w3, 'alice', 'globex'), qr/role "alice" is not a member of tenant "globex"/,
	'worker3: alice cannot enter globex');
is($w3->safe_psql('postgres', q{SELECT string_agg(tenant, ',' ORDER BY tenant) FROM toms.tenants}),
	'acme,globex,initech', 'worker3 has every tenant');
ok($coord->wait_for_log(
		qr/toms lifecycle worker copied toms' administrative tables to Citus node \Q$w3name\E/, $logpos),
	'the coordinator\'s log names the node the tables were copied to');

# A node disabled and re-activated: administrative acts skip it while it is
# disabled, so its old copy is stale.  Re-activated, it fails closed until
# the lifecycle worker has copied the tables again, then it is up to date.
$coord->safe_psql('postgres', q{SELECT toms.add_member('bob', 'acme')});
is(ctx($w3, 'bob', 'acme'), 'acme', 'worker3: bob, made a member of acme, enters it');
$hold = $coord->background_psql('postgres');
$hold->query_safe($lifecycle_lock);
$coord->safe_psql('postgres',
	sprintf(q{SELECT citus_disable_node('127.0.0.1', %d, synchronous => true)}, $w3->port));
$coord->safe_psql('postgres', q{SELECT toms.remove_member('bob', 'acme')});
note 'while disabled: ', ctx($w3, 'bob', 'acme');
$coord->safe_psql('postgres', sprintf(q{SELECT citus_activate_node('127.0.0.1', %d)}, $w3->port));
is($coord->safe_psql('postgres', q{SELECT toms._citus_nodes_without_copy()}), "{$w3name}",
	'worker3, re-activated, has no copy of toms\' tables in the metadata');
like(ctx($w3, 'bob', 'acme'), qr/toms' administrative tables have no copy on this node/,
	'worker3, re-activated, before the copy lands: bob (removed meanwhile) is refused, fails closed');
# A copy that fails (here: worker3 is down) is logged, naming the node, and
# retried at the next round.
$w3->stop;
$logpos = -s $coord->logfile;
$hold->quit;
ok($coord->wait_for_log(
		qr/WARNING:  toms lifecycle worker could not copy toms' administrative tables to Citus node \Q$w3name\E/,
		$logpos),
	'a copy that fails (worker3 down) is logged, naming the node');
$w3->start;
ok(poll_until($coord, q{SELECT cardinality(toms._citus_nodes_without_copy())}, '0'),
	'the lifecycle worker retried and copied toms\' tables to worker3 again');
like(ctx($w3, 'bob', 'acme'), qr/role "bob" is not a member of tenant "acme"/,
	'worker3, up to date: bob, removed while it was disabled, cannot enter acme');
is(ctx($w3, 'alice', 'acme'), 'acme', 'worker3, up to date: alice enters acme');

# A node without toms preloaded cannot join: citus_add_node fails, naming it.
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->append_conf('postgresql.conf', "shared_preload_libraries = 'citus'\nlisten_addresses = '127.0.0.1'\nmax_prepared_transactions = 10\n");
$bare->start;
$bare->safe_psql('postgres', 'CREATE EXTENSION citus');
($ret, $out, $err) = $coord->psql('postgres',
	sprintf(q{SELECT citus_add_node('127.0.0.1', %d)}, $bare->port));
isnt($ret, 0, 'a node without toms preloaded is not added');
like($err, qr/toms must be loaded via shared_preload_libraries/,
	'the error says toms must be preloaded');
like($err, qr/127\.0\.0\.1:${\ $bare->port}/, 'and names the node');
note $err;

done_testing();
