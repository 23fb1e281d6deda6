# Three copies (measure 8a): the recipe of docs/scaling.md, run for real.
# A primary and two streaming standbys, all preloading toms with the same
# settings (TEMP_CONFIG: shared_preload_libraries, and the master key source
# once sealed columns are installed).  toms.assess() reports 8a as pass with
# two standbys and warn with one; on a standby, reads in a tenant context
# and the assessment work, and toms' writing functions refuse.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TomsNode;

sub row
{
	my ($node, $control) = @_;
	my $r = $node->safe_psql('postgres',
		"SELECT status || '|' || evidence FROM toms.assess() WHERE control = '$control'");
	return split(/\|/, $r, 2);
}

# Step 1: the primary, with WAL for streaming, toms installed, tenant data.
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	CREATE ROLE regress_hr LOGIN;
	SELECT toms.create_tenant('acme', 'ACME Corp');
	SELECT toms.add_member('regress_hr', 'acme');
	CREATE TABLE employees (
		tenant_id text NOT NULL,
		id uuid NOT NULL DEFAULT gen_random_uuid(),
		name text,
		PRIMARY KEY (tenant_id, id)
	);
	SELECT toms.protect('employees');
	GRANT SELECT, INSERT ON employees TO regress_hr;
});
$primary->safe_psql('postgres',
	"SELECT toms.set_tenant('acme'); INSERT INTO employees (name) VALUES ('Ada'), ('Grace')",
	extra_params => [ '-U', 'regress_hr' ]);

my ($status, $evidence) = row($primary, '8a');
is($status, 'warn', 'no standby: 8a warns');
like($evidence, qr/^0 streaming standby\(s\) of 2 required/, 'evidence counts no standby');

# Step 2: two standbys from a base backup, streaming.
my @standbys = start_standbys($primary, 'standby1', 'standby2');
$primary->wait_for_catchup($_) for @standbys;

($status, $evidence) = row($primary, '8a');
is($status, 'pass', 'two streaming standbys: 8a passes');
like($evidence, qr/^2 streaming standby\(s\) of 2 required for three copies: standby1 \(streaming, async\), standby2 \(streaming, async\)/,
	'evidence names both standbys');

# Step 3: synchronous replication to either standby (quorum commit).
$primary->append_conf('postgresql.conf', "synchronous_standby_names = 'ANY 1 (standby1, standby2)'");
$primary->reload;
$primary->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM pg_stat_replication WHERE sync_state = 'quorum'")
  or die "standbys did not become quorum standbys";
($status, $evidence) = row($primary, '8a');
is($status, 'pass', 'quorum commit: 8a passes');
like($evidence, qr/synchronous_standby_names = ANY 1 \(standby1, standby2\)/, 'evidence shows the synchronous setting');

# On a standby: same toms, reads in a tenant context work.
my $s1 = $standbys[0];
like($s1->safe_psql('postgres', 'SHOW shared_preload_libraries'), qr/\btoms\b/, 'the standby preloads toms');
is($s1->safe_psql('postgres', "SELECT toms.set_tenant('acme'); SELECT count(*) FROM employees",
		extra_params => [ '-U', 'regress_hr' ]),
	"\n2", 'on a standby, a tenant member reads its rows');
my ($ret, $out, $err) = $s1->psql('postgres', 'SELECT count(*) FROM employees',
	extra_params => [ '-U', 'regress_hr' ]);
like($err, qr/no tenant context/, 'on a standby, no context still fails closed');

# The assessment runs on a standby, read-only, and says where 8a is judged.
($status, $evidence) = row($s1, '8a');
is($status, 'n/a', 'on a standby 8a is n/a');
like($evidence, qr/this server is a standby/, 'and says to assess on the primary');
is($s1->safe_psql('postgres',
		"SELECT coalesce(string_agg(control || ': ' || evidence, '; '), '') FROM toms.assess() WHERE status = 'fail'"), '',
	'the good configuration has no failure on the standby either');

# The master key source is the same on every copy.
is($s1->safe_psql('postgres', 'SELECT toms.master_key_loaded()'), 't', 'the standby loaded the master key');

# toms' writing functions refuse on a standby, with PostgreSQL's error.
for my $sql ("SELECT toms.create_tenant('other', 'Other')",
	"SELECT toms.add_member('regress_hr', 'acme')",
	"SELECT toms.grant_access('regress_hr', 'acme', 'support ticket 1', '1 hour')")
{
	($ret, $out, $err) = $s1->psql('postgres', $sql);
	like($err, qr/cannot execute \w+ in a read-only transaction/, "refused on a standby: $sql");
}
($ret, $out, $err) = $s1->psql('postgres', "CREATE TABLE x (tenant_id text)");
like($err, qr/read-only transaction/, 'no DDL on a standby');
($ret, $out, $err) = $s1->psql('postgres', "SELECT toms.protect('employees')");
isnt($ret, 0, 'protect() refuses on a standby');
like($err, qr/recovery is in progress|read-only transaction/, 'with PostgreSQL\'s recovery error');

# Step 4: one standby lost: 8a warns.
$standbys[1]->stop;
$primary->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming'")
  or die "the stopped standby is still listed";
($status, $evidence) = row($primary, '8a');
is($status, 'warn', 'one standby: 8a warns');
like($evidence, qr/^1 streaming standby\(s\) of 2 required for three copies: standby1 /, 'evidence names the one left');

# And back.
$standbys[1]->start;
$primary->wait_for_catchup($standbys[1]);
($status, $evidence) = row($primary, '8a');
is($status, 'pass', 'standby back: 8a passes again');

$_->stop for @standbys;
$primary->stop;
done_testing();
