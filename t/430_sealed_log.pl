# With log_statement = 'all' and log_min_duration_statement = 0, an
# application that seals with bound parameters leaves no plaintext of a
# sealed column in the server log; turning toms.redact_log_parameters off
# shows that the test would see it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('log');
$node->init;
$node->append_conf('postgresql.conf', qq{
log_statement = 'all'
log_min_duration_statement = 0
log_min_messages = info
log_parameter_max_length = -1
log_parameter_max_length_on_error = -1
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	SELECT toms.create_tenant('t1', 'Tenant one');
	CREATE ROLE app LOGIN;
	SELECT toms.add_member('app', 't1');
	CREATE TABLE learners (id serial, tenant_id text NOT NULL, email toms.sealed, email_idx bytea);
	GRANT ALL ON learners TO app;
	GRANT USAGE ON SEQUENCE learners_id_seq TO app;
	SELECT toms.protect('learners', sensitive => '{email}');
});

my $tempdir = PostgreSQL::Test::Utils::tempdir;
my $script = "$tempdir/seal.sql";
open(my $fh, '>', $script) or die;
print $fh "SET toms.context = 't1';\n";
print $fh "INSERT INTO learners (email, email_idx) VALUES (toms.seal(:secret), toms.blind_index(:secret, 'email'));\n";
print $fh "SELECT toms.unseal(email) FROM learners WHERE email_idx = toms.blind_index(:secret, 'email');\n";
# An error while the parameter is bound: the error context must not show it.
print $fh "SELECT toms.unseal((toms.seal(:secret)::text || 'x')::toms.sealed);\n";
close $fh;

sub run_app
{
	my ($secret) = @_;
	# pgbench -M extended sends :secret as a bound parameter ($1).
	$node->command_checks_all(
		[ 'pgbench', '-n', '-M', 'extended', '-t', '1', '-U', 'app', '-D', "secret=$secret", '-f', $script, 'postgres' ],
		2, [qr/./], [qr/./], 'application statement with bound parameters ran');
}

my $offset = -s $node->logfile;
run_app('first.secret@example.com');
my $log = substr(slurp_file($node->logfile), $offset);
like($log, qr/toms\.seal\(\$1\)/, 'the statement was logged, with a placeholder');
like($log, qr/parameters: \(hidden by toms\.redact_log_parameters\)/, 'parameters hidden');
ok(index($log, 'first.secret') < 0, 'no plaintext in the server log');
like($log, qr/CONTEXT:  parameters hidden by toms.redact_log_parameters/, 'error context hidden');
is($node->safe_psql('postgres', "SET toms.context = 't1'; SELECT toms.unseal(email) FROM learners"),
	'first.secret@example.com', 'the value was sealed and stored');

# Control: PostgreSQL itself would log it.
$node->append_conf('postgresql.conf', 'toms.redact_log_parameters = off');
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('toms.redact_log_parameters') = 'off'")
  or die 'reload not seen';
$offset = -s $node->logfile;
run_app('second.secret@example.com');
$log = substr(slurp_file($node->logfile), $offset);
ok(index($log, 'second.secret') >= 0, 'without redaction the server log would hold the plaintext');

$node->stop;
done_testing();
