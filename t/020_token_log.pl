# A tenant token is a bearer credential until it expires: when toms refuses
# one, the server log must not receive it -- not in the message, and not in
# the STATEMENT or CONTEXT lines PostgreSQL adds to logged errors
# (log_min_error_statement = error, the default).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('token_log');
$node->init;
# (PostgreSQL::Test::Cluster logs every statement; an installation does not)
$node->append_conf('postgresql.conf',
	"log_statement = none\nlog_min_error_statement = error\nlog_error_verbosity = verbose");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	CREATE EXTENSION toms_test;
	CREATE ROLE regress_log_app LOGIN;
	CREATE ROLE regress_log_stranger LOGIN;
	GRANT toms_app TO regress_log_app;
	SELECT toms.create_tenant('acme', 'Acme');
	CREATE TABLE k AS SELECT * FROM toms_test.keypair(decode(repeat('21', 32), 'hex'));
	SELECT toms.trust_key('regress-log', public_key) FROM k;
});
my $pk = $node->safe_psql('postgres', q{SELECT encode(public_key, 'hex') FROM k});
my $good = $node->safe_psql('postgres',
	q{SELECT toms_test.mint_claims(secret_key, 'acme', 'alice', '1 hour', 'regress-log') FROM k});
my $good2 = $node->safe_psql('postgres',
	q{SELECT toms_test.mint_claims(secret_key, 'acme', 'bob', '1 hour', 'regress-log') FROM k});
my $expired = $node->safe_psql('postgres',
	q{SELECT toms_test.mint_claims(secret_key, 'acme', 'alice', '-1 hour', 'regress-log') FROM k});
like($good, qr/^v4\.public\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'minted a token');

# tampered: one payload character changed (keeps the encoding canonical)
my ($body, $foot) = (split /\./, $good)[2, 3];
my $c = substr($body, 20, 1) eq 'A' ? 'B' : 'A';
my $tampered_body = substr($body, 0, 20) . $c . substr($body, 21);
my $tampered = "v4.public.$tampered_body.$foot";
my ($expired_body) = (split /\./, $expired)[2];
my ($body2, $foot2) = (split /\./, $good2)[2, 3];
my $tampered2_body = substr($body2, 0, 20) . (substr($body2, 20, 1) eq 'A' ? 'B' : 'A') . substr($body2, 21);
my $tampered2 = "v4.public.$tampered2_body.$foot2";

my $log_start = -s $node->logfile;

# verify_token (toms_admin diagnostic), token spliced into the statement text
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT toms.verify_token('$tampered', '\\x$pk'::bytea)");
like($err, qr/token signature invalid/, 'verify_token refuses the tampered token');
($ret, $out, $err) = $node->psql('postgres',
	"DO \$\$ BEGIN PERFORM toms.verify_token('$tampered', '\\x$pk'::bytea); END \$\$");
like($err, qr/token signature invalid/, 'verify_token refuses it inside PL/pgSQL too');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT toms.verify_token('v4.public.$tampered_body=', '\\x$pk'::bytea)");
like($err, qr/token malformed/, 'verify_token refuses a malformed token');

# enter_tenant and toms.context (tenancy part), as the application role
($ret, $out, $err) = $node->psql('postgres',
	"SELECT toms.enter_tenant('$expired')", extra_params => [ '-U', 'regress_log_app' ]);
like($err, qr/token expired/, 'enter_tenant refuses the expired token');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT toms.enter_tenant('$tampered2')", extra_params => [ '-U', 'regress_log_app' ]);
like($err, qr/token signature invalid/, 'enter_tenant refuses the tampered token');

# a role without toms_app: PostgreSQL's own refusal, before toms sees the
# token; its STATEMENT line would carry the valid token
($ret, $out, $err) = $node->psql('postgres',
	"SELECT toms.enter_tenant('$good')", extra_params => [ '-U', 'regress_log_stranger' ]);
like($err, qr/permission denied for function enter_tenant/, 'a role without toms_app may not call enter_tenant');

my $log = slurp_file($node->logfile, $log_start);
like($log, qr/permission denied for function enter_tenant/, 'PostgreSQL logged its own refusal');
ok(!leaks($log, $body), 'no log line carries the valid token a stranger gave to enter_tenant');
like($log, qr/token signature invalid/, 'the refusals are logged');

# does the log carry a piece of a token's signature (the last 80 base64url
# characters of its body: what makes the token a credential, and unique)?
sub leaks
{
	my ($text, $body) = @_;
	my $secret = substr($body, -80);
	for (my $i = 0; $i + 16 <= length($secret); $i += 8)
	{
		return 1 if index($text, substr($secret, $i, 16)) >= 0;
	}
	return 0;
}
my @lines = split /\n/, $log;
ok(!leaks($log, $tampered_body), 'no log line carries the token given to verify_token');
ok(!grep({ /verify_token\(/ } @lines), 'verify_token refusals log no STATEMENT or CONTEXT line with the call');

ok(!leaks($log, $expired_body), 'no log line carries the expired token given to enter_tenant');
ok(!leaks($log, $tampered2_body), 'no log line carries the tampered token given to enter_tenant');
ok(!grep({ /enter_tenant\('v4/ } @lines), 'enter_tenant refusals log no STATEMENT with the token');

# SET LOCAL toms.context = '<token>' (the form Citus forwards): the token
# leaves pg_stat_activity as soon as toms sees the statement.
my $app = $node->background_psql('postgres', extra_params => ['-U', 'regress_log_app']);
# (by pid: an earlier session of the role may still be leaving)
my $app_pid = $app->query_safe('SELECT pg_backend_pid()');
$app_pid =~ s/\s+//g;
$app->query_safe('BEGIN');
$app->query_safe("SET LOCAL toms.context = '$good'");
my $shown = $node->safe_psql('postgres',
	qq{SELECT query FROM pg_stat_activity WHERE pid = $app_pid});
is($shown, 'SET LOCAL toms.context = <hidden>', 'pg_stat_activity shows no token');
ok(!leaks($shown, $body), 'not a piece of its signature');
$app->query_safe('COMMIT');
$app->quit;

$node->stop;
done_testing();
