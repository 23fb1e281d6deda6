# The audit worker (docs/audit.md):
# - SIGTERM: it drains its queue, exits, and is started again: no record
#   lost, none twice;
# - SIGKILL (the postmaster restarts every process): with
#   toms.audit_sync = on every statement that returned has its record,
#   none twice, and the chain verifies;
# - verify_audit catches an edit made by a superuser with the triggers off,
#   raises one incident and announces it with NOTIFY toms_incident;
# - toms.audit_log_destination = 'table,log' writes JSON lines for a SIEM;
# - toms.audit_retention removes old records under a seal verify accepts;
# - records appended after rows chained late (a write's own record) still
#   go to the right edge of the seq index.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('audit_worker');
$node->init;
$node->append_conf('postgresql.conf', qq{
toms.audit_flush_delay = 100ms
toms.audit_log_destination = 'table,log'
fsync = off
log_statement = none
restart_after_crash = on
autovacuum = off
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	CREATE ROLE regress_r LOGIN;
	SELECT toms.create_tenant('w1', 'Worker');
	SELECT toms.add_member('regress_r', 'w1');
	CREATE TABLE items (tenant_id text NOT NULL, v int);
	GRANT SELECT ON items TO regress_r;
	SELECT toms.protect('items');
	CREATE EXTENSION pageinspect;
});

sub worker_pid
{
	$node->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM pg_stat_activity
		 WHERE backend_type = 'toms audit worker' AND datname = 'postgres'})
	  or return undef;
	return $node->safe_psql('postgres', q{
		SELECT pid FROM pg_stat_activity
		 WHERE backend_type = 'toms audit worker' AND datname = 'postgres'});
}

# A psql session in the background running $n reads, each labelled by its
# application_name; returns the harness and a ref to its output.
sub reads
{
	my ($tag, $n, $sync) = @_;
	my $file = "$PostgreSQL::Test::Utils::tmp_check/$tag.sql";
	open(my $fh, '>', $file) or die;
	print $fh "SET toms.audit_sync = on;\n" if $sync;
	print $fh "SET SESSION AUTHORIZATION regress_r;\nSET toms.context = 'w1';\n";
	print $fh "SET application_name = '$tag$_';\nSELECT '$tag$_', count(*) FROM items;\n"
	  for 1 .. $n;
	close $fh;
	my $out = '';
	my $err = '';
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-At', '-h', $node->host, '-p', $node->port, '-d', 'postgres', '-f', $file ],
		'>', \$out, '2>', \$err);
	return ($h, \$out);
}

sub recorded
{
	my ($tag) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) || '/' || count(DISTINCT application_name) FROM toms.audit_log
		 WHERE kind = 'access' AND application_name LIKE '$tag%'});
}

# --- the seq index after late-chained rows --------------------------------
# A write's record is stored by its own transaction without a seq and
# chained later by the worker (an update).  Had the seq index an entry for
# the row without a seq, that NULL would sort last, stay until a vacuum
# (autovacuum is off here) and push every later append off the index's
# right edge: no fast path, half-full pages (docs/benchmarks.md).
{
	my $file = "$PostgreSQL::Test::Utils::tmp_check/writes.sql";
	open(my $fh, '>', $file) or die;
	print $fh "SET toms.context = 'w1';\n";
	print $fh "INSERT INTO items VALUES ('w1', $_);\n" for 1 .. 200;
	close $fh;
	$node->command_ok([ 'psql', '-X', '-q', '-h', $node->host, '-p', $node->port, '-d', 'postgres', '-f', $file ],
		'200 writes, each its own transaction');
	my ($hi, $outi) = reads('i', 2000, 0);
	$hi->finish;
	$node->safe_psql('postgres', 'SELECT toms.audit_flush()');
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM toms.audit_log WHERE kind = 'access' AND action = 'INSERT' AND seq IS NOT NULL}),
		'200', 'the 200 writes are chained');
	my ($nulls, $leaves, $minfill) = split /\|/, $node->safe_psql('postgres', q{
		WITH p AS (SELECT b, s.type, s.live_items, s.btpo_next
		             FROM generate_series(1, pg_relation_size('toms.audit_log_seq') / 8192 - 1) b,
		                  bt_page_stats('toms.audit_log_seq', b::bigint) s)
		SELECT (SELECT count(*) FROM p, bt_page_items('toms.audit_log_seq', p.b::bigint) i
		         WHERE p.type = 'l' AND i.nulls),
		       count(*) FILTER (WHERE type = 'l'),
		       min(live_items) FILTER (WHERE type = 'l' AND btpo_next <> 0)
		  FROM p});
	is($nulls, '0', 'the seq index has no entry without a seq');
	cmp_ok($leaves, '>=', 5, "$leaves leaf pages");
	cmp_ok($minfill, '>', 300, "every leaf page but the last is filled to 90 % ($minfill entries): appends go to the right edge");
}

# --- SIGTERM ---------------------------------------------------------
my ($h, $out) = reads('t', 400, 0);
my $pid = worker_pid();
ok($pid, 'a worker serves the database');
$node->poll_query_until('postgres', q{
	SELECT count(*) >= 50 FROM toms.audit_log WHERE application_name LIKE 't%'});
