# Citus (issue 15, point 4): every node audits what it executes, and the
# coordinator verifies and assesses every node.  A read through the
# coordinator is recorded on the worker that ran the shard query; direct
# worker sessions (app role, table owner, worker superuser) are recorded on
# that worker; toms.citus_verify_audit() on the coordinator verifies every
# node's chain and names the node whose chain was edited, or that cannot be
# reached; toms.assess() on the coordinator covers the workers (7, 8a, 9a),
# naming the node and the shard at fault.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use TomsCitus;

# statement text in the records: each statement is found by a unique literal
my ($coord, $w1, $w2) = citus_cluster(conf => "toms.audit_statement_text = on\n");
my %node = (map { ($_->port => $_) } ($w1, $w2));
my ($n1, $n2) = map { '127.0.0.1:' . $_->port } ($w1, $w2);
$coord->safe_psql('postgres', q{
	CREATE ROLE owner1 LOGIN; CREATE ROLE alice LOGIN; CREATE ROLE aud LOGIN;
	GRANT toms_auditor TO aud;
	GRANT CREATE ON SCHEMA public TO owner1;
	SELECT toms.create_tenant('acme', 'Acme'); SELECT toms.create_tenant('globex', 'Globex');
	SELECT toms.add_member('alice', 'acme'); SELECT toms.add_member('owner1', 'acme');
	SET ROLE owner1;
	CREATE TABLE learners (id int, tenant_id text NOT NULL, name text, PRIMARY KEY (tenant_id, id));
	GRANT ALL ON learners TO alice;
	RESET ROLE;
	SELECT toms.protect('learners');
	SELECT create_distributed_table('learners', 'tenant_id');
});
for my $w ($w1, $w2)
{
	is($w->safe_psql('postgres', q{SELECT pg_has_role('aud', 'toms_auditor', 'MEMBER')}), 't',
		'the auditor role reached worker ' . $w->port);
}

sub as_tenant { return citus_as_tenant($coord, @_); }
as_tenant('alice', 'acme', "INSERT INTO learners (id, name) VALUES ($_, 'acme-$_')") for 1 .. 4;

# The worker that holds acme's shard, and the other one.
my $acme_port = $coord->safe_psql('postgres', q{SELECT nodeport FROM pg_dist_shard_placement
	WHERE shardid = get_shard_id_for_distribution_column('learners', 'acme')});
my $acme_shard = 'learners_' . $coord->safe_psql('postgres',
	q{SELECT get_shard_id_for_distribution_column('learners', 'acme')});
my $wa = $node{$acme_port};
my $wo = $acme_port == $w1->port ? $w2 : $w1;

# Records of a statement marked with a unique literal, on a node.
sub records
{
	my ($n, $marker, $cols) = @_;
	$n->safe_psql('postgres', 'SELECT toms.audit_flush()');
	return $n->safe_psql('postgres', qq{SELECT string_agg(concat_ws('|', $cols), ',' ORDER BY seq)
		FROM toms.audit_log WHERE statement LIKE '%$marker%' AND kind = 'access'});
}

# 1. A read through the coordinator: recorded on the coordinator (the
# statement) and on the worker that ran the shard query (with its tenant).
is(as_tenant('alice', 'acme', q{SELECT name FROM learners WHERE tenant_id = 'acme' AND id = 2 AND name <> 'm904-router'}), 'acme-2',
	'router read through the coordinator');
like(records($wa, 'm904-router', q{action, session_role, tenant, relname ~ 'learners_\d+', seq IS NOT NULL}),
	qr/^SELECT\|alice\|acme\|t\|t$/, 'the read is recorded, chained, on the worker that ran the shard query');
is(records($wo, 'm904-router', 'action'), '', 'and not on the other worker');
like(records($coord, 'm904-router', 'action, session_role, tenant'), qr/^SELECT\|alice\|acme$/,
	'and the statement on the coordinator');
# A multi-shard read: every worker that ran a shard query records it.
is(as_tenant('alice', 'acme', q{SELECT count(*) FROM learners WHERE name <> 'm904-multi'}), '4', 'multi-shard read');
for my $w ($w1, $w2)
{
	like(records($w, 'm904-multi', 'action, session_role, tenant'), qr/^SELECT\|alice\|acme(,SELECT\|alice\|acme)*$/,
		'multi-shard read recorded on worker ' . $w->port);
}

# 2. Sessions opened directly on the worker: the app role, the table owner,
# the worker's superuser.
sub on_worker
{
	my ($w, $user, $sql) = @_;
	my ($r, $o, $e) = $w->psql('postgres', "SET citus.override_table_visibility = off; $sql",
		extra_params => [ '-U', $user ]);
	return $r == 0 ? $o : "ERROR: $e";
}
is(on_worker($wa, 'alice', "BEGIN; SET LOCAL toms.context = 'acme'; SELECT count(*) FROM $acme_shard WHERE name <> 'm904-app'; COMMIT"),
	'4', 'worker, app role: direct read of the shard');
