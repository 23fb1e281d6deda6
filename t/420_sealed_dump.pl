# pg_dump / pg_restore of sealed columns into a second cluster that loads
# the same master key: ciphertext moves unchanged (never encrypted twice,
# never decrypted), the wrapped keys come along, and every value opens to
# the same plaintext.  The dump holds no plaintext of a sealed column.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $tempdir = PostgreSQL::Test::Utils::tempdir;

my $setup_roles = q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
};

my $a = PostgreSQL::Test::Cluster->new('source');
$a->init;
$a->start;
$a->safe_psql('postgres', $setup_roles);
$a->safe_psql('postgres', q{CREATE DATABASE app});
$a->safe_psql('app', q{
	CREATE EXTENSION toms;
	SELECT toms.create_tenant('acme', 'Acme'), toms.create_tenant('globex', 'Globex');
	SELECT toms.add_member('alice', 'acme'), toms.add_member('bob', 'globex');
	CREATE TABLE learners (id int PRIMARY KEY, tenant_id text NOT NULL,
	                       email toms.sealed, email_idx bytea, photo toms.sealed);
	GRANT ALL ON learners TO alice, bob;
	SELECT toms.protect('learners', sensitive => '{email,photo}');
});

my @acme = ('ann.plaintext@acme.example', 'Ärger über Öl <ärger@acme.example>', '');
my $i = 0;
for my $e (@acme)
{
	$i++;
	$a->safe_psql('app', "SET toms.context = 'acme'; INSERT INTO learners VALUES "
		  . "($i, DEFAULT, toms.seal(\$q\$$e\$q\$), toms.blind_index(\$q\$$e\$q\$, 'email'), "
		  . "toms.seal('\\x00ff'::bytea))",
		extra_params => [ '-U', 'alice' ]);
}
$a->safe_psql('app', "SET toms.context = 'globex'; INSERT INTO learners VALUES "
	  . "(10, DEFAULT, toms.seal('bob.plaintext\@globex.example'), NULL, NULL)",
	extra_params => [ '-U', 'bob' ]);

my $opened_query = "SELECT string_agg(id || '=' || coalesce(toms.unseal(email), '<null>') || '/' "
  . "|| coalesce(encode(toms.unseal_bytea(photo), 'hex'), '<null>'), ';' ORDER BY id) FROM learners";
my $acme_before = $a->safe_psql('app', "SET toms.context = 'acme'; $opened_query",
	extra_params => [ '-U', 'alice' ]);
like($acme_before, qr/ann.plaintext\@acme.example/, 'source opens its values');
my $cipher_query = "SELECT string_agg(id || ':' || email::text || ':' || coalesce(photo::text, ''), ',' ORDER BY id) FROM learners";
my $cipher_before = $a->safe_psql('app', $cipher_query);
my $keys_query = "SELECT string_agg(tenant || purpose || version || status || encode(wrapped, 'hex') || encode(master_key_id, 'hex'), ',' ORDER BY 1) FROM toms.tenant_keys";
my $keys_before = $a->safe_psql('app', $keys_query);

$a->command_ok([ 'pg_dump', '-Fc', '-f', "$tempdir/app.dump", 'app' ], 'pg_dump -Fc');
$a->command_ok([ 'pg_dump', '-f', "$tempdir/app.sql", 'app' ], 'pg_dump plain');
my $plain = slurp_file("$tempdir/app.sql");
like($plain, qr/sealed:v1:/, 'the dump holds the armoured ciphertext');
for my $p ('ann.plaintext', 'bob.plaintext', 'Ärger', 'acme.example')
{
	ok(index($plain, $p) < 0, "no plaintext \"$p\" in the dump");
}
like($plain, qr/COPY toms\.tenant_keys/, 'the wrapped keys are dumped');

