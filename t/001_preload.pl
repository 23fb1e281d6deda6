# toms refuses to work unless preloaded, with a hint saying how to fix it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->start;

my ($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION toms');
isnt($ret, 0, 'CREATE EXTENSION fails without shared_preload_libraries');
like($err, qr/toms must be loaded via shared_preload_libraries/, 'error says why');
like($err, qr/HINT:\s+Add toms to the shared_preload_libraries/, 'hint says how to fix it');

($ret, $out, $err) = $node->psql('postgres', "LOAD 'toms'");
like($err, qr/toms must be loaded via shared_preload_libraries/, 'LOAD refuses too');

$node->append_conf('postgresql.conf', "shared_preload_libraries = 'toms'");
$node->restart;
is($node->safe_psql('postgres', "CREATE EXTENSION toms; SELECT extversion FROM pg_extension WHERE extname = 'toms'"),
	'0.2.0', 'preloaded: CREATE EXTENSION works');

$node->stop;
done_testing();
