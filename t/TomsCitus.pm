# t/TomsCitus.pm -- a Citus cluster for toms' TAP tests (issue 15).
#
# citus_cluster() starts a coordinator and two workers on 127.0.0.1, each
# with shared_preload_libraries = 'citus,toms' and the settings every test
# cluster gets (TEMP_CONFIG: the same master key file on every node),
# creates both extensions, registers the coordinator and adds the workers,
# then runs toms.citus_setup() -- the steps of docs/scaling.md.
#
# Citus is installed into the test installation by test/lib.sh
# (build_citus); without it the tests fail, saying so.
package TomsCitus;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(citus_available citus_node citus_cluster citus_add_worker
  poll_until citus_as_tenant);

# Is citus.so in the installation the tests run from?
sub citus_available
{
	my $libdir = `pg_config --pkglibdir`;
	chomp $libdir;
	return -f "$libdir/citus.so";
}

# The settings of a Citus node on top of TEMP_CONFIG.
my $citus_conf = <<'EOC';
shared_preload_libraries = 'citus,toms'
listen_addresses = '127.0.0.1'
max_connections = 60
max_prepared_transactions = 40
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
citus.shard_count = 4
citus.log_remote_commands = off
# toms' tables hold role and table names (regrole, regclass): as text,
# not as OIDs, which differ between nodes (docs/scaling.md)
citus.enable_binary_protocol = off
EOC

# A node with Citus and toms created (not yet part of a cluster).
sub citus_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', $citus_conf . ($opt{conf} // ''));
	# trust on loopback: the nodes connect to each other as postgres
	open(my $hba, '>>', $node->data_dir . '/pg_hba.conf') or die "pg_hba.conf: $!";
	print $hba "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n";
	close($hba);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus');
	return $node;
}

# Coordinator and two workers, toms installed and set up cluster-wide.
sub citus_cluster
{
	my (%opt) = @_;
	BAIL_OUT('Citus is not installed in the test installation (test/lib.sh build_citus)')
	  unless citus_available();
	my $coord = citus_node('coord', %opt);
	my @workers = map { citus_node("worker$_", %opt) } 1 .. ($opt{workers} // 2);
	$coord->safe_psql('postgres', sprintf(q{
		SELECT citus_set_coordinator_host('127.0.0.1', %d);
		CREATE EXTENSION toms;
	}, $coord->port));
	citus_add_worker($coord, $_) for @workers;
	$coord->safe_psql('postgres', 'SELECT toms.citus_setup()') unless $opt{no_setup};
	return ($coord, @workers);
}

# Add a worker to the cluster.
sub citus_add_worker
{
	my ($coord, $worker) = @_;
	$coord->safe_psql('postgres',
		sprintf(q{SELECT citus_add_node('127.0.0.1', %d)}, $worker->port));
}

# Poll $node with $sql until it returns $want (at most the default timeout).
sub poll_until
{
	my ($node, $sql, $want) = @_;
	return $node->poll_query_until('postgres', $sql, $want);
}

# $sql as $user in tenant context $tenant, through the coordinator, the
# application's way (SET LOCAL in a transaction, which Citus forwards):
# its output, or "ERROR: " and the error.
sub citus_as_tenant
{
	my ($coord, $user, $tenant, $sql) = @_;
	my ($r, $o, $e) = $coord->psql('postgres',
		"SET citus.propagate_set_commands = 'local'; BEGIN; SET LOCAL toms.context = '$tenant'; $sql; COMMIT;",
		extra_params => [ '-U', $user ]);
	return $r == 0 ? $o : "ERROR: $e";
}

1;
