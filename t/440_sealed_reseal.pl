# toms.rotate_tenant_key() starts the reseal worker, which re-seals the
# tenant's older values in committed batches; progress is visible in
# toms.key_rotations; a terminated worker is restarted and resumes; after
# a crash of the server, toms.reseal_start() resumes the work.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('reseal');
$node->init;
$node->append_conf('postgresql.conf', qq{
toms.reseal_batch_size = 100
toms.reseal_naptime = 100
log_statement = 'none'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	SELECT toms.create_tenant('t1', 'One'), toms.create_tenant('t2', 'Two');
	CREATE ROLE a LOGIN; CREATE ROLE b LOGIN;
	SELECT toms.add_member('a', 't1'), toms.add_member('b', 't2');
	CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL, secret toms.sealed, other toms.sealed);
	GRANT ALL ON items TO a, b;
	SELECT toms.protect('items', sensitive => '{secret,other}');
});
$node->safe_psql('postgres', q{SET toms.context = 't1';
	INSERT INTO items (id, secret, other) SELECT g, toms.seal('s' || g), CASE WHEN g % 3 = 0 THEN toms.seal('o' || g) END
	  FROM generate_series(1, 2000) g}, extra_params => [ '-U', 'a' ]);
$node->safe_psql('postgres', q{SET toms.context = 't2';
	INSERT INTO items (id, secret) SELECT g, toms.seal('t' || g) FROM generate_series(5001, 5100) g},
	extra_params => [ '-U', 'b' ]);

my $digest_t1 = q{SET toms.context = 't1'; SELECT md5(string_agg(toms.unseal(secret) || coalesce(toms.unseal(other), '-'), ',' ORDER BY id)) FROM items};
my $before = $node->safe_psql('postgres', $digest_t1, extra_params => [ '-U', 'a' ]);
my $versions = q{SELECT string_agg(tenant_id || ':v' || v || '=' || n, ' ' ORDER BY tenant_id, v) FROM
	(SELECT tenant_id, toms.sealed_key_version(secret) AS v, count(*) AS n FROM items GROUP BY 1, 2) x};
is($node->safe_psql('postgres', $versions), 't1:v1=2000 t2:v1=100', 'all values under version 1');

# Rotation: the worker converts everything of t1, nothing of t2.
is($node->safe_psql('postgres', q{SELECT toms.rotate_tenant_key('t1')}), '2', 'rotated to version 2');
ok($node->poll_query_until('postgres', q{SELECT finished_at IS NOT NULL FROM toms.key_rotations WHERE to_version = 2}),
	'reseal worker finished');
is($node->safe_psql('postgres', $versions), 't1:v2=2000 t2:v1=100', 'all t1 values re-sealed, t2 untouched');
is($node->safe_psql('postgres', q{SELECT resealed FROM toms.key_rotations WHERE to_version = 2}), '2000', 'progress counted');
is($node->safe_psql('postgres', q{SELECT count(*) FROM items WHERE toms.sealed_key_version(other) <> 2 AND tenant_id = 't1'}),
	'0', 'second sensitive column too');
is($node->safe_psql('postgres', $digest_t1, extra_params => [ '-U', 'a' ]), $before, 'plaintexts unchanged');

# A terminated worker is restarted by the postmaster and resumes.
# (slow enough that the worker is terminated before it finishes)
$node->safe_psql('postgres', q{ALTER SYSTEM SET toms.reseal_naptime = 600; SELECT pg_reload_conf()});
$node->safe_psql('postgres', q{SELECT toms.rotate_tenant_key('t1')});
ok($node->poll_query_until('postgres', q{SELECT resealed > 0 FROM toms.key_rotations WHERE to_version = 3}), 'worker started');
is($node->safe_psql('postgres', q{SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'toms reseal worker') x}),
	'1', 'worker terminated');
ok($node->safe_psql('postgres', q{SELECT finished_at IS NULL FROM toms.key_rotations WHERE to_version = 3}) eq 't',
	'not finished when terminated');
ok($node->poll_query_until('postgres', q{SELECT finished_at IS NOT NULL FROM toms.key_rotations WHERE to_version = 3}),
	'restarted worker finished');
is($node->safe_psql('postgres', $versions), 't1:v3=2000 t2:v1=100', 'all re-sealed after a restart of the worker');

# A crash of the server: toms.reseal_start() resumes.
$node->safe_psql('postgres', q{ALTER SYSTEM SET toms.reseal_naptime = 1000; SELECT pg_reload_conf()});
$node->safe_psql('postgres', q{SELECT toms.rotate_tenant_key('t1')});
ok($node->poll_query_until('postgres', q{SELECT resealed > 0 FROM toms.key_rotations WHERE to_version = 4}), 'worker started again');
$node->stop('immediate');
$node->start;
my $partial = $node->safe_psql('postgres', q{SELECT count(*) FROM items WHERE toms.sealed_key_version(secret) = 4});
ok($partial > 0 && $partial < 2000, "crash left the work partly done ($partial of 2000)");
$node->safe_psql('postgres', q{ALTER SYSTEM SET toms.reseal_naptime = 10; SELECT pg_reload_conf()});
$node->safe_psql('postgres', q{SELECT toms.reseal_start()});
ok($node->poll_query_until('postgres', q{SELECT finished_at IS NOT NULL FROM toms.key_rotations WHERE to_version = 4}),
	'resumed after the crash');
is($node->safe_psql('postgres', $versions), 't1:v4=2000 t2:v1=100', 'every value re-sealed exactly once more');
is($node->safe_psql('postgres', $digest_t1, extra_params => [ '-U', 'a' ]), $before, 'plaintexts still unchanged');

$node->stop;
done_testing();
