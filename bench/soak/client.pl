#!/usr/bin/perl
# bench/soak/client.pl -- one soak client (started by bench/soak/Soak.pm).
#
#   client.pl ID KIND HOST PORT UNTIL TOKENS LOG
#
# KIND is token (role soak_app, toms.enter_tenant with a PASETO token as a
# bind parameter), member (role soak_member, toms.set_tenant) or grant
# (role soak_support, need-to-know grant on tenant t042).  Runs
# transactions of 1-4 statements against the protected tables until the
# epoch second UNTIL, reconnecting whenever the server goes away.
#
# Every statement ends with a comment /* soak:cID:TXN:N */ (the audit
# records it: toms.audit_statement_text = on).  The client checks every row
# it reads (tenant column, the tenant prefix of body and of the unsealed
# value) and writes to LOG, one line each:
#   C <marker> <action> <time> <rows>  a statement of a transaction whose
#                              COMMIT returned (rows: table:id of written rows)
#   V <marker> <what>          a row of another tenant was seen (a violation)
#   E <sqlstate> <message>     an error that is not the server going away
#   S key=value ...            totals, at the end
use strict;
use warnings;
use DBI;
use Time::HiRes qw(time usleep);

my ($id, $kind, $host, $port, $until, $tokens_file, $log_file) = @ARGV;
die "usage: client.pl ID KIND HOST PORT UNTIL TOKENS LOG\n" unless defined $log_file;
srand($id * 7919 + $$);

my %token;
if ($kind eq 'token')
{
	open(my $tf, '<', $tokens_file) or die "cannot read $tokens_file: $!";
	while (<$tf>)
	{
		chomp;
		my ($t, $tok) = split / /, $_, 2;
		$token{$t} = $tok;
	}
	close $tf;
}
my %role = (token => 'soak_app', member => 'soak_member', grant => 'soak_support');
die "unknown kind $kind\n" unless $role{$kind};

open(my $log, '>', $log_file) or die "cannot write $log_file: $!";
my %n = (commits => 0, statements => 0, rows_read => 0, rows_written => 0,
	aborts => 0, errors => 0, reconnects => 0, down_seconds => 0, violations => 0, deadlocks => 0);

# Connection-level failures: the server (or this backend) went away.
sub gone
{
	my ($state) = @_;
	return 1 if !defined $state || $state eq '' || $state =~ /^(08|57P)/;
	return 0;
}

my $dbh;
sub connect_db
{
	my $t0 = time;
	while (time < $until)
	{
		$dbh = DBI->connect("dbi:Pg:dbname=postgres;host=$host;port=$port", $role{$kind}, '',
			{ AutoCommit => 1, RaiseError => 0, PrintError => 0, PrintWarn => 0, pg_server_prepare => 1,
			  pg_application_name => "soak-c$id" });
		if ($dbh)
		{
			$n{down_seconds} += time - $t0;
			return 1;
		}
		usleep(100_000);
	}
	$n{down_seconds} += time - $t0;
	return 0;
}

my $txn = 0;

# One statement; dies with [sqlstate, message] on error.
sub run
{
	my ($marker, $sql, @bind) = @_;
	# the marker goes last: DBD::Pg interpolates the parameters itself
	# into a statement that starts with a comment
	my $sth = $dbh->prepare("$sql /* $marker */");
	die [ $dbh->state, $dbh->errstr ] unless $sth && defined $sth->execute(@bind);
	$n{statements}++;
	my $rows = $sth->{NUM_OF_FIELDS} ? $sth->fetchall_arrayref : [];
	return $rows;
}

sub violation
{
	my ($marker, $what) = @_;
	$n{violations}++;
	print $log "V $marker $what\n";
}

sub pick_tenant
{
	return 't042' if $kind eq 'grant';
	return sprintf('t%03d', 1 + int(rand(90)));
}

