# Citus (issue 15): the shards of a protected table are protected tables.  Both orders (protect then distribute, distribute then
# protect) give filtered shards on every worker; the context travels with
# SET LOCAL and is verified on the worker; direct worker sessions of the
# app role, the table owner and the superuser are filtered or refused;
# Citus' own shard moves (both transfer modes) and the drop of the moved
# shard pass, and the protection holds afterwards; the foreign keys
# between protected tables are valid and re-validated on the new shards
# (and, on one node, an owner adds or validates one over the rows of
# every tenant) without a tenant read by anyone; the per-table read-audit
# switch reaches the shards.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use TomsCitus;

my ($coord, $w1, $w2) = citus_cluster();
$coord->safe_psql('postgres', q{
	CREATE ROLE owner1 LOGIN; CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
	GRANT CREATE ON SCHEMA public TO owner1;
	SELECT toms.create_tenant('acme', 'Acme'); SELECT toms.create_tenant('globex', 'Globex');
	SELECT toms.add_member('alice', 'acme'); SELECT toms.add_member('bob', 'globex');
	SET ROLE owner1;
	CREATE TABLE learners (id int, tenant_id text NOT NULL, name text, PRIMARY KEY (tenant_id, id));
	CREATE TABLE courses (id int, tenant_id text NOT NULL, title text, PRIMARY KEY (tenant_id, id));
	CREATE TABLE enrolments (tenant_id text NOT NULL, learner int, course int,
		PRIMARY KEY (tenant_id, learner, course));
	-- valid keys: Citus re-creates and validates them on every moved or
	-- split shard, as the owner, under the forced policy (tenant_exec.c)
	ALTER TABLE enrolments ADD FOREIGN KEY (tenant_id, learner) REFERENCES learners,
		ADD FOREIGN KEY (tenant_id, course) REFERENCES courses;
	GRANT ALL ON learners, courses, enrolments TO alice, bob;
	RESET ROLE;
	-- protect, then distribute (as a superuser: Citus copies every row)
	SELECT toms.protect('learners');
	SELECT create_distributed_table('learners', 'tenant_id');
	-- distribute, then protect
	SELECT create_distributed_table('courses', 'tenant_id', colocate_with => 'learners');
	SELECT create_distributed_table('enrolments', 'tenant_id', colocate_with => 'learners');
	SELECT toms.protect('courses');
	SELECT toms.protect('enrolments');
});
pass('protect-then-distribute and distribute-then-protect both work');

# The application's way: SET LOCAL in a transaction, forwarded by Citus.
sub as_tenant { return citus_as_tenant($coord, @_); }
for my $t ([ 'alice', 'acme' ], [ 'bob', 'globex' ])
{
	my ($u, $tenant) = @$t;
	for my $i (1 .. 4)
	{
		as_tenant($u, $tenant, "INSERT INTO learners (id, name) VALUES ($i, '$tenant-$i')");
		as_tenant($u, $tenant, "INSERT INTO courses (id, title) VALUES ($i, '$tenant-c$i')");
		as_tenant($u, $tenant, "INSERT INTO enrolments (learner, course) VALUES ($i, $i)");
	}
}
is($coord->safe_psql('postgres', 'SELECT count(*) FROM learners'), '8', 'rows of two tenants stored');

is(as_tenant('alice', 'acme', 'SELECT name FROM learners WHERE id = 2'), 'acme-2', 'router query: own row');
is(as_tenant('alice', 'acme', q{SELECT count(*) FROM learners WHERE tenant_id = 'globex'}), '0',
	'router query for another tenant: nothing');
is(as_tenant('alice', 'acme', 'SELECT count(*), min(name), max(name) FROM learners'), '4|acme-1|acme-4',
	'multi-shard query: own rows only');
is(as_tenant('bob', 'globex', q{SELECT string_agg(l.name || '/' || c.title, ',' ORDER BY l.id)
	FROM enrolments e JOIN learners l ON l.tenant_id = e.tenant_id AND l.id = e.learner
	JOIN courses c ON c.tenant_id = e.tenant_id AND c.id = e.course}),
	'globex-1/globex-c1,globex-2/globex-c2,globex-3/globex-c3,globex-4/globex-c4',
	'colocated join: own rows only');
