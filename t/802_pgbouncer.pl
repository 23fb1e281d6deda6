# Pools (SPEC section 1, issue 16 class 6): through a real PgBouncer in
# transaction mode with a pool of ONE server connection, several clients
# alternate tenants.  With toms.context_scope = 'transaction' (set by the
# recipe of docs/tenancy.md, "Behind PgBouncer", which this test runs as
# written) a context set for the session is refused at once or never used,
# so no client ever reads the tenant of the client before it; a role left
# at 'session' shows the leak the setting closes, and toms.assess() 9b warns
# about it.  The NOTIFY toms_incident payload raised by the refusals names
# no role and no tenant (issue 16 class 7).
use strict;
use warnings;
use File::Basename qw(dirname);
use IPC::Run ();
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TomsNode;

my $pgbouncer = '/usr/sbin/pgbouncer';
BAIL_OUT("pgbouncer not installed ($pgbouncer; test/lib.sh PACKAGES has it)") unless -x $pgbouncer;

# --- the recipe, from the documentation ------------------------------------
my $docfile = dirname(__FILE__) . '/../docs/tenancy.md';
open(my $dfh, '<', $docfile) or die "cannot read $docfile: $!";
my $doc = do { local $/; <$dfh> };
close($dfh);
my ($section) = $doc =~ /^### Behind PgBouncer\n(.*?)(?=^##)/ms
  or die 'docs/tenancy.md has no "### Behind PgBouncer" section';
my @blocks;
push @blocks, [ $1, $2 ] while $section =~ /^```(\w*)\n(.*?)^```/msg;
my @sql = map { $_->[1] } grep { $_->[0] eq 'sql' } @blocks;
my @ini = map { $_->[1] } grep { $_->[0] eq 'ini' } @blocks;
is(scalar(@sql), 3, 'the recipe has its three SQL blocks');
is(scalar(@ini), 1, 'the recipe has its pgbouncer.ini');
my ($alter_role, $userlist_query, $app_txn) = @sql;

# --- the server ------------------------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('pgbouncer');
$node->init;
my $soon = start_with_password_logins($node, "toms.incident_denials = 3\n");
my $pw = 'Pooled-Conn-2024!';
$node->safe_psql('postgres', 'CREATE DATABASE appdb');
$node->safe_psql('appdb', qq{
CREATE EXTENSION toms;
CREATE ROLE app LOGIN PASSWORD '$pw' VALID UNTIL '$soon' IN ROLE toms_app;
CREATE ROLE legacy LOGIN PASSWORD '$pw' VALID UNTIL '$soon' IN ROLE toms_app;
SELECT toms.create_tenant('acme', 'Acme'), toms.create_tenant('globex', 'Globex');
SELECT toms.add_member(r, t) FROM unnest('{app,legacy}'::regrole[]) r, unnest('{acme,globex}'::text[]) t;
CREATE TABLE orders (tenant_id text NOT NULL, item text NOT NULL);
SELECT toms.protect('orders');
INSERT INTO orders VALUES ('acme', 'anvil'), ('acme', 'rocket'), ('globex', 'gizmo');
GRANT SELECT, INSERT ON orders TO app, legacy;
});

# Any role may LISTEN: one does from the start.
my $listener = $node->background_psql('appdb');
$listener->query_safe('LISTEN toms_incident');

# Step 1 and 2 of the recipe, as written.
$node->safe_psql('appdb', $alter_role);
is($node->safe_psql('appdb', q{SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'app'::regrole}),
	'{toms.context_scope=transaction}', 'step 1: app is at toms.context_scope = transaction');
