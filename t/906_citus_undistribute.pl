# Citus (issue 15): undistribute_table() and alter_distributed_table() of
# protected tables.  Both replace the table (a new one under a temporary
# name, the rows copied, the old one dropped, the new one renamed); toms
# lets the drop pass only inside these Citus functions, for a superuser,
# and carries the protection over to the replacement in the same
# transaction (src/citus_convert.c).  Checked: the owner is refused
# clearly; a failure half way leaves the original protected table as it
# was; after alter_distributed_table(shard_count => 6) every shard on every
# worker is filtered and guarded; after undistribute_table() the local
# table is protected with the same settings (tenant, subject, sealed
# columns, read-audit switch), guarded against its owner and the
# superuser, isolated, assessed clean; distributed again, isolated on the
# workers; a hand-made imitation of the replacement is refused, and so is
# Citus' C function under another name.  A retention rule follows
# alter_distributed_table() to the new table on every node;
# undistribute_table() of a table with one is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use TomsCitus;

my ($coord, $w1, $w2) = citus_cluster();
my @workers = ($w1, $w2);
my @tenants = ([ 'alice', 'acme' ], [ 'bob', 'globex' ]);
$coord->safe_psql('postgres', join('', map { "CREATE ROLE $_->[0] LOGIN; SELECT toms.create_tenant('$_->[1]', '$_->[1]');
	SELECT toms.add_member('$_->[0]', '$_->[1]');" } @tenants) . q{
	CREATE ROLE owner1 LOGIN;
	GRANT CREATE ON SCHEMA public TO owner1;
	SET ROLE owner1;
	CREATE TABLE learners (tenant_id text NOT NULL, id int, name text, person text,
		at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, id));
	CREATE TABLE secrets (tenant_id text NOT NULL, id int, learner int, v toms.sealed,
		PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, learner) REFERENCES learners);
	GRANT ALL ON learners, secrets TO alice, bob;
	RESET ROLE;
	SELECT toms.protect('learners', subject_column => 'person', audit_reads => false);
	SELECT toms.protect('secrets', sensitive => '{v}');
	SELECT create_distributed_table('learners', 'tenant_id');
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('secrets', 'tenant_id', colocate_with => 'learners');
	SELECT toms.set_retention('learners', 'at', '1 year');
});

