# Citus (issue 15, points 1 and 5): the paths a running cluster takes.
#
# (a) A Citus cluster that installed the frozen release 0.1.0 (which knew
#     nothing of Citus: toms' tables per node) and used it, updated in
#     place: ALTER EXTENSION toms UPDATE on the coordinator (Citus runs it
#     on the workers), then toms.citus_setup().  Afterwards the tenants are
#     on every node, each worker verifies a tenant context itself, the
#     shards of the table protected under 0.1.0 are filtered and guarded,
#     and the rows written under 0.1.0 are kept (docs/scaling.md,
#     "Updating a cluster from 0.1.0").
# (b) A master key rotation across the nodes (docs/encryption.md, "On
#     Citus"): refused while a worker lacks the new key, naming it; then
#     one rewrap on the coordinator reaches every node's copy of
#     toms.tenant_keys; the old key removed, every worker unseals; a worker
#     that lost the new key fails closed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use TomsCitus;

BAIL_OUT('Citus is not installed in the test installation (test/lib.sh build_citus)')
  unless citus_available();

my $work = $ENV{WORK} or die "WORK not set";
my ($key1, $key2) = ("$work/sealed/master.key", "$work/sealed/master2.key");

# --- (a) 0.1.0 on a Citus cluster ----------------------------------------

# worker1 is in the cluster before CREATE EXTENSION (Citus runs the
# statement there), worker2 joins after (citus_add_node creates the
# extension there in the coordinator's version).
my $coord = citus_node('coord');
my $w1 = citus_node('worker1');
my $w2 = citus_node('worker2');
my @workers = ([ 'worker1', $w1 ], [ 'worker2', $w2 ]);
$coord->safe_psql('postgres', sprintf(q{SELECT citus_set_coordinator_host('127.0.0.1', %d)}, $coord->port));
citus_add_worker($coord, $w1);
$coord->safe_psql('postgres', q{CREATE EXTENSION toms VERSION '0.1.0'});
citus_add_worker($coord, $w2);
my $version = q{SELECT extversion FROM pg_extension WHERE extname = 'toms'};
is(join(',', map { $_->safe_psql('postgres', $version) } ($coord, $w1, $w2)), '0.1.0,0.1.0,0.1.0',
	'CREATE EXTENSION toms VERSION 0.1.0 on the coordinator: 0.1.0 on every node (propagated, and by citus_add_node)');

# Used under 0.1.0: tenants and members on the coordinator, a table
# protected there, rows written in tenant context, then distributed.
$coord->safe_psql('postgres', q{
	CREATE ROLE owner1 LOGIN; CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
	GRANT CREATE ON SCHEMA public TO owner1;
	SELECT toms.create_tenant('acme', 'Acme'), toms.create_tenant('globex', 'Globex');
	SELECT toms.add_member('alice', 'acme'), toms.add_member('bob', 'globex');
	SET ROLE owner1;
	CREATE TABLE learners (id int, tenant_id text NOT NULL, name text, PRIMARY KEY (tenant_id, id));
	GRANT ALL ON learners TO alice, bob;
	RESET ROLE;
	SELECT toms.protect('learners');
});
for my $t ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($u, $tenant) = @$t;
	$coord->safe_psql('postgres', qq{SET toms.context = '$tenant';
		INSERT INTO learners (id, name) SELECT g, '$tenant-' || g FROM generate_series(1, 6) g},
		extra_params => [ '-U', $u ]);
}
$coord->safe_psql('postgres', q{SELECT create_distributed_table('learners', 'tenant_id')});
my $rows = q{SELECT string_agg(tenant_id || ':' || id || ':' || name, ',' ORDER BY tenant_id, id) FROM learners};
my $rows_before = $coord->safe_psql('postgres', $rows);
like($rows_before, qr/^acme:1:acme-1,.*,globex:6:globex-6$/, 'under 0.1.0: 12 rows of two tenants, distributed');

