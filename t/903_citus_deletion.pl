# Citus (issue 15, point 4): two-stage deletion, holds and retention across
# a coordinator and two workers, each worker with a streaming standby.
# Requests, approvals, holds and retention rules are made on the
# coordinator and are in force on every node at once: stage 1 hides a
# subject from router and multi-shard queries and from direct worker
# sessions; a hold keeps stage 2 back; stage 2 (the coordinator's lifecycle
# worker) purges every shard, waits for each worker's standby, and its
# certificate names every node and standby; a worker that cannot be
# reached fails the step, named, and the step is retried (a disabled one
# holds no shard and is not waited for); a retention rule
# set on the coordinator purges the workers' shards.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use TomsCitus;

my ($coord, $w1, $w2) = citus_cluster(conf => qq{
toms.deletion_approval = on
toms.deletion_batch_size = 50
toms.lifecycle_naptime = 100ms
wal_writer_delay = 10ms
});
# One streaming standby per worker (application_name: the standby's name).
my %standby;
for my $w ($w1, $w2)
{
	$w->backup('base');
	my $s = PostgreSQL::Test::Cluster->new($w->name . '_standby');
	$s->init_from_backup($w, 'base', has_streaming => 1);
	# the key Citus made for the worker's TLS came with the base backup
	chmod(0600, $s->data_dir . '/server.key') if -e $s->data_dir . '/server.key';
	$s->start;
	$standby{ $w->port } = $s;
}

$coord->safe_psql('postgres', q{
	CREATE ROLE owner1 LOGIN; CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
	CREATE ROLE approver LOGIN IN ROLE toms_admin;
	GRANT CREATE ON SCHEMA public TO owner1;
	SELECT toms.create_tenant('acme', 'Acme'); SELECT toms.create_tenant('globex', 'Globex');
	SELECT toms.add_member('alice', 'acme'); SELECT toms.add_member('bob', 'globex');
	SET ROLE owner1;
	CREATE TABLE learners (id int, tenant_id text NOT NULL, email text, PRIMARY KEY (tenant_id, id));
	CREATE TABLE results (tenant_id text NOT NULL, learner int, email text, score int);
	CREATE TABLE events (tenant_id text NOT NULL, at timestamptz NOT NULL, what text);
	GRANT ALL ON learners, results, events TO alice, bob;
	RESET ROLE;
	SELECT toms.protect('learners', subject_column => 'email');
	SELECT create_distributed_table('learners', 'tenant_id');
	SELECT create_distributed_table('results', 'tenant_id', colocate_with => 'learners');
	SELECT toms.protect('results', subject_column => 'email');
	SELECT create_distributed_table('events', 'tenant_id', colocate_with => 'learners');
	SELECT toms.protect('events');
});

sub as_tenant { return citus_as_tenant($coord, @_); }
# INSERT ... VALUES (multi-row INSERT ... SELECT into a protected
# distributed table is a Citus limit, docs/scaling.md)
for my $t ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($u, $tenant) = @$t;
	my $learners = join(',', map { "($_, 'l$_\@$tenant')" } 1 .. 40);
	my $results = join(',', map { my $l = 1 + $_ % 40; "($l, 'l$l\@$tenant', $_)" } 1 .. 120);
	my $events = join(',', map { "(now() - interval '$_ hours', 'e$_')" } 1 .. 48);
	is(as_tenant($u, $tenant, qq{
		INSERT INTO learners (id, email) VALUES $learners;
		INSERT INTO results (learner, email, score) VALUES $results;
		INSERT INTO events (at, what) VALUES $events}),
		'', "rows of $tenant written through the coordinator");
}

# Which worker holds a tenant's shard of a table, and the shard's name.
sub shard_of
{
	my ($table, $tenant) = @_;
	my ($id, $port) = split /\|/, $coord->safe_psql('postgres', qq{
		SELECT s.shardid, p.nodeport FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid)
		 WHERE s.logicalrelid = '$table'::regclass
		   AND s.shardid = get_shard_id_for_distribution_column('$table', '$tenant')});
	return ((grep { $_->port == $port } ($w1, $w2))[0], "${table}_$id");
}
my ($acme_node, $acme_learners) = shard_of('learners', 'acme');
my ($acme_rnode, $acme_results) = shard_of('results', 'acme');
sub on_node
{
	my ($node, $user, $sql) = @_;
	my ($r, $o, $e) = $node->psql('postgres', "SET citus.override_table_visibility = off; $sql",
		extra_params => [ '-U', $user ]);
	return $r == 0 ? $o : "ERROR: $e";
}