my $userlist = $node->safe_psql('appdb', $userlist_query);
like($userlist, qr/^"app" "SCRAM-SHA-256\$/, 'step 2: the SCRAM secret for the auth_file');
$userlist .= "\n" . $node->safe_psql('appdb', $userlist_query =~ s/'app'/'legacy'/r) . "\n";

# Step 3: pgbouncer.ini as written, with this test's ports and paths and a
# pool of one server connection.
my $dir = PostgreSQL::Test::Utils::tempdir();
my $bport = PostgreSQL::Test::Cluster::get_free_port();
my $ini = $ini[0];
my $port = $node->port;
$ini =~ s/\bport=5432\b/port=$port/ or die 'recipe ini: no server port=5432';
$ini =~ s/^listen_port = 6432$/listen_port = $bport/m or die 'recipe ini: no listen_port';
$ini =~ s{^auth_file = .*$}{auth_file = $dir/userlist.txt}m or die 'recipe ini: no auth_file';
$ini =~ s/^default_pool_size = \d+$/default_pool_size = 1/m or die 'recipe ini: no default_pool_size';
like($ini, qr/^pool_mode = transaction$/m, 'step 3: transaction pooling');
$ini .= "logfile = $dir/pgbouncer.log\npidfile = $dir/pgbouncer.pid\nunix_socket_dir =\n"
  . "max_client_conn = 20\n";
open(my $fh, '>', "$dir/userlist.txt") or die;
print $fh $userlist;
close($fh);
open($fh, '>', "$dir/pgbouncer.ini") or die;
print $fh $ini;
close($fh);
my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ], '>', \$bout, '2>', \$berr);