like(as_tenant('alice', 'acme', q{INSERT INTO learners (id, tenant_id, name) VALUES (9, 'globex', 'x')}),
	qr/new row violates row-level security policy/, 'write into another tenant refused');
like(as_tenant('bob', 'acme', 'SELECT count(*) FROM learners'),
	qr/role "bob" is not a member of tenant "acme"/, 'a context bob may not have is refused');
like(as_tenant('alice', 'acme', 'INSERT INTO enrolments (learner, course) VALUES (3, 99)'),
	qr/violates foreign key constraint/, 'the foreign keys hold');
my ($ret, $out, $err) = $coord->psql('postgres', 'SELECT count(*) FROM learners',
	extra_params => [ '-U', 'alice' ]);
like($err, qr/no tenant context/, 'no context: refused');
# A session-level SET is not forwarded by Citus: the context does not reach
# the workers, which refuse, and the error names the worker.
($ret, $out, $err) = $coord->psql('postgres',
	q{SET toms.context = 'acme'; SELECT toms.current_tenant(); SELECT count(*) FROM learners},
	extra_params => [ '-U', 'alice' ]);
like($err, qr/no tenant context.*while executing command on 127\.0\.0\.1:\d+/s,
	'a context that did not reach the worker: refused there, naming the worker');
unlike($out, qr/^\d+$/m, 'and no rows counted');

# One node: a foreign key added by the table owner over the existing rows
# of several tenants.  PostgreSQL checks them with a join
# query as the owner, which the forced policy filters; toms makes it take
# PostgreSQL's own per-row check (a referential-integrity operation,
# outside forced row security).  Local tables on the coordinator are
# plain PostgreSQL tables.
$coord->safe_psql('postgres', q{
	SET ROLE owner1;
	CREATE TABLE l_parent (id int, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
	CREATE TABLE l_child (id int, tenant_id text NOT NULL, parent int, PRIMARY KEY (tenant_id, id));
	GRANT ALL ON l_parent, l_child TO alice, bob;
	RESET ROLE;
	SELECT toms.protect('l_parent'); SELECT toms.protect('l_child');
});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text IN ('l_parent', 'l_child')}),
	'0', 'one node: l_parent and l_child are local tables');
as_tenant('alice', 'acme', q{INSERT INTO l_parent (id) VALUES (1), (2); INSERT INTO l_child (id, parent) VALUES (1, 1), (2, 2)});
as_tenant('bob', 'globex', q{INSERT INTO l_parent (id) VALUES (1); INSERT INTO l_child (id, parent) VALUES (1, 1), (2, 3)});
sub as_owner
{
	my ($node, $sql) = @_;
	my ($r, $o, $e) = $node->psql('postgres', $sql,
		extra_params => [ '-U', 'owner1', '-v', 'VERBOSITY=verbose' ]);
	return $r == 0 ? "ok:$o" : "ERROR: $e";
}
my $fk = as_owner($coord, q{ALTER TABLE l_child ADD CONSTRAINT l_child_parent FOREIGN KEY (tenant_id, parent) REFERENCES l_parent});
like($fk, qr/ERROR:  23503: insert or update on table "l_child" violates foreign key constraint "l_child_parent"/,
	"one node, owner: ADD FOREIGN KEY over every tenant's rows is checked, and globex's dangling row found");