# --- Stage 1: one request on the coordinator hides the subject everywhere --
is(as_tenant('alice', 'acme', q{SELECT count(*) FROM learners WHERE tenant_id = 'acme' AND email = 'l1@acme'}),
	'1', 'before the request: the subject is visible (router query)');
my $req = $coord->safe_psql('postgres',
	q{SELECT toms.request_deletion('acme', 'l1@acme', reason => 'erasure request', grace => '0s')});
like($req, qr/^[0-9a-f-]{36}$/, 'request_deletion on the coordinator');
for my $w ($w1, $w2)
{
	is($w->safe_psql('postgres', "SELECT tenant || '/' || subject || '/' || state FROM toms.deletion_requests"),
		'acme/l1@acme/pending', 'the request is on worker ' . $w->port . ', in the same transaction');
}
is(as_tenant('alice', 'acme', q{SELECT count(*) FROM learners WHERE tenant_id = 'acme' AND email = 'l1@acme'}),
	'0', 'stage 1: router query no longer sees the subject');
is(as_tenant('alice', 'acme', q{SELECT count(*) FROM learners}), '39', 'stage 1: multi-shard query sees the others only');
is(as_tenant('alice', 'acme', q{SELECT count(*) FROM results WHERE email = 'l1@acme'}), '0',
	'stage 1: the subject is hidden in the colocated table too');
is(as_tenant('alice', 'acme', q{SELECT count(*) FROM learners l JOIN results r USING (tenant_id, email)}), '117',
	'stage 1: colocated join without the subject');
is(on_node($acme_node, 'alice', "BEGIN; SET LOCAL toms.context = 'acme'; SELECT count(*) FROM $acme_learners WHERE email = 'l1\@acme'; COMMIT"),
	'0', 'stage 1: a direct session of the app role on the worker does not see the subject');
is(on_node($acme_node, 'alice', "BEGIN; SET LOCAL toms.context = 'acme'; SELECT count(*) FROM $acme_learners; COMMIT"),
	'39', 'stage 1: ... and sees the tenant\'s other rows');
is(on_node($acme_node, 'postgres', "SELECT count(*) FROM $acme_learners WHERE email = 'l1\@acme'"),
	'1', 'stage 1 keeps the rows (only hidden)');

# --- Holds: placed on the coordinator, in force for stage 2 ---------------
$coord->safe_psql('postgres', q{SELECT toms.hold('acme', 'litigation 2026-17')}, extra_params => [ '-U', 'approver' ]);
is(join('/', map { $_->safe_psql('postgres', q{SELECT held_by FROM toms.holds}) . ','
	  . $_->safe_psql('postgres', "SELECT requested_by FROM toms.deletion_requests WHERE id = '$req'") } ($coord, $w1, $w2)),
	'approver,postgres/approver,postgres/approver,postgres', 'who held and who requested: the same on every node');
is($w2->safe_psql('postgres', q{SELECT reason FROM toms.holds WHERE tenant = 'acme'}), 'litigation 2026-17',
	'the hold is on the workers too');
my ($r, $o, $e) = $coord->psql('postgres', "SELECT toms.approve_deletion('$req')");
like($e, qr/a deletion must be approved by a role other than its requester/, 'the requester cannot approve');
$coord->safe_psql('postgres', "SELECT toms.approve_deletion('$req')", extra_params => [ '-U', 'approver' ]);
is($w1->safe_psql('postgres', "SELECT approved_by FROM toms.deletion_requests WHERE id = '$req'"), 'approver',
	'the approval is on the workers too');
# A second request, not held, is the witness that the lifecycle worker
# went past the held one (requests are taken in the order they were made).
my $req2 = $coord->safe_psql('postgres',
	q{SELECT toms.request_deletion('globex', 'l2@globex', grace => '0s')});
$coord->safe_psql('postgres', "SELECT toms.approve_deletion('$req2')", extra_params => [ '-U', 'approver' ]);
ok(poll_until($coord, "SELECT toms.deletion_certificate('$req2') IS NOT NULL", 't'),
	'an approved request without hold completes')
  or diag($coord->safe_psql('postgres', 'SELECT * FROM toms.deletion_progress'));
