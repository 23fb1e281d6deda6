# Measure 6a as toms.assess() sees it: a server listening on TCP without TLS
# fails, TLS below 1.2 fails, current TLS passes the TLS part; a server on
# Unix sockets only is n/a.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sub row6a
{
	my ($node) = @_;
	my $r = $node->safe_psql('postgres',
		"SELECT status || '|' || evidence FROM toms.assess() WHERE control = '6a'");
	return split(/\|/, $r, 2);
}

my $node = PostgreSQL::Test::Cluster->new('tls');
$node->init;
$node->append_conf('postgresql.conf', "listen_addresses = ''");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION toms');

my ($status, $evidence) = row6a($node);
is($status, 'n/a', 'Unix sockets only: 6a is n/a');
like($evidence, qr/listen_addresses is empty/, 'and says why');

# TCP without TLS
$node->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'");
$node->restart;
($status, $evidence) = row6a($node);
is($status, 'fail', 'TCP without TLS: 6a fails');
like($evidence, qr/ssl = off while listening on 127\.0\.0\.1/, 'evidence names the setting and the address');

# TLS, but an old minimum version
my $dir = $node->data_dir;
system_or_bail('openssl', 'req', '-new', '-x509', '-days', '1', '-nodes', '-subj', '/CN=localhost',
	'-keyout', "$dir/server.key", '-out', "$dir/server.crt");
chmod 0600, "$dir/server.key";
$node->append_conf('postgresql.conf', "ssl = on\nssl_min_protocol_version = 'TLSv1'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('ssl') = 'on'")
  or die "ssl did not come on";
($status, $evidence) = row6a($node);
is($status, 'fail', 'TLSv1 allowed: 6a fails');
like($evidence, qr/ssl_min_protocol_version = TLSv1 \(set TLSv1\.2 or later\)/, 'evidence names the old version');

# Current TLS; initdb's pg_hba.conf still admits TCP without TLS ("host"
# lines), which is a warning unless toms refuses such connections itself.
$node->append_conf('postgresql.conf', "ssl_min_protocol_version = 'TLSv1.2'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('ssl_min_protocol_version') = 'TLSv1.2'")
  or die "ssl_min_protocol_version did not change";
($status, $evidence) = row6a($node);
like($evidence, qr/^ssl = on; ssl_min_protocol_version = TLSv1\.2/, 'TLSv1.2: evidence shows the TLS settings');
if ($node->safe_psql('postgres', "SELECT current_setting('toms.require_tls', true) = 'on'") eq 't')
{
	is($status, 'pass', 'host lines with toms.require_tls = on: 6a passes');
}
else
{
	is($status, 'warn', 'host lines without toms.require_tls: 6a warns');
	like($evidence, qr/pg_hba\.conf admits TCP connections without TLS \(line \d+(, line \d+)*\): use hostssl/,
		'evidence names the pg_hba.conf lines');
}

# hostssl only: TLS is required for every TCP connection.
open(my $hba, '>', "$dir/pg_hba.conf") or die "cannot write pg_hba.conf: $!";
print $hba "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
close($hba);
$node->reload;
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_hba_file_rules WHERE type = 'host'")
  or die "pg_hba.conf not reloaded";
($status, $evidence) = row6a($node);
is($status, 'pass', 'TLSv1.2 and hostssl only: 6a passes');
like($evidence, qr/(pg_hba\.conf admits TCP connections only with TLS|toms\.require_tls = on)/, 'evidence says how TLS is required');

$node->stop;
done_testing();
