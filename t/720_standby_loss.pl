# A synchronous standby that is away (docs/audit.md, "Standbys"):
# - reads of a protected table go on, and their audit records are written
#   and chained (the audit worker commits locally, not waiting for the
#   standby), with toms.audit_sync both off and on;
# - writes keep their own transaction's semantics: a write waits for the
#   standby like any write (cancelled here by statement_timeout);
# - a fast shutdown completes within seconds.
# Before the fix, the worker waited in SyncRepWaitForLSN, the queue filled,
# every read waited, and pg_ctl stop -m fast hung.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
# small queue: without the fix it fills within a second of reads
$node->append_conf('postgresql.conf', "toms.audit_queue_size = 64\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	CREATE ROLE regress_reader LOGIN;
	CREATE ROLE regress_sync LOGIN;
	ALTER ROLE regress_sync SET toms.audit_sync = on;
	SELECT toms.create_tenant('acme', 'ACME Corp');
	SELECT toms.add_member('regress_reader', 'acme');
	SELECT toms.add_member('regress_sync', 'acme');
	CREATE TABLE learners (tenant_id text NOT NULL, id int, name text, PRIMARY KEY (tenant_id, id));
	SELECT toms.protect('learners');
	GRANT SELECT, INSERT ON learners TO regress_reader, regress_sync;
});
$node->safe_psql('postgres',
	"SELECT toms.set_tenant('acme'); INSERT INTO learners SELECT 'acme', g, 'n' || g FROM generate_series(1, 50) g",
	extra_params => [ '-U', 'regress_reader' ]);

# The standby "ghost" does not exist: every synchronous commit would wait
# (so nothing below writes, but for the one write that shows it).
$node->append_conf('postgresql.conf', "synchronous_standby_names = 'ghost'\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('synchronous_standby_names') = 'ghost'")
  or die 'setting not applied';

my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM toms.audit_log WHERE kind = \'access\'');

# 400 audited reads, far more than the queue holds, each under a timeout:
# none may wait for the standby.
my $reads = join('', map { "SELECT count(*) FROM learners WHERE id = $_;\n" } 1 .. 400);
my $t0 = time;
my ($rc, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '20s'; SELECT toms.set_tenant('acme');\n$reads",
	extra_params => [ '-U', 'regress_reader' ]);
is($rc, 0, 'reads of a protected table go on while the synchronous standby is away')
  or diag($err);
cmp_ok(time - $t0, '<', 20, 'and do not wait for it');

ok( $node->poll_query_until('postgres',
		"SELECT toms.audit_flush(10000) AND (SELECT count(*) FROM toms.audit_log WHERE kind = 'access') >= $before + 400"),
	'every read has its audit record, written while the standby is away');
is($node->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't', 'the chain verifies');

# With toms.audit_sync = on a statement waits for its records: locally only.
($rc, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '20s'; SELECT toms.set_tenant('acme');\n"
	  . join('', map { "SELECT count(*) FROM learners WHERE id = $_;\n" } 1 .. 20),
	extra_params => [ '-U', 'regress_sync' ]);
is($rc, 0, 'toms.audit_sync = on: reads still go on (records durable locally)') or diag($err);

# A write keeps its own semantics: it waits for the synchronous standby,
# as without toms (cancelled here once it is seen waiting).
my ($in, $wout, $werr) = ('', '', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-U', 'regress_reader', '-c',
	  "SELECT toms.set_tenant('acme'); INSERT INTO learners VALUES ('acme', 1000, 'w')" ],
	'<', \$in, '>', \$wout, '2>', \$werr);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE usename = 'regress_reader' AND wait_event = 'SyncRep'"),
	'a write waits for the synchronous standby');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = 'regress_reader' AND wait_event = 'SyncRep'");
$h->finish;
like($werr, qr/canceling wait for synchronous replication/, 'and is released only by a cancel');

# Fast shutdown with the standby still away: within seconds.
$t0 = time;
my $stopped = eval { $node->stop('fast'); 1 };
ok($stopped, 'fast shutdown completes with the synchronous standby away');
cmp_ok(time - $t0, '<', 15, 'within seconds');

done_testing();