like(records($wa, 'm904-app', q{action, session_role, tenant, relname}), qr/^SELECT\|alice\|acme\|(public\.)?$acme_shard$/,
	'worker, app role: the direct read is recorded on that worker');
is(on_worker($wa, 'owner1', "BEGIN; SET LOCAL toms.context = 'acme'; SELECT count(*) FROM $acme_shard WHERE name <> 'm904-owner'; COMMIT"),
	'4', 'worker, table owner: direct read of the shard');
like(records($wa, 'm904-owner', q{action, session_role, tenant}), qr/^SELECT\|owner1\|acme$/,
	'worker, table owner: the direct read is recorded on that worker');
is(on_worker($wa, 'postgres', "SELECT count(*) FROM $acme_shard WHERE name <> 'm904-super'"), '4',
	'worker, superuser: direct read of the shard');
like(records($wa, 'm904-super', q{action, session_role}), qr/^SELECT\|postgres$/,
	"worker, superuser: the direct read is recorded on that worker");
is(on_worker($wa, 'alice', "BEGIN; SET LOCAL toms.context = 'acme'; UPDATE $acme_shard SET name = name WHERE id = 1 AND name <> 'm904-write'; COMMIT"),
	'', 'worker, app role: direct write');
like(records($wa, 'm904-write', q{action, session_role, tenant}), qr/^UPDATE\|alice\|acme$/,
	'worker, app role: the direct write is recorded on that worker');

# 3. One call on the coordinator verifies every node's chain, as the auditor.
my $cport = $coord->port;
sub verify
{
	my ($ret, $out, $err) = $coord->psql('postgres',
		q{SELECT node, ok, reachable, records > 0, first_bad, detail FROM toms.citus_verify_audit()},
		extra_params => [ '-U', 'aud' ]);
	is($ret, 0, 'citus_verify_audit runs as toms_auditor') or diag $err;
	return { map { my @f = split /\|/; ($f[0] => \@f) } split /\n/, $out };
}
my $v = verify();
is(scalar(keys %$v), 3, 'one row per node');
for my $n ("127.0.0.1:$cport", $n1, $n2)
{
	is(join('|', @{ $v->{$n} }[1 .. 4]), 't|t|t|', "node $n: chain verified") or diag explain $v;
	like($v->{$n}[5], qr/^\d+ records verified/, "node $n: records counted");
}
for my $w ($w1, $w2)
{
	$w->safe_psql('postgres', 'SELECT toms.audit_flush()');
	is($w->safe_psql('postgres', q{SELECT count(*) > 0 FROM toms.audit_log
		WHERE kind = 'admin' AND action = 'verify_audit' AND session_role = 'aud'}), 't',
		'the verification is recorded in worker ' . $w->port . "'s trail, as the auditor");
}
my ($ret, $out, $err) = $w1->psql('postgres', 'SELECT * FROM toms.citus_verify_audit()',
	extra_params => [ '-U', 'aud' ]);
like($err, qr/must run on the coordinator of a Citus cluster/, 'on a worker: refused, pointing to verify_audit()');

