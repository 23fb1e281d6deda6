# Two-stage deletion across three copies (measures 6b, 8a): a primary and
# two streaming standbys on loopback.  Stage 2 purges protected tables and a
# registered copy in batches, vacuums, waits for both standbys, and
# certifies; a kill -9 of the postmaster in the middle of stage 2 resumes
# with exact counts; a standby that is down holds the certificate back
# until it returns, or until toms.deletion_copies_timeout, which the
# certificate records.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TomsNode;
use Time::HiRes qw(usleep);
use Cwd ();

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
toms.deletion_batch_size = 100
toms.lifecycle_naptime = 100ms
wal_writer_delay = 10ms
});
$primary->start;

my @standbys = start_standbys($primary, 'standby1', 'standby2');
my ($standby1, $standby2) = @standbys;

sub sql { return $primary->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION toms;
CREATE EXTENSION pageinspect;
CREATE TABLE orgs (tenant_id text NOT NULL, id int NOT NULL, name text,
	PRIMARY KEY (tenant_id, id));
CREATE TABLE learners (tenant_id text NOT NULL, id int NOT NULL, org_id int NOT NULL, email text,
	PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, org_id) REFERENCES orgs);
CREATE TABLE results (tenant_id text NOT NULL, learner_id int NOT NULL, score int,
	FOREIGN KEY (tenant_id, learner_id) REFERENCES learners);
CREATE INDEX ON results (tenant_id);
CREATE TABLE results_archive (tenant_id text NOT NULL, learner_id int, score int);

SELECT toms.protect('orgs');
SELECT toms.protect('learners', subject_column => 'email');
SELECT toms.protect('results');
SELECT toms.register_copy('results_archive', 'tenant_id');
});

# Load tenant t with n learners (3 results each, 2 archived rows each).
sub load_tenant
{
	my ($t, $n) = @_;
	sql(qq{
SELECT toms.create_tenant('$t', '$t Inc.');
INSERT INTO orgs SELECT '$t', g, 'org ' || g FROM generate_series(1, 5) g;
INSERT INTO learners SELECT '$t', g, 1 + g % 5, 'l' || g || '\@$t.example' FROM generate_series(1, $n) g;
INSERT INTO results SELECT '$t', 1 + g % $n, g % 100 FROM generate_series(1, 3 * $n) g;
INSERT INTO results_archive SELECT '$t', 1 + g % $n, g % 100 FROM generate_series(1, 2 * $n) g;
	});
	return;
}

sub counts
{
	my ($node, $t) = @_;
	return $node->safe_psql('postgres', qq{
SELECT (SELECT count(*) FROM orgs WHERE tenant_id = '$t') || ',' ||
	   (SELECT count(*) FROM learners WHERE tenant_id = '$t') || ',' ||
	   (SELECT count(*) FROM results WHERE tenant_id = '$t') || ',' ||
	   (SELECT count(*) FROM results_archive WHERE tenant_id = '$t')});
}

# Heap tuples and btree index entries that still hold the tenant id.
sub raw_tuples
{
	my ($t) = @_;
	return sql(qq{
SELECT (SELECT count(*)
		  FROM unnest(ARRAY['orgs', 'learners', 'results', 'results_archive']) AS r(rel),
			   generate_series(0, pg_relation_size(r.rel) / 8192 - 1) AS b,
			   heap_page_items(get_raw_page(r.rel, b::int)) AS i
		 WHERE i.t_data IS NOT NULL AND position(convert_to('$t', 'UTF8') IN i.t_data) > 0)
	 + (SELECT count(*)
		  FROM unnest(ARRAY['orgs_pkey', 'learners_pkey', 'results_tenant_id_idx']) AS r(rel),
			   generate_series(1, pg_relation_size(r.rel) / 8192 - 1) AS b,
			   bt_page_items(get_raw_page(r.rel, b::int)) AS i
		 WHERE replace(i.data, ' ', '') LIKE '%' || encode(convert_to('$t', 'UTF8'), 'hex') || '%')});
}

