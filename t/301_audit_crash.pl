# Audit durability across crashes and restarts (docs/audit.md):
# - kill -9 of the postmaster under a write load: every committed write has
#   its audit record (0 missing), none twice, and the chain verifies;
# - with toms.audit_sync = on, rolled-back writes and denials whose
#   statements returned survive a kill -9;
# - with the default (asynchronous) queue, they survive a clean restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('audit_crash');
$node->init;
# fsync stays off: a kill -9 of the server processes does not lose the
# operating system's page cache, so what is tested here -- what the server
# had made durable when COMMIT returned -- is the same, and the restart
# skips the data-directory sync.
$node->append_conf('postgresql.conf', "toms.audit_flush_delay = 100ms\nfsync = off\n");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	CREATE ROLE regress_w LOGIN;
	CREATE ROLE regress_s LOGIN;
	CREATE ROLE regress_a LOGIN;
	SELECT toms.create_tenant('c1', 'Crash');
	SELECT toms.add_member(r::regrole, 'c1') FROM unnest(ARRAY['regress_w', 'regress_s', 'regress_a']) r;
	CREATE TABLE items (id bigserial PRIMARY KEY, tenant_id text NOT NULL, v int);
	GRANT SELECT, INSERT ON items TO regress_w, regress_s, regress_a;
	GRANT USAGE ON SEQUENCE items_id_seq TO regress_w, regress_s, regress_a;
	SELECT toms.protect('items');
});

# Restart after a kill -9: orphaned backends may still hold the old shared
# memory for a moment, so retry the start for a bounded time.
sub kill9_and_restart
{
	my ($after_kill) = @_;
	my $pid = $node->{_pid};
	$node->kill9;
	$after_kill->() if $after_kill;
	for (1 .. 100)
	{
		last unless kill(0, $pid);
		usleep(100_000);
	}
	my $started = 0;
	for (1 .. 100)
	{
		if ($node->start(fail_ok => 1)) { $started = 1; last; }
		usleep(200_000);
	}
	ok($started, 'cluster restarts after kill -9');
}

sub wait_chained
{
	ok($node->poll_query_until('postgres',
		'SELECT count(*) = 0 FROM toms.audit_log WHERE seq IS NULL'),
		'every committed record is chained after the restart');
}

# --- kill -9 of the postmaster under a write load ----------------------
my $script = "$PostgreSQL::Test::Utils::tmp_check/writes.sql";
open(my $fh, '>', $script) or die;
print $fh "\\set v random(1, 1000)\n";
print $fh "INSERT INTO items (v) VALUES (:v);\n";
print $fh "BEGIN;\nINSERT INTO items (v) VALUES (:v), (:v);\nCOMMIT;\n";
close $fh;

my ($out, $err) = ('', '');
local $ENV{PGOPTIONS} = '-c toms.context=c1';
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-T', '60', '-f', $script,
	  '-h', $node->host, '-p', $node->port, '-U', 'regress_w', 'postgres' ],
	'>', \$out, '2>', \$err);
delete $ENV{PGOPTIONS};

ok($node->poll_query_until('postgres', 'SELECT count(*) >= 200 FROM items'),
	'write load is running');
kill9_and_restart(sub { $bench->kill_kill; });
wait_chained();

my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
my $audited = $node->safe_psql('postgres', q{
	SELECT coalesce(sum(row_count), 0) FROM toms.audit_log
	 WHERE relname = 'public.items' AND action = 'INSERT' AND fate = 'committed'});
cmp_ok($rows, '>=', 200, "$rows committed rows survived the crash");
is($audited, $rows, 'every committed write has its audit record (0 missing, none extra)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT xid FROM toms.audit_log
	  WHERE relname = 'public.items' AND fate = 'committed'
	  GROUP BY xid, row_count, ts HAVING count(*) > 1) d}), '0', 'no record twice');
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't',
	'the chain verifies after the crash');

# --- audit_sync: rollbacks and denials survive a kill -9 ----------------
# Each phase runs as its own role: a pgbench transaction cut off by the
# kill -9 above may itself be recorded as rolled back (as regress_w).
my $sync_sql = "SET toms.audit_sync = on;\nSET SESSION AUTHORIZATION regress_s;\n";
for my $i (1 .. 5)
{
	$sync_sql .= "SET toms.context = 'c1';\nBEGIN;\nINSERT INTO items (v) VALUES ($i);\nROLLBACK;\n";
	$sync_sql .= "SET toms.context = 'no_such_tenant';\nSELECT count(*) FROM items;\n";
}
$sync_sql .= "SELECT 'done';\n";
my ($ret, $o, $e) = $node->psql('postgres', $sync_sql, on_error_stop => 0);
like($o, qr/done/, 'sync session ran');
kill9_and_restart();
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM toms.audit_log
	 WHERE relname = 'public.items' AND fate = 'rolled back' AND session_role = 'regress_s'}),
	'5', 'audit_sync: 5 rolled-back writes recorded before the kill -9');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM toms.audit_log
	 WHERE kind = 'denied' AND detail ->> 'claimed_tenant' = 'no_such_tenant' AND session_role = 'regress_s'}),
	'5', 'audit_sync: 5 denials recorded before the kill -9');

# --- asynchronous queue: a clean restart loses nothing ------------------
my $async_sql = "SET SESSION AUTHORIZATION regress_a;\n";
for my $i (1 .. 5)
{
	$async_sql .= "SET toms.context = 'c1';\nBEGIN;\nINSERT INTO items (v) VALUES ($i);\nROLLBACK;\n";
	$async_sql .= "SET toms.context = 'other_tenant';\nSELECT count(*) FROM items;\n";
}
$node->psql('postgres', $async_sql, on_error_stop => 0);
$node->restart;
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM toms.audit_log
	 WHERE fate = 'rolled back' AND session_role IN ('regress_s', 'regress_a')
	 GROUP BY session_role ORDER BY session_role}),
	"5\n5", 'clean restart: rolled-back writes recorded (and the earlier ones kept)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM toms.audit_log
	 WHERE kind = 'denied' AND detail ->> 'claimed_tenant' = 'other_tenant'}),
	'5', 'clean restart: denials recorded');
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't', 'chain verifies');

$node->stop;
done_testing();