# The update, on the coordinator only: Citus runs it on every worker.
my $current = $coord->safe_psql('postgres', q{SELECT default_version FROM pg_available_extensions WHERE name = 'toms'});
isnt($current, '0.1.0', "the current version is $current");
$coord->safe_psql('postgres', 'ALTER EXTENSION toms UPDATE');
is(join(',', map { $_->safe_psql('postgres', $version) } ($coord, $w1, $w2)), "$current,$current,$current",
	"ALTER EXTENSION toms UPDATE on the coordinator: $current on every node");

# Before citus_setup the workers do not know the tenants (0.1.0 kept
# toms' tables per node).
sub ctx
{
	my ($node, $user, $tenant) = @_;
	my ($r, $o, $e) = $node->psql('postgres',
		"BEGIN; SET LOCAL toms.context = '$tenant'; SELECT toms.current_tenant(); COMMIT;",
		extra_params => [ '-U', $user ]);
	return $r == 0 ? $o : "ERROR: $e";
}
like(ctx($w1, 'alice', 'acme'), qr/role "alice" is not a member of tenant "acme"/,
	'before citus_setup: a worker does not know the tenants of 0.1.0');

$coord->safe_psql('postgres', 'SELECT toms.citus_setup()');
my $tenants = q{SELECT string_agg(tenant, ',' ORDER BY tenant) FROM toms.tenants};
for my $n ([ 'coordinator', $coord ], @workers)
{
	my ($name, $node) = @$n;
	is($node->safe_psql('postgres', $tenants), 'acme,globex', "after citus_setup: $name has the tenants of 0.1.0");
	is(ctx($node, 'alice', 'acme'), 'acme', "$name: alice's context verified there (membership from 0.1.0)");
	like(ctx($node, 'bob', 'acme'), qr/role "bob" is not a member of tenant "acme"/, "$name: bob refused acme");
}

sub as_tenant { return citus_as_tenant($coord, @_); }
is($coord->safe_psql('postgres', $rows), $rows_before, 'the rows written under 0.1.0 are kept');
is(as_tenant('alice', 'acme', q{SELECT string_agg(name, ',' ORDER BY id) FROM learners}),
	'acme-1,acme-2,acme-3,acme-4,acme-5,acme-6', 'through the coordinator: alice reads acme only (multi-shard)');
is(as_tenant('bob', 'globex', q{SELECT count(*), min(name), max(name) FROM learners}), '6|globex-1|globex-6',
	'through the coordinator: bob reads globex only');
is(as_tenant('alice', 'acme', q{SELECT count(*) FROM learners WHERE tenant_id = 'globex'}), '0',
	"router query for the other tenant's shard: nothing");
like(as_tenant('alice', 'acme', q{INSERT INTO learners (id, tenant_id, name) VALUES (7, 'globex', 'x')}),
	qr/new row violates row-level security policy/, "a write into globex's shard refused");
is(as_tenant('alice', 'acme', q{INSERT INTO learners (id, name) VALUES (7, 'acme-7'); SELECT count(*) FROM learners}),
	"7", 'alice writes a new acme row after the update');

