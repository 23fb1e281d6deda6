# Login lock-out (measures 4a, 4e): toms.max_failed_logins failures lock a
# role; a locked role is refused whether or not the password is right; the
# lock survives a crash restart; toms.unlock_role() lifts it; a lock expires
# after toms.lockout_duration.  Also: the server log never shows a password.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TomsNode;

my $node = PostgreSQL::Test::Cluster->new('lockout');
$node->init;
my $soon = start_with_password_logins($node, qq{
toms.max_failed_logins = 3
toms.lockout_window = '10min'
toms.lockout_duration = '1h'
log_statement = 'ddl'
log_min_error_statement = 'error'
log_connections = on
toms.max_tracked_roles = 16
});
my $port = $node->port;
$node->safe_psql('postgres', qq{
CREATE EXTENSION toms;
CREATE ROLE regress_lock LOGIN PASSWORD 'Lock-Out-Right-Pass-1' VALID UNTIL '$soon';
CREATE ROLE regress_other LOGIN PASSWORD 'Other-Right-Pass-22' VALID UNTIL '$soon';
});

sub conn
{
	my ($user, $pw) = @_;
	return "host=127.0.0.1 port=$port dbname=postgres user=$user password=$pw";
}

$node->connect_ok(conn('regress_lock', 'Lock-Out-Right-Pass-1'), 'right password accepted');

# Failures below the limit, then a success, reset the count.
$node->connect_fails(conn('regress_other', 'wrong-1'), 'failure 1', expected_stderr => qr/password authentication failed/);
$node->connect_fails(conn('regress_other', 'wrong-2'), 'failure 2', expected_stderr => qr/password authentication failed/);
$node->connect_ok(conn('regress_other', 'Other-Right-Pass-22'), 'success resets the count');
$node->connect_fails(conn('regress_other', 'wrong-3'), 'failure 1 again');
$node->connect_fails(conn('regress_other', 'wrong-4'), 'failure 2 again');
$node->connect_ok(conn('regress_other', 'Other-Right-Pass-22'), 'two failures after a success do not lock');

# Three failures lock the role.
for my $i (1 .. 3)
{
	$node->connect_fails(conn('regress_lock', "wrong-$i"), "regress_lock failure $i",
		expected_stderr => qr/password authentication failed for user "regress_lock"/);
}
ok($node->log_contains(qr/toms: role "regress_lock" locked until .* after 3 failed login attempts/),
	'lock-out logged');
$node->connect_fails(conn('regress_lock', 'Lock-Out-Right-Pass-1'), 'locked: right password refused',
	expected_stderr => qr/FATAL:  role "regress_lock" is locked after too many failed login attempts/);
$node->connect_fails(conn('regress_lock', 'wrong-4'), 'locked: wrong password gets the same answer',
	expected_stderr => qr/FATAL:  role "regress_lock" is locked after too many failed login attempts/);
is($node->safe_psql('postgres', 'SELECT role FROM toms.locked_roles'), 'regress_lock', 'toms.locked_roles lists it');
$node->connect_ok(conn('regress_other', 'Other-Right-Pass-22'), 'other roles unaffected');

# A name that does not exist locks the same way (no role enumeration).
for my $i (1 .. 3)
{
	$node->connect_fails(conn('regress_nobody', "guess-$i"), "unknown role failure $i");
}
$node->connect_fails(conn('regress_nobody', 'guess-4'), 'unknown role locked too',
	expected_stderr => qr/role "regress_nobody" is locked/);

# The lock survives a crash (immediate stop) and restart.
$node->stop('immediate');
$node->start;
$node->connect_fails(conn('regress_lock', 'Lock-Out-Right-Pass-1'), 'still locked after crash restart',
	expected_stderr => qr/is locked after too many failed login attempts/);
is($node->safe_psql('postgres', 'SELECT string_agg(role, \',\' ORDER BY role) FROM toms.locked_roles'),
	'regress_lock,regress_nobody', 'locks restored from the state file');
$node->restart;
$node->connect_fails(conn('regress_lock', 'Lock-Out-Right-Pass-1'), 'still locked after clean restart',
	expected_stderr => qr/is locked/);

