/*-------------------------------------------------------------------------
 *
 * protect.c
 *	  toms.protect() and toms.unprotect(): put a table under toms (row
 *	  security enabled and forced, the toms-owned policy "toms_tenant"
 *	  comparing the tenant column with toms.current_tenant(), the tenant
 *	  column's default, registration in toms.protected_tables) and take it
 *	  out again.  What the other capabilities need of a protected table is
 *	  delegated to them: sealed columns to sealed.c, the subject column to
 *	  lifecycle.c, the check of existing policies to guard_expr.c.
 *
 *	  A partitioned table is protected as a whole (docs/tenancy.md,
 *	  "Partitioned tables"): every partition, at every level, gets its own
 *	  policies, forced row security and row in toms.protected_tables, so a
 *	  partition read directly is filtered as the parent; the sealed-column
 *	  trigger lives on the parent and PostgreSQL clones it to partitions.
 *	  Partitions created or attached later are protected the same way by
 *	  guard_partition.c through toms_protect_partition().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "common/hashfn.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "toms.h"

PG_FUNCTION_INFO_V1(toms_protect);
PG_FUNCTION_INFO_V1(toms_unprotect);

/* ----------------------------------------------------------------
 * protect() / unprotect()
 * ----------------------------------------------------------------
 */

static const char *
tenant_cast(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
			return "";
		case UUIDOID:
			return "::pg_catalog.uuid";
		case INT4OID:
			return "::pg_catalog.int4";
		case INT8OID:
			return "::pg_catalog.int8";
		default:
			return NULL;
	}
}

static AttrNumber
column_attnum(Oid relid, const char *col, const char *what)
{
	AttrNumber	attnum = get_attnum(relid, col);

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						col, get_rel_name(relid)),
				 errdetail("It was named as the %s.", what)));
	return attnum;
}

static bool
column_is_generated(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	Form_pg_attribute att;
	bool		result;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for attribute %d of relation %u", attnum, relid);
	att = (Form_pg_attribute) GETSTRUCT(tup);
	result = att->attidentity != '\0' || att->attgenerated != '\0';
	ReleaseSysCache(tup);
	return result;
}

static bool
has_permissive_policies(Oid relid)
{
	char	   *sql = psprintf("SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = %u AND polpermissive", relid);
	bool		found;

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	found = SPI_processed > 0;
	pfree(sql);
	return found;
}

/* The detail of the protect/unprotect admin records: what the protection is. */
static char *
protection_detail(const char *tenant_col, int nsens, char **sens_names,
				  const char *subject_col, bool audit_reads)
{
	StringInfoData d;
	int			i;

	initStringInfo(&d);
	appendStringInfoString(&d, "{\"tenant_column\": ");
	escape_json(&d, tenant_col);
	appendStringInfoString(&d, ", \"sensitive\": [");
	for (i = 0; i < nsens; i++)
	{
		if (i > 0)
			appendStringInfoString(&d, ", ");
		escape_json(&d, sens_names[i]);
	}
	appendStringInfoString(&d, "], \"subject_column\": ");
	if (subject_col)
		escape_json(&d, subject_col);
	else
		appendStringInfoString(&d, "null");
	appendStringInfo(&d, ", \"audit_reads\": %s}", audit_reads ? "true" : "false");
	return d.data;
}

/* Forced row security, the tenant column's default and the tenant filter. */
static void
protect_ddl(Oid relid, const char *qualname, const char *tenant_col, const char *cast)
{
	StringInfoData sql;

	initStringInfo(&sql);
	if (OidIsValid(toms_citus_table_of(relid)))
	{
		/* Citus (issue 15): its distribution column's default stays local */
		appendStringInfo(&sql, "ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY",
						 qualname);
		toms_run_ddl(sql.data);
		toms_citus_local_ddl(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT (" TOMS_SCHEMA
									  ".current_tenant())%s", qualname, quote_identifier(tenant_col), cast));
	}
	else
	{
		appendStringInfo(&sql, "ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY, "
						 "ALTER COLUMN %s SET DEFAULT (" TOMS_SCHEMA ".current_tenant())%s",
						 qualname, quote_identifier(tenant_col), cast);
		toms_run_ddl(sql.data);
	}

	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE POLICY toms_tenant ON %s AS PERMISSIVE FOR ALL TO PUBLIC "
					 "USING (%s = (" TOMS_SCHEMA ".current_tenant())%s) "
					 "WITH CHECK (%s = (" TOMS_SCHEMA ".current_tenant())%s)",
					 qualname,
					 quote_identifier(tenant_col), cast,
					 quote_identifier(tenant_col), cast);
	toms_run_ddl(sql.data);
	pfree(sql.data);
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * Protect partition "child" as its protected parent "parent": the same
 * tenant, subject and sealed columns (partitions have the parent's column
 * names), its own tenant and subject policies, and a row in
 * toms.protected_tables copied from the parent's (whatever columns that
 * table has).  The sealed-column trigger is the parent's clone.  Called
 * inside SPI, as toms' owner.
 */