# Second cluster, same master key (TEMP_CONFIG), same roles.
my $b = PostgreSQL::Test::Cluster->new('target');
$b->init;
$b->start;
$b->safe_psql('postgres', $setup_roles);
$b->safe_psql('postgres', q{CREATE DATABASE app; CREATE DATABASE app_plain});

# A plain pg_restore just works: the guard lets a superuser put back toms'
# own trigger and (canonical) policy.
$b->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'app_plain', "$tempdir/app.dump" ],
	'plain pg_restore');
is($b->safe_psql('app_plain', "SET toms.context = 'acme'; $opened_query", extra_params => [ '-U', 'alice' ]),
	$acme_before, 'plain restore: values open to the same plaintexts');
is($b->safe_psql('app_plain', q{SELECT string_agg(polname, ',' ORDER BY polname) FROM pg_policy WHERE polrelid = 'learners'::regclass}),
	'toms_tenant', 'plain restore: the tenant policy is back');
my $list = `pg_restore -l $tempdir/app.dump`;
my @kept = grep { !/ (TRIGGER|POLICY) public learners toms_/ } split(/\n/, $list);
open(my $lf, '>', "$tempdir/app.list") or die;
print $lf join("\n", @kept), "\n";
close $lf;
$b->command_ok([ 'pg_restore', '--exit-on-error', '-L', "$tempdir/app.list", '-d', 'app', "$tempdir/app.dump" ],
	'pg_restore (without toms_* trigger and policy)');
$b->safe_psql('app', q{SELECT toms.unprotect('learners'); SELECT toms.protect('learners', sensitive => '{email,photo}')});

is($b->safe_psql('app', $cipher_query), $cipher_before, 'ciphertext restored byte for byte (no double encryption)');
is($b->safe_psql('app', $keys_query), $keys_before, 'wrapped keys restored unchanged');
is($b->safe_psql('app', "SET toms.context = 'acme'; $opened_query", extra_params => [ '-U', 'alice' ]),
	$acme_before, 'the restored values open to the same plaintexts');
is($b->safe_psql('app', "SET toms.context = 'acme'; SELECT id FROM learners WHERE email_idx = toms.blind_index('ann.plaintext\@acme.example', 'email')",
		extra_params => [ '-U', 'alice' ]),
	'1', 'blind index lookups work after restore');
is($b->safe_psql('app', "SET toms.context = 'globex'; SELECT toms.unseal(email) FROM learners", extra_params => [ '-U', 'bob' ]),
	'bob.plaintext@globex.example', 'the other tenant too');
# Enforcement is restored with the table.
my $acme_ct = $b->safe_psql('app', 'SELECT email::text FROM learners WHERE id = 1');
my ($ret, $out, $err) = $b->psql('app', "SET toms.context = 'globex'; INSERT INTO learners (id, email) VALUES (99, '$acme_ct')",
	extra_params => [ '-U', 'bob' ]);
like($err, qr/not sealed for the row's tenant/, 'the sealed-column trigger came back with the restore');

# A third cluster with another master key cannot open anything.
my $c = PostgreSQL::Test::Cluster->new('otherkey');
$c->init;
$c->append_conf('postgresql.conf', "toms.master_key_file = '$ENV{WORK}/sealed/master2.key'");
$c->start;
$c->safe_psql('postgres', $setup_roles);
$c->safe_psql('postgres', q{CREATE DATABASE app});
$c->command_ok([ 'pg_restore', '--exit-on-error', '-L', "$tempdir/app.list", '-d', 'app', "$tempdir/app.dump" ],
	'pg_restore under another master key');
$c->safe_psql('app', q{SELECT toms.unprotect('learners'); SELECT toms.protect('learners', sensitive => '{email,photo}')});
($ret, $out, $err) = $c->psql('app', "SET toms.context = 'acme'; $opened_query", extra_params => [ '-U', 'alice' ]);
like($err, qr/wrapped under a master key that is not loaded/, 'another master key opens nothing');

$a->stop;
$b->stop;
$c->stop;
done_testing();