# Only toms_admin may unlock.
my ($ret, $out, $err) = $node->psql('postgres', "SELECT toms.unlock_role('regress_lock')",
	extra_params => ['-U', 'regress_other']);
like($err, qr/permission denied for function unlock_role/, 'ordinary role cannot unlock');
is($node->safe_psql('postgres', "SELECT toms.unlock_role('regress_lock')"), 't', 'unlock_role reports the lock');
$node->connect_ok(conn('regress_lock', 'Lock-Out-Right-Pass-1'), 'unlocked: login works');
is($node->safe_psql('postgres', "SELECT toms.unlock_role('regress_lock')"), 'f', 'second unlock: was not locked');
$node->restart;
$node->connect_ok(conn('regress_lock', 'Lock-Out-Right-Pass-1'), 'unlock survives restart');
is($node->safe_psql('postgres', "SELECT last_login IS NOT NULL FROM toms.login_state() WHERE role = 'regress_lock'"),
	't', 'last login recorded and kept');

# A lock expires after toms.lockout_duration.
$node->append_conf('postgresql.conf', "toms.lockout_duration = '1s'");
$node->reload;
for my $i (1 .. 3)
{
	$node->connect_fails(conn('regress_other', "wrong-x$i"), "short lock failure $i");
}
$node->connect_fails(conn('regress_other', 'Other-Right-Pass-22'), 'short lock holds', expected_stderr => qr/is locked/);
my $unlocked = 0;
for (1 .. 100)
{
	my ($r) = $node->psql('postgres', 'SELECT 1', connstr => conn('regress_other', 'Other-Right-Pass-22'), extra_params => ['-w']);
	if ($r == 0) { $unlocked = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($unlocked, 'lock expired after toms.lockout_duration');

# A flood of made-up names fills the login state: a failure may then drop
# the oldest lock (with a warning), a success never does.
# (One failure locks here, to keep the test short.)
$node->append_conf('postgresql.conf', "toms.lockout_duration = '1h'\ntoms.max_failed_logins = 1");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('toms.max_failed_logins') = '1'") or die;
for my $n (1 .. 18)
{
	$node->psql('postgres', 'SELECT 1', connstr => conn("regress_flood$n", 'x'), extra_params => ['-w']);
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM toms.locked_roles'), '16', 'state full of locks');
ok($node->log_contains(qr/WARNING:  toms login state is full of locked roles; the lock of role "regress_flood\d+" is dropped/),
	'dropping a lock is warned about');
$node->connect_ok(conn('regress_lock', 'Lock-Out-Right-Pass-1'), 'login works with a full state');
is($node->safe_psql('postgres', "SELECT count(*) FROM toms.locked_roles WHERE role LIKE 'regress_flood%'"),
	'16', 'a success did not lift a lock');

# No password in the server log: not in the failing statement, not in
# log_statement lines.
$node->psql('postgres', "ALTER ROLE regress_other PASSWORD 'Tooshort1!'");
$node->safe_psql('postgres', "ALTER ROLE regress_other PASSWORD 'Brand-New-Secret-4711'");
$node->safe_psql('postgres', "ALTER ROLE regress_other ENCRYPTED PASSWORD E'Esc\\\\aped-Secret-0815'");
$node->psql('postgres', "SELECT 'user password' AS x, 1/0");
my $log = slurp_file($node->logfile);
unlike($log, qr/Tooshort1/, 'refused password not logged');
unlike($log, qr/Brand-New-Secret/, 'accepted password not logged');
unlike($log, qr/aped-Secret-0815/, 'escaped literal not logged');
unlike($log, qr/Lock-Out-Right-Pass|Other-Right-Pass/, 'CREATE ROLE passwords not logged');
like($log, qr/statement: ALTER ROLE regress_other PASSWORD '\*\*\*\*\*\*\*\*'/, 'statement logged redacted');
like($log, qr/ERROR:  password is too short/, 'refusal logged');
like($log, qr/STATEMENT:  SELECT 'user password' AS x, 1\/0/, 'other statements keep their STATEMENT line');

$node->stop;
done_testing();
