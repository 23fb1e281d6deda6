# Random SQL (SQLsmith) against protected tables of two tenants, with
# sealed and subject columns, as an application role in tenant alpha's
# context, as the table owner (no context: fail closed) and as a
# superuser (docs/operations.md, "Soak", "Random SQL"):
# - no backend crash: the server log has no "terminated by signal" (and
#   no PANIC or failed assertion);
# - no cross-tenant write: bravo's rows are unchanged after the runs of
#   the application role (in alpha) and the owner;
# - no cross-tenant row: every query sqlsmith generated for the
#   application role and the owner that names a protected table is run
#   again in the same session setting, and its output never shows a marker
#   of tenant bravo's rows (every text value of bravo's rows carries it).
# TOMS_SQLSMITH_QUERIES (per role, default 1000 for the app role, 500 for
# the others) and TOMS_SQLSMITH_SEED
# (default: fixed seeds) make longer runs (bench/soak/run).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

# per role; the owner's queries on the protected tables all fail closed
# (no tenant context), so it and the (slow) superuser run get half
my %queries = map { $_ => $ENV{TOMS_SQLSMITH_QUERIES} // ($_ eq 'app' ? 1000 : 500) } qw(app owner superuser);
my $seed = $ENV{TOMS_SQLSMITH_SEED} // 7401;

my $node = PostgreSQL::Test::Cluster->new('sqlsmith');
$node->init;
$node->append_conf('postgresql.conf', qq{
log_statement = none
fsync = off
statement_timeout = '2s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE smith');
$node->safe_psql('smith', q{
	CREATE EXTENSION toms;
	CREATE ROLE smith_owner LOGIN;
	CREATE ROLE smith_app LOGIN IN ROLE toms_app;
	GRANT CREATE ON SCHEMA public TO smith_owner;
	SELECT toms.create_tenant('alpha', 'Alpha'), toms.create_tenant('bravo', 'Bravo');
	SELECT toms.add_member('smith_app', 'alpha');
	CREATE ROLE smith_b LOGIN IN ROLE toms_app;
	SELECT toms.add_member('smith_b', 'bravo');
	SET ROLE smith_owner;
	CREATE TABLE people (id int PRIMARY KEY, tenant_id text NOT NULL, subject text, name text,
		email toms.sealed, email_idx bytea, born date, score numeric);
	CREATE TABLE orders (id int PRIMARY KEY, tenant_id text NOT NULL, person int REFERENCES people,
		item text, amount numeric, at timestamptz);
	CREATE VIEW order_view WITH (security_barrier) AS
		SELECT o.id, o.tenant_id, o.item, p.name FROM orders o JOIN people p ON p.id = o.person;
	GRANT SELECT, INSERT, UPDATE, DELETE ON people, orders TO smith_app, smith_b;
	GRANT SELECT ON order_view TO smith_app;
	RESET ROLE;
	SELECT toms.protect('people', sensitive => '{email}', subject_column => 'subject');
	SELECT toms.protect('orders');
});
# Rows of both tenants; every text value of bravo's rows carries BRAVOMARK
# (alpha's ALPHAMARK).
for my $t ([ 'alpha', 'ALPHAMARK', 1, 1, 'smith_app' ], [ 'bravo', 'BRAVOMARK', 1001, -1, 'smith_b' ])
{
	my ($tenant, $mark, $base, $sign, $user) = @$t;
	$node->safe_psql('smith', qq{
		SELECT toms.set_tenant('$tenant');
		INSERT INTO people SELECT $base + g, '$tenant', '$mark-subject-' || (g % 5), '$mark-name-' || g,
			toms.seal('$mark-' || g || '\@example.org'), toms.blind_index('$mark-' || g || '\@example.org'),
			date '1980-01-01' + g, $sign * g FROM generate_series(0, 49) g;
		INSERT INTO orders SELECT $base + g, '$tenant', $base + (g % 50), '$mark-item-' || g,
			$sign * (g + 0.5), now() FROM generate_series(0, 99) g;
	}, extra_params => [ '-U', $user ]);
}
is($node->safe_psql('smith', 'SELECT count(*) FROM people GROUP BY tenant_id ORDER BY 1 LIMIT 1'), '50', '50 people per tenant');
# one subject of alpha deleted (stage 1; grace long enough to stay hidden)
$node->safe_psql('smith', q{SELECT toms.request_deletion('alpha', 'ALPHAMARK-subject-4', 'sqlsmith', grace => '1 day')});

my $connbase = 'host=' . $node->host . ' port=' . $node->port . ' dbname=smith';
my %role = (
	app => { user => 'smith_app', options => '-c toms.context=alpha', check => 1, args => ['--exclude-catalog'] },
	owner => { user => 'smith_owner', options => '', check => 1, args => ['--exclude-catalog'] },
	superuser => { user => $node->safe_psql('smith', 'SELECT current_user'), options => '', check => 0, args => [] },
);
my $dir = $PostgreSQL::Test::Utils::tmp_check;
my %stat;
# bravo's rows, as the superuser sees them
my $bravo_rows = q{SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM
	(SELECT p::text FROM people p WHERE tenant_id = 'bravo' UNION ALL SELECT o::text FROM orders o WHERE tenant_id = 'bravo'
	 UNION ALL SELECT count(*)::text FROM people WHERE tenant_id = 'bravo' UNION ALL SELECT count(*)::text FROM orders WHERE tenant_id = 'bravo') t};
my $bravo_before = $node->safe_psql('smith', $bravo_rows);

for my $r (qw(app owner superuser))
{
	my $p = $role{$r};
	my $target = "$connbase user=$p->{user}" . ($p->{options} ne '' ? " options='$p->{options}'" : '');
	my ($out, $err) = ('', '');
	my $t0 = time;
	my $h = IPC::Run::start(
		[ 'sqlsmith', "--target=$target", "--seed=" . ($seed + length($r)), "--max-queries=$queries{$r}",
		  '--dump-all-queries', '--verbose', @{ $p->{args} } ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(600 + $queries{$r}));
	$h->finish;
	my $secs = time - $t0;
	open(my $fh, '>', "$dir/sqlsmith_$r.sql") or die;
	print $fh $out;
	close $fh;
	my @q = grep { /\S/ } split /;\n/, $out;
	my @ours = grep { /\b(people|orders|order_view)\b/ } @q;
	$stat{$r} = { queries => scalar @q, ours => scalar @ours, seconds => $secs };
	cmp_ok(scalar @q, '>=', $queries{$r} * 0.9, "sqlsmith as $r: " . scalar(@q) . " queries in " . sprintf('%.0f', $secs)
		  . ' s, ' . scalar(@ours) . ' on the protected tables')
	  or diag(substr($err, -2000));
	ok($node->poll_query_until('smith', 'SELECT true'), "the server takes connections after sqlsmith as $r");

	next unless $p->{check};

	# Run the queries on the protected tables again, in the same session
	# setting, and look at what they return.
	my $replay = "$dir/sqlsmith_${r}_replay.sql";
	open($fh, '>', $replay) or die;
	# first a query of our own: the positive control of the check
	print $fh "\\set ON_ERROR_STOP 0\nSET statement_timeout = '2s';\nSELECT name FROM people ORDER BY id LIMIT 3;\n";
	print $fh "$_;\n" for @ours;
	close $fh;
	my ($rout, $rerr) = ('', '');
	local $ENV{PGOPTIONS} = $p->{options};
	IPC::Run::run([ 'psql', '-X', '-q', '-A', '-t', '-d', $node->connstr('smith'), '-U', $p->{user}, '-f', $replay ],
		'>', \$rout, '2>', \$rerr, IPC::Run::timeout(600 + $queries{$r}));
	open($fh, '>', "$dir/sqlsmith_${r}_replay.out") or die;
	print $fh $rout, "\n--- stderr\n", $rerr;
	close $fh;
	my @rows = grep { /BRAVOMARK/ } split /\n/, $rout;
	$stat{$r}{rows} = scalar(split /\n/, $rout);
	$stat{$r}{errors} = () = $rerr =~ /ERROR:/g;
	is(scalar @rows, 0, "as $r: no row of tenant bravo in the output of " . scalar(@ours) . " replayed queries ($stat{$r}{rows} lines)")
	  or diag(join("\n", @rows[ 0 .. ($#rows < 5 ? $#rows : 5) ]));
	my @hidden = grep { /ALPHAMARK-subject-4/ } split /\n/, $rout;
	is(scalar @hidden, 0, "as $r: no row of alpha's deleted subject in the output");
	my $alpha_seen = () = $rout =~ /ALPHAMARK/g;
	$stat{$r}{alpha} = $alpha_seen;
	is($node->safe_psql('smith', $bravo_rows), $bravo_before,
		"as $r: no row of bravo was written, moved or deleted (sqlsmith and the replay)");
}
cmp_ok($stat{app}{alpha}, '>=', 3, "positive control: the replay as the app role shows alpha's rows ($stat{app}{alpha} values)");

# The superuser (outside row security) sees bravo: the marker check would find it.
my $su = $node->safe_psql('smith', 'SELECT count(*) FROM people WHERE name LIKE \'BRAVOMARK%\'');
is($su, '50', 'positive control: bravo\'s rows are there to be seen');

my $log = slurp_file($node->logfile);
my @bad = grep { /terminated by signal|PANIC|TRAP:|server process .* exited with exit code [^01]/ } split /\n/, $log;
is(scalar @bad, 0, 'no backend crashed (server log)') or diag(join("\n", @bad[ 0 .. ($#bad < 9 ? $#bad : 9) ]));
diag(join("\n", map { sprintf('sqlsmith %-9s %5d queries (%4d on protected tables) in %3.0f s%s', $_, $stat{$_}{queries}, $stat{$_}{ours},
	$stat{$_}{seconds}, defined $stat{$_}{rows} ? ", replayed: $stat{$_}{rows} lines, $stat{$_}{errors} errors" : '') } qw(app owner superuser)));
done_testing();
