# The verified-context cache in shared memory (src/context_cache.c), on a
# cache of 14 entries (two buckets of seven):
# - a context verified by one backend serves a fresh backend without a
#   second verification (no index scan of toms.members or toms.tenants),
#   for a tenant id and for a token;
# - the entry is per login role: another role verifies for itself;
# - a full cache gives up entries (they are verified again), never a wrong
#   answer;
# - two clients changing tenant ids and tokens in every transaction, with
#   entries replaced under them all the time (lookups take no lock), always
#   get the tenant and actor they set;
# - entries die with the commit of what changes them, whoever commits it and
#   however: a member removed, toms_app revoked (role DDL in autocommit),
#   pg_auth_members edited by a superuser, a removal under
#   session_replication_role = replica, a prepared transaction's COMMIT
#   PREPARED (verified in between under the old state); a transaction
#   that changes them shares nothing (it sees its own changes, rolled back);
# - and not with a backend that processes an old invalidation late (an idle
#   pooled connection): the cache is not started over for every backend.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('context_cache');
$node->init;
$node->append_conf('postgresql.conf', qq{
toms.context_cache_size = 14
log_statement = none
max_prepared_transactions = 2
# index scans counted below are toms' verifications only
autovacuum = off
});
$node->start;

my $tokens = 2000;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION toms;
	CREATE EXTENSION toms_test;
	CREATE ROLE regress_cc_app LOGIN IN ROLE toms_app;
	CREATE ROLE regress_cc_other LOGIN;
	SELECT count(toms.create_tenant('c' || n, 'Cache ' || n)) FROM generate_series(0, 119) n;
	SELECT count(toms.add_member('regress_cc_app', 'c' || n)) FROM generate_series(0, 119) n;
	SELECT toms.add_member('regress_cc_other', 'c1');
	CREATE TEMP TABLE k AS SELECT * FROM toms_test.keypair();
	SELECT toms.trust_key('regress-cc', public_key) FROM k;
	CREATE TABLE cc_tokens AS
		SELECT n, 'c' || (n % 120) AS tenant,
			toms_test.mint_claims((SELECT secret_key FROM k), 'c' || (n % 120), 'user' || n, '1 day', 'regress-cc') AS token
		  FROM generate_series(0, $tokens - 1) n;
	ALTER TABLE cc_tokens ADD PRIMARY KEY (n);
	GRANT SELECT ON cc_tokens TO regress_cc_app;
});

# index scans of toms' tables: one set per verification (each psql call is
# a new connection, which reports its statistics before it answers its last
# statement: as_role)
sub scans
{
	my ($index) = @_;
	return $node->safe_psql('postgres',
		"SELECT idx_scan FROM pg_stat_all_indexes WHERE schemaname = 'toms' AND indexrelname = '$index'");
}

sub as_role
{
	my ($role, $sql) = @_;
	my @out = split /\n/, $node->safe_psql('postgres',
		"SET SESSION AUTHORIZATION $role; $sql; RESET SESSION AUTHORIZATION; SELECT pg_stat_force_next_flush()");
	# the answer of $sql's last statement
	return $out[-1] // '';
}

# A fresh backend using $sql as $role after another did: true if it took
# the answer from the shared cache (no scan of $index).  The set-up's roles
# and tenants are processed late by toms' background workers (their next
# transaction): that must not start the cache over, so one try.
sub shared_pair
{
	my ($role, $sql, $index, $expect, $name) = @_;
	is(as_role($role, $sql), $expect, "$name: answer of the first backend");
	my $mid = scans($index);
	is(as_role($role, $sql), $expect, "$name: answer of a fresh backend");
	return scans($index) == $mid;
}

# Does $sql as $role in a fresh backend fail with $re?
sub refused
{
	my ($role, $sql, $re) = @_;
	# its index scans reach the statistics before it answers (as as_role)
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET SESSION AUTHORIZATION $role; $sql; RESET SESSION AUTHORIZATION; SELECT pg_stat_force_next_flush()",
		on_error_stop => 0);
	diag("rc $rc, stdout: $out, stderr: $err") unless $err =~ $re;
	return $err =~ $re;
}

# --- a tenant id -------------------------------------------------------
my $s0 = scans('members_tenant_idx');
is(as_role('regress_cc_app', q{SELECT toms.set_tenant('c1'); SELECT toms.current_tenant()}),
	'c1', 'set_tenant: the first backend verifies c1');
cmp_ok(scans('members_tenant_idx'), '>', $s0, '... reading toms.members');
ok(shared_pair('regress_cc_app', q{SELECT toms.set_tenant('c1'); SELECT toms.current_tenant()},
		'members_tenant_idx', 'c1', 'set_tenant'),
	'a fresh backend enters c1 from the shared cache: toms.members not read again');
my $s1 = scans('members_tenant_idx');
is(as_role('regress_cc_other', q{SELECT toms.set_tenant('c1'); SELECT toms.current_actor()}),
	'regress_cc_other', 'another role enters c1 as itself, not with the first role\'s entry');
cmp_ok(scans('members_tenant_idx'), '>', $s1, '... verified for that role');