# A client: a fresh connection through PgBouncer, one script.
sub client
{
	my ($user, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('appdb', "\\set VERBOSITY verbose\n" . $sql,
		connstr => "host=127.0.0.1 port=$bport dbname=appdb user=$user password=$pw");
	return ($out // '') . "\n" . ($err // '');
}

my $up = 0;
for (1 .. 100)
{
	if (client('app', 'SELECT 1') =~ /^1$/m) { $up = 1; last; }
	usleep(100_000);
}
ok($up, 'PgBouncer is up and logs in as app') or diag("pgbouncer: $berr " . slurp_file("$dir/pgbouncer.log"));

# Step 4: the application's transaction, as written.
like(client('app', $app_txn), qr/^2$/m, "step 4: acme's two orders, entered for the transaction");

my $pid = client('app', 'SELECT pg_backend_pid()') =~ /^(\d+)$/m ? $1 : 'none';
sub same_server
{
	my ($out, $what) = @_;
	like($out, qr/^pid=\Q$pid\E$/m, "$what ran on the one pooled server connection");
}

# --- transaction scope: nothing carries over --------------------------------
my $o = client('app', q{SELECT toms.set_tenant('acme');});
like($o, qr/ERROR:  42501: tenant context set for the session/, 'set_tenant(t) for the session is refused');
$o = client('app', q{SET toms.context = 'acme';});
like($o, qr/ERROR:  42501: tenant context set for the session/, 'SET toms.context for the session is refused');

# A client slips a session-level value past (set_config(..., false)) and
# leaves; the next clients, alternating, set theirs per transaction.
my @seen;
for my $i (1 .. 6)
{
	my $t = $i % 2 ? 'acme' : 'globex';
	my $other = $i % 2 ? 'globex' : 'acme';
	$o = client('app', qq{SELECT set_config('toms.context', '$other', false) IS NOT NULL; SELECT 'pid=' || pg_backend_pid();});
	same_server($o, "client $i-a (session-level $other)");
	$o = client('app', q{SELECT 'pid=' || pg_backend_pid(); SELECT string_agg(item, ',' ORDER BY item) FROM orders;});
	same_server($o, "client $i-b (no context)");
	like($o, qr/ERROR:  42501: tenant context set for the session/, "client $i-b, no context of its own: refused");
	unlike($o, qr/anvil|rocket|gizmo/, "client $i-b reads no row of $other");
	$o = client('app', qq{BEGIN; SELECT toms.set_tenant('$t', true); SELECT 'pid=' || pg_backend_pid();
		SELECT 'rows=' || string_agg(item, ',' ORDER BY item) FROM orders; COMMIT;});
	same_server($o, "client $i-c ($t)");
	like($o, qr/^rows=${\($t eq 'acme' ? 'anvil,rocket' : 'gizmo')}$/m, "client $i-c reads the rows of $t, only");
	push @seen, $o =~ /^rows=(.*)$/m;
	# SET LOCAL and a token-less set_config(..., true) work the same
	$o = client('app', qq{BEGIN; SET LOCAL toms.context = '$t'; SELECT 'rows=' || count(*) FROM orders; COMMIT;});
	like($o, qr/^rows=${\($t eq 'acme' ? 2 : 1)}$/m, "client $i-d: SET LOCAL toms.context");
}
is(scalar(@seen), 6, 'six clients alternated acme and globex on one server connection');
$o = client('app', q{RESET toms.context; SELECT string_agg(item, ',') FROM orders;});
like($o, qr/ERROR:  42501: no tenant context/, 'RESET clears the leftover: no tenant context, fail closed');

# --- the shared verified-context cache (context_cache.c) -------------------
# A fresh server connection finds a context another one verified; a
# membership removed meanwhile is not found (the committing transaction
# bumps the cache's generation), in a fresh connection that never verified
# it itself.
sub direct
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('appdb', "\\set VERBOSITY verbose\n" . $sql,
		connstr => "host=127.0.0.1 port=$port dbname=appdb user=app password=$pw");
	return ($out // '') . "\n" . ($err // '');
}
my $enter = q{BEGIN; SELECT toms.set_tenant('acme', true); SELECT 'rows=' || count(*) FROM orders; COMMIT;};
like(direct($enter), qr/^rows=2$/m, 'shared cache: a fresh connection enters acme');
like(direct($enter), qr/^rows=2$/m, 'shared cache: another fresh connection too');
$node->safe_psql('appdb', q{SELECT toms.remove_member('app', 'acme')});
like(direct($enter), qr/ERROR:  42501: role "app" is not a member of tenant "acme"/,
	'shared cache: after remove_member a fresh connection is refused');
$node->safe_psql('appdb', q{SELECT toms.add_member('app', 'acme')});
like(direct($enter), qr/^rows=2$/m, 'shared cache: and enters again after add_member');

# --- a role left at session scope: the leak the setting closes -------------
$o = client('legacy', q{SELECT toms.set_tenant('acme');});
unlike($o, qr/ERROR/, 'legacy (session scope): set_tenant(t) for the session is allowed');
$o = client('legacy', q{SELECT string_agg(item, ',' ORDER BY item) FROM orders;});
like($o, qr/^anvil,rocket$/m, 'legacy: the next client, which set no context, reads acme\'s rows (why context_scope exists)');
like($node->safe_psql('appdb', q{SELECT status || ': ' || evidence FROM toms.assess() WHERE control = '9b'}),
	qr/^warn: .*toms\.context_scope = session.*: legacy \(ALTER ROLE/, 'assess 9b warns about legacy');
unlike($node->safe_psql('appdb', q{SELECT evidence FROM toms.assess() WHERE control = '9b'}),
	qr/session[^;]*\bapp\b/, '... and not about app');

# --- the incident payload names no role or tenant --------------------------
$node->poll_query_until('appdb', q{SELECT toms.audit_flush() AND EXISTS (SELECT FROM toms.incidents WHERE kind = 'repeated_denials' AND detail ~ 'app')})
  or die 'no repeated_denials incident';
my $n = $listener->query_safe(q{SELECT 'listening'});
like($n, qr/Asynchronous notification "toms_incident" with payload "\{.*"kind" : "repeated_denials"/,
	'the repeated refusals were announced');
my @payloads = $n =~ /Asynchronous notification "toms_incident" with payload "(\{.*?\})"/g;
ok(@payloads >= 1, scalar(@payloads) . ' notification(s) received');
is(scalar(grep { /\bapp\b|acme|globex|"tenant"|"detail"|"first_seen"|"last_seen"/ } @payloads), 0,
	'no payload carries a role, tenant, detail or timing') or diag(join("\n", @payloads));
$listener->quit;

$bouncer->kill_kill;
$node->stop;
done_testing();
