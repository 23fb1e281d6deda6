# Every toms background worker leaves promptly on SIGTERM, whatever it
# waits on (docs/operations.md, "Shutdown"), and a synchronous standby that
# stays away raises an incident (docs/operations.md, "Standby loss"):
# - the audit launcher and the lifecycle launcher, waiting for a lock on
#   pg_database;
# - the audit worker, waiting for the chain lock; what it had taken is
#   written afterwards (nothing lost);
# - the reseal worker and the lifecycle worker, waiting in
#   SyncRepWaitForLSN for a synchronous standby that does not exist;
# - a fast shutdown with workers waiting for that standby finishes within
#   seconds.
# Before the fix the audit launcher and worker set a flag on SIGTERM and
# stayed in their lock waits; nothing raised an incident.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# Seconds within which a worker must be gone after SIGTERM.
my $PROMPT = 5;

my $node = PostgreSQL::Test::Cluster->new('worker_stop');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
toms.standby_incident_after = 2s
toms.lifecycle_naptime = 100ms
toms.reseal_naptime = 100
toms.reseal_batch_size = 10
toms.deletion_batch_size = 1
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	SELECT toms.create_tenant('t1', 'One'), toms.create_tenant('t2', 'Two');
	CREATE ROLE a LOGIN;
	SELECT toms.add_member('a', 't1');
	CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL, secret toms.sealed);
	GRANT ALL ON items TO a;
	SELECT toms.protect('items', sensitive => '{secret}');
	CREATE TABLE pitems (tenant_id text NOT NULL, v int);
	SELECT toms.protect('pitems');
	INSERT INTO pitems SELECT 't2', g FROM generate_series(1, 50) g;
});
$node->safe_psql('postgres', q{SET toms.context = 't1';
	INSERT INTO items (id, secret) SELECT g, toms.seal('s' || g) FROM generate_series(1, 200) g},
	extra_params => [ '-U', 'a' ]);

sub pid_of
{
	my ($type, $cond) = @_;
	$cond //= 'true';
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = '$type' AND $cond LIMIT 1");
}

# SIGTERM (what pg_terminate_backend and a fast shutdown send) to $pid;
# it must be gone within $PROMPT seconds (bounded poll).
sub stops_promptly
{
	my ($pid, $what) = @_;
	my $t0 = time;
	ok(kill('TERM', $pid), "$what: SIGTERM sent");
	usleep(20_000) while kill(0, $pid) && time - $t0 < 30;
	my $took = time - $t0;
	ok(!kill(0, $pid), "$what leaves on SIGTERM");
	cmp_ok($took, '<', $PROMPT, sprintf("$what: within %.1f s", $took));
}

# --- both launchers, waiting for a lock on pg_database -------------------
my $audit_launcher = pid_of('toms audit launcher');
my $lc_launcher = pid_of('toms lifecycle launcher');
ok($audit_launcher && $lc_launcher, 'both launchers run');

# The standby "ghost" does not exist.  It becomes the synchronous standby
# while a session holds pg_database: the lifecycle launcher reads it every
# naptime, the audit launcher when the standby has been away for 2 s (the
# incident goes to every database).  Nobody can connect meanwhile, so the
# session holding the lock does the watching.
$node->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = 'ghost'});
my $s = $node->background_psql('postgres');
$s->query_safe('BEGIN');
$s->query_safe('LOCK TABLE pg_catalog.pg_database IN ACCESS EXCLUSIVE MODE');
$s->query_safe('SELECT pg_reload_conf()');
my $waiting = '';
my $t0 = time;
while (time - $t0 < 60)
{
	$waiting = $s->query_safe(qq{SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_locks
		WHERE relation = 'pg_catalog.pg_database'::regclass AND NOT granted AND pid IN ($audit_launcher, $lc_launcher)});
	last if $waiting eq join(',', sort { $a <=> $b } ($audit_launcher, $lc_launcher));
	usleep(100_000);
}
is($waiting, join(',', sort { $a <=> $b } ($audit_launcher, $lc_launcher)),
	'both launchers wait for the lock on pg_database');
stops_promptly($audit_launcher, 'audit launcher in a lock wait');
stops_promptly($lc_launcher, 'lifecycle launcher in a lock wait');
$s->query_safe('ROLLBACK');

# --- the incident ---------------------------------------------------------
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM toms.incidents WHERE kind = 'sync_standby_absent' AND severity = 'high'
		    AND detail::jsonb @> '{"synchronous_standby_names": "ghost", "required": 1, "streaming": 0}'}),
	'a synchronous standby away for more than toms.standby_incident_after raises an incident');
like(slurp_file($node->logfile), qr/WARNING:  toms: a synchronous standby has been away for more than 2 s/,
	'and a WARNING in the server log');