kill 'TERM', $pid;
$h->finish;
is(scalar(() = $$out =~ /^t\d+\|/mg), 400, 'all 400 reads ran');
$node->safe_psql('postgres', 'SELECT toms.audit_flush()');
is(recorded('t'), '400/400', 'SIGTERM: 400 reads, 400 records, no duplicates');

# --- SIGKILL, audit_sync on -------------------------------------------
($h, $out) = reads('k', 2000, 1);
my $pid2 = worker_pid();
isnt($pid2, $pid, 'a new worker serves the database after the SIGTERM');
$pid = $pid2;
$node->poll_query_until('postgres', q{
	SELECT count(*) >= 50 FROM toms.audit_log WHERE application_name LIKE 'k%'});
kill 'KILL', $pid;
$h->finish;
my %returned = map { $_ => 1 } ($$out =~ /^(k\d+)\|/mg);
cmp_ok(scalar(keys %returned), '<', 2000, scalar(keys %returned) . ' reads returned before the crash restart');
ok($node->poll_query_until('postgres', 'SELECT toms.audit_flush()'), 'server back after the worker was killed');
my %have = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', q{
	SELECT application_name FROM toms.audit_log WHERE application_name LIKE 'k%'});
my @missing = grep { !$have{$_} } keys %returned;
is(scalar(@missing), 0, 'SIGKILL with audit_sync: every read that returned is recorded');
my ($n, $d) = split m{/}, recorded('k');
is($n, $d, "no duplicates ($n records)");
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't', 'the chain verifies');

# --- a superuser edit, found, one incident, NOTIFY ---------------------
my $orig = $node->safe_psql('postgres', q{
	SELECT seq || '|' || actor FROM toms.audit_log
	 WHERE seq = (SELECT min(seq) FROM toms.audit_log WHERE application_name = 't10')});
my ($vseq, $vactor) = split /\|/, $orig;
$node->safe_psql('postgres', qq{
	SET session_replication_role = replica;
	UPDATE toms.audit_log SET actor = 'someone else' WHERE seq = $vseq;
});
my ($ret, $o, $e) = $node->psql('postgres', q{
	LISTEN toms_incident;
	SELECT ok, first_bad IS NOT NULL, detail FROM toms.verify_audit();
	SELECT ok FROM toms.verify_audit();
	SELECT toms.audit_flush();
	SELECT 'after';
});
like($o, qr/^f\|t\|record \d+ does not match its hash/m, 'verify_audit finds the edit');
# (both reports may reach the worker in one batch: then the one
# announcement already counts 2)
like($o, qr/Asynchronous notification "toms_incident" with payload "\{.*"kind" : "audit_chain_break".*"count" : [12]\b/,
	'NOTIFY toms_incident announced it with a JSON payload');
is(scalar(() = $o =~ /Asynchronous notification/g), 1, 'found twice, announced once');
is($node->safe_psql('postgres', q{SELECT count FROM toms.incidents WHERE kind = 'audit_chain_break'}),
	'2', 'one incident, counted twice');
$node->safe_psql('postgres', qq{
	SET session_replication_role = replica;
	UPDATE toms.audit_log SET actor = '$vactor' WHERE seq = $vseq;
});
like($node->safe_psql('postgres', q{SELECT ok || ' ' || detail FROM toms.verify_audit()}),
	qr/^true \d+ records verified \(1 to \d+\)$/, 'repaired');

# --- SIEM export ---------------------------------------------------------
my $log = slurp_file($node->logfile);
like($log, qr/LOG:  toms_audit: \{"database":"postgres","seq":\d+,"ts":"[^"]+","kind":"access","action":"SELECT"/,
	'records are written to the server log as JSON lines');

# --- retention and its seal ----------------------------------------------
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET toms.audit_retention = '1s';
	SELECT pg_reload_conf();
});
sleep(2);    # the records must be older than the retention
$node->safe_psql('postgres', "SET toms.context = 'w1'; SELECT count(*) FROM items");
ok($node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM toms.audit_log WHERE kind = 'seal'}), 'retention ran and sealed');
is($node->safe_psql('postgres', q{
	SELECT min(seq) > 1 FROM toms.audit_log}), 't', 'old records are gone');
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't',
	'verify_audit accepts the sealed trail');
$node->safe_psql('postgres', q{
	ALTER SYSTEM RESET toms.audit_retention;
	SELECT pg_reload_conf();
	SET session_replication_role = replica;
	UPDATE toms.audit_log SET detail = jsonb_set(detail, '{hash}', '"not hex"')
	 WHERE kind = 'seal';
});
like($node->safe_psql('postgres', 'SELECT ok || \' \' || first_bad FROM toms.verify_audit()'),
	qr/^false \d+$/, 'a seal whose hash was edited into garbage is reported, not an error');
$node->safe_psql('postgres', q{
	SET session_replication_role = replica;
	DELETE FROM toms.audit_log WHERE kind = 'seal';
});
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 'f',
	'without its seal, the missing prefix is reported');

$node->stop;
done_testing();
