# Releases and upgrades (measure 7f): a database that installed the frozen
# 0.1.0 release and used it (tenants, a protected table with sealed and
# subject columns, an audit chain, a deletion waiting in its grace period)
# is updated in place with ALTER EXTENSION toms UPDATE.  Afterwards
#   - the toms schema, its policies, privileges, triggers and comments equal
#     a fresh install of the current version (pg_dump --schema-only of both,
#     in binary-upgrade mode so that extension members are dumped; OIDs
#     filtered out);
#   - every sealed value still opens, the audit chain verifies across the
#     upgrade, and the pending deletion completes with a certificate;
#   - the update path has no gap: every version in toms.control's history
#     is reachable from 0.1.0.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
toms.deletion_grace = 1h
log_statement = 'none'
});
$node->start;

sub sql { my ($db, $q, @o) = @_; return $node->safe_psql($db, $q, @o); }

my $current = sql('postgres', q{SELECT default_version FROM pg_available_extensions WHERE name = 'toms'});
isnt($current, '0.1.0', "the current version ($current) is a later release than the frozen 0.1.0");
is(sql('postgres', qq{SELECT count(*) FROM pg_extension_update_paths('toms')
	WHERE source = '0.1.0' AND target = '$current' AND path IS NOT NULL}),
	'1', "an update path leads from 0.1.0 to $current");

# The old release, used.
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
sql('old', q{
CREATE EXTENSION toms VERSION '0.1.0';
SELECT toms.create_tenant('acme', 'Acme'), toms.create_tenant('globex', 'Globex');
CREATE ROLE app_a LOGIN; CREATE ROLE app_g LOGIN;
GRANT toms_app TO app_a, app_g;
SELECT toms.add_member('app_a', 'acme'), toms.add_member('app_g', 'globex');
CREATE TABLE learners (tenant_id text NOT NULL, id int NOT NULL, email text NOT NULL,
	secret toms.sealed, PRIMARY KEY (tenant_id, id));
GRANT SELECT, INSERT, UPDATE, DELETE ON learners TO app_a, app_g;
SELECT toms.protect('learners', sensitive => '{secret}', subject_column => 'email');
});
is(sql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'toms'}), '0.1.0', 'installed 0.1.0');

for my $t ([ 'acme', 'app_a' ], [ 'globex', 'app_g' ])
{
	my ($tenant, $role) = @$t;
	sql('old', qq{SET toms.context = '$tenant';
		INSERT INTO learners (id, email, secret)
		SELECT g, 'l' || g || '\@$tenant.example', toms.seal('$tenant secret ' || g) FROM generate_series(1, 50) g},
		extra_params => [ '-U', $role ]);
	sql('old', qq{SET toms.context = '$tenant'; SELECT count(*) FROM learners}, extra_params => [ '-U', $role ]);
}
# A grace period long enough to span the update, short enough to wait for.
my $req = sql('old', q{SELECT toms.request_deletion('globex', reason => 'contract ended', grace => '45 seconds')});
is(sql('old', qq{SELECT state FROM toms.deletion_requests WHERE id = '$req'}), 'pending',
	'a deletion of globex waits in its grace period under 0.1.0');
my $records_before = sql('old', q{SELECT count(*) FROM toms.audit_log});
ok($node->poll_query_until('old', q{SELECT count(*) >= 4 FROM toms.audit_log WHERE tenant IN ('acme', 'globex')}),
	'0.1.0 wrote an audit chain');
my $policies = q{SELECT string_agg(polname || ':' || polcmd::text || ':' || polpermissive::text || ':' ||
	pg_get_expr(polqual, polrelid), ',' ORDER BY polname) FROM pg_policy WHERE polrelid = 'learners'::regclass};
my $policies_before = sql('old', $policies);
my $digest = q{SET toms.context = 'acme'; SELECT md5(string_agg(toms.unseal(secret), ',' ORDER BY id)) FROM learners};
my $acme_before = sql('old', $digest, extra_params => [ '-U', 'app_a' ]);

# The update.
# (the deletion's state read in the same call: still in its grace period)
is(sql('old', qq{ALTER EXTENSION toms UPDATE; SELECT state FROM toms.deletion_requests WHERE id = '$req'}),
	'pending', 'the deletion was still in its grace period during the update');
is(sql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'toms'}), $current, "updated to $current");