# assess() on the coordinator covers the workers.
sub assess
{
	my %r = map { my @f = split /\|/, $_, 3; ($f[0] => [ $f[1], $f[2] ]) }
	  split /\n/, $coord->safe_psql('postgres',
		q{SELECT control, status, evidence FROM toms.assess() WHERE control IN ('7', '8a', '9a')},
		extra_params => [ '-U', 'aud' ]);
	note "assess $_ $r{$_}[0]: $r{$_}[1]" for sort keys %r;
	return \%r;
}
# a streaming standby for worker 1 (8a counts each worker's own)
$w1->backup('b1');
my $sb = PostgreSQL::Test::Cluster->new('w1_standby');
$sb->init_from_backup($w1, 'b1', has_streaming => 1);
# the key Citus made for its connections' TLS, copied with group access
chmod 0600, $sb->data_dir . '/server.key';
$sb->start;
poll_until($w1, q{SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'}, '1')
  or die 'standby of worker 1 not streaming';
my $a = assess();
for my $n ($n1, $n2)
{
	like($a->{7}[1], qr/node \Q$n\E: audit chain verified in full/, "assess 7 verified node $n");
	like($a->{'9a'}[1], qr/node \Q$n\E: \d+ shard\(s\) force row security with their toms_tenant policy intact/,
		"assess 9a checked the shards on node $n");
}
is($a->{'9a'}[0], 'pass', 'assess 9a passes: every shard intact') or diag $a->{'9a'}[1];
like($a->{'8a'}[1], qr/node \Q$n1\E: 1 streaming standby\(s\) of 2 required for three copies: w1_standby \(streaming/,
	"assess 8a: worker 1's standby");
like($a->{'8a'}[1], qr/node \Q$n2\E: 0 streaming standby\(s\)/, "assess 8a: worker 2 has none");
is($a->{'8a'}[0], 'warn', 'assess 8a warns: fewer than two standbys per worker');
# The next assessment verifies on each worker only the records added since
# (as on one node), from where the coordinator recorded the last one ended.
my %upto = map { split /\|/ } split /\n/,
  $coord->safe_psql('postgres', 'SELECT node, verified_to FROM toms.citus_verified');
ok($upto{$n1} && $upto{$n2}, 'the coordinator recorded up to where each worker was verified')
  or diag explain \%upto;
# The first assessment's verification is recorded on each worker by the
# transaction itself and chained by that worker's audit worker: wait for it,
# so that there is a record added since on every worker.
is($_->safe_psql('postgres', 'SELECT toms.audit_flush()'), 't', 'flushed on worker ' . $_->port) for ($w1, $w2);
$a = assess();
for my $w ($w1, $w2)
{
	my $n = '127.0.0.1:' . $w->port;
	my ($from) = $a->{7}[1] =~ /node \Q$n\E: audit chain verified from record (\d+) to \d+ \(in full on /;
	ok(defined $from, "assess 7 again: node $n verified only the records added since") or next;
	# from the end of the last assessment's range, or of the node's last
	# whole verification if that ended later: no record skipped
	my $full_to = $w->safe_psql('postgres', q{SELECT (detail ->> 'to')::bigint FROM toms.audit_log
		WHERE kind = 'admin' AND action = 'verify_audit' AND (detail ->> 'whole')::boolean ORDER BY ts DESC LIMIT 1});
	is($from - 1, $upto{$n} > $full_to ? $upto{$n} : $full_to,
		"assess 7 again: node $n from where the last assessment or whole verification ended");
}
unlike($a->{7}[1], qr/BROKEN/, 'assess 7 again: no chain broken');

# 4. A worker's trail edited behind toms' back: the coordinator's
# verification and assess 7 name that worker and the record.
my $bad = $w2->safe_psql('postgres', q{SELECT min(seq) + 1 FROM toms.audit_log});
$w2->safe_psql('postgres', qq{
	SET session_replication_role = replica;
	UPDATE toms.audit_log SET actor = 'someone else' WHERE seq = $bad;
});
$v = verify();
is(join('|', @{ $v->{$n2} }[1 .. 4]), "f|t||$bad", "the edited worker $n2: not ok, first bad record $bad")
  or diag explain $v;
like($v->{$n2}[5], qr/record $bad does not match its hash/, 'with the reason');
is(join('|', @{ $v->{$n1} }[1 .. 2]), 't|t', 'the other worker: ok');
is(join('|', @{ $v->{"127.0.0.1:$cport"} }[1 .. 2]), 't|t', 'the coordinator: ok');
# the incident the worker's verification raised (written by its audit worker)
poll_until($w2, q{SELECT count(*) > 0 FROM toms.incidents WHERE kind = 'audit_chain_break'}, 't')
  or die 'no chain-break incident on worker 2';
$a = assess();
is($a->{7}[0], 'fail', 'assess 7 fails');
like($a->{7}[1], qr/node \Q$n2\E: audit chain BROKEN at record $bad/, 'assess 7 names the worker and the record');
like($a->{7}[1], qr/node \Q$n2\E: \d+ open audit chain break incident/, 'and its open incident');
unlike($a->{7}[1], qr/node \Q$n1\E: audit chain BROKEN/, 'not the other worker');

# 5. A shard whose row security is no longer forced, edited in the catalog
# by the worker's superuser (no hook sees it): assess 9a names node and shard.
my $other_shard = $coord->safe_psql('postgres', qq{SELECT shard_name('learners'::regclass, s.shardid, false)
	FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid)
	WHERE s.logicalrelid = 'learners'::regclass AND p.nodeport = ${\ $w1->port} ORDER BY 1 LIMIT 1});
like($other_shard, qr/^public\.learners_\d+$/, "a shard on worker 1: $other_shard");
$w1->safe_psql('postgres', qq{SET citus.override_table_visibility = off;
	UPDATE pg_class SET relforcerowsecurity = false WHERE oid = '$other_shard'::regclass});
$a = assess();
is($a->{'9a'}[0], 'fail', 'assess 9a fails');
like($a->{'9a'}[1], qr/node \Q$n1\E: shards weakened: \Q$other_shard\E \(row security not forced\)/,
	'assess 9a names the worker and the shard');
unlike($a->{'9a'}[1], qr/node \Q$n2\E: shards weakened/, 'not the other worker');

# 6. A worker stopped: not verified, never ok, named.
$sb->stop;
$w1->stop;
$v = verify();
is(join('|', @{ $v->{$n1} }[1 .. 4]), 'f|f||', "the stopped worker $n1: not ok, not reachable");
like($v->{$n1}[5], qr/^not verified: the node could not be reached/, 'reported as not verified');
$a = assess();
is($a->{7}[0], 'fail', 'assess 7 fails with a worker down');
like($a->{7}[1], qr/node \Q$n1\E could not be checked/, 'naming the worker');
like($a->{'9a'}[1], qr/node \Q$n1\E could not be checked/, 'assess 9a names it too');

# On a worker (not a coordinator), assess() is the one-node assessment.
unlike($w2->safe_psql('postgres', q{SELECT string_agg(evidence, ' ') FROM toms.assess()}), qr/node 127\.0\.0\.1:/,
	'assess on a worker: the node alone');

done_testing();
