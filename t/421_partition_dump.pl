# pg_dump / pg_restore of a protected partitioned table (issue 17): every
# partition comes back protected -- its row in toms.protected_tables, forced
# row security, its own tenant and subject policies, the sealed-column
# trigger on the root cloned onto the partitions -- rows read the same for
# each tenant, a partition read directly is filtered, and a partition
# created after the restore is protected as before.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $tempdir = PostgreSQL::Test::Utils::tempdir;

my $setup_roles = q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
};

my $a = PostgreSQL::Test::Cluster->new('source');
$a->init;
$a->start;
$a->safe_psql('postgres', $setup_roles);
$a->safe_psql('postgres', q{CREATE DATABASE app});
$a->safe_psql('app', q{
	CREATE EXTENSION toms;
	SELECT toms.create_tenant('acme', 'Acme'), toms.create_tenant('globex', 'Globex');
	SELECT toms.add_member('alice', 'acme'), toms.add_member('bob', 'globex');
	CREATE TABLE results (tenant_id text NOT NULL, learner text NOT NULL,
	                      at timestamptz NOT NULL DEFAULT now(), score int, note toms.sealed)
		PARTITION BY HASH (tenant_id);
	CREATE TABLE results_h0 PARTITION OF results FOR VALUES WITH (MODULUS 2, REMAINDER 0)
		PARTITION BY RANGE (at);
	CREATE TABLE results_h0_old PARTITION OF results_h0 FOR VALUES FROM (MINVALUE) TO ('2020-01-01');
	CREATE TABLE results_h0_new PARTITION OF results_h0 FOR VALUES FROM ('2020-01-01') TO (MAXVALUE);
	CREATE TABLE results_h1 PARTITION OF results FOR VALUES WITH (MODULUS 2, REMAINDER 1);
	GRANT ALL ON ALL TABLES IN SCHEMA public TO alice, bob;
	SELECT toms.protect('results', sensitive => '{note}', subject_column => 'learner');
});
for my $r ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($role, $tenant) = @$r;
	$a->safe_psql('app', "SET toms.context = '$tenant'; INSERT INTO results (learner, at, score, note) "
		  . "SELECT '$role' || g, CASE WHEN g % 2 = 0 THEN timestamptz '2019-06-01' ELSE now() END, g, "
		  . "toms.seal('$tenant-' || g) FROM generate_series(1, 6) g",
		extra_params => [ '-U', $role ]);
}

# Per tenant: the rows, the opened sealed values, and each partition read
# directly.
my $rows_query = q{SELECT string_agg(tableoid::regclass || ':' || tenant_id || ':' || learner || ':' || score
	|| ':' || toms.unseal(note), ',' ORDER BY learner) FROM results};
my $direct_query = q{SELECT (SELECT count(*) FROM results_h0) || '/' || (SELECT count(*) FROM results_h0_old)
	|| '/' || (SELECT count(*) FROM results_h0_new) || '/' || (SELECT count(*) FROM results_h1)};
my %before;
for my $r ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($role, $tenant) = @$r;
	$before{$tenant} = $a->safe_psql('app', "SET toms.context = '$tenant'; $rows_query; $direct_query",
		extra_params => [ '-U', $role ]);
}
like($before{acme}, qr/acme-1/, 'source: acme reads its rows');
unlike($before{acme}, qr/globex/, 'source: acme reads no globex row');

