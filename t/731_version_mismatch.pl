# A newer library with older SQL objects (docs/operations.md, "Upgrades"):
# the current toms.so with CREATE EXTENSION toms VERSION '0.1.0' -- what a
# package upgrade not followed by ALTER EXTENSION toms UPDATE leaves.
# - a session that uses a protected table is told once, by a WARNING with
#   SQLSTATE 55000, which versions differ and what to run (HINT: ALTER
#   EXTENSION toms UPDATE); background workers, CREATE/ALTER EXTENSION and
#   sessions that only read toms' own tables (monitoring) are not;
# - toms keeps enforcing with the older objects: tenant separation holds,
#   no backend crashes, audit records are written;
# - after ALTER EXTENSION toms UPDATE the warning is gone and everything
#   works.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('mismatch');
$node->init;
$node->start;

my $lib = $node->safe_psql('postgres', q{SELECT default_version FROM pg_available_extensions WHERE name = 'toms'});
isnt($lib, '0.1.0', "the library and default version ($lib) are newer than 0.1.0");

my ($rc, $out, $err) = $node->psql('postgres', q{CREATE EXTENSION toms VERSION '0.1.0'});
is($rc, 0, 'the current library installs the frozen 0.1.0 SQL objects') or diag($err);
unlike($err, qr/WARNING/, 'CREATE EXTENSION itself is not warned about');
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'toms'}), '0.1.0', 'installed 0.1.0');

my $warning = qr/WARNING:  55000: extension "toms" is installed at version 0\.1\.0, its library is version \Q$lib\E\n.*HINT:  Run ALTER EXTENSION toms UPDATE in this database\./s;
sub run
{
	my ($sql, @o) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql", @o);
	return ($rc, $out, $err);
}

# Set-up with the old objects.
($rc, $out, $err) = run(q{
	SELECT toms.create_tenant('acme', 'Acme'), toms.create_tenant('globex', 'Globex');
	CREATE ROLE app_a LOGIN; CREATE ROLE app_g LOGIN;
	GRANT toms_app TO app_a, app_g;
	SELECT toms.add_member('app_a', 'acme'), toms.add_member('app_g', 'globex');
	CREATE TABLE learners (tenant_id text NOT NULL, id int NOT NULL, secret toms.sealed, PRIMARY KEY (tenant_id, id));
	GRANT SELECT, INSERT ON learners TO app_a, app_g;
	SELECT toms.protect('learners', sensitive => '{secret}');
});
is($rc, 0, 'toms works with the 0.1.0 objects') or diag($err);

for my $t ([ 'acme', 'app_a' ], [ 'globex', 'app_g' ])
{
	my ($tenant, $role) = @$t;
	($rc, $out, $err) = run(qq{SET toms.context = '$tenant';
		INSERT INTO learners (id, secret) SELECT g, toms.seal('$tenant ' || g) FROM generate_series(1, 5) g},
		extra_params => [ '-U', $role ]);
	is($rc, 0, "$role writes its tenant's rows") or diag($err);
	like($err, $warning, "$role is told too");
}

($rc, $out, $err) = run(q{SELECT count(*) FROM learners; SELECT count(*) FROM learners});
like($err, $warning, 'a superuser reading the protected table is told too');
my @n = $err =~ /extension "toms" is installed at version/g;
is(scalar @n, 1, 'once per session, not once per statement');
($rc, $out, $err) = run(q{SELECT count(*) > 0 FROM toms.audit_log});
unlike($err, qr/WARNING/, "a session that reads only toms' own tables is not told (monitoring stays quiet)");

# Nothing leaks.
($rc, $out, $err) = run(q{SET toms.context = 'acme'; SELECT count(*) FROM learners WHERE tenant_id <> 'acme'},
	extra_params => [ '-U', 'app_a' ]);
is($out, '0', 'a member of acme sees no row of another tenant');
($rc, $out, $err) = run(q{SET toms.context = 'acme'; SELECT count(*) FROM learners}, extra_params => [ '-U', 'app_g' ]);
isnt($rc, 0, 'a member of globex cannot enter acme');
like($err, qr/ERROR:  42501: /, 'refused with 42501');
($rc, $out, $err) = run(q{SELECT count(*) FROM learners}, extra_params => [ '-U', 'app_a' ]);
isnt($rc, 0, 'no tenant context: refused (fail closed)');
is($out, '', 'and nothing read');
is($node->safe_psql('postgres', q{SET toms.context = 'acme'; SELECT string_agg(toms.unseal(secret), ',' ORDER BY id) FROM learners},
		extra_params => [ '-U', 'app_a' ]),
	'acme 1,acme 2,acme 3,acme 4,acme 5', 'sealed values open in their tenant');
ok($node->poll_query_until('postgres',
		q{SELECT toms.audit_flush(10000) AND count(*) >= 2 FROM toms.audit_log WHERE relname = 'public.learners'}),
	'audit records are written');

# The server neither crashed nor warned the workers about it.
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');
unlike($log, qr/toms (audit|lifecycle|reseal) \S+.*is installed at version/, 'no worker noise');

# The update, from another session: the warning is gone everywhere.
$node->safe_psql('postgres', q{ALTER EXTENSION toms UPDATE});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'toms'}), $lib, "updated to $lib");
($rc, $out, $err) = run(q{SET toms.context = 'acme'; SELECT count(*) FROM learners}, extra_params => [ '-U', 'app_a' ]);
is($out, '5', 'after the update: reads work');
unlike($err, qr/WARNING/, 'and no warning');
is($node->safe_psql('postgres', q{SELECT ok FROM toms.verify_audit()}), 't', 'the chain verifies across the update');

$node->stop;
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no crash to the end');
done_testing();
