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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
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

Datum
toms_protect(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *tenant_col = PG_ARGISNULL(1) ? "tenant_id" : NameStr(*PG_GETARG_NAME(1));
	ArrayType  *sensitive = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	char	   *subject_col = PG_ARGISNULL(3) ? NULL : NameStr(*PG_GETARG_NAME(3));
	char	   *qualname;
	const char *cast;
	AttrNumber	attnum;
	Oid			typid;
	char		relkind;
	Datum	   *elems = NULL;
	int			nsens = 0;
	char	  **sens_names = NULL;
	int			i;
	StringInfoData sql;
	Relation	rel;

	rel = table_open(relid, ShareUpdateExclusiveLock);
	relkind = rel->rd_rel->relkind;
	if (relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Only plain tables can be protected; partitioned tables, views and foreign tables cannot.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect temporary table \"%s\"", RelationGetRelationName(rel))));
	if (rel->rd_rel->relhassubclass || has_superclass(relid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Tables in an inheritance hierarchy cannot be protected.")));
	if (RelationGetNamespace(rel) == toms_schema_oid())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot protect toms' own table \"%s\"", RelationGetRelationName(rel))));
	table_close(rel, NoLock);

	if (toms_protected(relid))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" is already protected", get_rel_name(relid))));

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

	{
		Oid			argtypes[4] = {OIDOID, NAMEOID, NAMEARRAYOID, NAMEOID};
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};

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
		if (SPI_execute_with_args("INSERT INTO " TOMS_SCHEMA ".protected_tables"
								  " (relid, tenant_column, sensitive, subject_column)"
								  " VALUES ($1, $2, $3, $4)",
								  4, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record protected table");
	}

	toms_sealed_on_protect(relid, nsens, sens_names);
	toms_lifecycle_on_protect(relid, subject_col);
	SPI_finish();

	CacheInvalidateRelcacheByRelid(relid);
	toms_audit_admin("protect", NULL, psprintf("table=%s tenant_column=%s", qualname, tenant_col));
	PG_RETURN_VOID();
}

Datum
toms_unprotect(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	const TomsProtected *prot = toms_protected(relid);
	char	   *qualname;
	char	   *tenant_col;
	StringInfoData sql;
	uint64		i;
	List	   *stmts = NIL;
	ListCell   *lc;

	if (prot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid))));
	tenant_col = get_attname(relid, prot->tenant_attnum, false);
	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										  get_rel_name(relid));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT format('DROP POLICY %%I ON %%s', polname, %s) FROM pg_catalog.pg_policy"
					 " WHERE polrelid = %u AND polname LIKE 'toms\\_%%'"
					 " UNION ALL "
					 "SELECT format('DROP TRIGGER %%I ON %%s', tgname, %s) FROM pg_catalog.pg_trigger"
					 " WHERE tgrelid = %u AND tgname LIKE 'toms\\_%%' AND NOT tgisinternal",
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
		appendStringInfo(&sql, "ALTER TABLE %s NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY, "
						 "ALTER COLUMN %s DROP DEFAULT", qualname, quote_identifier(tenant_col));
		toms_run_ddl(sql.data);
	}

	resetStringInfo(&sql);
	appendStringInfo(&sql, "DELETE FROM " TOMS_SCHEMA ".protected_tables WHERE relid = %u", relid);
	if (SPI_execute(sql.data, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget protected table");
	SPI_finish();

	CacheInvalidateRelcacheByRelid(relid);
	toms_audit_admin("unprotect", NULL, psprintf("table=%s", qualname));
	PG_RETURN_VOID();
}
