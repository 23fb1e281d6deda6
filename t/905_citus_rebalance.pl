# Citus (issue 15): rebalance_table_shards() of colocated protected tables
# with foreign keys between them and sealed columns, after a third worker
# joined.  The rebalancer moves shard groups with Citus' own sessions,
# which the guard lets pass; afterwards every shard, the moved ones on the
# new worker included, is filtered and guarded: the app role sees only
# its tenant, through the coordinator and directly on each worker, and
# the table owner and the worker's superuser may not weaken a shard.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use TomsCitus;

my ($coord, $w1, $w2) = citus_cluster();
my @tenants = ([ 'alice', 'acme' ], [ 'bob', 'globex' ], [ 'carol', 'initech' ]);
$coord->safe_psql('postgres', join('', map { "CREATE ROLE $_->[0] LOGIN; SELECT toms.create_tenant('$_->[1]', '$_->[1]');
	SELECT toms.add_member('$_->[0]', '$_->[1]');" } @tenants) . q{
	CREATE ROLE owner1 LOGIN;
	GRANT CREATE ON SCHEMA public TO owner1;
	SET ROLE owner1;
	CREATE TABLE learners (id int, tenant_id text NOT NULL, name text, PRIMARY KEY (tenant_id, id));
	CREATE TABLE courses (id int, tenant_id text NOT NULL, title text, PRIMARY KEY (tenant_id, id));
	CREATE TABLE enrolments (tenant_id text NOT NULL, learner int, course int, note toms.sealed,
		PRIMARY KEY (tenant_id, learner, course),
		FOREIGN KEY (tenant_id, learner) REFERENCES learners,
		FOREIGN KEY (tenant_id, course) REFERENCES courses);
	GRANT ALL ON learners, courses, enrolments TO alice, bob, carol;
	RESET ROLE;
	SELECT toms.protect('learners');
	-- the owner's own restrictive policy (the guard allows it on one node:
	-- it can only narrow the filter)
	SET ROLE owner1;
	CREATE POLICY a_owner_rule ON learners AS RESTRICTIVE FOR SELECT USING (true);
	CREATE POLICY z_owner_rule ON learners AS RESTRICTIVE FOR SELECT USING (true);
	RESET ROLE;
});
# Citus re-creates a table's policies on its shards without AS
# RESTRICTIVE: a permissive USING (true) would open every tenant's rows.
# Refused on the workers, whichever Citus creates first (toms_tenant or
# the owner's policy: "z_" comes first, "a_" after); the distribution
# fails and leaves nothing.
my ($ret, $out, $err) = $coord->psql('postgres', q{SELECT create_distributed_table('learners', 'tenant_id')});
like($err, qr/cannot create policy "toms_tenant" on table "learners_\d+" with a permissive policy of its own/,
	'distributing a protected table with a restrictive policy of its own: refused on the worker');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'learners'::regclass}),
	'0', 'learners is not distributed');
$coord->safe_psql('postgres', q{SET ROLE owner1; DROP POLICY z_owner_rule ON learners; RESET ROLE});
($ret, $out, $err) = $coord->psql('postgres', q{SELECT create_distributed_table('learners', 'tenant_id')});
like($err, qr/cannot create a permissive policy on protected table "learners_\d+"/,
	'the same with a policy Citus creates after toms_tenant: refused');
$coord->safe_psql('postgres', q{SET ROLE owner1; DROP POLICY a_owner_rule ON learners; RESET ROLE});
$coord->safe_psql('postgres', q{
	SELECT create_distributed_table('learners', 'tenant_id');
	SELECT create_distributed_table('courses', 'tenant_id', colocate_with => 'learners');
	SELECT toms.protect('courses');
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('enrolments', 'tenant_id', colocate_with => 'learners');
	SELECT toms.protect('enrolments', sensitive => '{note}');
});