sub as_tenant { return citus_as_tenant($coord, @_); }
for my $t (@tenants)
{
	my ($u, $tenant) = @$t;
	as_tenant($u, $tenant, q{SELECT toms.seal('')});    # the tenant key first (docs/scaling.md)
	for my $i (1 .. 3)
	{
		is(as_tenant($u, $tenant, "INSERT INTO learners (id, name, person) VALUES ($i, '$tenant-$i', 'p$i');
			INSERT INTO secrets (id, learner, v) VALUES ($i, $i, toms.seal('$tenant-secret-$i'))"),
			'', "$tenant: rows $i written");
	}
}

# What toms.protected_tables says of both tables, but their OIDs; the OIDs.
my $settings = q{SELECT string_agg(format('%s %s %s %s %s %s %s', relid, tenant_column, sensitive,
	subject_column, protected_at, protected_by, audit_reads), E'\n' ORDER BY relid::text) FROM toms.protected_tables};
my $oids = q{SELECT string_agg(relid::oid::text, ',' ORDER BY relid::text) FROM toms.protected_tables};
my $before = $coord->safe_psql('postgres', $settings);
like($before, qr/^learners tenant_id \{\} person .* f\nsecrets tenant_id \{v\}  .* t$/s, 'both tables registered');
my $oids0 = $coord->safe_psql('postgres', $oids);
# The retention rule, on every node (a reference table naming the table).
my $rule = q{SELECT string_agg(format('%s %s %s %s', relid, time_column, keep, set_at), ',')
	FROM toms.retention WHERE relid = 'learners'::regclass};
my $rule0 = $coord->safe_psql('postgres', $rule);
like($rule0, qr/^learners at 1 year /, 'the retention rule');
my $shards = q{SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'learners'::regclass};

# Each tenant's own rows, joined, unsealed, through the coordinator.
sub isolated
{
	my ($when) = @_;
	for my $t (@tenants)
	{
		my ($u, $tenant) = @$t;
		is(as_tenant($u, $tenant, q{SELECT string_agg(l.name || '/' || toms.unseal(s.v), ',' ORDER BY l.id)
			FROM learners l JOIN secrets s ON s.tenant_id = l.tenant_id AND s.learner = l.id}),
			join(',', map { "$tenant-$_/$tenant-secret-$_" } 1 .. 3), "$when, $u: own rows only, joined, unsealed");
	}
	like(as_tenant('alice', 'acme', q{INSERT INTO learners (tenant_id, id, name) VALUES ('globex', 9, 'x')}),
		qr/new row violates row-level security policy/, "$when: a write into another tenant refused");
	my ($r, $o, $e) = $coord->psql('postgres', 'SELECT count(*) FROM learners', extra_params => [ '-U', 'alice' ]);
	like($e, qr/no tenant context/, "$when: the app role without a context refused");
}

# The table owner may call Citus' functions on its table, but cannot copy
# every tenant's rows: refused before any row is copied.
my ($ret, $out, $err) = $coord->psql('postgres',
	q{SELECT undistribute_table('learners', cascade_via_foreign_keys => true)},
	extra_params => [ '-U', 'owner1', '-v', 'VERBOSITY=verbose' ]);
like($err, qr/42501: undistribute_table\(\) of a protected table must be run by a superuser/,
	'undistribute_table() by the table owner: refused, asking for a superuser (42501)');
($ret, $out, $err) = $coord->psql('postgres',
	q{SELECT alter_distributed_table('learners', shard_count => 6, cascade_to_colocated => true)},
	extra_params => [ '-U', 'owner1' ]);
like($err, qr/alter_distributed_table\(\) of a protected table must be run by a superuser/,
	'alter_distributed_table() by the table owner: refused');
# What Citus itself allows: a table with foreign keys only with its
# foreign-key neighbours (cascade_via_foreign_keys).
($ret, $out, $err) = $coord->psql('postgres', q{SELECT undistribute_table('learners')});
like($err, qr/cannot complete operation because table learners is referenced by a foreign key/,
	'Citus: undistribute_table() of a referenced table needs cascade_via_foreign_keys');

# A failure half way: Citus re-creates the sealed-column trigger on the new
# distributed table after the drop and the rename, and refuses it without
# citus.enable_unsafe_triggers -- everything rolls back.
($ret, $out, $err) = $coord->psql('postgres',
	q{SELECT alter_distributed_table('learners', shard_count => 6, cascade_to_colocated => true)});
like($err, qr/triggers are not supported on distributed tables/, 'alter_distributed_table() failing half way');
is($coord->safe_psql('postgres', $oids), $oids0, 'after the failure: the same tables, by OID, protected');
is($coord->safe_psql('postgres', $settings), $before, 'after the failure: the same settings');
is($coord->safe_psql('postgres', $shards), '4', 'after the failure: still 4 shards');
is($_->safe_psql('postgres', $rule), $rule0, 'after the failure: the retention rule on node ' . $_->port)
  for ($coord, @workers);
isolated('after the failed conversion');

# alter_distributed_table(shard_count => 6): new tables, new shards.
($ret, $out, $err) = $coord->psql('postgres', q{SET citus.enable_unsafe_triggers = on;
	SELECT alter_distributed_table('learners', shard_count => 6, cascade_to_colocated => true)});
is($ret, 0, 'alter_distributed_table(shard_count => 6) of protected tables by a superuser') or diag $err;
is($coord->safe_psql('postgres', $shards), '6', '6 shards now');
isnt($coord->safe_psql('postgres', $oids), $oids0, 'the tables were replaced (new OIDs)');
is($coord->safe_psql('postgres', $settings), $before, 'the replacements carry the same settings');
is($_->safe_psql('postgres', $rule), $rule0, 'the retention rule names the new table on node ' . $_->port)
  for ($coord, @workers);
isolated('after alter_distributed_table');

# On every worker: the new shards filtered and guarded.
for my $i (0 .. $#workers)
{
	my $w = $workers[$i];
	my $name = 'worker' . ($i + 1);
	my $vis = 'SET citus.override_table_visibility = off;';
	my @sh = split /\n/, $w->safe_psql('postgres', qq{$vis SELECT c.relname FROM pg_class c
		JOIN pg_dist_shard s ON c.relname = s.logicalrelid::regclass::text || '_' || s.shardid
		WHERE s.logicalrelid IN ('learners'::regclass, 'secrets'::regclass) AND c.relkind = 'r' ORDER BY 1});
	is(scalar(@sh), 6, "$name holds 6 of the new shards");
	my ($ls) = grep { /^learners_/ } @sh;
	my ($ss) = grep { /^secrets_/ } @sh;
	is($w->safe_psql('postgres', qq{$vis SELECT string_agg(polname || ' ' || polpermissive, ',' ORDER BY polname)
		FROM pg_policy WHERE polrelid = '$ls'::regclass}),
		'toms_reads_unaudited false,toms_subject false,toms_tenant true',
		"$name: $ls has toms' policies (the read-audit marker, the subject policy restrictive)");
	is($w->safe_psql('postgres', qq{$vis SELECT count(*) FROM pg_trigger WHERE tgrelid = '$ss'::regclass AND tgname LIKE 'toms_sealed_check%'}),
		'1', "$name: $ss has the sealed-column check");
	for my $t (@tenants)
	{
		my ($u, $tenant) = @$t;
		my ($r, $o, $e) = $w->psql('postgres', "$vis BEGIN; SET LOCAL toms.context = '$tenant';
			SELECT (SELECT count(*) FILTER (WHERE tenant_id <> '$tenant') FROM $ls) + (SELECT count(*) FILTER (WHERE tenant_id <> '$tenant') FROM $ss); COMMIT;",
			extra_params => [ '-U', $u ]);
		is($o, '0', "$name, $u directly: no row of another tenant in $ls, $ss") or diag $e;
	}
	my ($r, $o, $e) = $w->psql('postgres', "$vis SELECT count(*) FROM $ls", extra_params => [ '-U', 'owner1' ]);
	like($e, qr/no tenant context/, "$name, owner directly: refused");
	for my $u ('owner1', 'postgres')
	{
		for my $c ([ "DROP POLICY toms_tenant ON $ls", qr/cannot drop policy "toms_tenant" on protected table "$ls"/ ],
			[ "ALTER TABLE $ls NO FORCE ROW LEVEL SECURITY", qr/cannot stop forcing row level security on protected table "$ls"/ ],
			[ "SET citus.enable_manual_changes_to_shards = on; DROP TABLE $ss", qr/cannot drop protected table "$ss"/ ])
		{
			($r, $o, $e) = $w->psql('postgres', "$vis $c->[0]", extra_params => [ '-U', $u, '-v', 'VERBOSITY=verbose' ]);
			like($e, qr/ERROR:  42501: .*$c->[1]/s, "$name, $u: $c->[0] refused (42501)");
		}
	}
}

# undistribute_table() with its foreign-key neighbour: local tables again.
# A retention rule names the table on every node (reference table): not
# for a local table; refused, nothing changed.
my $oids1 = $coord->safe_psql('postgres', $oids);
($ret, $out, $err) = $coord->psql('postgres', q{SELECT undistribute_table('learners', cascade_via_foreign_keys => true)});
like($err, qr/undistribute_table\(\) of protected table "learners" with a retention rule is not supported/,
	'undistribute_table() of a table with a retention rule: refused');
is($coord->safe_psql('postgres', $oids), $oids1, 'after the refusal: the same tables');
is($coord->safe_psql('postgres', $shards), '6', 'after the refusal: still distributed');
$coord->safe_psql('postgres', q{SELECT toms.clear_retention('learners')});
($ret, $out, $err) = $coord->psql('postgres', q{SELECT undistribute_table('learners', cascade_via_foreign_keys => true)});
is($ret, 0, 'undistribute_table() of protected tables with a foreign key between them, by a superuser') or diag $err;
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text IN ('learners', 'secrets')}),
	'0', 'both tables are local now');
