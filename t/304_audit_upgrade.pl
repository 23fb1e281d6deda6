# The upgrade from 0.1.0 and the audit trail (docs/audit.md, "Records
# written by 0.1.0"):
# - records written under 0.1.0's schema, with key=value and JSON details,
#   still verify after ALTER EXTENSION UPDATE turns detail into jsonb, and
#   the chain goes on from them;
# - a converted detail says what its text said (its pairs), and keeps the
#   text; an edit of either part is found by verify_audit;
# - an incident opened under 0.1.0 is counted on, and can be closed;
# - the upgraded schema of toms is that of a fresh 0.2.0 install.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
toms.audit_flush_delay = 100ms
fsync = off
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
	CREATE EXTENSION toms VERSION '0.1.0';
	CREATE ROLE regress_u LOGIN;
	CREATE ROLE regress_u_aud IN ROLE toms_auditor;
	SELECT toms.create_tenant('u1', 'Upgrade');
	SELECT toms.add_member('regress_u', 'u1');
	SELECT toms.grant_access('regress_u', 'u1', 'ticket 7: check  the export', interval '1 day');
	CREATE TABLE items (tenant_id text NOT NULL, v int);
	GRANT SELECT, INSERT ON items TO regress_u;
	SELECT toms.protect('items');
});
sql(q{
	SET SESSION AUTHORIZATION regress_u;
	SET toms.context = 'u1';
	INSERT INTO items (v) VALUES (1), (2);
	SELECT count(*) FROM items;
});
sql(q{SELECT count(*) FROM items});	# a superuser's read: an incident
is(sql(q{SELECT toms.audit_flush()}), 't', '0.1.0: records flushed');
is(sql(q{SELECT data_type FROM information_schema.columns
		  WHERE table_schema = 'toms' AND table_name = 'audit_log' AND column_name = 'detail'}),
	'text', '0.1.0: detail is text');
is(sql(q{SELECT detail FROM toms.audit_log WHERE action = 'add_member'}), 'role=regress_u',
	'0.1.0: a key=value detail, as 0.1.0 wrote it');
is(sql(q{SELECT ok FROM toms.verify_audit()}), 't', '0.1.0: the chain verifies');
is(sql(q{SELECT toms.audit_flush()}), 't', '0.1.0: the verification\'s own record chained');
my $n010 = sql(q{SELECT max(seq) FROM toms.audit_log});
my $inc = sql(q{SELECT id || '|' || count FROM toms.incidents WHERE kind = 'privileged_access'});
like($inc, qr/^\d+\|1$/, '0.1.0: one incident');
my ($inc_id) = split /\|/, $inc;

sql(q{ALTER EXTENSION toms UPDATE});
my $updated_at = sql(q{SELECT clock_timestamp()});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'toms'}), '0.2.0', 'updated to 0.2.0');
is(sql(q{SELECT data_type FROM information_schema.columns
		  WHERE table_schema = 'toms' AND table_name = 'audit_log' AND column_name = 'detail'}),
	'jsonb', 'detail is jsonb');
is(sql(q{SELECT ok || ' ' || detail FROM toms.verify_audit(1, } . $n010 . q{)}),
	"true $n010 records verified (1 to $n010)", 'the records written under 0.1.0 verify');
is(sql(q{SELECT detail FROM toms.audit_log WHERE action = 'add_member'}),
	'{"role": "regress_u", "text_0_1_0": "role=regress_u"}',
	'a key=value detail: its pairs, and its text kept');
is(sql(q{SELECT detail ->> 'justification' || '|' || (detail ->> 'valid_for') FROM toms.audit_log
		  WHERE action = 'grant_access'}),
	'ticket 7: check  the export|1 day', 'values with spaces keep them');
is(sql(q{SELECT count(*) FROM toms.audit_log
		  WHERE seq <= } . $n010 . q{ AND detail IS NOT NULL AND NOT detail ? 'text_0_1_0'}),
	'0', 'every converted detail keeps its 0.1.0 text');

