# The docs run as written (issue 20): every SQL example in README.md and
# docs/*.md is executed, page by page in file order, on a fresh database of
# a cluster with toms preloaded (the test settings: a master key, short
# deletion timings), and where a page shows the output of an example, the
# output must match.
#
# How a page tells the runner about a block -- an HTML comment on the line
# just before its fence, invisible when the page is rendered:
#
#   <!-- docs-test: as ROLE -->          run as ROLE (the page creates it)
#   <!-- docs-test: fails 42501 -->      must fail with this SQLSTATE
#   <!-- docs-test: run -->              run a ```sh block (bash, with PGHOST,
#                                        PGPORT, PGDATABASE set to the page's
#                                        database) -- shell blocks do not run
#                                        unless marked
#   <!-- docs-test: skip REASON -->      not run, for a reason the page keeps
#                                        (a signature, a server-wide step)
#   several, separated by ";": <!-- docs-test: as anna; fails 42501 -->
#
# A ```text block right after a SQL block is its expected output (psql's
# aligned format; trailing blanks ignored).  A ```sh / ```bash block must be
# marked run or skip: a shell example the runner silently passes over is
# how docs drift.  A ```js block marked run is run as an ES module by Node
# with the npm packages of examples/node (package-lock.json, npm ci).
# Blocks in other languages (```ini, unmarked ```) are shown, not run.
#
# The page runs in a database of its own; roles it creates are dropped after
# it, so pages do not see each other.  The runner proves on a page of its
# own that it catches a failing example, a wrong output and an unmarked
# shell block.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Temp ();

my $root = $ENV{TOMS_SRC} // '.';
my @pages = ("$root/README.md", sort glob("$root/docs/*.md"));

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', "log_statement = 'none'\n");
$node->start;