# What protection looks like, table by table.
my $shape_query = q{
	SELECT string_agg(c.relname || ' ' || c.relforcerowsecurity
		|| ' ' || coalesce((SELECT string_agg(p.polname, '+' ORDER BY p.polname) FROM pg_policy p WHERE p.polrelid = c.oid), '-')
		|| ' ' || coalesce((SELECT string_agg(t.tgname || CASE WHEN t.tgparentid <> 0 THEN '(clone)' ELSE '' END, '+')
		                      FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '-')
		|| ' ' || EXISTS (SELECT 1 FROM toms.protected_tables pt WHERE pt.relid = c.oid), E'\n' ORDER BY c.relname)
	  FROM pg_class c WHERE c.relname LIKE 'results%' AND c.relkind IN ('r', 'p')};
my $shape_before = $a->safe_psql('app', $shape_query);
is( $shape_before, join("\n",
		'results true toms_subject+toms_tenant toms_sealed_check true',
		'results_h0 true toms_subject+toms_tenant toms_sealed_check(clone) true',
		'results_h0_new true toms_subject+toms_tenant toms_sealed_check(clone) true',
		'results_h0_old true toms_subject+toms_tenant toms_sealed_check(clone) true',
		'results_h1 true toms_subject+toms_tenant toms_sealed_check(clone) true'),
	'source: every partition protected');

$a->command_ok([ 'pg_dump', '-Fc', '-f', "$tempdir/app.dump", 'app' ], 'pg_dump -Fc');

my $b = PostgreSQL::Test::Cluster->new('target');
$b->init;
$b->start;
$b->safe_psql('postgres', $setup_roles);
$b->safe_psql('postgres', q{CREATE DATABASE app});
$b->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'app', "$tempdir/app.dump" ], 'pg_restore');

is($b->safe_psql('app', $shape_query), $shape_before, 'target: every partition protected as in the source');
for my $r ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($role, $tenant) = @$r;
	is($b->safe_psql('app', "SET toms.context = '$tenant'; $rows_query; $direct_query", extra_params => [ '-U', $role ]),
		$before{$tenant}, "target: $tenant reads the same rows, through the parent and in each partition");
}
is($b->safe_psql('app', 'SELECT count(*) FROM results'), '12', 'target: every row restored');

# Enforcement came back: no context, another tenant's row, another
# tenant's ciphertext, the owner's DDL.
my ($ret, $out, $err) = $b->psql('app', 'SELECT count(*) FROM results_h0_old', extra_params => [ '-U', 'alice' ]);
like($err, qr/no tenant context/, 'target: a partition read without context fails closed');
($ret, $out, $err) = $b->psql('app', "SET toms.context = 'acme'; INSERT INTO results_h1 (tenant_id, learner) VALUES ('globex', 'x')",
	extra_params => [ '-U', 'alice' ]);
like($err, qr/violates row-level security policy for table "results_h1"/, 'target: a write into another tenant refused in a partition');
my $globex_ct = $b->safe_psql('app', "SELECT note::text FROM results WHERE tenant_id = 'globex' LIMIT 1");
($ret, $out, $err) = $b->psql('app', "SET toms.context = 'acme'; INSERT INTO results_h0_new (learner, note) VALUES ('x', '$globex_ct')",
	extra_params => [ '-U', 'alice' ]);
like($err, qr/not sealed for the row's tenant/, 'target: the sealed-column trigger works in a partition');
($ret, $out, $err) = $b->psql('app', 'DROP POLICY toms_tenant ON results_h0_old');
like($err, qr/cannot drop policy "toms_tenant" on protected table "results_h0_old"/, 'target: the guard covers the partitions');

# A partition created after the restore is protected too.
$b->safe_psql('app', q{
	ALTER TABLE results_h0 DETACH PARTITION results_h0_old;
	CREATE TABLE results_h0_older PARTITION OF results_h0 FOR VALUES FROM (MINVALUE) TO ('2000-01-01');
});
like($b->safe_psql('app', $shape_query),
	qr/^results_h0_older true toms_subject\+toms_tenant toms_sealed_check\(clone\) true$/m,
	'target: a new partition is protected');
like($b->safe_psql('app', $shape_query),
	qr/^results_h0_old true toms_subject\+toms_tenant toms_sealed_check true$/m,
	'target: a detached partition stays protected, with its own sealed-column trigger');

$a->stop;
$b->stop;
done_testing();
