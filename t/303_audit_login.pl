# Logins in the audit trail (measure 4e): the account part reports every
# login and failed login before a database is chosen; the audit launcher
# files each under its database, with the role, client address, method and
# reason; a lock-out is an incident; a login to a database without toms
# goes to the server log, not nowhere.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TomsNode;

my $node = PostgreSQL::Test::Cluster->new('audit_login');
$node->init;
my $soon = start_with_password_logins($node, qq{
toms.max_failed_logins = 3
toms.audit_flush_delay = 50ms
});
my $port = $node->port;
$node->safe_psql('postgres', qq{
CREATE EXTENSION toms;
CREATE ROLE regress_login LOGIN PASSWORD 'Audit-Login-Pass-1' VALID UNTIL '$soon';
CREATE DATABASE plain;
});

sub conn
{
	my ($user, $pw, $db) = @_;
	$db //= 'postgres';
	return "host=127.0.0.1 port=$port dbname=$db user=$user password=$pw";
}

$node->connect_ok(conn('regress_login', 'Audit-Login-Pass-1'), 'right password');
$node->connect_fails(conn('regress_login', 'wrong-1'), 'wrong password 1');
$node->connect_fails(conn('regress_login', 'wrong-2'), 'wrong password 2');
$node->connect_fails(conn('regress_login', 'wrong-3'), 'wrong password 3: locked');
$node->connect_fails(conn('regress_login', 'Audit-Login-Pass-1'), 'locked');
$node->connect_fails(conn('regress_login', 'wrong-x', 'plain'), 'a database without toms');

ok($node->poll_query_until('postgres', q{
	SELECT count(*) >= 5 FROM toms.audit_log WHERE kind = 'login' AND session_role = 'regress_login'}),
	'login records arrive');
is($node->safe_psql('postgres', q{
	SELECT string_agg(action || ':' || fate || ':' || client_addr || ':' ||
	                  coalesce(detail::jsonb ->> 'reason', '-'), ',' ORDER BY seq)
	  FROM toms.audit_log WHERE kind = 'login' AND session_role = 'regress_login'}),
	'LOGIN:succeeded:127.0.0.1:-,'
	  . 'LOGIN FAILED:failed:127.0.0.1:authentication failed,'
	  . 'LOGIN FAILED:failed:127.0.0.1:authentication failed,'
	  . 'LOGIN FAILED:failed:127.0.0.1:authentication failed,'
	  . 'LOGIN FAILED:failed:127.0.0.1:role locked',
	'success, failures and the locked attempt, in order, with address and reason');
is($node->safe_psql('postgres', q{
	SELECT DISTINCT detail::jsonb ->> 'database' || '/' || (detail::jsonb ->> 'method')
	  FROM toms.audit_log WHERE kind = 'login' AND session_role = 'regress_login'}),
	'postgres/scram-sha-256', 'database and method recorded');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM toms.incidents WHERE kind = 'lockout' AND detail ~ 'regress_login'}),
	'the lock-out is an incident');
ok($node->poll_query_until('postgres', q{SELECT (SELECT written_to_log FROM toms.audit_stats) >= 1}),
	'the login to a database without toms was written to the server log');
# (waited for: the counter is raised just before the line is written)
ok($node->wait_for_log(qr/toms_audit: \{"ts":.*"kind":"login","action":"LOGIN FAILED","session_role":"regress_login".*"database":"plain"/),
	'as a JSON line');
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't', 'chain verifies');

$node->stop;
done_testing();