unlike($fk, qr/no tenant context|globex|Key \(/, 'one node, owner: the violation names no tenant and no key');
as_tenant('bob', 'globex', q{DELETE FROM l_child WHERE id = 2});
is(as_owner($coord, q{ALTER TABLE l_child ADD CONSTRAINT l_child_parent FOREIGN KEY (tenant_id, parent) REFERENCES l_parent}),
	'ok:', 'one node, owner: ADD FOREIGN KEY over the rows of two tenants');
is(as_owner($coord, q{SELECT convalidated FROM pg_constraint WHERE conname = 'l_child_parent'}), 'ok:t',
	'one node: the key is valid');
like(as_tenant('alice', 'acme', q{INSERT INTO l_child (id, parent) VALUES (3, 9)}),
	qr/violates foreign key constraint "l_child_parent"/, 'one node: the key holds for new rows');
# Nobody reads across tenants by the change: the owner's own copy of
# PostgreSQL's check query, in a statement or through SPI, is refused;
# the app role sees its tenant only.
my $ri_query = q{SELECT fk.tenant_id, fk.parent FROM ONLY public.l_child fk LEFT OUTER JOIN ONLY public.l_parent pk
	ON (pk.tenant_id OPERATOR(pg_catalog.=) fk.tenant_id AND pk.id OPERATOR(pg_catalog.=) fk.parent)
	WHERE pk.tenant_id IS NULL AND (fk.tenant_id IS NOT NULL AND fk.parent IS NOT NULL)};
like(as_owner($coord, $ri_query), qr/ERROR:  42501: no tenant context/, "one node, owner: PostgreSQL's check query typed as a statement: refused");
like(as_owner($coord, "DO \$\$BEGIN PERFORM * FROM ($ri_query) q; END\$\$"), qr/ERROR:  42501: no tenant context/,
	"one node, owner: the same through SPI: refused");
like(as_owner($coord, q{SELECT count(*) FROM l_child}), qr/ERROR:  42501: no tenant context/, 'one node, owner: a plain read: refused');
is(as_tenant('alice', 'acme', q{SELECT string_agg(tenant_id || ':' || id, ',' ORDER BY id) FROM l_child}), 'acme:1,acme:2',
	'one node, app role: its tenant only');
is(as_tenant('alice', 'acme', $ri_query), '', "one node, app role: PostgreSQL's check query sees its tenant only");

# Sealed columns: a table with sealed columns has toms' check trigger,
# which Citus distributes (and protect() creates on a distributed table)
# only with citus.enable_unsafe_triggers; the trigger and unseal() run on
# the worker, with the tenant key from toms.tenant_keys (a reference table).
$coord->safe_psql('postgres', q{
	CREATE TABLE secrets (id int, tenant_id text NOT NULL, v toms.sealed, PRIMARY KEY (tenant_id, id));
	CREATE TABLE secrets2 (id int, tenant_id text NOT NULL, v toms.sealed, PRIMARY KEY (tenant_id, id));
	ALTER TABLE secrets OWNER TO owner1; ALTER TABLE secrets2 OWNER TO owner1;
	GRANT ALL ON secrets, secrets2 TO alice, bob;
	SELECT toms.protect('secrets', sensitive => '{v}');
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('secrets', 'tenant_id', colocate_with => 'learners');
	SELECT create_distributed_table('secrets2', 'tenant_id', colocate_with => 'learners');
	SELECT toms.protect('secrets2', sensitive => '{v}');
});
# the tenant keys exist before the first sealed write (see docs/scaling.md)
as_tenant('alice', 'acme', q{SELECT toms.seal('')});
as_tenant('bob', 'globex', q{SELECT toms.seal('')});
is(as_tenant('alice', 'acme', q{INSERT INTO secrets (id, v) VALUES (1, toms.seal('acme secret'));
	INSERT INTO secrets2 (id, v) VALUES (1, toms.seal('acme secret 2'))}), '', 'sealed values written');
is(as_tenant('alice', 'acme', q{SELECT toms.unseal(s.v) || '/' || toms.unseal(t.v) FROM secrets s JOIN secrets2 t USING (tenant_id, id)}),
	'acme secret/acme secret 2', 'unsealed on the worker, both orders of protect and distribute');
my $ct = as_tenant('alice', 'acme', q{SELECT v FROM secrets WHERE id = 1});
like(as_tenant('bob', 'globex', "INSERT INTO secrets (id, v) VALUES (7, '$ct')"),
	qr/value for column "v" is not sealed for the row's tenant/, "another tenant's ciphertext refused on the worker");

# The per-table read-audit switch reaches the shards: each worker audits
# what it executes, and reads of a table protected with audit_reads =>
# false are not recorded there until toms.set_audit_reads() turns them on
# again, on the coordinator.
$coord->safe_psql('postgres', q{
	CREATE TABLE notes (id int, tenant_id text NOT NULL, body text, PRIMARY KEY (tenant_id, id));
	CREATE TABLE memos (id int, tenant_id text NOT NULL, body text, PRIMARY KEY (tenant_id, id));
	ALTER TABLE notes OWNER TO owner1; ALTER TABLE memos OWNER TO owner1;
	GRANT ALL ON notes, memos TO alice, bob;
	SELECT toms.protect('notes', audit_reads => false);
	SELECT create_distributed_table('notes', 'tenant_id', colocate_with => 'learners');
	SELECT create_distributed_table('memos', 'tenant_id', colocate_with => 'learners');
	SELECT toms.protect('memos', audit_reads => false);
});
as_tenant('alice', 'acme', q{INSERT INTO notes (id, body) VALUES (1, 'n'); INSERT INTO memos (id, body) VALUES (1, 'm')});
as_tenant('bob', 'globex', q{INSERT INTO notes (id, body) VALUES (1, 'g'); INSERT INTO memos (id, body) VALUES (1, 'g')});
# read records on the workers, per table
sub reads
{
	my ($table) = @_;
	my $n = 0;
	for my $w ($w1, $w2)
	{
		$w->safe_psql('postgres', 'SELECT toms.audit_flush()');
		$n += $w->safe_psql('postgres', qq{SELECT count(*) FROM toms.audit_log
			WHERE kind = 'access' AND action = 'SELECT' AND relname ~ '\\.${table}_[0-9]+\$'});
	}
	return $n;
}
sub markers
{
	my ($table) = @_;
	my $n = 0;
	$n += $_->safe_psql('postgres', qq{SET citus.override_table_visibility = off;
		SELECT count(*) FROM pg_policy WHERE polname = 'toms_reads_unaudited' AND polrelid::regclass::text ~ '^${table}_[0-9]+\$'})
	  for ($w1, $w2);
	return $n;
}
my %before = map { $_ => reads($_) } qw(notes memos learners);
as_tenant('alice', 'acme', q{SELECT count(*) FROM notes; SELECT count(*) FROM memos; SELECT count(*) FROM learners});
ok(reads('learners') > $before{learners}, 'workers audit the reads of a shard (audit_reads on)');
is(reads('notes'), $before{notes}, 'protect(audit_reads => false), then distribute: reads not audited on the workers');
is(reads('memos'), $before{memos}, 'distribute, then protect(audit_reads => false): reads not audited on the workers');
is(markers('notes'), '4', 'every shard of notes carries the marker');
$coord->safe_psql('postgres', q{SELECT toms.set_audit_reads('notes', true)});
is(markers('notes'), '0', 'set_audit_reads(on) on the coordinator: the marker left every shard');
%before = map { $_ => reads($_) } qw(notes memos);
as_tenant('alice', 'acme', q{SELECT count(*) FROM notes; SELECT count(*) FROM memos});
ok(reads('notes') > $before{notes}, 'set_audit_reads(on) on the coordinator: the workers audit the reads again');
is(reads('memos'), $before{memos}, 'and only for that table');
$coord->safe_psql('postgres', q{SELECT toms.set_audit_reads('notes', false)});
%before = map { $_ => reads($_) } qw(notes);
as_tenant('alice', 'acme', q{SELECT count(*) FROM notes});
is(reads('notes'), $before{notes}, 'set_audit_reads(off): not audited on the workers again');
# The marker is toms' own: on a worker, neither the owner nor the superuser
# adds it (to stop read records) or drops it.
my $nshard = $w1->safe_psql('postgres', q{SET citus.override_table_visibility = off;
	SELECT relname FROM pg_class WHERE relname ~ '^notes_[0-9]+$' ORDER BY 1 LIMIT 1});
my $mshard = $w1->safe_psql('postgres', q{SET citus.override_table_visibility = off;
	SELECT relname FROM pg_class WHERE relname ~ '^learners_[0-9]+$' ORDER BY 1 LIMIT 1});
for my $u ('owner1', 'postgres')
{
	my ($r, $o, $e) = $w1->psql('postgres', "SET citus.override_table_visibility = off;
		CREATE POLICY toms_reads_unaudited ON $mshard AS RESTRICTIVE FOR SELECT USING (tenant_id = toms.current_tenant())",
		extra_params => [ '-U', $u ]);
	like($e, qr/cannot create policy "toms_reads_unaudited" on protected table "$mshard"/,
		"worker, $u: adding the marker to a shard (to stop its read records) refused");
	($r, $o, $e) = $w1->psql('postgres', "SET citus.override_table_visibility = off; DROP POLICY toms_reads_unaudited ON $nshard",
		extra_params => [ '-U', $u ]);
	like($e, qr/cannot drop policy "toms_reads_unaudited" on protected table "$nshard"/, "worker, $u: dropping the marker refused");
}

# Direct sessions on a worker.
my $shard = $w1->safe_psql('postgres', q{SET citus.override_table_visibility = off;
	SELECT relname FROM pg_class WHERE relname ~ '^learners_[0-9]+$' ORDER BY 1 LIMIT 1});
like($shard, qr/^learners_\d+$/, "worker1 holds shard $shard");
sub on_w1
{
	my ($user, $sql) = @_;
	my ($r, $o, $e) = $w1->psql('postgres', "SET citus.override_table_visibility = off; $sql",
		extra_params => [ '-U', $user ]);
	return $r == 0 ? $o : "ERROR: $e";
}
my $all = $w1->safe_psql('postgres', "SET citus.override_table_visibility = off; SELECT count(*) FROM $shard");
is(on_w1('alice', "BEGIN; SET LOCAL toms.context = 'acme'; SELECT count(*) = count(*) FILTER (WHERE tenant_id = 'acme') FROM $shard; COMMIT"),
	't', 'worker, app role: the shard is filtered');
like(on_w1('alice', "SELECT count(*) FROM $shard"), qr/no tenant context/, 'worker, app role, no context: refused');
for my $u ('owner1', 'postgres')
{
	for my $c ([ "DROP POLICY toms_tenant ON $shard", qr/cannot drop policy "toms_tenant" on protected table "$shard"/ ],
		[ "ALTER TABLE $shard NO FORCE ROW LEVEL SECURITY", qr/cannot stop forcing row level security on protected table "$shard"/ ],
		[ "SET citus.enable_manual_changes_to_shards = on; DROP TABLE $shard", qr/cannot drop protected table "$shard"/ ])
	{
		my ($r, $o, $e) = $w1->psql('postgres', "SET citus.override_table_visibility = off; $c->[0]",
			extra_params => [ '-U', $u, '-v', 'VERBOSITY=verbose' ]);
		like($e, qr/ERROR:  42501: .*$c->[1]/s, "worker, $u: $c->[0] refused (42501)");
	}
}
# run_command_on_workers runs the caller's text: it is not Citus' own.
($ret, $out, $err) = $coord->psql('postgres',
	qq{SELECT result FROM run_command_on_workers('DROP POLICY toms_tenant ON $shard') WHERE nodeport = ${\ $w1->port}},
	extra_params => [ '-U', 'owner1' ]);
like($out, qr/cannot drop policy "toms_tenant"/, 'owner through run_command_on_workers: refused');
is($w1->safe_psql('postgres', "SET citus.override_table_visibility = off; SELECT count(*) FROM $shard"),
	$all, 'the shard is intact');

# Citus' own shard operations pass; the protection holds afterwards.
my $id = $coord->safe_psql('postgres', q{SELECT shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
	JOIN pg_dist_node n USING (groupid) WHERE logicalrelid = 'learners'::regclass
	AND get_shard_id_for_distribution_column('learners', 'acme') = shardid});
my ($from, $to) = map { $_->port } ($coord->safe_psql('postgres',
	"SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = $id") == $w1->port ? ($w1, $w2) : ($w2, $w1));
for my $mode ('block_writes', 'force_logical')
{
	($ret, $out, $err) = $coord->psql('postgres', qq{
		SELECT citus_move_shard_placement($id, '127.0.0.1', $from, '127.0.0.1', $to, shard_transfer_mode => '$mode');
		CALL citus_cleanup_orphaned_resources();});
	is($ret, 0, "shard move ($mode) of a protected table with foreign keys, and the drop of the old shard");
	unlike($err, qr/WARNING|ERROR/, "no warning ($mode)") or diag $err;
	is(as_tenant('alice', 'acme', 'SELECT count(*), min(name) FROM learners'), '4|acme-1', "after the move ($mode): alice sees acme");
	is(as_tenant('alice', 'acme', 'SELECT toms.unseal(v) FROM secrets'), 'acme secret', "after the move ($mode): sealed value opens");
	is(as_tenant('bob', 'globex', q{SELECT count(*) FROM learners l JOIN enrolments e ON e.tenant_id = l.tenant_id AND e.learner = l.id}),
		'4', "after the move ($mode): bob's colocated join");
	($from, $to) = ($to, $from);
}
my $moved = (grep { $_->port == $from } ($w1, $w2))[0];
is($moved->safe_psql('postgres', "SET citus.override_table_visibility = off; SELECT count(*) FROM pg_class WHERE relname = 'learners_$id'"),
	'1', 'the shard is on its last target');
($ret, $out, $err) = $moved->psql('postgres',
	"SET citus.override_table_visibility = off; DROP POLICY toms_tenant ON learners_$id", extra_params => [ '-U', 'owner1' ]);
like($err, qr/cannot drop policy "toms_tenant" on protected table "learners_$id"/, 'the moved shard is guarded');
# The foreign keys Citus re-created on the moved shards are valid: the
# worker validated them as the owner, over the rows of every tenant, with
# PostgreSQL's per-row check; yet neither the owner nor the app role reads
# across tenants there.
my $eid = $coord->safe_psql('postgres', q{SELECT get_shard_id_for_distribution_column('enrolments', 'acme')});
my $nid = $coord->safe_psql('postgres', q{SELECT get_shard_id_for_distribution_column('notes', 'acme')});
is($moved->safe_psql('postgres', qq{SET citus.override_table_visibility = off;
	SELECT count(*) FILTER (WHERE convalidated) || '/' || count(*) FROM pg_constraint
	 WHERE contype = 'f' AND conrelid = 'enrolments_$eid'::regclass}),
	'2/2', 'the foreign keys of the moved shard are valid');
is($moved->safe_psql('postgres', qq{SET citus.override_table_visibility = off;
	SELECT count(*) FROM pg_policy WHERE polname = 'toms_reads_unaudited' AND polrelid = 'notes_$nid'::regclass}),
	'1', 'the moved shard of notes keeps its read-audit marker');
is(as_tenant('alice', 'acme', q{SELECT string_agg(tenant_id || '/' || body, ',') FROM notes}), 'acme/n',
	'after the moves, a table with the read-audit marker: alice sees her note only');
{
	my ($r, $o, $e) = $moved->psql('postgres', qq{SET citus.override_table_visibility = off; BEGIN; SET LOCAL toms.context = 'acme';
		SELECT count(*) FILTER (WHERE tenant_id <> 'acme') FROM notes_$nid; COMMIT;}, extra_params => [ '-U', 'alice' ]);
	is($o, '0', 'worker, app role: the moved shard with the marker gives its tenant\'s rows only');
}
my $shard_ri = qq{SELECT fk.tenant_id, fk.learner FROM ONLY enrolments_$eid fk LEFT OUTER JOIN ONLY learners_$id pk
	ON (pk.tenant_id = fk.tenant_id AND pk.id = fk.learner) WHERE pk.tenant_id IS NULL};
like(as_owner($moved, "SET citus.override_table_visibility = off; $shard_ri"), qr/ERROR:  42501: no tenant context/,
	"worker, owner: PostgreSQL's check query over the moved shards: refused");
like(as_owner($moved, "SET citus.override_table_visibility = off; DO \$\$BEGIN PERFORM * FROM ($shard_ri) q; END\$\$"),
	qr/ERROR:  42501: no tenant context/, 'worker, owner: the same through SPI: refused');
{
	my ($r, $o, $e) = $moved->psql('postgres', qq{SET citus.override_table_visibility = off; BEGIN; SET LOCAL toms.context = 'acme';
		SELECT count(*) || '/' || count(*) FILTER (WHERE fk.tenant_id <> 'acme' OR pk.tenant_id <> 'acme')
		  FROM enrolments_$eid fk JOIN learners_$id pk ON pk.tenant_id = fk.tenant_id AND pk.id = fk.learner; COMMIT;},
		extra_params => [ '-U', 'alice' ]);
	is($o, '4/0', 'worker, app role: a join of the moved shards gives its tenant\'s rows only');
}

# A split of the shard group (by block writes), and the drop of the old
# shards after it.
($ret, $out, $err) = $coord->psql('postgres', qq{
	SELECT citus_split_shard_by_split_points($id,
		ARRAY[((SELECT shardminvalue::bigint FROM pg_dist_shard WHERE shardid = $id) + 1000)::text],
		ARRAY[(SELECT nodeid FROM pg_dist_node WHERE nodeport = ${\ $w1->port}),
			  (SELECT nodeid FROM pg_dist_node WHERE nodeport = ${\ $w2->port})], 'block_writes');
	CALL citus_cleanup_orphaned_resources();});
is($ret, 0, 'shard split of protected tables with foreign keys and sealed columns, and the drop of the old shards');
unlike($err, qr/WARNING|ERROR/, 'no warning (split)') or diag $err;
is(as_tenant('alice', 'acme', q{SELECT count(*) || '/' || min(name) FROM learners}), '4/acme-1',
	'after the split: alice sees acme');
is(as_tenant('alice', 'acme', q{SELECT toms.unseal(v) FROM secrets}), 'acme secret',
	'after the split: her sealed value opens');
is(as_tenant('bob', 'globex', 'SELECT count(*) FROM learners'), '4', 'after the split: bob sees globex');
my $new = $coord->safe_psql('postgres', q{SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'learners'::regclass
	AND get_shard_id_for_distribution_column('learners', 'acme') = shardid});
my $newnode = $coord->safe_psql('postgres', "SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = $new") == $w1->port ? $w1 : $w2;
($ret, $out, $err) = $newnode->psql('postgres',
	"SET citus.override_table_visibility = off; ALTER TABLE learners_$new NO FORCE ROW LEVEL SECURITY", extra_params => [ '-U', 'owner1' ]);
like($err, qr/cannot stop forcing row level security on protected table "learners_$new"/, 'a shard made by the split is guarded');
my $enew = $coord->safe_psql('postgres', q{SELECT get_shard_id_for_distribution_column('enrolments', 'acme')});
is($newnode->safe_psql('postgres', qq{SET citus.override_table_visibility = off;
	SELECT count(*) FILTER (WHERE convalidated) || '/' || count(*) FROM pg_constraint
	 WHERE contype = 'f' AND conrelid = 'enrolments_$enew'::regclass}),
	'2/2', 'the foreign keys of the split shard are valid');

# undistribute_table() copies every tenant's rows into a new table: the
# table owner is refused (a superuser's, t/906_citus_undistribute.pl).
($ret, $out, $err) = $coord->psql('postgres', q{SELECT undistribute_table('courses', cascade_via_foreign_keys => true)},
	extra_params => [ '-U', 'owner1' ]);
like($err, qr/undistribute_table\(\) of a protected table must be run by a superuser/,
	'undistribute_table of a protected table by its owner: refused');

# unprotect and protect again, on the coordinator, reach the shards.
$coord->safe_psql('postgres', q{SELECT toms.unprotect('courses')});
is($w1->safe_psql('postgres', q{SET citus.override_table_visibility = off;
	SELECT count(*) FROM pg_policy WHERE polname = 'toms_tenant' AND polrelid::regclass::text ~ '^courses_'}),
	'0', 'unprotect dropped the policy on the shards');
$coord->safe_psql('postgres', q{SELECT toms.protect('courses')});
is(as_tenant('alice', 'acme', 'SELECT count(*) FROM courses'), '4', 'protected again: filtered');

done_testing();
