# Citus (issue 15): docs/tenancy.md's list "What nobody can do to a
# protected table", run against a shard on a worker, in direct sessions of
# the table owner and of the worker's superuser.  Citus' own protection of
# shards is switched off in the session (citus.enable_manual_changes_to_shards
# = on, citus.override_table_visibility = off, citus.enable_ddl_propagation =
# off), so that what refuses each attack is toms.  After each attack the
# shard still holds every row, its row security is enabled and forced and
# toms' policy is intact, and the app role still sees only its tenant's rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use TomsCitus;

my ($coord, $w1, $w2) = citus_cluster();
$coord->safe_psql('postgres', q{
	CREATE ROLE owner1 LOGIN; CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
	GRANT CREATE ON SCHEMA public TO owner1;
	SELECT toms.create_tenant('acme', 'Acme'); SELECT toms.create_tenant('globex', 'Globex');
	SELECT toms.add_member('alice', 'acme'); SELECT toms.add_member('bob', 'globex');
	SET ROLE owner1;
	CREATE TABLE learners (id int, tenant_id text NOT NULL, name text, PRIMARY KEY (tenant_id, id));
	GRANT ALL ON learners TO alice, bob;
	RESET ROLE;
	SELECT create_distributed_table('learners', 'tenant_id', shard_count => 1);
	SELECT toms.protect('learners');
});
for my $t ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($u, $tenant) = @$t;
	citus_as_tenant($coord, $u, $tenant, "INSERT INTO learners (id, name) VALUES ($_, '$tenant-$_')") for 1 .. 3;
}

# The single shard and the worker that holds it.
my ($shard, $port) = split /\|/, $coord->safe_psql('postgres', q{
	SELECT shard_name('learners'::regclass, s.shardid), p.nodeport
	  FROM pg_dist_shard s JOIN pg_dist_placement pl USING (shardid)
	  JOIN pg_dist_node p USING (groupid) WHERE s.logicalrelid = 'learners'::regclass});
my $w = $port == $w1->port ? $w1 : $w2;
like($shard, qr/^learners_\d+$/, "the shard $shard is on the worker at port $port");

my $session = 'SET citus.override_table_visibility = off; SET citus.enable_manual_changes_to_shards = on; '
  . 'SET citus.enable_ddl_propagation = off; ';
sub on_worker
{
	my ($user, $sql) = @_;
	my ($r, $o, $e) = $w->psql('postgres', $session . $sql,
		extra_params => [ '-U', $user, '-v', 'VERBOSITY=verbose' ]);
	return ($r, $o, $e);
}

# The shard as it must stay: every row, row security on and forced,
# toms' policy with its filter, no other permissive policy.
my $state_sql = qq{SELECT count(*) || '|' || c.relrowsecurity || '|' || c.relforcerowsecurity || '|' ||
		(SELECT string_agg(polname || ':' || polpermissive, ',' ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid)
	  FROM $shard, pg_class c WHERE c.oid = '$shard'::regclass GROUP BY c.oid, c.relrowsecurity, c.relforcerowsecurity};
my (undef, $state) = on_worker('postgres', $state_sql);
like($state, qr/^6\|true\|true\|toms_tenant:true/, "the shard before the attacks: $state");

# [attack, roles it is refused to, expected message]
my @attacks = (
	[ "TRUNCATE $shard", [qw(owner1 postgres)], qr/cannot truncate protected table/ ],
	[ "DELETE FROM $shard", [qw(owner1)], qr/no tenant context/ ],
	[ "ALTER TABLE $shard DISABLE ROW LEVEL SECURITY", [qw(owner1 postgres)], qr/row level security/ ],
	[ "ALTER POLICY toms_tenant ON $shard USING (true)", [qw(owner1 postgres)], qr/policy "toms_tenant"/ ],
	[ "ALTER POLICY toms_tenant ON $shard RENAME TO t", [qw(owner1 postgres)], qr/policy "toms_tenant"/ ],
	[ "CREATE POLICY open ON $shard USING (true)", [qw(owner1 postgres)], qr/permissive polic/ ],
	[ "CREATE RULE r AS ON INSERT TO $shard DO ALSO NOTIFY x", [qw(owner1 postgres)], qr/rule/ ],
	[ "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'; "
		  . "CREATE TRIGGER t BEFORE INSERT ON $shard FOR EACH ROW EXECUTE FUNCTION f()",
		[qw(owner1)], qr/trigger/ ],
	[ "ALTER TABLE $shard DISABLE TRIGGER ALL", [qw(owner1 postgres)], qr/trigger/ ],
	[ "ALTER TABLE $shard DROP COLUMN tenant_id", [qw(owner1 postgres)], qr/column "tenant_id"/ ],
	[ "ALTER TABLE $shard RENAME COLUMN tenant_id TO t", [qw(owner1 postgres)], qr/column "tenant_id"/ ],
	[ "ALTER TABLE $shard ALTER COLUMN tenant_id TYPE varchar", [qw(owner1 postgres)], qr/column "tenant_id"/ ],
	[ "ALTER TABLE $shard ALTER COLUMN name TYPE varchar(3)", [qw(owner1)], qr/leakproof|conversion/i ],
	[ "CREATE INDEX ON $shard ((length(name)))", [qw(owner1)], qr/leakproof/i ],
	[ "ALTER TABLE $shard ADD CHECK (length(name) < 2) NOT VALID", [qw(owner1)], qr/leakproof/i ],
	[ "CREATE PUBLICATION p FOR TABLE $shard", [qw(owner1)], qr/publication|publish/ ],
	[ "DROP TABLE $shard", [qw(owner1 postgres)], qr/cannot drop protected table/ ],
	[ "DROP OWNED BY owner1", [qw(postgres)], qr/cannot drop/ ],
);
for my $a (@attacks)
{
	my ($sql, $roles, $msg) = @$a;
	for my $u (@$roles)
	{
		my ($r, $o, $e) = on_worker($u, "BEGIN; $sql; COMMIT");
		isnt($r, 0, "worker, $u: $sql: refused");
		like($e, qr/ERROR:  42501: .*$msg/s, "worker, $u: $sql: 42501, names what is protected")
		  or diag $e;
		(undef, my $now) = on_worker('postgres', $state_sql);
		is($now, $state, "worker, $u: after $sql the shard is intact");
	}
}

# The app role on the worker still sees its own tenant only.
my ($r, $o) = on_worker('alice', "BEGIN; SET LOCAL toms.context = 'acme'; "
	  . "SELECT count(*) || '/' || count(*) FILTER (WHERE tenant_id = 'acme') FROM $shard; COMMIT");
is($o, '3/3', 'the app role on the worker sees its tenant only');
($r, $o, my $e) = on_worker('alice', "BEGIN; SET LOCAL toms.context = 'acme'; "
	  . "INSERT INTO $shard (id, tenant_id, name) VALUES (9, 'globex', 'x'); COMMIT");
like($e, qr/row-level security/, "the app role on the worker cannot write another tenant's row into the shard");

done_testing();