isnt($coord->safe_psql('postgres', $oids), $oids1, 'replaced again (new OIDs)');
is($coord->safe_psql('postgres', $settings), $before, 'the local tables carry the same settings');
is($coord->safe_psql('postgres', q{SELECT string_agg(c.relname || ' ' || relrowsecurity || ' ' || relforcerowsecurity || ' ' || p.polname || ' ' || p.polpermissive, ',' ORDER BY c.relname, p.polname)
	FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname IN ('learners', 'secrets')}),
	'learners true true toms_reads_unaudited false,learners true true toms_subject false,learners true true toms_tenant true,secrets true true toms_tenant true',
	"row security forced, toms' policies as toms makes them");
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'secrets'::regclass AND tgname LIKE 'toms_sealed_check%'}),
	'1', 'the sealed-column check is on the local table');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'secrets'::regclass AND contype = 'f' AND convalidated}),
	'1', 'the foreign key is back, valid');
for my $w (@workers)
{
	is($w->safe_psql('postgres', q{SET citus.override_table_visibility = off;
		SELECT count(*) FROM pg_class WHERE relname ~ '^(learners|secrets)(_[0-9]+)?$'}), '0',
		'no shard or shell of the tables left on a worker');
}
isolated('after undistribute_table');
for my $u ('owner1', 'postgres')
{
	for my $c ([ 'DROP POLICY toms_tenant ON learners', qr/cannot drop policy "toms_tenant" on protected table "learners"/ ],
		[ 'ALTER TABLE learners NO FORCE ROW LEVEL SECURITY', qr/cannot stop forcing row level security on protected table "learners"/ ],
		[ 'DROP TABLE secrets', qr/cannot drop protected table "secrets"/ ],
		[ 'DROP TABLE learners CASCADE', qr/cannot drop protected table "learners"/ ])
	{
		($ret, $out, $err) = $coord->psql('postgres', $c->[0], extra_params => [ '-U', $u, '-v', 'VERBOSITY=verbose' ]);
		like($err, qr/ERROR:  42501: .*$c->[1]/s, "local table, $u: $c->[0] refused (42501)");
	}
}
my ($st, $ev) = split /\|/, $coord->safe_psql('postgres', q{SELECT status, evidence FROM toms.assess() WHERE control = '9a'});
is($st, 'pass', 'assess 9a passes after undistribute_table') or diag $ev;
ok(poll_until($coord, q{SELECT count(DISTINCT relname) FROM toms.audit_log
	WHERE kind = 'admin' AND action = 'undistribute_table' AND detail ? 'replaced_relid'}, '2'),
	'each replacement audited on the coordinator');