# After kill -9 of a postmaster: wait (bounded) until no live process runs
# in its data directory.  The killed postmaster may stay a zombie when the
# machine's init does not reap it (containers); a zombie is dead, so its
# stale lock files are removed, as an operator would.
sub wait_dead
{
	my ($node) = @_;
	my $datadir = $node->data_dir;
	my $real = Cwd::realpath($datadir);
	for (1 .. 300)
	{
		my $live = 0;
		for my $p (glob '/proc/[0-9]*')
		{
			my $cwd = readlink("$p/cwd");
			next unless defined $cwd && $cwd eq $real;
			open(my $fh, '<', "$p/stat") or next;
			my $st = <$fh>;
			close($fh);
			$live++ unless defined $st && $st =~ /^\d+ \(.*\) Z/;
		}
		if (!$live)
		{
			unlink("$datadir/postmaster.pid");
			unlink($node->host . '/.s.PGSQL.' . $node->port . '.lock');
			return 1;
		}
		usleep(100_000);
	}
	return 0;
}

sub wait_certificate
{
	my ($id, $what) = @_;
	ok($primary->poll_query_until('postgres',
			"SELECT toms.deletion_certificate('$id') IS NOT NULL"), $what)
	  or diag(sql("SELECT * FROM toms.deletion_progress"));
	return;
}

sub cert_field
{
	my ($id, $path) = @_;
	return sql("SELECT toms.deletion_certificate('$id') #>> '$path'");
}

load_tenant('acme-corp', 400);
load_tenant('globex-corp', 100);
$primary->wait_for_catchup($_) for @standbys;
is(counts($standby2, 'acme-corp'), '5,400,1200,800', 'standby holds the tenant before deletion');
cmp_ok(raw_tuples('acme-corp'), '>', 0, 'pageinspect sees the tenant before deletion');

