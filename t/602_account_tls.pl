# TLS requirement (measure 6a): with toms.require_tls, TCP connections
# without TLS or below toms.min_tls_version are refused by toms (the
# server's own ssl_min_protocol_version lets them in, so it is toms that
# refuses); Unix-socket connections only with toms.require_tls_local.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TomsNode;

my $node = PostgreSQL::Test::Cluster->new('tls');
$node->init;
my $pgdata = $node->data_dir;

# A self-signed certificate made for this test.
system_or_bail('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
	'-subj', '/CN=127.0.0.1', '-keyout', "$pgdata/server.key", '-out', "$pgdata/server.crt");
chmod(0600, "$pgdata/server.key") or die;

my $soon = start_with_password_logins($node, qq{
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
toms.require_tls = on
toms.min_tls_version = 'TLSv1.3'
});
my $port = $node->port;
$node->safe_psql('postgres',
	"CREATE ROLE regress_tls LOGIN PASSWORD 'Tls-Only-Pass-2024' VALID UNTIL '$soon'");
my $base = "host=127.0.0.1 port=$port dbname=postgres user=regress_tls password=Tls-Only-Pass-2024";

$node->connect_fails("$base sslmode=disable", 'TCP without TLS refused',
	expected_stderr => qr/FATAL:  connection refused: TLS is required/);
$node->connect_fails("$base sslmode=disable password=wrong", 'refused the same way with a wrong password',
	expected_stderr => qr/FATAL:  connection refused: TLS is required/);
$node->connect_ok("$base sslmode=require ssl_min_protocol_version=TLSv1.3", 'TLSv1.3 accepted',
	sql => 'SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
	expected_stdout => qr/^TLSv1\.3$/);
$node->connect_fails("$base sslmode=require ssl_max_protocol_version=TLSv1.2", 'TLSv1.2 below the minimum refused',
	expected_stderr => qr/FATAL:  connection refused: TLS version too old/);
ok($node->log_contains(qr/DETAIL:  This connection uses TLSv1\.2; toms\.min_tls_version is TLSv1\.3\./),
	'refusal names the versions');

# The default minimum, TLSv1.2, lets TLSv1.2 in.
$node->append_conf('postgresql.conf', "toms.min_tls_version = 'TLSv1.2'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('toms.min_tls_version') = 'TLSv1.2'")
  or die 'reload not seen';
$node->connect_ok("$base sslmode=require ssl_max_protocol_version=TLSv1.2", 'TLSv1.2 accepted at minimum TLSv1.2',
	sql => 'SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
	expected_stdout => qr/^TLSv1\.2$/);

# Unix sockets: allowed by default, refused with toms.require_tls_local.
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'Unix socket allowed by default');
$node->append_conf('postgresql.conf', 'toms.require_tls_local = on');
$node->reload;
my $refused = 0;
for (1 .. 100)
{
	my ($r, $o, $e) = $node->psql('postgres', 'SELECT 1');
	if ($e =~ /connection refused: TLS is required/) { $refused = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($refused, 'Unix socket refused with toms.require_tls_local');
$node->connect_ok("$base sslmode=require", 'TLS over TCP still accepted');

# Only superusers may change the switches (PGC_SIGHUP).
$node->append_conf('postgresql.conf', 'toms.require_tls_local = off');
$node->reload;
$node->poll_query_until('postgres', 'SELECT true') or die;
my ($ret, $out, $err) = $node->psql('postgres', 'SET toms.require_tls = off');
like($err, qr/cannot be changed now/, 'toms.require_tls cannot be changed in a session');

$node->stop;
done_testing();
