# bench/soak/Soak.pm -- the soak with faults (docs/operations.md, "Soak"),
# shared by t/740_soak.pl (60 s, in the test command) and bench/soak/run
# (any duration: TOMS_SOAK_SECONDS).
#
# A primary with one streaming standby; 100 tenants; 16 clients
# (bench/soak/client.pl: 8 with PASETO tokens, 7 members, 1 under a
# need-to-know grant) run reads, writes and sealed values while the soak
# terminates toms' workers, kills one with SIGKILL, kills the postmaster
# with kill -9 twice, takes the standby away and back, requests deletions
# (tenants and subjects), rotates tenant keys and lets retention purge.
# Then it checks the invariants (Test::More) and returns the figures.
package Soak;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);
use File::Basename qw(dirname);

my $here = dirname(__FILE__);

sub new
{
	my ($class, %opt) = @_;
	my $self = bless {
		seconds => $opt{seconds} // 60,
		clients => $opt{clients} // 16,
		tenants => 100,
		faults => [],
		requests => [],
	}, $class;
	return $self;
}

sub note_fault
{
	my ($self, $what) = @_;
	my $at = sprintf('%.1f', time - ($self->{t0} // time));
	push @{ $self->{faults} }, "$at s: $what";
	note("fault at $at s: $what");
}

# --- the cluster --------------------------------------------------------

sub setup
{
	my ($self) = @_;
	my $p = PostgreSQL::Test::Cluster->new('soak_primary');
	$p->init(allows_streaming => 1);
	# audit_sync = on: a read whose statement returned has its record
	# committed (with off, a kill -9 may lose the last flush delay's reads,
	# docs/audit.md); statement text carries each client statement's marker.
	$p->append_conf('postgresql.conf', q{
max_connections = 60
fsync = off
toms.audit_sync = on
toms.audit_statement_text = on
toms.deletion_grace = 1s
toms.lifecycle_naptime = 200ms
toms.reseal_naptime = 200
toms.reseal_batch_size = 20
restart_after_crash = on
log_statement = none
});
	$p->start;
	$self->{primary} = $p;

	my $n = $self->{tenants};
	$p->safe_psql('postgres', qq{
		CREATE EXTENSION toms;
		CREATE EXTENSION toms_test;
		CREATE ROLE soak_app LOGIN IN ROLE toms_app;
		CREATE ROLE soak_member LOGIN IN ROLE toms_app;
		CREATE ROLE soak_support LOGIN IN ROLE toms_app;
		SELECT toms.create_tenant(format('t%s', lpad(g::text, 3, '0')), 'Tenant ' || g) FROM generate_series(1, $n) g;
		SELECT toms.add_member('soak_member', format('t%s', lpad(g::text, 3, '0'))) FROM generate_series(1, 90) g;
		SELECT toms.grant_access('soak_support', 't042', 'soak: support ticket 42', '1 day');
		CREATE TABLE soak_items (id bigserial PRIMARY KEY, tenant_id text NOT NULL, subject text,
			body text NOT NULL, secret toms.sealed);
		CREATE INDEX ON soak_items (tenant_id);
		SELECT toms.protect('soak_items', sensitive => '{secret}', subject_column => 'subject');
		CREATE TABLE soak_events (id bigserial PRIMARY KEY, tenant_id text NOT NULL, at timestamptz NOT NULL, note text);
		SELECT toms.protect('soak_events');
		SELECT toms.set_retention('soak_events', 'at', '1 hour');
		GRANT SELECT, INSERT, UPDATE ON soak_items, soak_events TO soak_app, soak_member, soak_support;
		GRANT USAGE ON SEQUENCE soak_items_id_seq, soak_events_id_seq TO soak_app, soak_member, soak_support;
		CREATE TABLE soak_keys AS SELECT * FROM toms_test.keypair();
		SELECT toms.trust_key('soak-idp', public_key) FROM soak_keys;
	});
	# Seed rows, each tenant's in its own context (as the member): 20 rows
	# per tenant, and 5 rows of subject doomed-N in tenants t001..t010.
	my $seed = '';
	for my $i (1 .. 90)
	{
		my $t = sprintf('t%03d', $i);
		$seed .= "SELECT toms.set_tenant('$t');\n"
		  . "INSERT INTO soak_items (subject, body, secret) SELECT 'u' || (g % 10), '$t:seed' || g, toms.seal('$t:seed' || g) FROM generate_series(1, 20) g;\n";
		$seed .= "INSERT INTO soak_items (subject, body, secret) SELECT 'doomed-$i', '$t:doomed' || g, toms.seal('$t:doomed' || g) FROM generate_series(1, 5) g;\n"
		  if $i <= 10;
	}
	$p->safe_psql('postgres', $seed, extra_params => [ '-U', 'soak_member' ]);
	# tenants t010..t012 (keys rotated): 200 rows more, so that re-sealing
	# (20 rows a batch, 200 ms apart) lasts long enough to be interrupted
	$p->safe_psql('postgres', join('', map { sprintf(
		"SELECT toms.set_tenant('t%03d');\nINSERT INTO soak_items (subject, body, secret) SELECT 'u1', 't%03d:more' || g, toms.seal('t%03d:more' || g) FROM generate_series(1, 200) g;\n",
		$_, $_, $_) } 10 .. 12), extra_params => [ '-U', 'soak_member' ]);
	# tenants t091..t100 (deleted whole during the soak): 30 rows each
	$p->safe_psql('postgres', qq{
		INSERT INTO soak_items (tenant_id, subject, body, secret)
		SELECT format('t%s', lpad(i::text, 3, '0')), 'u1', 'x', NULL
		  FROM generate_series(91, $n) i, generate_series(1, 30) g;
	});

	# Tokens: minted by toms_test (test/toms_test, written from the PASETO
	# specification independently of toms' verifier), one per tenant.
	$self->{tokens_file} = "$PostgreSQL::Test::Utils::tmp_check/soak_tokens.txt";
	my $tokens = $p->safe_psql('postgres', q{
		SELECT t.tenant || ' ' || toms_test.mint_claims(k.secret_key, t.tenant, 'user@' || t.tenant, '1 day', 'soak-idp')
		  FROM toms.tenants t, soak_keys k ORDER BY t.tenant});
	open(my $fh, '>', $self->{tokens_file}) or die;
	print $fh "$tokens\n";
	close $fh;

	$p->backup('soak_base');
	my $s = PostgreSQL::Test::Cluster->new('soak_standby');
	$s->init_from_backup($p, 'soak_base', has_streaming => 1);
	$s->start;
	$p->wait_for_catchup('soak_standby');
	$self->{standby} = $s;
	return $self;
}

# SQL as the superuser that tolerates a server that is restarting: retried
# for up to 60 s while the connection fails.
sub admin
{
	my ($self, $sql) = @_;
	my $deadline = time + 60;
	while (1)
	{
		my ($rc, $out, $err) = $self->{primary}->psql('postgres', $sql, on_error_stop => 1);
		return $out if $rc == 0;
		die "admin SQL failed: $err\n$sql\n"
		  if time > $deadline || $err !~ /connection|shut|starting up|recovery|terminat|No such file/i;
		usleep(200_000);
	}
}

sub kill9_and_restart
{
	my ($self) = @_;
	my $p = $self->{primary};
	my $pid = $p->{_pid};
	$p->kill9;
	for (1 .. 100) { last unless kill(0, $pid); usleep(100_000); }
	for (1 .. 150)
	{
		return 1 if $p->start(fail_ok => 1);
		usleep(200_000);
	}
	return 0;
}

sub worker_pids
{
	my ($self, $type) = @_;
	my $out = $self->admin("SELECT pid FROM pg_stat_activity WHERE backend_type LIKE '$type' ORDER BY pid");
	return grep { /^\d+$/ } split /\n/, $out;
}

# --- the run ------------------------------------------------------------

sub start_clients
{
	my ($self) = @_;
	my $p = $self->{primary};
	my @kinds = ((map { 'token' } 1 .. 8), (map { 'member' } 1 .. 7), 'grant');
	$self->{until} = time + $self->{seconds};
	for my $i (1 .. $self->{clients})
	{
		my $kind = $kinds[($i - 1) % @kinds];
		my $log = "$PostgreSQL::Test::Utils::tmp_check/soak_client_$i.log";
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[ 'perl', "$here/client.pl", $i, $kind, $p->host, $p->port, int($self->{until}) + 1,
			  $self->{tokens_file}, $log ],
			'>', \$out, '2>', \$err);
		push @{ $self->{clients_h} }, { h => $h, log => $log, kind => $kind, err => \$err };
	}
}

# The fault and admin schedule, as fractions of the run.
sub schedule
{
	my ($self) = @_;
	return (
		[ 0.12, 'deletions 1', sub { $self->request_deletions([ 91 .. 93 ], [ 1 .. 5 ]) } ],
		[ 0.20, 'SIGKILL', sub { $self->kill_worker('KILL', 'toms audit worker', 'toms lifecycle worker', 'toms audit launcher') } ],
		[ 0.30, 'postmaster kill -9 #1', sub { $self->postmaster_crash } ],
		[ 0.40, 'key rotation', sub { $self->rotate_keys(10 .. 12) } ],
		[ 0.41, 'reseal workers', sub { $self->terminate('toms reseal worker') } ],
		[ 0.45, 'standby away', sub { $self->{standby}->stop('fast'); } ],
		[ 0.50, 'deletions 2', sub { $self->request_deletions([ 94 .. 96 ], [ 6 .. 7 ]) } ],
		[ 0.62, 'standby back', sub { $self->{standby}->start; } ],
		[ 0.70, 'postmaster kill -9 #2', sub { $self->postmaster_crash } ],
		[ 0.80, 'deletions 3', sub { $self->request_deletions([ 97 .. 100 ], [ 8 .. 10 ]) } ],
	);
}

sub run
{
	my ($self) = @_;
	$self->{t0} = time;
	$self->start_clients;
	my @plan = $self->schedule;
	my $every = $self->{seconds} >= 60 ? $self->{seconds} / 20 : 3;
	my @types = ('toms audit worker', 'toms lifecycle worker', 'toms audit launcher',
		'toms lifecycle launcher', 'toms reseal worker');
	my $next_term = $self->{t0} + $every;
	my $k = 0;
	while (time < $self->{until})
	{
		my $frac = (time - $self->{t0}) / $self->{seconds};
		if (@plan && $frac >= $plan[0][0])
		{
			my $step = shift @plan;
			$self->note_fault($step->[1]);
			$step->[2]->();
			next;
		}
		if (time >= $next_term)
		{
			# pg_terminate_backend of toms' workers in turn
			$self->terminate($types[ $k++ % @types ]);
			$next_term = time + $every;
		}
		usleep(100_000);
	}
	$self->note_fault("$_->[1] (late)"), $_->[2]->() for @plan;
	# on a slow machine the schedule may leave no time for the rounds of
	# pg_terminate_backend: each kind of worker at least once
	for my $type ('toms audit worker', 'toms lifecycle worker', 'toms audit launcher', 'toms lifecycle launcher')
	{
		$self->terminate($type) unless $self->{terminated}{$type};
	}
	$self->{standby}->start unless defined $self->{standby}{_pid};
	for my $c (@{ $self->{clients_h} })
	{
		$c->{h}->finish;
		# libpq's notices of a crash aside, a client says nothing
		my @err = grep { !/^(WARNING|DETAIL|HINT|FATAL):|^\s*$/ } split /\n/, ${ $c->{err} };
		diag("client stderr: " . join("\n", @err)) if @err;
	}
	$self->{elapsed} = time - $self->{t0};
	# after a crash the reseal worker is started again by hand
	# (docs/encryption.md): what an operator does after a restart
	$self->admin('SELECT toms.reseal_start()');
	# the faults end when the terminated launchers are back
	$self->{primary}->poll_query_until('postgres', q{SELECT count(DISTINCT backend_type) = 2 FROM pg_stat_activity
		WHERE backend_type IN ('toms audit launcher', 'toms lifecycle launcher')})
	  or die 'the launchers did not come back';
	$self->{faults_end_log} = -s $self->{primary}->logfile;
}

sub terminate
{
	my ($self, $type) = @_;
	my $out = $self->admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = '$type'");
	$self->note_fault("pg_terminate_backend($type): $out") if $out;
	$self->{terminated}{$type} += $out;
}

# SIGKILL of the first toms process found of the types given, in order
sub kill_worker
{
	my ($self, $sig, @types) = @_;
	for my $type (@types)
	{
		my @pids = $self->worker_pids($type);
		next unless @pids;
		kill($sig, $pids[0]);
		$self->note_fault("SIG$sig of the $type");
		last;
	}
	# the postmaster restarts every process; wait until it takes connections
	$self->admin('SELECT 1');
	$self->admin('SELECT toms.reseal_start()');
}

sub postmaster_crash
{
	my ($self) = @_;
	ok($self->kill9_and_restart, 'the primary restarts after kill -9');
	$self->admin('SELECT toms.reseal_start()');
}

sub request_deletions
{
	my ($self, $tenants, $subjects) = @_;
	my $sql = '';
	$sql .= sprintf("SELECT 'tenant %s ' || toms.request_deletion('t%03d', reason => 'soak');\n", $_, $_) for @$tenants;
	$sql .= sprintf("SELECT 'subject %s ' || toms.request_deletion('t%03d', 'doomed-%d', 'soak');\n", $_, $_, $_) for @$subjects;
	my $out = $self->admin($sql);
	for (split /\n/, $out)
	{
		my ($scope, $i, $id) = split / /;
		push @{ $self->{requests} }, { scope => $scope, tenant => sprintf('t%03d', $i), id => $id,
			rows => $scope eq 'tenant' ? 30 : 5 };
	}
}

sub rotate_keys
{
	my ($self, @i) = @_;
	$self->admin(join('', map { sprintf("SELECT toms.rotate_tenant_key('t%03d');\n", $_) } @i));
	$self->{rotated} = [ map { sprintf('t%03d', $_) } @i ];
}

# --- the invariants -----------------------------------------------------

sub check
{
	my ($self) = @_;
	my $p = $self->{primary};
	my $dir = $PostgreSQL::Test::Utils::tmp_check;
	my (%tot, @violations, @errors);
	my $expected = "$dir/soak_expected.txt";
	open(my $ex, '>', $expected) or die;
	for my $c (@{ $self->{clients_h} })
	{
		open(my $fh, '<', $c->{log}) or die "no client log $c->{log}";
		while (<$fh>)
		{
			chomp;
			if (/^C (\S+) (\S+) (\S+) (\S+)$/) { print $ex "$1\t$2\t$3\t$4\n"; }
			elsif (/^V /) { push @violations, $_; }
			elsif (/^E /) { push @errors, $_; }
			elsif (/^S (.*)$/) { for (split / /, $1) { my ($k, $v) = split /=/; $tot{$k} += $v; } }
		}
		close $fh;
	}
	close $ex;
	$self->{totals} = \%tot;
	is(scalar(@violations), 0, 'no client ever saw or wrote another tenant\'s row')
	  or diag(join("\n", @violations[ 0 .. ($#violations < 9 ? $#violations : 9) ]));
	is(scalar(@errors), 0, 'no client error other than the server going away')
	  or diag(join("\n", @errors[ 0 .. ($#errors < 9 ? $#errors : 9) ]));
	cmp_ok($tot{commits} // 0, '>', 0, "clients committed $tot{commits} transactions");

	# Everything queued is written and chained.
	ok($p->poll_query_until('postgres',
		"SELECT toms.audit_flush(10000) AND NOT EXISTS (SELECT FROM toms.audit_log WHERE seq IS NULL)"),
		'every audit record is written and chained');

	# Every statement of every committed transaction has its record.
	# Records toms could not store go to the server log as JSON lines
	# ("toms_audit: {...}", docs/audit.md): those are collected too.
	my $logged = "$dir/soak_logged.txt";
	open(my $lg, '>', $logged) or die;
	for (split /\n/, slurp_file($p->logfile))
	{
		next unless /toms_audit: \{/ && /"action":"([A-Z]+)"/;
		my $action = $1;
		print $lg "$1\t$action\n" if m{/\* (soak:c\d+:\d+:\d+) \*/};
	}
	close $lg;
	$p->safe_psql('postgres', qq{
		CREATE TABLE soak_expected (marker text, action text, committed_at float8, written text);
		COPY soak_expected FROM '$expected';
		CREATE TABLE soak_logged (marker text, action text);
		COPY soak_logged FROM '$logged';
		CREATE TABLE soak_audited AS
			SELECT substring(statement FROM 'soak:c[0-9]+:[0-9]+:[0-9]+') AS marker, action, fate
			  FROM toms.audit_log WHERE kind = 'access' AND statement LIKE '%/* soak:c%';
		CREATE INDEX ON soak_audited (marker);
		CREATE INDEX ON soak_logged (marker);
	});
	my ($n_expected, $missing, $only_logged, $write_not_committed) = split /\|/, $p->safe_psql('postgres', q{
		WITH e AS (SELECT e.*, EXISTS (SELECT FROM soak_audited a WHERE a.marker = e.marker AND a.action = e.action) AS in_table,
						  EXISTS (SELECT FROM soak_logged l WHERE l.marker = e.marker AND l.action = e.action) AS in_log
					 FROM soak_expected e)
		SELECT count(*),
			   count(*) FILTER (WHERE NOT in_table AND NOT in_log),
			   count(*) FILTER (WHERE NOT in_table AND in_log),
			   count(*) FILTER (WHERE e.action <> 'SELECT' AND NOT EXISTS
				 (SELECT FROM soak_audited a WHERE a.marker = e.marker AND a.action = e.action AND a.fate = 'committed'))
		  FROM e});
	$self->{audited_statements} = $n_expected;
	$self->{only_logged} = $only_logged;
	my $show = q{SELECT string_agg(concat_ws(' ', marker, action, to_timestamp(committed_at), written), E'\n') FROM (SELECT * FROM soak_expected e
		WHERE NOT EXISTS (SELECT FROM soak_audited a WHERE a.marker = e.marker AND a.action = e.action) LIMIT 10) x};
	cmp_ok($n_expected, '>', 0, "$n_expected statements of committed transactions");
	is($missing, '0', 'every read and write statement of a committed transaction has its audit record (trail or server log)')
	  or diag($p->safe_psql('postgres', $show));
	# Found by this soak, fixed: pg_terminate_backend() of the audit launcher
	# at a moment when the database's audit worker was not running sent the
	# queued records to the server log instead of toms.audit_log
	# (t/722_launcher_stop.pl).
	is($only_logged, '0', 'every read and write statement of a committed transaction has its record in toms.audit_log')
	  or diag($p->safe_psql('postgres', $show));
	is($write_not_committed, '0', 'every committed write is recorded as committed');

	is($p->safe_psql('postgres', 'SELECT ok FROM toms.verify_audit()'), 't', 'verify_audit() is ok');

	# Deletions: every request finishes with a valid certificate.
	my $ids = join(',', map { "'$_->{id}'" } @{ $self->{requests} });
	my $nreq = scalar @{ $self->{requests} };
	ok($p->poll_query_until('postgres',
		"SELECT toms.audit_flush(10000) AND count(*) = $nreq FROM toms.deletion_requests WHERE id IN ($ids) AND state = 'done'"),
		"all $nreq deletion requests completed")
	  or diag($p->safe_psql('postgres', 'SELECT * FROM toms.deletion_progress'));
	for my $r (@{ $self->{requests} })
	{
		my $col = $r->{scope} eq 'tenant' ? '' : " AND subject = 'doomed-" . int(substr($r->{tenant}, 1)) . "'";
		my $res = $p->safe_psql('postgres', qq{
			WITH c AS (SELECT toms.deletion_certificate('$r->{id}') AS c)
			SELECT concat_ws(',',
				CASE WHEN c IS NULL THEN 'no certificate' END,
				CASE WHEN (c->>'rows_deleted')::int <> $r->{rows} THEN 'rows_deleted ' || (c->>'rows_deleted') END,
				CASE WHEN (c->>'copies_confirmed')::int < (c->>'copies_required')::int THEN 'copies short' END,
				CASE WHEN coalesce((c->>'proceeded_with_fewer_copies')::bool, false) THEN 'fewer copies' END,
				CASE WHEN EXISTS (SELECT FROM jsonb_array_elements(c->'standbys') s
					WHERE (s->>'replay_lsn')::pg_lsn < (c->>'purge_lsn')::pg_lsn) THEN 'standby behind' END,
				CASE WHEN '$r->{scope}' = 'tenant' AND NOT coalesce((c->'keys'->>'destroyed')::bool, false) THEN 'keys not destroyed' END,
				CASE WHEN NOT EXISTS (SELECT FROM toms.audit_log WHERE action = 'deletion_certificate'
					AND tenant = '$r->{tenant}' AND detail::text LIKE '%$r->{id}%' AND seq IS NOT NULL) THEN 'not in the chain' END,
				CASE WHEN EXISTS (SELECT FROM soak_items WHERE tenant_id = '$r->{tenant}'$col) THEN 'rows left' END)
			  FROM c});
		is($res, '', "deletion $r->{scope} $r->{tenant}: valid certificate");
	}
	$self->{copies} = $p->safe_psql('postgres', qq{SELECT string_agg(DISTINCT (toms.deletion_certificate(id)->>'copies_confirmed'), ',') FROM toms.deletion_requests WHERE id IN ($ids)});

	# Key rotation: every value of the rotated tenants re-sealed, and opens.
	my $rot = join(',', map { "'$_'" } @{ $self->{rotated} });
	ok($p->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM toms.key_rotations WHERE tenant IN ($rot) AND finished_at IS NULL"),
		'the re-sealing after the key rotation finished');
	is($p->safe_psql('postgres', qq{
		SELECT count(*) FROM soak_items i JOIN toms.key_rotations r ON r.tenant = i.tenant_id
		 WHERE i.tenant_id IN ($rot) AND toms.sealed_key_version(i.secret) < r.to_version}),
		'0', 'no value of a rotated tenant left under the old key');
	my $bad = 0;
	for my $t (@{ $self->{rotated} })
	{
		$bad += $p->safe_psql('postgres',
			"SELECT toms.set_tenant('$t'); SELECT count(*) FROM soak_items WHERE toms.unseal(secret) NOT LIKE '$t:%'",
			extra_params => [ '-U', 'soak_member' ]);
	}
	is($bad, 0, 'every re-sealed value opens to its own tenant\'s plaintext');

	# Retention purged the old events.
	ok($p->poll_query_until('postgres', q{
		SELECT NOT EXISTS (SELECT FROM soak_events WHERE at < now() - interval '90 minutes')
		   AND (SELECT rows_purged > 0 FROM toms.retention)}), 'retention purged every expired event');
	$self->{retention_purged} = $p->safe_psql('postgres', 'SELECT rows_purged FROM toms.retention');

	# Workers: neither stuck nor crash-looping.
	is($p->safe_psql('postgres', 'SELECT count(*) FROM toms.deletion_progress'), '0', 'no deletion left in progress');
	ok($p->poll_query_until('postgres', 'SELECT toms.audit_flush(10000) AND queued = 0 FROM toms.audit_stats'),
		'the audit queue is drained');
	my $types = q{SELECT string_agg(backend_type || ':' || pid, ',' ORDER BY backend_type) FROM pg_stat_activity
		WHERE backend_type IN ('toms audit launcher', 'toms lifecycle launcher')};
	my $w1 = $p->safe_psql('postgres', $types);
	# a new audit record makes the audit worker start, if it is not running
	$p->safe_psql('postgres', "SELECT toms.set_tenant('t001'); SELECT count(*) FROM soak_items", extra_params => [ '-U', 'soak_member' ]);
	ok($p->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'toms audit worker'}),
		'the audit worker runs');
	my $deadline = time + 5;
	usleep(200_000) while time < $deadline;
	is($p->safe_psql('postgres', $types), $w1, "both launchers stay up (same pids over 5 s: $w1)");
	my $log = slurp_file($p->logfile, $self->{faults_end_log});
	my @bad = grep { /terminated by signal|exited with exit code [^0]|PANIC|TRAP/ } split /\n/, $log;
	is(scalar(@bad), 0, 'no worker died or restarted after the faults ended') or diag(join("\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]));
	my $all = slurp_file($p->logfile);
	$self->{signal_deaths} = () = $all =~ /terminated by signal/g;
	my @panic = grep { /PANIC|TRAP:|terminated by signal (?!9)/ } split /\n/, $all;
	is(scalar(@panic), 0, 'no crash other than the kills the soak made') or diag(join("\n", @panic[0 .. ($#panic < 9 ? $#panic : 9)]));
}

sub figures
{
	my ($self) = @_;
	my %t = %{ $self->{totals} };
	my $s = $self->{elapsed};
	return sprintf(
		"soak: %d clients, %.0f s, %d commits (%.0f/s), %d statements (%.0f/s), %d rows read, %d rows written,\n"
		  . "  %d aborted transactions (%d deadlocks), %d reconnects, %.1f client-seconds without a connection, %d client errors,\n"
		  . "  %d audited statements checked (0 missing, %d only in the server log), %d deletions with certificates (copies confirmed: %s),\n"
		  . "  %d events purged by retention, %d server processes ended by a signal (the SIGKILL),\n"
		  . "  pg_terminate_backend: %s; faults:\n    %s",
		$self->{clients}, $s, $t{commits}, $t{commits} / $s, $t{statements}, $t{statements} / $s,
		$t{rows_read}, $t{rows_written}, $t{aborts}, $t{deadlocks} // 0, $t{reconnects}, $t{down_seconds}, $t{errors},
		$self->{audited_statements}, $self->{only_logged}, scalar @{ $self->{requests} }, $self->{copies} // '',
		$self->{retention_purged} // 0, $self->{signal_deaths} // 0,
		join(', ', map { "$_ $self->{terminated}{$_}" } sort keys %{ $self->{terminated} }),
		join("\n    ", @{ $self->{faults} }));
}

1;