# The same schema as a fresh install.
sql('fresh', q{CREATE EXTENSION toms});
# Roles are cluster-wide: both databases see the same toms_* roles, so the
# dumps compare objects, ACLs and comments of the toms schema only.
sub toms_schema
{
	my ($db) = @_;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ 'pg_dump', '--schema-only', '--binary-upgrade', '--no-owner',
			'--extension=toms', '--schema=toms', '-d', $node->connstr($db) ], '>', \$stdout, '2>', \$stderr);
	die "pg_dump of $db failed: $stderr" unless $ok;
	my @keep;
	for my $l (split /\n/, $stdout)
	{
		next if $l =~ /binary_upgrade_set_next_|binary_upgrade_set_record_init_privs|binary_upgrade_set_missing_value|^--|^\s*$/;
		next if $l =~ /^SELECT pg_catalog\.set_config|^SET |^SELECT pg_catalog\.setval|^\\(un)?restrict /;
		# OIDs differ between any two databases (and a column added with a
		# default by an upgrade keeps it as a "missing value": storage, not schema).
		$l =~ s/WHERE oid = '\d+';/WHERE oid = <oid>;/;
		$l =~ s/\{\d+(,\d+)*\}/{<oids>}/g if $l =~ /binary_upgrade_create_empty_extension/;
		push @keep, $l;
	}
	my $text = join("\n", @keep) . "\n";
	# A column dropped by an upgrade stays in the table as a dropped
	# attribute (binary-upgrade dumps recreate it); it holds nothing and is
	# no part of the schema a fresh install must equal.
	$text =~ s/,\n\s+"\.+pg\.dropped\.\d+\.+" INTEGER \/\* dummy \*\/\n/\n/g;
	$text =~ s/\s+"\.+pg\.dropped\.\d+\.+" INTEGER \/\* dummy \*\/,\n/\n/g;
	$text =~ s/UPDATE pg_catalog\.pg_attribute\nWHERE attname = '\.+pg\.dropped\.\d+\.+'\n\s+AND attrelid = '[^']+'::pg_catalog\.regclass;\n//g;
	$text =~ s/ALTER TABLE ONLY \S+ DROP COLUMN "\.+pg\.dropped\.\d+\.+";\n//g;
	return $text;
}
my ($upgraded, $fresh) = (toms_schema('old'), toms_schema('fresh'));
ok(length($fresh) > 10000, 'the fresh dump holds the toms schema');
if (!is($upgraded, $fresh, 'toms schema after ALTER EXTENSION UPDATE equals a fresh install'))
{
	my $dir = PostgreSQL::Test::Utils::tempdir();
	open(my $a, '>', "$dir/upgraded.sql") or die; print $a $upgraded; close $a;
	open(my $b, '>', "$dir/fresh.sql") or die; print $b $fresh; close $b;
	diag(scalar `diff -u $dir/fresh.sql $dir/upgraded.sql | head -n 80`);
}
like($policies_before, qr/toms_tenant/, 'the protected table had its tenant policy');
is(sql('old', $policies), $policies_before, 'the protected table keeps its policies');

# The data and the chain survive.
is(sql('old', $digest, extra_params => [ '-U', 'app_a' ]), $acme_before, 'every sealed value still opens after the update');
my ($rc, $out, $err) = $node->psql('old', q{SET toms.context = 'acme'; SELECT count(*) FROM learners},
	extra_params => [ '-U', 'app_g' ]);
like($err, qr/ERROR:/, 'a globex member still cannot enter acme');
is($out, '', 'and reads nothing of it');
is(sql('old', q{SET toms.context = 'acme'; SELECT count(*) FROM learners WHERE tenant_id <> 'acme'}, extra_params => [ '-U', 'app_a' ]),
	'0', 'tenant separation holds after the update');
sql('old', q{SET toms.context = 'acme'; SELECT count(*) FROM learners}, extra_params => [ '-U', 'app_a' ]);
ok($node->poll_query_until('old', qq{SELECT count(*) > $records_before FROM toms.audit_log}), 'records written after the update');
is(sql('old', q{SELECT ok FROM toms.verify_audit()}), 't', 'the audit chain verifies across the update');

# The deletion requested under 0.1.0 completes under the new version.
ok($node->poll_query_until('old', qq{SELECT toms.deletion_certificate('$req') IS NOT NULL}),
	'the deletion requested under 0.1.0 completes with a certificate');
is(sql('old', q{SELECT count(*) FROM learners WHERE tenant_id = 'globex'}), '0', 'globex rows purged');
is(sql('old', q{SELECT count(*) FROM learners WHERE tenant_id = 'acme'}), '50', 'acme rows kept');

$node->stop;
done_testing();