# On each worker, directly: its shards are filtered and guarded.
my $others = 0;
for my $n (@workers)
{
	my ($name, $node) = @$n;
	my @shards = split /\n/, $node->safe_psql('postgres', q{SET citus.override_table_visibility = off;
		SELECT relname FROM pg_class WHERE relname ~ '^learners_[0-9]+$' ORDER BY 1});
	ok(@shards > 0, "$name holds shards of learners: @shards");
	my $union = join(' UNION ALL ', map { "SELECT tenant_id FROM $_" } @shards);
	my ($r, $o, $e);
	for my $t ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
	{
		my ($u, $tenant) = @$t;
		my $count = "SELECT count(*) FILTER (WHERE tenant_id = '$tenant') || '|' || count(*) FILTER (WHERE tenant_id <> '$tenant') FROM ($union) s";
		my ($own, $other) = split /\|/, $node->safe_psql('postgres', "SET citus.override_table_visibility = off; $count");
		$others += $other;
		($r, $o, $e) = $node->psql('postgres', "SET citus.override_table_visibility = off;
			BEGIN; SET LOCAL toms.context = '$tenant'; $count; COMMIT", extra_params => [ '-U', $u ]);
		is("$r:$o", "0:$own|0", "$name, $u in $tenant directly: the $own $tenant rows of its shards, none of the other $other");
	}
	($r, $o, $e) = $node->psql('postgres', "SET citus.override_table_visibility = off;
		ALTER TABLE $shards[0] NO FORCE ROW LEVEL SECURITY", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($e, qr/ERROR:  42501: cannot stop forcing row level security on protected table "$shards[0]"/,
		"$name, superuser: NO FORCE ROW LEVEL SECURITY on a shard from 0.1.0 refused");
}
ok($others > 0, "the workers' shards hold rows the direct sessions were kept from ($others)");
is(join(',', map { $_->safe_psql('postgres', $version) } ($coord, $w1, $w2)), "$current,$current,$current",
	'the nodes stay at the same version');

# --- (b) master key rotation across the nodes ----------------------------

$coord->safe_psql('postgres', q{
	SET ROLE owner1;
	CREATE TABLE secrets (id int, tenant_id text NOT NULL, v toms.sealed, PRIMARY KEY (tenant_id, id));
	GRANT ALL ON secrets TO alice, bob;
	RESET ROLE;
	SELECT create_distributed_table('secrets', 'tenant_id', colocate_with => 'learners');
	SET citus.enable_unsafe_triggers = on;
	SELECT toms.protect('secrets', sensitive => '{v}');
});
my %plain;
for my $t ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($u, $tenant) = @$t;
	as_tenant($u, $tenant, q{SELECT toms.seal('')});    # the tenant key first (docs/scaling.md)
	is(as_tenant($u, $tenant, join('; ', map { "INSERT INTO secrets (id, v) VALUES ($_, toms.seal('$tenant secret $_'))" } 1 .. 3)),
		'', "$tenant: sealed values written");
	$plain{$tenant} = join(',', map { "$tenant secret $_" } 1 .. 3);
}
my $unseal = q{SELECT string_agg(toms.unseal(v), ',' ORDER BY id) FROM secrets};
my %cipher = map { $_ => $coord->safe_psql('postgres', "SELECT v FROM secrets WHERE tenant_id = '$_' AND id = 1") }
  qw(acme globex);
my $ids = q{SELECT string_agg(DISTINCT encode(master_key_id, 'hex'), ',') FROM toms.tenant_keys WHERE status <> 'destroyed'};
my $id1 = $coord->safe_psql('postgres', $ids);
like($id1, qr/^[0-9a-f]{16}$/, 'the tenant keys are wrapped under one master key');

# Restart nodes with settings appended to postgresql.conf.
sub restart_with
{
	my ($conf, @nodes) = @_;
	for my $node (@nodes)
	{
		$node->append_conf('postgresql.conf', $conf);
		$node->restart;
	}
}
# Unseal on a node directly, as the tenant's role, a value read on the
# coordinator: the node's own copy of the tenant key and its master key.
sub unseal_on
{
	my ($node, $u, $tenant) = @_;
	my ($r, $o, $e) = $node->psql('postgres',
		"BEGIN; SET LOCAL toms.context = '$tenant'; SELECT toms.unseal('$cipher{$tenant}'::toms.sealed); COMMIT",
		extra_params => [ '-U', $u, '-v', 'VERBOSITY=verbose' ]);
	return $r == 0 ? $o : "ERROR: $e";
}