# --- the audit worker, waiting for the chain lock -------------------------
my $count = q{SELECT count(*) FROM toms.audit_log WHERE kind = 'access' AND relname = 'public.items'};
my $before = $node->safe_psql('postgres', $count);
$s->query_safe('SELECT pg_advisory_lock(7415, 1)');
$node->safe_psql('postgres', q{SET toms.context = 't1'; SELECT count(*) FROM items WHERE id = 1},
	extra_params => [ '-U', 'a' ]);
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'toms audit worker' AND wait_event = 'advisory'}),
	'the audit worker waits for the chain lock');
stops_promptly(pid_of('toms audit worker', q{wait_event = 'advisory'}), 'audit worker in a lock wait');
$s->query_safe('SELECT pg_advisory_unlock(7415, 1)');
$s->quit;
ok($node->poll_query_until('postgres', "SELECT toms.audit_flush(10000) AND ($count) = $before + 1"),
	'the record it had taken is written by the next worker');
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't', 'the chain verifies');

# --- reseal and lifecycle workers, waiting for the synchronous standby ----
$node->safe_psql('postgres', q{SET synchronous_commit = local; SELECT toms.rotate_tenant_key('t1')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'toms reseal worker' AND wait_event = 'SyncRep'}),
	'the reseal worker waits for the synchronous standby');
stops_promptly(pid_of('toms reseal worker'), 'reseal worker in SyncRepWaitForLSN');

$node->safe_psql('postgres', q{SET synchronous_commit = local; SELECT toms.request_deletion('t2', grace => '0s')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'toms lifecycle worker' AND wait_event = 'SyncRep'}),
	'the lifecycle worker waits for the synchronous standby');
stops_promptly(pid_of('toms lifecycle worker', q{wait_event = 'SyncRep'}), 'lifecycle worker in SyncRepWaitForLSN');

# --- fast shutdown while workers wait for the standby ---------------------
ok($node->poll_query_until('postgres',
		q{SELECT count(*) >= 1 FROM pg_stat_activity WHERE backend_type LIKE 'toms%' AND wait_event = 'SyncRep'}),
	'a worker waits for the synchronous standby again');
$t0 = time;
my $stopped = eval { $node->stop('fast'); 1 };
ok($stopped, 'fast shutdown completes');
cmp_ok(time - $t0, '<', 15, sprintf('within seconds (%.1f s)', time - $t0));

# --- a stop loses no audit record -----------------------------------------
# The worker cannot write (a session holds the chain lock) when the fast
# shutdown comes: what it took and what is queued goes to the server log;
# with what reached the table, every read has its record, once.
$node->start;
my $s2 = $node->background_psql('postgres');
$s2->query_safe('SELECT pg_advisory_lock(7415, 1)');
my $reads = q{SELECT count(*) FROM toms.audit_log WHERE kind = 'access' AND action = 'SELECT'
	AND session_role = 'a' AND relname = 'public.items'};
$before = $node->safe_psql('postgres', $reads);
$node->safe_psql('postgres', "SET toms.context = 't1';\n" . join('', map { "SELECT count(*) FROM items WHERE id = $_;\n" } 1 .. 20),
	extra_params => [ '-U', 'a' ]);
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'toms audit worker' AND wait_event = 'advisory'}),
	'the audit worker waits for the chain lock, the reads are queued');
my $offset = -s $node->logfile;
$t0 = time;
$stopped = eval { $node->stop('fast'); 1 };
ok($stopped, 'fast shutdown with records the worker could not write');
cmp_ok(time - $t0, '<', 15, sprintf('within seconds (%.1f s)', time - $t0));
my $logged = () = substr(slurp_file($node->logfile), $offset) =~
	/toms_audit: \{[^\n]*"action":"SELECT","session_role":"a"[^\n]*"relname":"public\.items"/g;
$node->start;
ok($node->poll_query_until('postgres', "SELECT toms.audit_flush(10000)"), 'restarted');
my $in_table = $node->safe_psql('postgres', $reads) - $before;
is($in_table + $logged, 20, "every read has its record once: $in_table in the table, $logged in the server log");

# --- the standby away again, then not required ------------------------------------
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 2 FROM toms.incidents WHERE kind = 'sync_standby_absent'}),
	'after the restart, still away: a new incident (a new absence)');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()});
my $back = 0;
$t0 = time;
while (!$back && time - $t0 < 60)
{
	$back = slurp_file($node->logfile) =~ /LOG:  toms: synchronous standbys are no longer required/;
	usleep(100_000) unless $back;
}
ok($back, 'the end of the absence (synchronous_standby_names emptied) is logged');
$node->stop('fast');

done_testing();
