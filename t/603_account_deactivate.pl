# Deactivation (measure 4d) with real sessions: toms.deactivate_role() ends
# the role's open sessions and its logins are refused until
# toms.reactivate_role(); other sessions are left alone.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TomsNode;

my $node = PostgreSQL::Test::Cluster->new('deactivate');
$node->init;
my $soon = start_with_password_logins($node);
my $port = $node->port;
$node->safe_psql('postgres', qq{
CREATE EXTENSION toms;
CREATE ROLE regress_leaver LOGIN PASSWORD 'Leaving-Soon-2024!' VALID UNTIL '$soon';
CREATE ROLE regress_stayer LOGIN PASSWORD 'Staying-On-2024!' VALID UNTIL '$soon';
});
my $leaver = "host=127.0.0.1 port=$port dbname=postgres user=regress_leaver password=Leaving-Soon-2024!";

my $s1 = $node->background_psql('postgres', extra_params => ['-U', 'regress_leaver']);
my $s2 = $node->background_psql('postgres', extra_params => ['-U', 'regress_stayer']);
$s1->query_safe('SELECT 1');
$s2->query_safe('SELECT 1');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'regress_leaver'"),
	'1', 'leaver has a session');

$node->safe_psql('postgres', "SELECT toms.deactivate_role('regress_leaver', 'left the company')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'regress_leaver'"),
	'leaver session terminated');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'regress_stayer'"),
	'1', 'other sessions left alone');
$s2->query_safe('SELECT 1');
$s2->quit;
eval { $s1->quit; };

$node->connect_fails($leaver, 'deactivated role cannot log in',
	expected_stderr => qr/role "regress_leaver" is not permitted to log in/);
$node->safe_psql('postgres', "SELECT toms.reactivate_role('regress_leaver', 'rehired')");
$node->connect_ok($leaver, 'reactivated role logs in');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM toms.stale_roles('1 hour') WHERE role = 'regress_leaver'"),
	'0', 'a role that just logged in is not stale');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM toms.stale_roles('1 hour') WHERE role = 'regress_stayer'"),
	'0', 'logins over the Unix socket are recorded too');
$node->safe_psql('postgres', 'CREATE ROLE regress_never LOGIN');
is($node->safe_psql('postgres',
		"SELECT role || ':' || coalesce(last_login::text, 'never') FROM toms.stale_roles('1 hour') WHERE role LIKE 'regress%'"),
	'regress_never:never', 'a role that never logged in is stale');

$node->stop;
done_testing();