void
toms_protect_partition(Oid child, Oid parent)
{
	const TomsProtected *prot = toms_protected(parent);
	char	   *tenant_col;
	char	   *subject_col = NULL;
	char	   *qualname;
	const char *cast;
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2];

	if (prot == NULL)
		elog(ERROR, "relation %u is not protected", parent);
	tenant_col = get_attname(parent, prot->tenant_attnum, false);
	if (prot->subject_attnum != InvalidAttrNumber)
		subject_col = get_attname(parent, prot->subject_attnum, false);
	cast = tenant_cast(get_atttype(child, column_attnum(child, tenant_col, "tenant column")));
	if (cast == NULL)
		elog(ERROR, "partition %u has another tenant column type than its parent", child);
	qualname = qualified_name(child);

	if (has_permissive_policies(child))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition \"%s\" already has permissive policies", get_rel_name(child)),
				 errdetail("Permissive policies would widen toms' tenant filter."),
				 errhint("Drop them, or make them restrictive, before it becomes a partition of a protected table.")));
	toms_warn_policy_functions(child);
	protect_ddl(child, qualname, tenant_col, cast);
	toms_lifecycle_on_protect(child, subject_col);

	values[0] = ObjectIdGetDatum(child);
	values[1] = ObjectIdGetDatum(parent);
	if (SPI_execute_with_args("INSERT INTO " TOMS_SCHEMA ".protected_tables"
							  " SELECT (pg_catalog.jsonb_populate_record(p, pg_catalog.jsonb_build_object("
							  "  'relid', $1::pg_catalog.regclass::pg_catalog.text,"
							  "  'protected_at', pg_catalog.now(), 'protected_by', session_user))).*"
							  " FROM " TOMS_SCHEMA ".protected_tables p WHERE p.relid = $2",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_INSERT ||
		SPI_processed != 1)
		elog(ERROR, "could not record protected partition");
	CacheInvalidateRelcacheByRelid(child);
	CommandCounterIncrement();
	{
		StringInfoData d;

		initStringInfo(&d);
		appendStringInfoString(&d, "{\"tenant_column\": ");
		escape_json(&d, tenant_col);
		appendStringInfoString(&d, ", \"partition_of\": ");
		escape_json(&d, qualified_name(parent));
		appendStringInfoChar(&d, '}');
		toms_audit_admin_rel("protect", NULL, child, d.data);
	}
}

/* Every partition of a partitioned table, at every level; not the table. */
static List *
partitions_of(Oid relid, LOCKMODE lockmode)
{
	List	   *all = find_all_inheritors(relid, lockmode, NULL);

	return list_delete_first(all);
}

