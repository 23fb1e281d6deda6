# A lock-out cannot lock the DBA out (docs/accounts.md, "Break-glass"):
# failed TCP logins lock a superuser and a toms_admin member for network
# logins, but both still log in over the Unix-domain socket; an ordinary
# role locked the same way does not.  The break-glass login is audited and
# raises an incident; the network lock stays until toms.unlock_role().
# Before the fix, five bad TCP logins as the superuser locked it out of
# local logins too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TomsNode;

my $node = PostgreSQL::Test::Cluster->new('break_glass');
$node->init;
my $soon = start_with_password_logins($node, qq{
toms.max_failed_logins = 3
toms.lockout_duration = '1h'
});
my $port = $node->port;
$node->safe_psql('postgres', qq{
CREATE EXTENSION toms;
CREATE ROLE regress_dba SUPERUSER LOGIN PASSWORD 'Dba-Right-Pass-123' VALID UNTIL '$soon';
CREATE ROLE regress_admin LOGIN PASSWORD 'Admin-Right-Pass-123' VALID UNTIL '$soon';
GRANT toms_admin TO regress_admin;
CREATE ROLE regress_app LOGIN PASSWORD 'App-Right-Pass-1234' VALID UNTIL '$soon';
});

sub tcp { my ($u, $pw) = @_; return "host=127.0.0.1 port=$port dbname=postgres user=$u password=$pw"; }
my %pw = (regress_dba => 'Dba-Right-Pass-123', regress_admin => 'Admin-Right-Pass-123',
	regress_app => 'App-Right-Pass-1234');

for my $role (sort keys %pw)
{
	$node->connect_fails(tcp($role, "wrong-$_"), "$role: bad TCP login $_") for 1 .. 3;
	$node->connect_fails(tcp($role, $pw{$role}), "$role: locked for TCP logins, right password or not",
		expected_stderr => qr/FATAL:  role "$role" is locked after too many failed login attempts/);
}
is($node->safe_psql('postgres', q{SELECT string_agg(role, ',' ORDER BY role) FROM toms.locked_roles}),
	'regress_admin,regress_app,regress_dba', 'all three are locked');

# The local socket (pg_hba.conf: local trust).
for my $role (qw(regress_dba regress_admin))
{
	my ($rc, $out, $err) = $node->psql('postgres', 'SELECT current_user', extra_params => [ '-U', $role ]);
	is($rc, 0, "$role (superuser or toms_admin) still logs in over the Unix-domain socket") or diag($err);
	is($out, $role, "$role: the session is its own");
}
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT 1', extra_params => [ '-U', 'regress_app' ]);
isnt($rc, 0, 'an ordinary locked role does not, not even locally');
like($err, qr/FATAL:  role "regress_app" is locked after too many failed login attempts/, 'with the lock-out message');

$node->connect_fails(tcp('regress_dba', $pw{regress_dba}), 'the network lock stays after a break-glass login',
	expected_stderr => qr/is locked after too many failed login attempts/);

ok($node->log_contains(qr/LOG:  toms: locked role "regress_dba" logged in over a local socket \(break-glass\)/),
	'the break-glass login is in the server log');
ok( $node->poll_query_until('postgres', q{SELECT toms.audit_flush(10000) AND count(*) = 2 FROM toms.audit_log
		WHERE action = 'LOGIN' AND fate = 'succeeded' AND detail::text LIKE '%break-glass%'
		  AND session_role IN ('regress_dba', 'regress_admin')}),
	'each break-glass login has its audit record');
ok( $node->poll_query_until('postgres', q{SELECT count(*) = 2 FROM toms.incidents WHERE kind = 'break_glass_login'
		AND severity = 'high' AND detail::jsonb->>'role' IN ('regress_dba', 'regress_admin')}),
	'and raises an incident');

# The DBA, in by the local socket, lifts the lock.
is($node->safe_psql('postgres', q{SELECT toms.unlock_role('regress_dba')}, extra_params => [ '-U', 'regress_dba' ]),
	't', 'the DBA unlocks itself');
$node->connect_ok(tcp('regress_dba', $pw{regress_dba}), 'TCP logins work again');

$node->stop;
done_testing();