# --- a token -----------------------------------------------------------
my $tok = $node->safe_psql('postgres', 'SELECT token FROM cc_tokens WHERE n = 7');
my $t0 = scans('tenants_pkey');
is(as_role('regress_cc_app', qq{SELECT set_config('toms.context', '$tok', false); SELECT toms.current_actor()}),
	'user7', 'token: the first backend verifies it');
cmp_ok(scans('tenants_pkey'), '>', $t0, '... reading toms.tenants');
ok(shared_pair('regress_cc_app',
		qq{SELECT set_config('toms.context', '$tok', false); SELECT toms.current_tenant() || ' ' || toms.current_actor()},
		'tenants_pkey', 'c7 user7', 'token'),
	'a fresh backend enters with the token from the shared cache: not verified again');

# --- a late invalidation does not start the cache over ---------------------
# An idle connection (a pool's) processes a role change only at its next
# statement, long after the commit; by then the shared cache holds contexts
# verified after the change, which must stay.
my $idle = $node->background_psql('postgres');
$idle->query_safe('SELECT 1');
$node->safe_psql('postgres', 'CREATE ROLE regress_cc_late');
is(as_role('regress_cc_app', q{SELECT toms.set_tenant('c2'); SELECT toms.current_tenant()}),
	'c2', 'after a role change, c2 is verified and shared');
$idle->query_safe('SELECT 1');	# processes CREATE ROLE's invalidation now
my $s2 = scans('members_tenant_idx');
is(as_role('regress_cc_app', q{SELECT toms.set_tenant('c2'); SELECT toms.current_tenant()}),
	'c2', 'a fresh backend enters c2 after the idle one caught up');
is(scans('members_tenant_idx'), $s2,
	'... from the shared cache: the late invalidation did not start it over');
$idle->quit;

# --- entries die with the commit of their change ----------------------------
# Each context is shared first (a fresh backend takes it from the cache),
# then changed in one statement in autocommit (no later command in its
# transaction processes its own invalidations), then refused in a fresh
# backend: the committing transaction itself started the cache over.
my $tok9 = $node->safe_psql('postgres', 'SELECT token FROM cc_tokens WHERE n = 9');
my $use9 = qq{SELECT set_config('toms.context', '$tok9', false); SELECT toms.current_tenant()};
ok(shared_pair('regress_cc_app', $use9, 'tenants_pkey', 'c9', 'token 9'), 'token 9 is shared');
$node->safe_psql('postgres', 'REVOKE toms_app FROM regress_cc_app');
ok(refused('regress_cc_app', $use9, qr/may not use tenant tokens/),
	'token 9 refused after REVOKE toms_app (role DDL, autocommit)');
$node->safe_psql('postgres', 'GRANT toms_app TO regress_cc_app');
ok(shared_pair('regress_cc_app', $use9, 'tenants_pkey', 'c9', 'token 9 again'),
	'token 9 is shared again after GRANT');
$node->safe_psql('postgres',
	q{DELETE FROM pg_auth_members WHERE roleid = 'toms_app'::regrole AND member = 'regress_cc_app'::regrole});
ok(refused('regress_cc_app', $use9, qr/may not use tenant tokens/),
	'token 9 refused after a superuser deleted the pg_auth_members row');
$node->safe_psql('postgres', 'GRANT toms_app TO regress_cc_app');

my $use3 = q{SELECT toms.set_tenant('c3'); SELECT toms.current_tenant()};
ok(shared_pair('regress_cc_app', $use3, 'members_tenant_idx', 'c3', 'c3'), 'c3 is shared');
$node->safe_psql('postgres', q{SELECT toms.remove_member('regress_cc_app', 'c3')});
ok(refused('regress_cc_app', $use3, qr/is not a member of tenant "c3"/),
	'c3 refused after remove_member (autocommit)');
# ... also when a superuser removes it with triggers switched off for the
# session (session_replication_role = replica, as a restore or a logical
# replication apply worker runs): toms' invalidation triggers fire always.
my $use11 = q{SELECT toms.set_tenant('c11'); SELECT toms.current_tenant()};
ok(shared_pair('regress_cc_app', $use11, 'members_tenant_idx', 'c11', 'c11'), 'c11 is shared');
$node->safe_psql('postgres',
	q{SET session_replication_role = replica; SELECT toms.remove_member('regress_cc_app', 'c11')});
ok(refused('regress_cc_app', $use11, qr/is not a member of tenant "c11"/),
	'c11 refused after remove_member under session_replication_role = replica');
$node->safe_psql('postgres', q{SELECT toms.add_member('regress_cc_app', 'c11')});

# A prepared transaction removes the member of c4; in between, c4 is still
# entered (and shared) under the old state; COMMIT PREPARED, from another
# session, must end that.
my $use4 = q{SELECT toms.set_tenant('c4'); SELECT toms.current_tenant()};
ok(shared_pair('regress_cc_app', $use4, 'members_tenant_idx', 'c4', 'c4'), 'c4 is shared');
$node->safe_psql('postgres',
	q{BEGIN; SELECT toms.remove_member('regress_cc_app', 'c4'); PREPARE TRANSACTION 'regress_cc_p1'});