Datum
toms_protect(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *tenant_col = PG_ARGISNULL(1) ? "tenant_id" : NameStr(*PG_GETARG_NAME(1));
	ArrayType  *sensitive = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	char	   *subject_col = PG_ARGISNULL(3) ? NULL : NameStr(*PG_GETARG_NAME(3));
	/* audit_reads: 0.2.0's fifth argument (0.1.0's protect() has four) */
	bool		audit_reads = PG_NARGS() < 5 || PG_ARGISNULL(4) || PG_GETARG_BOOL(4);
	char	   *qualname;
	const char *cast;
	AttrNumber	attnum;
	Oid			typid;
	char		relkind;
	Datum	   *elems = NULL;
	int			nsens = 0;
	char	  **sens_names = NULL;
	int			i;
	Relation	rel;
	List	   *parts = NIL;
	ListCell   *lc;

	rel = table_open(relid, ShareUpdateExclusiveLock);
	relkind = rel->rd_rel->relkind;
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Only plain and partitioned tables can be protected; views and foreign tables cannot.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect temporary table \"%s\"", RelationGetRelationName(rel))));
	if (rel->rd_rel->relispartition)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect partition \"%s\" alone", RelationGetRelationName(rel)),
				 errdetail("Its rows are visible through its parent table."),
				 errhint("Protect the partitioned table at the root: its partitions are protected with it.")));
	if ((relkind == RELKIND_RELATION && rel->rd_rel->relhassubclass) || has_superclass(relid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Tables in an inheritance hierarchy cannot be protected; partitioned tables can.")));
	if (RelationGetNamespace(rel) == toms_schema_oid())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot protect toms' own table \"%s\"", RelationGetRelationName(rel))));
	table_close(rel, NoLock);
	if (relkind == RELKIND_PARTITIONED_TABLE)
	{
		parts = partitions_of(relid, ShareUpdateExclusiveLock);
		foreach(lc, parts)
		{
			if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_FOREIGN_TABLE)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot protect \"%s\"", get_rel_name(relid)),
						 errdetail("Its partition \"%s\" is a foreign table, which row security does not cover.",
								   get_rel_name(lfirst_oid(lc)))));
		}
	}

	if (toms_protected(relid))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" is already protected", get_rel_name(relid)),
				 errdetail("Its tenant, sensitive and subject columns are those of toms.protected_tables."),
				 errhint("To change them, call toms.unprotect() and then toms.protect() with the new columns, in one transaction.")));

	attnum = column_attnum(relid, tenant_col, "tenant column");
	if (column_is_generated(relid, attnum))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant column \"%s\" cannot be an identity or generated column", tenant_col)));
	typid = get_atttype(relid, attnum);
	cast = tenant_cast(typid);
	if (cast == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("tenant column \"%s\" has unsupported type %s",
						tenant_col, format_type_be(typid)),
				 errhint("Supported tenant column types are text, varchar, uuid, integer and bigint.")));
	if (subject_col)
		(void) column_attnum(relid, subject_col, "subject column");
	if (sensitive)
	{
		deconstruct_array(sensitive, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR,
						  &elems, NULL, &nsens);
		sens_names = palloc(sizeof(char *) * (nsens + 1));
		for (i = 0; i < nsens; i++)
		{
			sens_names[i] = NameStr(*DatumGetName(elems[i]));
			if (strcmp(sens_names[i], tenant_col) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the tenant column cannot be sensitive")));
			(void) column_attnum(relid, sens_names[i], "sensitive column");
		}
	}

	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										  get_rel_name(relid));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (has_permissive_policies(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" already has permissive policies", get_rel_name(relid)),
				 errdetail("Permissive policies would widen toms' tenant filter."),
				 errhint("Drop them, or make them restrictive, before protecting the table.")));
	toms_warn_policy_functions(relid);

	protect_ddl(relid, qualname, tenant_col, cast);

	{
		Oid			argtypes[5] = {OIDOID, NAMEOID, NAMEARRAYOID, NAMEOID, BOOLOID};
		Datum		values[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

		values[0] = ObjectIdGetDatum(relid);
		values[1] = PG_GETARG_DATUM(1);
		if (sensitive)
			values[2] = PointerGetDatum(sensitive);
		else
			values[2] = PointerGetDatum(construct_empty_array(NAMEOID));
		if (subject_col)
			values[3] = PG_GETARG_DATUM(3);
		else
			nulls[3] = 'n';
		if (PG_ARGISNULL(1))
			values[1] = DirectFunctionCall1(namein, CStringGetDatum(tenant_col));
		values[4] = BoolGetDatum(audit_reads);
		if (SPI_execute_with_args(PG_NARGS() < 5 ?
								  "INSERT INTO " TOMS_SCHEMA ".protected_tables"
								  " (relid, tenant_column, sensitive, subject_column)"
								  " VALUES ($1, $2, $3, $4)" :
								  "INSERT INTO " TOMS_SCHEMA ".protected_tables"
								  " (relid, tenant_column, sensitive, subject_column, audit_reads)"
								  " VALUES ($1, $2, $3, $4, $5)",
								  PG_NARGS() < 5 ? 4 : 5, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record protected table");
	}

	toms_sealed_on_protect(relid, nsens, sens_names);
	toms_lifecycle_on_protect(relid, subject_col);
	toms_citus_audit_reads(relid, audit_reads);	/* Citus (issue 15) */
	CacheInvalidateRelcacheByRelid(relid);
	toms_audit_admin_rel("protect", NULL, relid,
						 protection_detail(tenant_col, nsens, sens_names, subject_col, audit_reads));

	/* parents come before their partitions in find_all_inheritors() */
	CommandCounterIncrement();
	foreach(lc, parts)
	{
		Oid			part = lfirst_oid(lc);

		toms_protect_partition(part, get_partition_parent(part, false));
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Take one table out: toms' policies and its own toms_ triggers (clones of
 * a parent's go with the parent's), forced row security, the tenant
 * column's default, its row.  Inside SPI.
 */
static void
unprotect_one(Oid relid)
{
	const TomsProtected *prot = toms_protected(relid);
	char	   *qualname = qualified_name(relid);
	char	   *tenant_col;
	char	   *detail;
	StringInfoData sql;
	uint64		i;
	List	   *stmts = NIL;
	ListCell   *lc;

	if (prot == NULL)
		return;
	tenant_col = get_attname(relid, prot->tenant_attnum, false);
	{
		char	  **sens = palloc(sizeof(char *) * (prot->nsensitive + 1));

		for (i = 0; i < prot->nsensitive; i++)
			sens[i] = get_attname(relid, prot->sensitive[i], false);
		detail = protection_detail(tenant_col, prot->nsensitive, sens,
								   prot->subject_attnum != InvalidAttrNumber ?
								   get_attname(relid, prot->subject_attnum, false) : NULL,
								   prot->audit_reads);
	}
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT format('DROP POLICY %%I ON %%s', polname, %s) FROM pg_catalog.pg_policy"
					 " WHERE polrelid = %u AND polname LIKE 'toms\\_%%'"
					 " UNION ALL "
					 "SELECT format('DROP TRIGGER %%I ON %%s', tgname, %s) FROM pg_catalog.pg_trigger"
					 " WHERE tgrelid = %u AND tgname LIKE 'toms\\_%%' AND NOT tgisinternal"
					 " AND tgparentid = 0",
					 quote_literal_cstr(qualname), relid, quote_literal_cstr(qualname), relid);
	if (SPI_execute(sql.data, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	for (i = 0; i < SPI_processed; i++)
		stmts = lappend(stmts, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	foreach(lc, stmts)
		toms_run_ddl(lfirst(lc));

	resetStringInfo(&sql);
	if (OidIsValid(toms_citus_table_of(relid)))
	{
		/* Citus (issue 15): see toms_protect() */
		appendStringInfo(&sql, "ALTER TABLE %s NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY",
						 qualname);
		toms_run_ddl(sql.data);
		toms_citus_local_ddl(psprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT",
									  qualname, quote_identifier(tenant_col)));
	}
	else
	{
		appendStringInfo(&sql, "ALTER TABLE ONLY %s NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY, "
						 "ALTER COLUMN %s DROP DEFAULT", qualname, quote_identifier(tenant_col));
		toms_run_ddl(sql.data);
	}

	resetStringInfo(&sql);
	appendStringInfo(&sql, "DELETE FROM " TOMS_SCHEMA ".protected_tables WHERE relid = %u", relid);
	if (SPI_execute(sql.data, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget protected table");
	CacheInvalidateRelcacheByRelid(relid);
	toms_audit_admin_rel("unprotect", NULL, relid, detail);
}

/*
 * unprotect(): a partitioned table with all its partitions; a partition
 * only once it is detached (it would otherwise be a hole in its parent).
 */
Datum
toms_unprotect(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	List	   *parts = NIL;
	ListCell   *lc;

	if (toms_protected(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid))));
	if (get_rel_relispartition(relid) &&
		toms_protected(get_partition_parent(relid, true)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot unprotect partition \"%s\" of protected table \"%s\"",
						get_rel_name(relid), get_rel_name(get_partition_parent(relid, true))),
				 errhint("Unprotect the partitioned table, or detach the partition first.")));
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		parts = partitions_of(relid, ShareUpdateExclusiveLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* partitions first: their triggers are clones of the parent's */
	foreach(lc, parts)
		unprotect_one(lfirst_oid(lc));
	unprotect_one(relid);
	SPI_finish();
	PG_RETURN_VOID();
}