# Step 1 done on the coordinator and worker1 only: worker2 lacks the new
# key.  The rotation is refused, naming worker2; nothing is rewrapped.
restart_with("toms.master_key_file = '$key2'\ntoms.previous_master_key_file = '$key1'\n", $coord, $w1);
my ($r, $o, $e) = $coord->psql('postgres', 'SELECT toms.rotate_master_key()', extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($e, qr/ERROR:  55000: Citus node 127\.0\.0\.1:${\ $w2->port} does not have the master key of the coordinator/,
	'rotate_master_key() refused while worker2 lacks the new key (55000, naming worker2)');
is(join(',', map { $_->safe_psql('postgres', $ids) } ($coord, $w1, $w2)), "$id1,$id1,$id1",
	'nothing rewrapped on any node');
is(unseal_on($w2, 'alice', 'acme'), 'acme secret 1', 'worker2 still unseals under the old key');
($r, $o, $e) = $w1->psql('postgres', 'SELECT toms.rotate_master_key()');
like($e, qr/toms.rotate_master_key\(\) must run on the coordinator/, 'rotate_master_key() refused on a worker');

# Every node has both keys: one rotation on the coordinator reaches every
# node's copy of toms.tenant_keys.
restart_with("toms.master_key_file = '$key2'\ntoms.previous_master_key_file = '$key1'\n", $w2);
is($coord->safe_psql('postgres', 'SELECT toms.rotate_master_key()'), '2', 'rotate_master_key() on the coordinator: two tenant keys rewrapped');
my $id2 = $coord->safe_psql('postgres', $ids);
like($id2, qr/^[0-9a-f]{16}$/, 'one master key id after the rotation');
isnt($id2, $id1, 'a new master key id');
for my $n (@workers)
{
	my ($name, $node) = @$n;
	is($node->safe_psql('postgres', $ids), $id2, "$name: its copy of toms.tenant_keys carries the new master key id");
}
is($coord->safe_psql('postgres', 'SELECT toms.rotate_master_key()'), '0', 'a second rotation rewraps nothing');

# The previous key removed on every node.
restart_with("toms.previous_master_key_file = ''\n", $coord, $w1, $w2);
for my $n (@workers)
{
	my ($name, $node) = @$n;
	is(unseal_on($node, 'alice', 'acme'), 'acme secret 1', "$name, alice directly: unsealed under the new key alone");
	is(unseal_on($node, 'bob', 'globex'), 'globex secret 1', "$name, bob directly: unsealed under the new key alone");
	like(unseal_on($node, 'bob', 'acme'), qr/role "bob" is not a member of tenant "acme"/, "$name: bob still refused acme");
}
for my $t ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($u, $tenant) = @$t;
	is(as_tenant($u, $tenant, $unseal), $plain{$tenant}, "$tenant through the coordinator: every value unsealed on the workers");
}
is(as_tenant('alice', 'acme', q{INSERT INTO secrets (id, v) VALUES (4, toms.seal('acme secret 4'));
	SELECT toms.unseal(v) FROM secrets WHERE id = 4}), 'acme secret 4', 'a new value sealed and opened after the rotation');

# A worker that lost the new key (started with the old one alone): it
# fails closed, directly and through the coordinator, and opens nothing.
restart_with("toms.master_key_file = '$key1'\n", $w2);
like(unseal_on($w2, 'alice', 'acme'), qr/ERROR:  55000: tenant key is wrapped under a master key that is not loaded/,
	'worker2 without the new key: unseal refused (55000)');
unlike(unseal_on($w2, 'alice', 'acme'), qr/acme secret/, 'worker2 without the new key: nothing unsealed');
# (Citus evaluates the tenant filter on the coordinator and routes each
# tenant's query to the worker holding its shard.)
my %port = (map { $_->[0] => $_->[1]->port } @workers);
my %on = map {
	my $t = $_;
	$t => $coord->safe_psql('postgres', qq{SELECT nodeport FROM pg_dist_shard_placement
		WHERE shardid = get_shard_id_for_distribution_column('secrets', '$t')})
} qw(acme globex);
ok(grep({ $_ == $w2->port } values %on), "a tenant's shard of secrets is on worker2 (acme: $on{acme}, globex: $on{globex})");
for my $t ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($u, $tenant) = @$t;
	my $got = as_tenant($u, $tenant, $unseal);
	if ($on{$tenant} == $w2->port)
	{
		like($got, qr/tenant key is wrapped under a master key that is not loaded.*while executing command on 127\.0\.0\.1:$port{worker2}/s,
			"$tenant through the coordinator: its shard on worker2 refuses, naming worker2");
		unlike($got, qr/secret/, "$tenant through the coordinator: nothing unsealed");
	}
	else
	{
		is($got, $plain{$tenant} . ($tenant eq 'acme' ? ',acme secret 4' : ''),
			"$tenant through the coordinator: its shard on worker1 still opens");
	}
}
is(unseal_on($w1, 'alice', 'acme'), 'acme secret 1', 'worker1 keeps unsealing');

$_->stop for ($w2, $w1, $coord);
done_testing();