connect_db() or exit 0;
while (time < $until)
{
	$txn++;
	my $t = pick_tenant();
	my @done;
	my $committed_at;
	my $ok = eval {
		# BEGIN and COMMIT as statements: DBD::Pg's commit() can report
		# success for a COMMIT the dying server never answered
		$dbh->do('BEGIN') or die [ $dbh->state, $dbh->errstr ];
		if ($kind eq 'token') { run("soak:c$id:$txn:0", 'SELECT toms.enter_tenant($1, true)', $token{$t}); }
		else { run("soak:c$id:$txn:0", 'SELECT toms.set_tenant($1, true)', $t); }
		my $k = 1 + int(rand(4));
		for my $s (1 .. $k)
		{
			my $m = "soak:c$id:$txn:$s";
			my $op = rand();
			if ($op < 0.35)
			{
				my $rows = run($m, 'SELECT id, tenant_id, body FROM soak_items WHERE id % 37 = $1 ORDER BY id DESC LIMIT 20',
					int(rand(37)));
				for my $r (@$rows)
				{
					violation($m, "row $r->[0] of $r->[1]") if $r->[1] ne $t || $r->[2] !~ /^\Q$t\E:/;
				}
				$n{rows_read} += @$rows;
				push @done, [ $m, 'SELECT' ];
			}
			elsif ($op < 0.55)
			{
				my $rows = run($m, 'SELECT id, tenant_id, toms.unseal(secret) FROM soak_items ORDER BY id DESC LIMIT 5');
				for my $r (@$rows)
				{
					violation($m, "sealed row $r->[0] of $r->[1]") if $r->[1] ne $t || $r->[2] !~ /^\Q$t\E:/;
				}
				$n{rows_read} += @$rows;
				push @done, [ $m, 'SELECT' ];
			}
			elsif ($op < 0.80)
			{
				my $v = "$t:" . int(rand(1e9));
				my $rows = run($m, 'INSERT INTO soak_items (subject, body, secret) VALUES ($1, $2, toms.seal($3)) RETURNING tenant_id, id',
					'u' . int(rand(10)), $v, "$v:secret");
				violation($m, "insert went to $rows->[0][0]") if $rows->[0][0] ne $t;
				$n{rows_written}++;
				push @done, [ $m, 'INSERT', "soak_items:$rows->[0][1]" ];
			}
			elsif ($op < 0.90)
			{
				my $rows = run($m, 'UPDATE soak_items SET body = $1 WHERE id = (SELECT max(id) FROM soak_items WHERE id % 11 = $2) RETURNING tenant_id, id',
					"$t:upd" . int(rand(1e9)), int(rand(11)));
				for my $r (@$rows) { violation($m, "update touched $r->[0]") if $r->[0] ne $t; }
				$n{rows_written} += @$rows;
				push @done, [ $m, 'UPDATE', join(',', map { "soak_items:$_->[1]" } @$rows) ];
			}
			else
			{
				# events: half of them already past the retention period
				my $rows = run($m, 'INSERT INTO soak_events (at, note) VALUES (now() - $1::interval, $2) RETURNING tenant_id, id',
					rand() < 0.5 ? '2 hours' : '0', "$t:event");
				violation($m, "event went to $rows->[0][0]") if $rows->[0][0] ne $t;
				$n{rows_written}++;
				push @done, [ $m, 'INSERT', "soak_events:$rows->[0][1]" ];
			}
		}
		$dbh->do('COMMIT') or die [ $dbh->state, $dbh->errstr ];
		$committed_at = time;
		1;
	};
	if ($ok)
	{
		$n{commits}++;
		printf $log "C %s %s %.3f %s\n", $_->[0], $_->[1], $committed_at, $_->[2] || '-' for @done;
		next;
	}
	my $e = $@;
	my ($state, $msg) = ref $e eq 'ARRAY' ? @$e : ('', "$e");
	$msg //= '';
	$msg =~ s/\s+/ /g;
	$n{aborts}++;
	if (gone($state) || !$dbh->ping)
	{
		$n{reconnects}++;
		$dbh->disconnect if $dbh;
		connect_db() or last;
		next;
	}
	if ($state eq '40P01' || $state eq '40001')
	{
		# two UPDATEs of one tenant's rows in opposite orders
		$n{deadlocks}++;
		$dbh->do('ROLLBACK');
		next;
	}
	$n{errors}++;
	print $log "E $state $msg\n";
	$dbh->do('ROLLBACK');
}
$dbh->disconnect if $dbh;
print $log 'S ' . join(' ', map { "$_=" . (/seconds/ ? sprintf('%.1f', $n{$_}) : $n{$_}) } sort keys %n) . "\n";
close $log;
exit 0;