# Crypto-shredding: a sealed value of the tenant is copied out of the
# database's protection before the deletion.  The test clusters load a
# master key (test/conf.d); without one these checks fail, not skip.
is(sql("SELECT toms.master_key_loaded()"), 't', 'a master key is loaded (crypto-shredding is checked)');
sql(q{
CREATE ROLE regress_sealer LOGIN;
SELECT toms.add_member('regress_sealer', 'acme-corp');
CREATE TABLE sealed_export (v text);
GRANT SELECT, INSERT ON sealed_export TO regress_sealer;
SET SESSION AUTHORIZATION regress_sealer;
SELECT toms.set_tenant('acme-corp');
INSERT INTO sealed_export SELECT toms.seal('ann@acme.example')::text;
});
# A member of the tenant, in its context, opening the copied-out value:
# run now and again after the deletion, under the same conditions.
sub open_sealed
{
	my ($ret, $out, $err) = $primary->psql('postgres',
		"SET SESSION AUTHORIZATION regress_sealer; SET toms.context = 'acme-corp'; "
		  . "SELECT toms.unseal(v::toms.sealed) FROM sealed_export",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($out, $err);
}
my ($opened, $unseal_err) = open_sealed();
is($opened, 'ann@acme.example', 'before the deletion, the copied-out value opens for a member in the tenant context')
  or diag($unseal_err);
is(sql("SELECT count(*) > 0 FROM toms.tenant_keys WHERE tenant = 'acme-corp' AND wrapped IS NOT NULL"),
	't', 'before the deletion, the tenant has wrapped keys');

# --- 1. Whole tenant, both standbys ---------------------------------------
# (the status read in the requesting transaction: with no grace, stage 2
# may have ended by the next call)
my ($id, $status) = split /\n/, sql("BEGIN; SELECT toms.request_deletion('acme-corp', reason => 'contract ended', grace => '0s');
	SELECT status FROM toms.tenants WHERE tenant = 'acme-corp'; COMMIT");
like($id, qr/^[0-9a-f-]{36}$/, 'request_deletion returns a uuid');
is($status, 'deleting', 'stage 1: tenant is deleting');
wait_certificate($id, 'stage 2 certifies the deletion');

is(counts($primary, 'acme-corp'), '0,0,0,0', 'rows gone on the primary');
is(counts($primary, 'globex-corp'), '5,100,300,200', 'other tenant untouched');
is(sql("SELECT status FROM toms.tenants WHERE tenant = 'acme-corp'"), 'deleted', 'tenant status deleted');
is(sql(qq{SELECT string_agg(t->>'table' || '=' || (t->>'rows_deleted'), ' ' ORDER BY t->>'table')
		FROM jsonb_array_elements(toms.deletion_certificate('$id')->'tables') t}),
	'public.learners=400 public.orgs=5 public.results=1200 public.results_archive=800', 'certificate: exact rows per table');
# Children before parents: results and the copy, then learners, then orgs.
is(sql(qq{SELECT string_agg(t->>'table', ' ')
		FROM jsonb_array_elements(toms.deletion_certificate('$id')->'tables') t}),
	'public.results public.results_archive public.learners public.orgs', 'certificate: tables in foreign-key order');
is(sql("SELECT jsonb_array_length(toms.deletion_certificate('$id')->'standbys')"), '2', 'certificate lists two standbys');
is(sql(qq{SELECT string_agg(s->>'application_name', ',' ORDER BY s->>'application_name')
		FROM jsonb_array_elements(toms.deletion_certificate('$id')->'standbys') s}),
	'standby1,standby2', 'certificate names both standbys');
is(sql(qq{SELECT bool_and((s->>'replay_lsn')::pg_lsn >= (c->>'purge_lsn')::pg_lsn)
		FROM toms.deletion_certificate('$id') c, jsonb_array_elements(c->'standbys') s}),
	't', 'both standbys replayed past the purge LSN');
is(cert_field($id, '{proceeded_with_fewer_copies}'), 'false', 'no shortfall');
like(cert_field($id, '{keys}'), qr/destroyed/, 'certificate says what happened to the keys');
is(raw_tuples('acme-corp'), '0', 'pageinspect finds no tuple of the tenant after the vacuum')
  or diag(sql(q{
SELECT r.rel, b, i.lp, i.lp_flags, i.t_xmin, i.t_xmax
  FROM unnest(ARRAY['orgs', 'learners', 'results', 'results_archive']) AS r(rel),
	   generate_series(0, pg_relation_size(r.rel) / 8192 - 1) AS b,
	   heap_page_items(get_raw_page(r.rel, b::int)) AS i
 WHERE i.t_data IS NOT NULL AND position(convert_to('acme-corp', 'UTF8') IN i.t_data) > 0
 LIMIT 5}), sql(q{SELECT pid, backend_type, state, backend_xmin, left(query, 60) FROM pg_stat_activity
 WHERE backend_xmin IS NOT NULL OR backend_xid IS NOT NULL}));
for my $s (@standbys)
{
	is(counts($s, 'acme-corp'), '0,0,0,0', 'rows gone on ' . $s->name);
	is(counts($s, 'globex-corp'), '5,100,300,200', 'other tenant intact on ' . $s->name);
}

is(sql("SELECT count(*) FROM toms.tenant_keys WHERE tenant = 'acme-corp' AND wrapped IS NOT NULL"),
	'0', 'crypto-shredding: no wrapped key of the tenant is left');
cmp_ok(sql(qq{SELECT coalesce(toms.deletion_certificate('$id')#>>'{keys,keys_destroyed}', '0')}), '>', 0,
	'certificate counts the destroyed keys');
# The same member, context and value as before the deletion.  A deleted
# tenant admits no context, so a superuser first sets it active again (as
# one could, or a restore of toms.tenants): only the destroyed keys then
# stand between the copied-out value and its plaintext.
sql("UPDATE toms.tenants SET status = 'active' WHERE tenant = 'acme-corp'");
($opened, $unseal_err) = open_sealed();
like($unseal_err, qr/ERROR:  28T02: the tenant's keys have been destroyed/,
	'a sealed value copied out before the deletion no longer opens')
  or diag("unseal returned '$opened'");
sql("UPDATE toms.tenants SET status = 'deleted' WHERE tenant = 'acme-corp'");

# --- 2. hold, pg_terminate_backend and kill -9 in the middle of stage 2 ----
load_tenant('initech', 3000);
load_tenant('soylent', 10);
my $before = counts($primary, 'initech');
is($before, '5,3000,9000,6000', 'crash tenant loaded');
sql("ALTER SYSTEM SET toms.deletion_batch_pause = '20ms'; SELECT pg_reload_conf()");
# A client session inside a transaction (without a snapshot): the worker
# pauses between batches only while clients work, and keeps its batch size.
my $busy = $primary->background_psql('postgres');
$busy->query_safe('BEGIN');
$id = sql("SELECT toms.request_deletion('initech', grace => '0s')");
sub rows_done { return sql("SELECT rows_done FROM toms.deletion_progress WHERE request = '$id'"); }
ok($primary->poll_query_until('postgres', qq{
	SELECT rows_done >= 1000 FROM toms.deletion_progress WHERE request = '$id'}),
	'stage 2 is under way');

# A legal hold stops it at the next batch.  A later request that completes
# meanwhile shows that the worker went past the held one more than once.
sql("SELECT toms.hold('initech', 'litigation')");
my $held_at = rows_done();
my $other = sql("SELECT toms.request_deletion('soylent', grace => '0s')");
wait_certificate($other, 'a later request completes while the first is held');
my $held_now = rows_done();
cmp_ok($held_now - $held_at, '<=', 100, 'held: at most the batch in flight was applied');
is(sql("SELECT phase FROM toms.deletion_progress WHERE request = '$id'"), 'held', 'progress shows the hold');
sql("SELECT toms.release_hold('initech')");

# pg_terminate_backend() of the worker: the next worker resumes.
ok($primary->poll_query_until('postgres', qq{
	SELECT rows_done >= $held_now + 1000 FROM toms.deletion_progress WHERE request = '$id'}),
	'released: stage 2 continues');
is(sql("SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
		 WHERE application_name = 'toms lifecycle worker' AND datname = 'postgres'"), 't',
	'worker terminated');
my $terminated_at = rows_done();
ok($primary->poll_query_until('postgres', qq{
	SELECT rows_done >= $terminated_at + 1000 FROM toms.deletion_progress WHERE request = '$id'}),
	'a new worker resumes after pg_terminate_backend');
$busy->quit;
$primary->kill9;
ok(wait_dead($primary), 'postmaster and its children are gone');
$primary->start;
pass('primary restarts after kill -9');
sql("ALTER SYSTEM RESET toms.deletion_batch_pause; SELECT pg_reload_conf()");
wait_certificate($id, 'the interrupted deletion completes after restart');
is(counts($primary, 'initech'), '0,0,0,0', 'crash tenant gone');
is(sql(qq{SELECT string_agg(t->>'table' || '=' || (t->>'rows_deleted'), ' ' ORDER BY t->>'table')
		FROM jsonb_array_elements(toms.deletion_certificate('$id')->'tables') t}),
	'public.learners=3000 public.orgs=5 public.results=9000 public.results_archive=6000',
	'exact counts: no batch applied twice or lost');
is(counts($primary, 'globex-corp'), '5,100,300,200', 'other tenant untouched by the crash');
ok($primary->log_contains(qr/resumes deletion request $id/), 'worker logged that it resumed');

# --- 3. A standby that is down holds the certificate back -----------------
sql("ALTER SYSTEM SET toms.deletion_copies = 2; SELECT pg_reload_conf()");
load_tenant('hooli', 10);
$primary->wait_for_catchup($_) for @standbys;
$standby2->stop;
$id = sql("SELECT toms.request_deletion('hooli', grace => '0s')");
ok($primary->poll_query_until('postgres', qq{
	SELECT phase = 'waiting_copies' AND copies_confirmed = 1
	  FROM toms.deletion_progress WHERE request = '$id'}),
	'stage 2 waits with one standby confirmed');
is(sql("SELECT toms.deletion_certificate('$id') IS NULL"), 't', 'no certificate while a standby is down');
$standby2->start;
wait_certificate($id, 'certificate once the standby is back');
is(cert_field($id, '{copies_confirmed}'), '2', 'both copies confirmed');
is(counts($standby2, 'hooli'), '0,0,0,0', 'returning standby replayed the deletion');

# --- 4. ... unless toms.deletion_copies_timeout lets it proceed -------------
sql("ALTER SYSTEM SET toms.deletion_copies_timeout = '1s'; SELECT pg_reload_conf()");
load_tenant('umbrella', 10);
$primary->wait_for_catchup($_) for @standbys;
$standby2->stop;
$id = sql("SELECT toms.request_deletion('umbrella', grace => '0s')");
wait_certificate($id, 'certificate after the copies timeout');
is(cert_field($id, '{proceeded_with_fewer_copies}'), 'true', 'certificate records the shortfall');
is(cert_field($id, '{copies_confirmed}') . '/' . cert_field($id, '{copies_required}'), '1/2',
	'certificate records copies confirmed and required');
$standby2->start;

$primary->stop;
$_->stop for @standbys;
done_testing();