# The chain goes on; new records are plain objects.
sql(q{
	SET SESSION AUTHORIZATION regress_u;
	SET toms.context = 'u1';
	SELECT count(*) FROM items;
});
sql(q{SELECT count(*) FROM items});
is(sql(q{SELECT toms.audit_flush()}), 't', 'records flushed');
is(sql(q{SELECT ok FROM toms.verify_audit()}), 't', 'the whole chain verifies after the upgrade');
# (records queued before the update, a login for instance, may be chained
# after it: they are converted like the rest)
is(sql(qq{SELECT count(*) FROM toms.audit_log WHERE ts > '$updated_at' AND detail ? 'text_0_1_0'}),
	'0', 'new records have no 0.1.0 text');
ok(sql(qq{SELECT count(*) FROM toms.audit_log WHERE ts > '$updated_at' AND detail IS NOT NULL}) > 0,
	'new records with a detail were written');
is(sql(q{SELECT id || '|' || count FROM toms.incidents WHERE kind = 'privileged_access'}),
	"$inc_id|2", 'the incident opened under 0.1.0 is counted on');
sql(qq{SET SESSION AUTHORIZATION regress_u_aud; SELECT toms.close_incident($inc_id, 'upgrade test')});
is(sql(qq{SELECT count(*) FROM toms.incident_closures WHERE incident_id = $inc_id}), '1',
	'and it can be closed');

# Edits of a converted record are found: of its pairs, and of its text.
my $seq = sql(q{SELECT seq FROM toms.audit_log WHERE action = 'add_member'});
sql(q{SET session_replication_role = replica;
	  UPDATE toms.audit_log SET detail = jsonb_set(detail, '{role}', '"regress_other"')
	   WHERE action = 'add_member'});
like(sql(q{SELECT ok || '|' || first_bad FROM toms.verify_audit()}), qr/^false\|$seq$/,
	'an edit of the pairs is found');
sql(q{SET session_replication_role = replica;
	  UPDATE toms.audit_log SET detail = '{"role": "regress_other", "text_0_1_0": "role=regress_other"}'
	   WHERE action = 'add_member'});
like(sql(q{SELECT ok || '|' || first_bad FROM toms.verify_audit()}), qr/^false\|$seq$/,
	'an edit of the pairs and the text together is found');
sql(q{SET session_replication_role = replica;
	  UPDATE toms.audit_log SET detail = '{"role": "regress_u", "text_0_1_0": "role=regress_u"}'
	   WHERE action = 'add_member'});
is(sql(q{SELECT ok FROM toms.verify_audit()}), 't', 'put back, the chain verifies again');

# The upgraded schema is a fresh install's.
my $describe = q{
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
	SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(pg_get_functiondef(p.oid))
		   || ' ' || coalesce(p.proacl::text, '-')
	  FROM pg_proc p WHERE p.pronamespace = 'toms'::regnamespace
	UNION ALL
	SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
		   || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
	  FROM pg_class c
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
	 WHERE c.relnamespace = 'toms'::regnamespace AND c.relkind IN ('r', 'v', 'p')
	UNION ALL
	SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '-')
	  FROM pg_class c WHERE c.relnamespace = 'toms'::regnamespace
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(i.indexrelid)
	  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
	 WHERE c.relnamespace = 'toms'::regnamespace
	UNION ALL
	SELECT 'trigger ' || pg_get_triggerdef(t.oid)
	  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	 WHERE c.relnamespace = 'toms'::regnamespace AND NOT t.tgisinternal
	UNION ALL
	SELECT 'constraint ' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
	  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
	 WHERE c.relnamespace = 'toms'::regnamespace
	UNION ALL
	SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid))
	  FROM pg_class c WHERE c.relnamespace = 'toms'::regnamespace AND c.relkind = 'v'
) s(x)};
sql(q{CREATE DATABASE fresh});
$node->safe_psql('fresh', q{CREATE EXTENSION toms});
my $upgraded = sql($describe);
my $fresh = $node->safe_psql('fresh', $describe);
my %u = map { $_ => 1 } split /\n/, $upgraded;
my %f = map { $_ => 1 } split /\n/, $fresh;
my @only_u = grep { !$f{$_} } sort keys %u;
my @only_f = grep { !$u{$_} } sort keys %f;
diag("only after the upgrade: $_") for @only_u;
diag("only in a fresh install: $_") for @only_f;
ok(@only_u == 0 && @only_f == 0 && length($fresh) > 1000,
	'the upgraded schema of toms is that of a fresh 0.2.0 install');

$node->stop;
done_testing();