is($coord->safe_psql('postgres', "SELECT state || '/' || phase FROM toms.deletion_requests r
	JOIN toms.deletion_progress p ON p.request = r.id WHERE r.id = '$req'"), 'pending/held',
	'the held request has not started');
is(on_node($acme_node, 'postgres', "SELECT count(*) FROM $acme_learners WHERE email = 'l1\@acme'"),
	'1', 'hold: the rows are still on the worker');

# --- Stage 2 across the nodes --------------------------------------------
$coord->safe_psql('postgres', q{SELECT toms.release_hold('acme')});
ok(poll_until($coord, "SELECT toms.deletion_certificate('$req') IS NOT NULL", 't'),
	'after the hold is released, stage 2 completes')
  or diag($coord->safe_psql('postgres', 'SELECT * FROM toms.deletion_progress'));
is(on_node($acme_node, 'postgres', "SELECT count(*) FROM $acme_learners WHERE email = 'l1\@acme'"),
	'0', 'stage 2: the subject\'s rows are gone from the learners shard');
is(on_node($acme_rnode, 'postgres', "SELECT count(*) FROM $acme_results WHERE email = 'l1\@acme'"),
	'0', 'stage 2: ... and from the results shard');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM learners WHERE email <> 'l1@acme'})
	. '/' . $coord->safe_psql('postgres', q{SELECT count(*) FROM results WHERE email <> 'l1@acme'}),
	'78/234', 'stage 2: every other row is kept (each tenant lost one subject)');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM results WHERE email IN ('l1@acme', 'l2@globex')}),
	'0', 'stage 2: no row of either subject on any shard');
my $standby_of_acme = $standby{ $acme_node->port };
is($standby_of_acme->safe_psql('postgres',
		"SET citus.override_table_visibility = off; SELECT count(*) FROM $acme_learners WHERE email = 'l1\@acme'"),
	'0', 'the worker\'s standby has replayed the purge');

my $cert = "toms.deletion_certificate('$req')";
is($coord->safe_psql('postgres', qq{SELECT string_agg(n->>'role' || '=' || (n->>'node'), ' ' ORDER BY n->>'role', n->>'node')
	FROM jsonb_array_elements($cert->'nodes') n}),
	join(' ', 'coordinator=127.0.0.1:' . $coord->port,
		map { "worker=127.0.0.1:$_" } sort { "$a" cmp "$b" } ($w1->port, $w2->port)),
	'the certificate names every node');
for my $w ($w1, $w2)
{
	is($coord->safe_psql('postgres', qq{SELECT string_agg(s->>'application_name', ',')
		FROM jsonb_array_elements($cert->'nodes') n, jsonb_array_elements(n->'standbys') s
		WHERE n->>'node' = '127.0.0.1:${\ $w->port}'}),
		$w->name . '_standby', 'the certificate names the standby of worker ' . $w->port);
	is($coord->safe_psql('postgres', qq{SELECT bool_and((s->>'replay_lsn')::pg_lsn >= (n->>'purge_lsn')::pg_lsn)
		FROM jsonb_array_elements($cert->'nodes') n, jsonb_array_elements(n->'standbys') s
		WHERE n->>'node' = '127.0.0.1:${\ $w->port}'}),
		't', 'that standby replayed past its worker\'s purge');
}
is($coord->safe_psql('postgres', "SELECT $cert->>'proceeded_with_fewer_copies'"), 'false', 'no shortfall');
is($coord->safe_psql('postgres', "SELECT $cert->>'approved_by'"), 'approver', 'the certificate names the approver');
is($w1->safe_psql('postgres', "SELECT state FROM toms.deletion_requests WHERE id = '$req'"), 'done',
	'the workers\' copy of the request is done too');

# --- A worker that cannot be reached: the step fails, named, and is retried
my $req3 = $coord->safe_psql('postgres',
	q{SELECT toms.request_deletion('acme', 'l3@acme', grace => '4s')});
$coord->safe_psql('postgres', "SELECT toms.approve_deletion('$req3')", extra_params => [ '-U', 'approver' ]);
my $log_offset = -s $coord->logfile;
$w2->stop('fast');
ok($coord->wait_for_log(qr/toms could not complete a deletion step on Citus node 127\.0\.0\.1:${\ $w2->port}/, $log_offset),
	'worker down: the deletion step fails, naming the node');