is($coord->safe_psql('postgres', q{SELECT string_agg(relname || ' ' || (detail->>'retention'), ',' ORDER BY relname)
	FROM toms.audit_log WHERE kind = 'admin' AND action = 'alter_distributed_table' AND detail ? 'replaced_relid'}),
	'public.learners true,public.secrets false', 'alter_distributed_table() audited too, the retention rule carried');

# Distributed again: filtered on the workers.
$coord->safe_psql('postgres', q{SELECT create_distributed_table('learners', 'tenant_id');
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('secrets', 'tenant_id', colocate_with => 'learners');});
isolated('distributed again');
for my $i (0 .. $#workers)
{
	my $w = $workers[$i];
	my $vis = 'SET citus.override_table_visibility = off;';
	my @sh = split /\n/, $w->safe_psql('postgres', qq{$vis SELECT relname FROM pg_class
		WHERE relname ~ '^(learners|secrets)_[0-9]+\$' AND relkind = 'r' ORDER BY 1});
	ok(@sh > 0, 'worker' . ($i + 1) . ' holds shards again');
	for my $t (@tenants)
	{
		my ($u, $tenant) = @$t;
		my ($r, $o, $e) = $w->psql('postgres', "$vis BEGIN; SET LOCAL toms.context = '$tenant'; SELECT "
			  . join(' + ', map { "(SELECT count(*) FILTER (WHERE tenant_id <> '$tenant') FROM $_)" } @sh) . '; COMMIT;',
			extra_params => [ '-U', $u ]);
		is($o, '0', 'worker' . ($i + 1) . ", distributed again, $u directly: no row of another tenant");
	}
}

# A hand-made imitation of the replacement is no Citus conversion: the
# owner's and the superuser's copy cannot take the protected table's place.
$coord->safe_psql('postgres', q{SET ROLE owner1;
	CREATE TABLE learners_copy (tenant_id text NOT NULL, id int, name text, person text, PRIMARY KEY (tenant_id, id));
	ALTER TABLE learners_copy ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
	CREATE POLICY toms_tenant ON learners_copy USING (tenant_id = toms.current_tenant());
	CREATE FUNCTION public.undistribute_table(t regclass) RETURNS void LANGUAGE plpgsql AS $f$
	BEGIN
		EXECUTE format('DROP TABLE %s CASCADE', t);
		ALTER TABLE learners_copy RENAME TO learners;
	END $f$;
	RESET ROLE;});
for my $u ('owner1', 'postgres')
{
	($ret, $out, $err) = $coord->psql('postgres', q{SELECT public.undistribute_table('learners')},
		extra_params => [ '-U', $u, '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:  42501: .*cannot drop protected table "learners"/s,
		"an imitation of the replacement by $u: refused (42501)");
}
# Citus' own C function under a name of the superuser's: not the citus
# extension's function, so not recognised; its drop is refused.
($ret, $out, $err) = $coord->psql('postgres', q{
	CREATE FUNCTION public.my_undistribute(regclass, boolean DEFAULT false) RETURNS void
		LANGUAGE C AS '$libdir/citus', 'undistribute_table';
	SELECT public.my_undistribute('secrets', true)}, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  42501: .*cannot drop protected table "(secrets|learners)"/s,
	"Citus' C function declared again by the superuser: refused (42501)");
is($coord->safe_psql('postgres', q{SELECT count(*) FROM toms.protected_tables WHERE relid = 'learners'::regclass}),
	'1', 'learners is still the protected table');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'secrets'::regclass}),
	'1', 'secrets is still distributed');

done_testing();
