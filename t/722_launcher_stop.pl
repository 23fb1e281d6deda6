# The audit launcher stopped alone (pg_terminate_backend: a lone SIGTERM,
# the server keeps running) leaves the queued records in the shared queue
# for the launcher the postmaster starts again; they reach toms.audit_log
# and the chain, none goes to the server log (docs/operations.md,
# "Shutdown").  Found by the soak (t/740_soak.pl): before the fix the
# launcher, told to stop, wrote every record of a database whose worker
# was not running to the server log, as in a server shutdown, even with
# toms.audit_sync = on.
# - deterministic: records queued while the database has no worker (the
#   launcher is held with SIGSTOP), then the launcher gets SIGTERM;
# - under load: 3000 reads with toms.audit_sync = on while the launcher and
#   the worker are terminated together 20 times.
# A fast shutdown still sends what cannot reach the table to the server
# log (t/721_worker_stop.pl asserts it).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('launcher_stop');
$node->init;
$node->append_conf('postgresql.conf', qq{
toms.audit_flush_delay = 20ms
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	SELECT toms.create_tenant('t1', 'One');
	CREATE ROLE a LOGIN;
	SELECT toms.add_member('a', 't1');
	CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL, v int);
	GRANT ALL ON items TO a;
	SELECT toms.protect('items');
});
$node->safe_psql('postgres', q{SET toms.context = 't1';
	INSERT INTO items (id, v) SELECT g, g FROM generate_series(1, 100) g},
	extra_params => [ '-U', 'a' ]);

my $reads_of = sub {
	my ($tag) = @_;
	return qq{SELECT count(*) FROM toms.audit_log WHERE kind = 'access' AND action = 'SELECT'
		AND session_role = 'a' AND relname = 'public.items' AND application_name = '$tag'};
};

# toms_audit lines (records sent to the server log) of reads of items
# since $offset
sub logged
{
	my ($offset) = @_;
	my $n = () = substr(slurp_file($node->logfile), $offset) =~
	  /toms_audit: \{[^\n]*"relname":"public\.items"/g;
	return $n;
}

sub pid_of
{
	my ($type) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = '$type' LIMIT 1");
}

# A launcher other than $old runs (the postmaster restarts it after 1 s).
sub launcher_back
{
	my ($old) = @_;
	my $t0 = time;
	my $pid = '';
	while (time - $t0 < 60)
	{
		$pid = pid_of('toms audit launcher');
		last if $pid ne '' && $pid ne $old;
		usleep(50_000);
	}
	return $pid ne '' && $pid ne $old ? $pid : '';
}

sub gone
{
	my ($pid) = @_;
	my $t0 = time;
	usleep(20_000) while kill(0, $pid) && time - $t0 < 30;
	return !kill(0, $pid);
}

my $to_log = 'SELECT written_to_log FROM toms.audit_stats';

# --- deterministic: queued for a database without a worker ------------------
my $offset = -s $node->logfile;
my $to_log0 = $node->safe_psql('postgres', $to_log);
my $launcher = pid_of('toms audit launcher');
ok($launcher, 'the audit launcher runs');
# held, the launcher starts no worker; the worker, stopped, leaves (a
# launcher is registered: it logs nothing); the reads then stay queued
ok(kill('STOP', $launcher), 'launcher held (SIGSTOP)');
my $worker = pid_of('toms audit worker');
if ($worker)
{
	kill('TERM', $worker);
	ok(gone($worker), 'the audit worker has left');
}
else
{
	pass('no audit worker runs');
}
$node->safe_psql('postgres',
	"SET application_name = 'held'; SET toms.context = 't1';\n"
	  . join('', map { "SELECT count(*) FROM items WHERE id = $_;\n" } 1 .. 10),
	extra_params => [ '-U', 'a' ]);
is($node->safe_psql('postgres', q{SELECT queued >= 10 FROM toms.audit_stats}), 't',
	'the 10 reads are queued, no worker serves them');
ok(kill('TERM', $launcher), 'launcher: SIGTERM (as pg_terminate_backend)');
ok(kill('CONT', $launcher), 'launcher released');
ok(gone($launcher), 'the launcher leaves');
ok(launcher_back($launcher), 'the postmaster starts a new launcher');
ok($node->poll_query_until('postgres', 'SELECT (' . $reads_of->('held') . ') = 10'),
	'all 10 queued reads reach toms.audit_log (the new launcher serves them)');
is(logged($offset), 0, 'none of them went to the server log');
is($node->safe_psql('postgres', $to_log), $to_log0, 'nothing else went there either (written_to_log)');

# --- under load: launcher and worker terminated together, 20 times ----------
my $N = 3000;
my $file = PostgreSQL::Test::Utils::tempdir() . '/reads.sql';
open(my $fh, '>', $file) or die;
print $fh "SET application_name = 'load';\nSET toms.context = 't1';\n";
# paced (8 ms after each read, a statement of its own, unaudited) so
# that the reads span the 20 rounds
print $fh 'SELECT count(*) FROM items WHERE id = ' . (1 + $_ % 100) . ";\nSELECT pg_sleep(0.008);\n"
  for 1 .. $N;
close $fh;
$node->safe_psql('postgres', q{ALTER SYSTEM SET toms.audit_sync = on; SELECT pg_reload_conf()});
$offset = -s $node->logfile;
$to_log0 = $node->safe_psql('postgres', $to_log);
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', $node->host, '-p', $node->port,
	  '-U', 'a', '-d', 'postgres', '-f', $file ],
	'>', \$out, '2>', \$err);
my $restarts = 0;
for my $round (1 .. 20)
{
	my $q = $reads_of->('load');
	my $before = $node->safe_psql('postgres', $q);
	last if $before >= $N;
	$launcher = pid_of('toms audit launcher');
	my $worker = pid_of('toms audit worker');
	kill('TERM', $worker) if $worker;
	kill('TERM', $launcher);
	$restarts++ if launcher_back($launcher);
	# the reads go on: wait until more of them are stored (bounded)
	$node->poll_query_until('postgres', "SELECT ($q) > $before")
	  or last;
}
ok($restarts >= 10, "the launcher was terminated and came back $restarts times");
$h->finish;
is($?, 0, 'the reads all ran') or diag($err);
ok($node->poll_query_until('postgres', 'SELECT toms.audit_flush(10000)'), 'flushed');
my $stored = $node->safe_psql('postgres', $reads_of->('load'));
my $log_only = logged($offset);
is($stored, $N, "every read has its record in toms.audit_log ($stored of $N)");
is($log_only, 0, "no record only in the server log ($log_only)");
is($node->safe_psql('postgres', $to_log), $to_log0, 'nothing else went there either (written_to_log)');
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't', 'the chain verifies');

$node->stop('fast');
done_testing();