is($coord->safe_psql('postgres', "SELECT toms.deletion_certificate('$req3') IS NULL"), 't',
	'worker down: nothing is certified');
$w2->start;
ok(poll_until($coord, "SELECT toms.deletion_certificate('$req3') IS NOT NULL", 't'),
	'worker back: the step is retried and the deletion completes')
  or diag($coord->safe_psql('postgres', 'SELECT * FROM toms.deletion_progress'));
is($coord->safe_psql('postgres', q{SELECT count(*) FROM learners WHERE email = 'l3@acme'}), '0',
	'the retried deletion purged the subject');

# --- A disabled worker is not waited for: Citus moved every shard's only
# placement off it (it refuses to disable a node holding one), so stage 2
# runs on the active workers, and the certificate names those only.
my $w3 = citus_node('worker3');
citus_add_worker($coord, $w3);
$coord->safe_psql('postgres', 'SELECT toms.citus_setup()');
$coord->safe_psql('postgres', sprintf(q{SELECT citus_disable_node('127.0.0.1', %d, synchronous => true)}, $w3->port));
$w3->stop('fast');
my $req5 = $coord->safe_psql('postgres',
	q{SELECT toms.request_deletion('acme', 'l5@acme', grace => '4s')});
$coord->safe_psql('postgres', "SELECT toms.approve_deletion('$req5')", extra_params => [ '-U', 'approver' ]);
ok(poll_until($coord, "SELECT toms.deletion_certificate('$req5') IS NOT NULL", 't'),
	'a disabled worker, down: the deletion completes on the active nodes')
  or diag($coord->safe_psql('postgres', 'SELECT * FROM toms.deletion_progress'));
is($coord->safe_psql('postgres', qq{SELECT string_agg(n->>'node', ',' ORDER BY n->>'node')
	FROM jsonb_array_elements(toms.deletion_certificate('$req5')->'nodes') n WHERE n->>'role' = 'worker'}),
	join(',', sort map { '127.0.0.1:' . $_->port } $w1, $w2), 'its certificate names the active workers only');
$coord->safe_psql('postgres', sprintf(q{SELECT citus_remove_node('127.0.0.1', %d)}, $w3->port));

# --- A whole tenant: stage 1 on every node, and cancelled on every node --
my ($globex_node, $globex_learners) = shard_of('learners', 'globex');
my $req4 = $coord->safe_psql('postgres', q{SELECT toms.request_deletion('globex', reason => 'contract ended')});
like(on_node($globex_node, 'bob', "BEGIN; SET LOCAL toms.context = 'globex'; SELECT count(*) FROM $globex_learners; COMMIT"),
	qr/tenant "globex" is not active/, 'whole tenant, stage 1: a direct worker session cannot enter it');
like(as_tenant('bob', 'globex', q{SELECT count(*) FROM learners}), qr/ERROR/,
	'whole tenant, stage 1: nor a query through the coordinator');
$coord->safe_psql('postgres', "SELECT toms.cancel_deletion('$req4')", extra_params => [ '-U', 'approver' ]);
is(on_node($globex_node, 'bob', "BEGIN; SET LOCAL toms.context = 'globex'; SELECT count(*) FROM $globex_learners; COMMIT"),
	'39', 'cancelled on the coordinator: the tenant is back on the workers');
is($w1->safe_psql('postgres', "SELECT state || '/' || cancelled_by FROM toms.deletion_requests WHERE id = '$req4'"),
	'cancelled/approver', 'the cancellation is on the workers');

# --- Retention set on the coordinator is in force on the workers ---------
$coord->safe_psql('postgres', q{SELECT toms.set_retention('events', 'at', '1 day')});
for my $w ($w1, $w2)
{
	is($w->safe_psql('postgres', q{SELECT relid::text || '/' || keep FROM toms.retention}), 'events/1 day',
		'the retention rule is on worker ' . $w->port);
}
ok(poll_until($coord, q{SELECT count(*) FROM events WHERE at < now() - interval '1 day'}, '0'),
	'retention: the workers purged the expired rows of their shards');
# (by label, not by clock: e1 to e23 of each tenant, however long the test ran)
is($coord->safe_psql('postgres', q{SELECT count(*) FROM events WHERE what IN (SELECT 'e' || g FROM generate_series(1, 23) g)}),
	'46', 'retention: the rows that have not expired are kept');

done_testing();
