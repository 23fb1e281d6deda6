# Master key sources and master key rotation: the key file must be private,
# a key command works, a missing key leaves everything but sealing working,
# rotate_master_key() rewraps every tenant key under the new master key
# while the old one is still available, and the key never reaches the log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $work = $ENV{WORK} or die "WORK not set";
my $key1 = "$work/sealed/master.key";
my $key2 = "$work/sealed/master2.key";
my $open = "$work/sealed/open.key";

my $node = PostgreSQL::Test::Cluster->new('mk');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION toms;
	SELECT toms.create_tenant('t1', 'Tenant one');
	CREATE ROLE alice LOGIN;
	SELECT toms.add_member('alice', 't1');
	CREATE TABLE s (id int, tenant_id text NOT NULL, v toms.sealed);
	GRANT ALL ON s TO alice;
	SELECT toms.protect('s', sensitive => '{v}');
});

sub as_alice
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SET toms.context = 't1'; $sql",
		extra_params => [ '-U', 'alice' ]);
	return ($ret, $out, $err);
}

# Restart with the settings given; returns the size of the server log
# before the restart, so that a check of what this start logged does not
# match what an earlier one did.
sub restart_with
{
	my (%set) = @_;
	$node->stop;
	my $offset = -s $node->logfile;
	while (my ($k, $v) = each %set)
	{
		$node->append_conf('postgresql.conf', "$k = '$v'");
	}
	$node->start;
	return $offset;
}

# The start-up warning for a master key that did not load, with its reason.
sub key_warning
{
	my ($why) = @_;
	return qr/WARNING:  toms: master key not loaded, sealed columns are unavailable\n[^\n]*DETAIL:  \Q$why\E/;
}

my ($ret, $out, $err) = as_alice(
	"INSERT INTO s VALUES (1, DEFAULT, toms.seal('one')), (2, DEFAULT, toms.seal('two')); "
	  . "SELECT string_agg(toms.unseal(v), ',' ORDER BY id) FROM s");
is($out, 'one,two', 'sealed and opened under the first master key');
is($node->safe_psql('postgres', 'SELECT toms.master_key_loaded()'), 't', 'master key loaded');
($ret, $out, $err) = $node->psql('postgres', 'SHOW toms.master_key_file', extra_params => [ '-U', 'alice' ]);
isnt($ret, 0, 'the key source is not visible to ordinary roles');

# A new master key alone: the tenant keys are wrapped under the old one.
restart_with('toms.master_key_file' => $key2);
($ret, $out, $err) = as_alice('SELECT toms.unseal(v) FROM s');
like($err, qr/tenant key is wrapped under a master key that is not loaded/, 'old wrapping needs the old key');

# Both keys: values open, rotate_master_key() rewraps everything.
restart_with('toms.previous_master_key_file' => $key1);
($ret, $out, $err) = as_alice("SELECT string_agg(toms.unseal(v), ',' ORDER BY id) FROM s");
is($out, 'one,two', 'values open during the switch');
my $before = $node->safe_psql('postgres', 'SELECT string_agg(encode(wrapped, \'hex\'), \',\' ORDER BY purpose, version) FROM toms.tenant_keys');
is($node->safe_psql('postgres', 'SELECT toms.rotate_master_key()'), '1', 'one tenant key rewrapped');
is($node->safe_psql('postgres', 'SELECT toms.rotate_master_key()'), '0', 'rotation is idempotent');
isnt($node->safe_psql('postgres', 'SELECT string_agg(encode(wrapped, \'hex\'), \',\' ORDER BY purpose, version) FROM toms.tenant_keys'),
	$before, 'wrapped keys changed');

# The old key is gone: everything still opens.
restart_with('toms.previous_master_key_file' => '');
($ret, $out, $err) = as_alice("INSERT INTO s VALUES (3, DEFAULT, toms.seal('three')); "
	  . "SELECT string_agg(toms.unseal(v), ',' ORDER BY id) FROM s");
is($out, 'one,two,three', 'values open under the new master key alone');

# The same key from a command.
restart_with('toms.master_key_file' => '', 'toms.master_key_command' => "cat $key2");
($ret, $out, $err) = as_alice("SELECT string_agg(toms.unseal(v), ',' ORDER BY id) FROM s");
is($out, 'one,two,three', 'master key from toms.master_key_command');

# A failing command: sealing fails clearly, the rest works.
my $offset = restart_with('toms.master_key_command' => 'exit 3');
ok($node->log_contains(key_warning('The master key command failed.'), $offset),
	'failing key command logged at start');
is($node->safe_psql('postgres', 'SELECT toms.master_key_loaded()'), 'f', 'no master key');
($ret, $out, $err) = as_alice("SELECT toms.seal('x')");
like($err, qr/toms master key is not loaded/, 'sealing refused without a master key');
like($err, qr/The master key command failed/, 'with the reason');
($ret, $out, $err) = as_alice('SELECT count(*) FROM s');
is($out, '3', 'protected tables still work');

# A group/world-readable key file is refused.
$offset = restart_with('toms.master_key_command' => '', 'toms.master_key_file' => $open);
is($node->safe_psql('postgres', 'SELECT toms.master_key_loaded()'), 'f', 'readable key file refused');
($ret, $out, $err) = as_alice("SELECT toms.unseal(v) FROM s");
like($err, qr/accessible by group or others/, 'the error says why');
ok($node->log_contains(key_warning('The master key file is accessible by group or others'), $offset),
	'logged at start');

# A key file that is not a key.
my $bad = "$work/sealed/bad.key";
open(my $fh, '>', $bad) or die;
print $fh "not a key\n";
close $fh;
chmod 0600, $bad;
restart_with('toms.master_key_file' => $bad);
($ret, $out, $err) = as_alice("SELECT toms.seal('x')");
like($err, qr/must be 32 bytes written as 64 hex digits or in base64/, 'malformed key refused');

# A tampered wrapped key does not open.
restart_with('toms.master_key_file' => $key2);
$node->safe_psql('postgres', q{
	UPDATE toms.tenant_keys SET wrapped = set_byte(wrapped, 30, get_byte(wrapped, 30) # 1)
	 WHERE tenant = 't1' AND purpose = 'data'});
($ret, $out, $err) = as_alice("SELECT toms.unseal(v) FROM s");
like($err, qr/a wrapped key in toms.tenant_keys does not open under the master key/, 'tampered wrapped key detected');

# The keys never reach the server log.
my $log = slurp_file($node->logfile);
for my $k ($key1, $key2)
{
	my $content = slurp_file($k);
	chomp $content;
	ok(index($log, $content) < 0, "key from $k not in the log");
}

$node->stop;
done_testing();
