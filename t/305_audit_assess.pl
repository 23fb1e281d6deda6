# Audit records of toms' own workers, and assess() on the audit chain
# (docs/audit.md, docs/assess.md):
# - the lifecycle worker's reads of a protected table (retention) are
#   recorded as toms, not as a superuser's reads, and assess() 5a does not
#   count them;
# - assess() 7 verifies the whole chain when no full verification is
#   recent, then only what was added since; it fails while an
#   audit_chain_break incident is open, and, once that is closed, while the
#   last full verification failed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_assess');
$node->init;
$node->append_conf('postgresql.conf', qq{
toms.audit_flush_delay = 100ms
toms.lifecycle_naptime = 200ms
fsync = off
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
	CREATE EXTENSION toms;
	CREATE ROLE regress_a LOGIN;
	CREATE ROLE regress_a_aud IN ROLE toms_auditor;
	SELECT toms.create_tenant('a1', 'Assess');
	SELECT toms.add_member('regress_a', 'a1');
	CREATE TABLE events (tenant_id text NOT NULL, at timestamptz NOT NULL, v int);
	GRANT SELECT, INSERT ON events TO regress_a;
	SELECT toms.protect('events');
	INSERT INTO events SELECT 'a1', now() - interval '40 days', g FROM generate_series(1, 50) g;
	INSERT INTO events SELECT 'a1', now(), g FROM generate_series(1, 5) g;
	SELECT toms.set_retention('events', 'at', '30 days');
});

# --- toms' own workers are recorded as toms ---------------------------------
# Polled as the member (a superuser's read of events would count in 5a),
# for at most 180 s.
my $left;
for (1 .. 900)
{
	$left = sql(q{SET SESSION AUTHORIZATION regress_a; SET toms.context = 'a1'; SELECT count(*) FROM events});
	last if $left eq '5';
	select(undef, undef, undef, 0.2);
}
is($left, '5', 'the lifecycle worker purged the expired rows');
ok($node->poll_query_until('postgres', q{
	SELECT toms.audit_flush() AND EXISTS (SELECT 1 FROM toms.audit_log
		WHERE kind = 'access' AND relname = 'public.events' AND action = 'SELECT'
		  AND application_name = 'toms lifecycle worker')}),
	'the worker\'s reads are recorded');
is(sql(q{SELECT string_agg(DISTINCT actor || '|' || client_addr || '|' || (detail ->> 'toms_worker'), ',')
		   FROM toms.audit_log
		  WHERE kind = 'access' AND relname = 'public.events' AND application_name = 'toms lifecycle worker'}),
	'toms|background|toms lifecycle worker', 'recorded as toms: actor, application and worker');
like(sql(q{SELECT status || ': ' || evidence FROM toms._assess_5a()}),
	qr/^pass: .*; 0 read\(s\) of protected tables by roles outside row security/,
	'assess 5a does not count the reads of toms itself');
# a superuser's read still counts
sql(q{SELECT count(*) FROM events});
sql(q{SELECT toms.audit_flush()});
like(sql(q{SELECT status || ': ' || evidence FROM toms._assess_5a()}),
	qr/^warn: .*; 1 read\(s\) of protected tables by roles outside row security/,
	'a superuser\'s read is counted');
sql(q{SELECT toms.clear_retention('events')});

# --- assess 7 and the chain ---------------------------------------------------
sub assess7 { return sql(q{SELECT status || ': ' || evidence FROM toms.assess() WHERE control = '7'}); }

my $a = assess7();
like($a, qr/^(pass|warn): .*audit chain verified in full: \d+ records verified/,
	'first assessment: the whole chain is verified');
is(sql(q{SELECT count(*) FROM toms.audit_log WHERE kind = 'admin' AND action = 'verify_audit'
		   AND (detail ->> 'whole')::boolean AND (detail ->> 'ok')::boolean}),
	'1', 'the full verification is recorded');
sql(q{SET SESSION AUTHORIZATION regress_a; SET toms.context = 'a1'; SELECT count(*) FROM events});
sql(q{SELECT toms.audit_flush()});
like(assess7(), qr/^(pass|warn): .*audit chain verified from record \d+ to \d+ \(in full on /,
	'next assessment: only what was added since');

# A superuser edits an old record, bypassing the trigger; verify_audit()
# finds it and opens an audit_chain_break incident.
my $victim = sql(q{SELECT min(seq) + 1 FROM toms.audit_log});
sql(qq{SET session_replication_role = replica;
	   UPDATE toms.audit_log SET actor = 'someone else' WHERE seq = $victim});
like(assess7(), qr/^(pass|warn): /, 'an edit of an old record alone is not seen by an incremental assessment');
is(sql(q{SELECT ok FROM toms.verify_audit()}), 'f', 'verify_audit() finds the edit');
sql(q{SELECT toms.audit_flush()});
my $inc = sql(q{SELECT id FROM toms.incidents WHERE kind = 'audit_chain_break'});
like($inc, qr/^\d+$/, 'one audit_chain_break incident');
like(assess7(), qr/^fail: .*open audit chain break incident\(s\): $inc /,
	'assess 7 fails while the chain-break incident is open');
# the chain break (found twice by now) and the superuser's accesses above
sql(q{SELECT toms.audit_flush()});
my $n = sql(q{SELECT count(*) FROM toms.incidents});
like(sql(q{SELECT status || ': ' || evidence FROM toms._assess_10a()}), qr/^warn: $n open incident\(s\) of $n recorded/,
	'assess 10a counts it');
sql(qq{SET SESSION AUTHORIZATION regress_a_aud;
	   SELECT toms.close_incident($inc, 'edited by the test on purpose')});
like(sql(q{SELECT status || ': ' || evidence FROM toms._assess_10a()}), qr/^warn: @{[$n - 1]} open incident\(s\) of $n recorded/,
	'closed, assess 10a counts it no more');
like(assess7(), qr/^fail: .*audit chain BROKEN at record $victim: /,
	'closed, assess 7 still fails: the last full verification failed, and so does the next');

$node->stop;
done_testing();