sub as_tenant { return citus_as_tenant($coord, @_); }
for my $t (@tenants)
{
	my ($u, $tenant) = @$t;
	as_tenant($u, $tenant, q{SELECT toms.seal('')});    # the tenant key first (docs/scaling.md)
	for my $i (1 .. 3)
	{
		is(as_tenant($u, $tenant, "INSERT INTO learners (id, name) VALUES ($i, '$tenant-$i');
			INSERT INTO courses (id, title) VALUES ($i, '$tenant-c$i');
			INSERT INTO enrolments (learner, course, note) VALUES ($i, $i, toms.seal('$tenant-note-$i'))"),
			'', "$tenant: rows $i written");
	}
}

# A third worker joins; toms' tables are copied to it.
my $w3 = citus_node('worker3');
citus_add_worker($coord, $w3);
$coord->safe_psql('postgres', 'SELECT toms.citus_setup()');
my @workers = ($w1, $w2, $w3);
my %own;
my $placements = q{SELECT count(*) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
	JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = 'learners'::regclass AND n.nodeport = };
is($coord->safe_psql('postgres', $placements . $w3->port), '0', 'the new worker holds no shard yet');

($ret, $out, $err) = $coord->psql('postgres', q{SELECT rebalance_table_shards();
	CALL citus_cleanup_orphaned_resources();});
is($ret, 0, 'rebalance_table_shards() of protected tables with foreign keys and sealed columns');
unlike($err, qr/WARNING|ERROR/, 'no warning (rebalance)') or diag $err;
ok($coord->safe_psql('postgres', $placements . $w3->port) > 0, 'the rebalancer moved shards to the new worker');

# Through the coordinator: each tenant its own rows, joins, sealed values.
for my $t (@tenants)
{
	my ($u, $tenant) = @$t;
	is(as_tenant($u, $tenant, q{SELECT string_agg(l.name || '/' || c.title || '/' || toms.unseal(e.note), ',' ORDER BY l.id)
		FROM enrolments e JOIN learners l ON l.tenant_id = e.tenant_id AND l.id = e.learner
		JOIN courses c ON c.tenant_id = e.tenant_id AND c.id = e.course}),
		join(',', map { "$tenant-$_/$tenant-c$_/$tenant-note-$_" } 1 .. 3),
		"after the rebalance, $u through the coordinator: own rows, joined, unsealed");
}
like(as_tenant('alice', 'acme', 'INSERT INTO enrolments (learner, course) VALUES (1, 99)'),
	qr/violates foreign key constraint/, 'after the rebalance: the foreign keys hold');
like(as_tenant('alice', 'acme', q{INSERT INTO learners (id, tenant_id, name) VALUES (9, 'globex', 'x')}),
	qr/new row violates row-level security policy/, 'after the rebalance: a write into another tenant refused');

# Directly on each worker: every shard, moved or not, filtered and guarded.
for my $i (0 .. $#workers)
{
	my $w = $workers[$i];
	my $name = 'worker' . ($i + 1);
	my @shards = split /\n/, $w->safe_psql('postgres', q{SET citus.override_table_visibility = off;
		SELECT relname FROM pg_class WHERE relname ~ '^(learners|courses|enrolments)_[0-9]+$' AND relkind = 'r' ORDER BY 1});
	ok(@shards > 0, "$name holds shards (@shards)");
	is($w->safe_psql('postgres', q{SET citus.override_table_visibility = off;
		SELECT count(*) FILTER (WHERE NOT convalidated) FROM pg_constraint
		 WHERE contype = 'f' AND conrelid::regclass::text ~ '^enrolments_[0-9]+$'}),
		'0', "$name: the foreign keys of its enrolments shards are valid");
	for my $t (@tenants)
	{
		my ($u, $tenant) = @$t;
		my ($r, $o, $e) = $w->psql('postgres', "SET citus.override_table_visibility = off; BEGIN;
			SET LOCAL toms.context = '$tenant'; SELECT "
			  . join(' + ', map { "(SELECT count(*) FILTER (WHERE tenant_id <> '$tenant') FROM $_)" } @shards)
			  . ', '
			  . join(' + ', map { "(SELECT count(*) FROM $_)" } @shards)
			  . '; COMMIT;', extra_params => [ '-U', $u ]);
		my ($other, $own) = split /\|/, $o;
		is($other, '0', "$name, $u directly: no row of another tenant in any shard");
		$own{$tenant} += $own // 0;
	}
	my ($r, $o, $e) = $w->psql('postgres', "SET citus.override_table_visibility = off; SELECT count(*) FROM $shards[0]",
		extra_params => [ '-U', 'alice' ]);
	like($e, qr/no tenant context/, "$name, app role without a context: refused");
	($r, $o, $e) = $w->psql('postgres', "SET citus.override_table_visibility = off; SELECT count(*) FROM $shards[0]",
		extra_params => [ '-U', 'owner1' ]);
	like($e, qr/no tenant context/, "$name, owner: refused");
	for my $u ('owner1', 'postgres')
	{
		for my $c ([ "DROP POLICY toms_tenant ON $shards[0]", qr/cannot drop policy "toms_tenant" on protected table "$shards[0]"/ ],
			[ "ALTER TABLE $shards[0] DISABLE ROW LEVEL SECURITY", qr/cannot disable row level security on protected table "$shards[0]"/ ],
			[ "SET citus.enable_manual_changes_to_shards = on; DROP TABLE $shards[0]", qr/cannot drop protected table "$shards[0]"/ ])
		{
			($r, $o, $e) = $w->psql('postgres', "SET citus.override_table_visibility = off; $c->[0]",
				extra_params => [ '-U', $u, '-v', 'VERBOSITY=verbose' ]);
			like($e, qr/ERROR:  42501: .*$c->[1]/s, "$name, $u: $c->[0] refused (42501)");
		}
	}
}

is_deeply(\%own, { map { $_->[1] => 9 } @tenants },
	'directly on the workers, each tenant finds its 9 rows, spread over the shards');

# The moved shards on the new worker keep the sealed-column check.
my $ct = as_tenant('alice', 'acme', q{SELECT note FROM enrolments WHERE learner = 1});
like(as_tenant('bob', 'globex', "INSERT INTO learners (id, name) VALUES (7, 'g7'); INSERT INTO courses (id, title) VALUES (7, 'c7');
	INSERT INTO enrolments (learner, course, note) VALUES (7, 7, '$ct')"),
	qr/value for column "note" is not sealed for the row's tenant/,
	"after the rebalance: another tenant's ciphertext refused");

done_testing();