ok(shared_pair('regress_cc_app', $use4, 'members_tenant_idx', 'c4', 'c4 prepared'),
	'c4 is still entered while the removal is prepared');
$node->safe_psql('postgres', q{COMMIT PREPARED 'regress_cc_p1'});
ok(refused('regress_cc_app', $use4, qr/is not a member of tenant "c4"/),
	'c4 refused after COMMIT PREPARED of its removal');
# a prepared transaction that changes nothing toms reads leaves the cache
my $use5 = q{SELECT toms.set_tenant('c5'); SELECT toms.current_tenant()};
ok(shared_pair('regress_cc_app', $use5, 'members_tenant_idx', 'c5', 'c5'), 'c5 is shared');
$node->safe_psql('postgres',
	q{BEGIN; CREATE TABLE cc_other (a int); PREPARE TRANSACTION 'regress_cc_p2'});
$node->safe_psql('postgres', q{COMMIT PREPARED 'regress_cc_p2'});
my $s5 = scans('members_tenant_idx');
is(as_role('regress_cc_app', $use5), 'c5', 'c5 after an unrelated COMMIT PREPARED');
is(scans('members_tenant_idx'), $s5, '... still from the shared cache');
$node->safe_psql('postgres',
	q{SELECT toms.add_member('regress_cc_app', 'c3'); SELECT toms.add_member('regress_cc_app', 'c4')});

# Changes that only add (a tenant, a member, a role, a role membership)
# cannot make an answer given before wrong: the cache stays.
my $use7 = q{SELECT toms.set_tenant('c7'); SELECT toms.current_tenant()};
ok(shared_pair('regress_cc_app', $use7, 'members_tenant_idx', 'c7', 'c7'), 'c7 is shared');
$node->safe_psql('postgres', q{SELECT toms.create_tenant('c900', 'Cache 900')});
$node->safe_psql('postgres', q{SELECT toms.add_member('regress_cc_app', 'c900')});
$node->safe_psql('postgres', q{CREATE ROLE regress_cc_new LOGIN});
$node->safe_psql('postgres', q{GRANT toms_app TO regress_cc_new});
my $s7 = scans('members_tenant_idx');
is(as_role('regress_cc_app', $use7), 'c7', 'c7 after a new tenant, member, role and grant');
is(scans('members_tenant_idx'), $s7, '... still from the shared cache: additions start nothing over');

# A transaction that adds a member and enters the tenant as that member
# sees its own change; rolled back, it must leave nothing in the cache.
is($node->safe_psql('postgres', q{BEGIN;
	SELECT toms.add_member('regress_cc_other', 'c6');
	SET SESSION AUTHORIZATION regress_cc_other;
	SELECT toms.set_tenant('c6'); SELECT toms.current_tenant();
	RESET SESSION AUTHORIZATION;
	ROLLBACK}), "\n\nc6", 'in the transaction that adds the member, c6 is entered');
ok(refused('regress_cc_other', q{SELECT toms.set_tenant('c6'); SELECT toms.current_tenant()},
		qr/is not a member of tenant "c6"/),
	'c6 refused after that transaction rolled back: nothing shared from it');

# --- a full cache gives entries up ---------------------------------------
as_role('regress_cc_app', q{DO $$ BEGIN
	FOR n IN 20..119 LOOP PERFORM toms.set_tenant('c' || n); PERFORM toms.current_tenant(); END LOOP;
END $$});
my $s3 = scans('members_tenant_idx');
is(as_role('regress_cc_app', q{SELECT toms.set_tenant('c1'); SELECT toms.current_tenant()}),
	'c1', 'after 100 other tenants in a cache of 14, c1 is entered');
cmp_ok(scans('members_tenant_idx'), '>', $s3, '... verified again: its entry was given up');

# --- two clients, entries replaced under them ------------------------------
# 2,000 tokens and 120 tenant ids: each backend's own cache (1,024) starts
# over again and again, so most contexts are looked up in the shared cache,
# whose 14 entries are replaced by the other client's stores all the time.
# A wrong tenant or actor divides by zero and fails the run.
$node->pgbench(
	'-n -M prepared -c 2 -j 2 -t 3000 -U regress_cc_app',
	0,
	[ qr{processed: 6000/6000} ],
	[ qr{^$} ],
	'two clients: every context resolves to the tenant and actor set',
	{
		'cc_churn' => qq{
\\set n random(0, @{[$tokens - 1]})
\\set t random(0, 119)
BEGIN;
SELECT token, tenant FROM cc_tokens WHERE n = :n \\gset
SELECT set_config('toms.context', :token, true);
SELECT 1 / (toms.current_tenant() = :tenant AND toms.current_actor() = 'user' || :n)::int;
SELECT toms.set_tenant('c' || :t, true);
SELECT 1 / (toms.current_tenant() = 'c' || :t AND toms.current_actor() = 'regress_cc_app')::int;
COMMIT;
}
	},
	'postgres');

$node->stop;
done_testing();