# The blocks of a page: { lang, line, text, marks => { as, fails, run, skip }, output }
sub blocks
{
	my ($text) = @_;
	my @lines = split /\n/, $text, -1;
	my (@blocks, $marks);
	for (my $i = 0; $i < @lines; $i++)
	{
		my $l = $lines[$i];
		if ($l =~ /^<!--\s*docs-test:\s*(.*?)\s*-->\s*$/)
		{
			$marks = {};
			my $spec = $1;
			# a reason is free text: "skip" takes the rest of the comment
			my @m = $spec =~ /^skip\s+\S/ ? ($spec) : split(/\s*;\s*/, $spec);
			for my $m (@m)
			{
				if    ($m =~ /^as\s+(\w+)$/)           { $marks->{as} = $1; }
				elsif ($m =~ /^fails\s+([0-9A-Z]{5})$/) { $marks->{fails} = $1; }
				elsif ($m eq 'run')                     { $marks->{run} = 1; }
				elsif ($m =~ /^skip\s+\S/)              { $marks->{skip} = 1; }
				else { push @blocks, { error => "line " . ($i + 1) . ": unknown docs-test mark '$m'" }; }
			}
			next;
		}
		if ($l =~ /^```\s*([\w-]*)\s*$/)
		{
			my ($lang, $start, @body) = ($1, $i + 1);
			for ($i++; $i < @lines && $lines[$i] !~ /^```\s*$/; $i++) { push @body, $lines[$i]; }
			my $b = { lang => $lang, line => $start, text => join("\n", @body) . "\n", marks => $marks // {} };
			if ($lang eq 'text' && @blocks && ($blocks[-1]{lang} // '') eq 'sql' && $blocks[-1]{end} == $start - 2)
			{
				$blocks[-1]{output} = $b->{text};
			}
			else
			{
				$b->{end} = $i;
				push @blocks, $b;
			}
			$marks = undef;
			next;
		}
		# a mark applies to the very next fence only (blank lines allowed)
		$marks = undef if defined $marks && $l =~ /\S/;
	}
	return @blocks;
}

sub trim_lines { my ($t) = @_; $t =~ s/[ \t]+$//mg; $t =~ s/\n+\z//; return $t; }

# A directory with examples/node's npm packages installed (once).
my $node_dir;
sub node_modules
{
	return $node_dir if $node_dir;
	$node_dir = PostgreSQL::Test::Utils::tempdir();
	system('cp', "$root/examples/node/package.json", "$root/examples/node/package-lock.json", $node_dir) == 0
	  or die 'cannot copy examples/node/package*.json';
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'npm', 'ci', '--silent', '--no-audit', '--no-fund', '--prefix', $node_dir ],
		'>', \$out, '2>', \$err) or die "npm ci failed: $err";
	return $node_dir;
}

# Run one page; returns the list of its problems.
sub run_page
{
	my ($name, $text) = @_;
	my @problems;
	(my $db = lc "docs_$name") =~ s/[^a-z0-9_]/_/g;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	my @roles_before = split /\n/, $node->safe_psql('postgres', 'SELECT rolname FROM pg_roles ORDER BY 1');
	# a page that shows CREATE EXTENSION toms does it itself
	$node->safe_psql($db, 'CREATE EXTENSION toms') unless $text =~ /^CREATE EXTENSION toms\b/mi;
	for my $b (blocks($text))
	{
		if ($b->{error}) { push @problems, "$name: $b->{error}"; next; }
		my ($lang, $m, $where) = ($b->{lang}, $b->{marks}, "$name:$b->{line}");
		next if $m->{skip};
		if ($lang eq 'sql')
		{
			my @who = $m->{as} ? ('-U', $m->{as}) : ();
			my ($out, $err) = ('', '');
			my $ok = IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
					'-d', $node->connstr($db), @who, '-f', '-' ], '<', \$b->{text}, '>', \$out, '2>', \$err);
			$err =~ s/^.*\b(WARNING|NOTICE|HINT|DETAIL|LOCATION|CONTEXT):.*\n//mg unless !$ok && !$m->{fails};
			if ($m->{fails})
			{
				push @problems, "$where: expected an error $m->{fails}, it ran" if $ok;
				push @problems, "$where: expected $m->{fails}, got: $err" if !$ok && $err !~ /ERROR:\s+$m->{fails}:/;
			}
			elsif (!$ok) { push @problems, "$where: failed: $err"; }
			if (defined $b->{output} && trim_lines($out) ne trim_lines($b->{output}))
			{
				push @problems, "$where: output differs from the page:\n--- page\n$b->{output}--- got\n$out";
			}
		}
		elsif ($lang eq 'js' && $m->{run})
		{
			my $dir = node_modules();
			open(my $fh, '>', "$dir/block.mjs") or die "cannot write block.mjs: $!";
			print $fh $b->{text};
			close($fh);
			my ($out, $err) = ('', '');
			my $ok = IPC::Run::run([ 'node', "$dir/block.mjs" ], '>', \$out, '2>', \$err);
			push @problems, "$where: js block failed: $err$out" unless $ok;
			push @problems, "$where: js block printed no token" if $ok && $b->{text} =~ /Sign\(/ && $out !~ /^v4\.public\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/m;
		}
		elsif ($lang =~ /^(sh|bash|shell|console)$/)
		{
			if (!$m->{run}) { push @problems, "$where: shell block neither marked run nor skip"; next; }
			my ($out, $err) = ('', '');
			local $ENV{PGHOST}     = $node->host;
			local $ENV{PGPORT}     = $node->port;
			local $ENV{PGDATABASE} = $db;
			my $cwd = PostgreSQL::Test::Utils::tempdir();
			my $ok = IPC::Run::run([ 'bash', '-euo', 'pipefail', '-c', "cd '$cwd'\n$b->{text}" ], '>', \$out, '2>', \$err);
			push @problems, "$where: shell block failed: $err$out" unless $ok;
		}
	}
	$node->safe_psql('postgres', "DROP DATABASE $db WITH (FORCE)");
	my %before = map { $_ => 1 } @roles_before;
	for my $r (split /\n/, $node->safe_psql('postgres', 'SELECT rolname FROM pg_roles ORDER BY 1'))
	{
		$node->safe_psql('postgres', qq{DROP ROLE "$r"}) unless $before{$r} || $r =~ /^toms_/;
	}
	return @problems;
}

# The runner catches what it should.
my @self = run_page('selftest', <<'PAGE');
```sql
SELECT 1/0;
```

```sql
SELECT 41 + 1 AS answer;
```
```text
 answer
--------
     43
(1 row)
```

<!-- docs-test: fails 42501 -->
```sql
SELECT 1;
```

```sh
echo unmarked
```
PAGE
is(scalar(@self), 4, 'the runner reports a failing example, a wrong output, a missing error and an unmarked shell block')
  or diag(join("\n", @self));
my @good = run_page('selftest2', <<'PAGE');
<!-- docs-test: fails 22012 -->
```sql
SELECT 1/0;
```

```sql
SELECT 41 + 1 AS answer;
```
```text
 answer
--------
     42
(1 row)
```

<!-- docs-test: run -->
```sh
psql -XAtc 'SELECT count(*) FROM pg_extension WHERE extname = $$toms$$' | grep -qx 1
```
PAGE
is(scalar(@good), 0, 'and passes a page whose examples hold') or diag(join("\n", @good));

for my $page (@pages)
{
	(my $name = $page) =~ s{^.*/}{};
	$name =~ s/\.md$//;
	my $text = slurp_file($page);
	my @p = run_page($name, $text);
	is(scalar(@p), 0, "$name runs as written") or diag(join("\n", @p));
}

$node->stop;
done_testing();
