# The launchers stay quiet:
# - the lifecycle launcher starts a database's worker at most once per
#   toms.lifecycle_naptime, although the postmaster wakes it whenever one
#   of its workers starts or exits (it used to start the next worker at
#   once, a fork per few milliseconds per database);
# - the audit launcher, connected to no database, resolves the database of
#   login records right after a restart (when the shared relcache init file
#   is being rebuilt) without an error;
# - between purge batches the lifecycle worker pauses only while client
#   sessions are working: alone it goes straight on (a pause of 30 s per
#   batch would need minutes here), and it pauses while a session sits in
#   an open transaction.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('lifecycle_launcher');
$node->init;
$node->append_conf('postgresql.conf', qq{
toms.lifecycle_naptime = 1s
log_min_messages = debug1
fsync = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION toms');
my $db = $node->safe_psql('postgres',
	q{SELECT oid FROM pg_database WHERE datname = 'postgres'});

# "starting background worker process" is the postmaster's DEBUG1 line.
sub starts
{
	my $log = slurp_file($node->logfile);
	my @m = $log =~ /starting background worker process "toms lifecycle worker for database $db"/g;
	return scalar @m;
}

my $t0 = time;
my $first = starts();
my $n;
for (my $i = 0; $i < 200; $i++)
{
	$n = starts() - $first;
	last if $n >= 3;
	usleep(100_000);
}
my $elapsed = time - $t0;
cmp_ok($n, '>=', 3, 'the lifecycle worker keeps being started');
# three starts need at least two naptimes; allow one extra of slack
cmp_ok($n, '<=', int($elapsed) + 2,
	"at most one start per naptime ($n starts in " . sprintf('%.1f', $elapsed) . ' s)');

# Right after a restart: a login whose record the launcher must assign.
$node->restart;
$node->safe_psql('postgres', 'SELECT 1');
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM toms.audit_log WHERE kind = 'login' AND ts > pg_postmaster_start_time()})
  or die 'login record not written';
unlike(slurp_file($node->logfile), qr/cannot read pg_class without having selected a database/,
	'the audit launcher resolves databases without an index scan');

# --- the pause between batches yields to clients only ---------------
$node->append_conf('postgresql.conf', qq{
toms.deletion_batch_pause = 30s
toms.deletion_batch_size = 1
toms.lifecycle_naptime = 100ms
});
$node->reload;
$node->safe_psql('postgres', q{
	SELECT toms.create_tenant('pa', 'A'), toms.create_tenant('pb', 'B');
	CREATE TABLE pitems (tenant_id text NOT NULL, v int);
	SELECT toms.protect('pitems');
	INSERT INTO pitems SELECT t, g FROM unnest('{pa,pb}'::text[]) t, generate_series(1, 4) g;
});
my $req = $node->safe_psql('postgres', q{SELECT toms.request_deletion('pa', grace => '0s')});
my $t1 = time;
# Polled once a second: the worker pauses after a batch while any client
# runs a statement, and a poll is a client too.
my $done = 0;
for (1 .. 150)
{
	if ($node->safe_psql('postgres', qq{SELECT toms.deletion_certificate('$req') IS NOT NULL}) eq 't')
	{
		$done = 1;
		last;
	}
	sleep 1;
}
ok($done, 'alone, the purge does not pause between its batches');
cmp_ok(time - $t1, '<', 90, 'five batches took well under one pause each ('
	  . sprintf('%.1f', time - $t1) . ' s)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pitems WHERE tenant_id = 'pa'}), '0',
	'the tenant is purged');

# A client in an open transaction: the worker pauses after its first batch.
my $client = $node->background_psql('postgres');
$client->query_safe('BEGIN');
$client->query_safe('SELECT 1');
$req = $node->safe_psql('postgres', q{SELECT toms.request_deletion('pb', grace => '0s')});
ok($node->poll_query_until('postgres', qq{
	SELECT s.batches >= 1 AND a.wait_event = 'Extension'
	  FROM toms.deletion_steps s, pg_stat_activity a
	 WHERE s.request = '$req' AND a.backend_type = 'toms lifecycle worker'}),
	'with a client in a transaction, the worker pauses after a batch');
is($node->safe_psql('postgres', qq{SELECT sum(batches) FROM toms.deletion_steps WHERE request = '$req'}),
	'1', 'one batch, then the pause');
$client->query_safe('COMMIT');
$client->quit;

$node->stop;
done_testing();
