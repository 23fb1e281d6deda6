/*-------------------------------------------------------------------------
 *
 * citus_convert.c
 *	  Citus' undistribute_table() and alter_distributed_table() of a
 *	  protected table (issue 15, docs/scaling.md).
 *
 *	  Both replace the table (Citus' alter_table.c, ConvertTable): a new
 *	  table under a temporary name, made from the old one's definition --
 *	  row security, its policies (toms_tenant, the read-audit marker,
 *	  toms_subject), the tenant column's default -- the rows copied over,
 *	  the old table dropped, the new one renamed to the old name, then its
 *	  indexes, triggers (toms' sealed-column check) and keys re-created.
 *	  toms.protected_tables names the table by OID, and the guard refuses
 *	  the drop.  So, while one of these two functions of Citus runs in this
 *	  backend (fmgr_hook: the C function of the citus extension, whoever
 *	  calls it), and only then:
 *	    - the drop of a protected Citus table passes, for a superuser only
 *	      (Citus copies every tenant's rows, which row security forbids to
 *	      other roles), and the table's protection is noted: its name and
 *	      what toms made on it (row security flags, toms' policies and
 *	      triggers, the tenant column's default), as text;
 *	    - the rename of a table to a noted name in the same schema carries
 *	      the row of toms.protected_tables (and so every setting in it)
 *	      over to the new table's OID;
 *	    - when the function returns, every noted table must have been
 *	      replaced, and the replacement carry exactly the noted protection;
 *	      otherwise the whole statement fails.  Each replacement is audited.
 *	  A retention rule of the table (toms.retention, a Citus reference table
 *	  naming the table on every node) is taken out before the drop and put
 *	  back, as it was, for the new table (alter_distributed_table(); a
 *	  local table cannot have one on Citus, so undistribute_table() refuses).
 *	  All of it is in the caller's transaction: a failure anywhere rolls
 *	  back the conversion and the transfer together.  Outside these calls
 *	  the guard refuses the drop as before, to everyone.
 *
 *	  Called by guard.c (the drop and rename) and hooks.c (fmgr_hook).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_language.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "toms.h"

/* Citus' C functions that replace a table (prosrc, library "citus") */
static const char *const convert_functions[] = {
	"undistribute_table",
	"alter_distributed_table",
};

/* One protected table being replaced. */
typedef struct Replaced
{
	Oid			nsp;
	char	   *name;
	Oid			oldrel;
	Oid			newrel;			/* InvalidOid until the rename */
	char	   *protection;		/* what toms made on it, as text */
	char	   *retention;		/* its retention rule, to insert again, or NULL */
} Replaced;

/* the functions fmgr_hook is running, innermost last: a conversion or not */
#define CONVERT_MAX_DEPTH 1024
static int	fmgr_depth = 0;
static bool fmgr_convert[CONVERT_MAX_DEPTH];
static int	converting = 0;
static const char *converting_fn = NULL;
static List *replaced = NIL;	/* of Replaced, in TopTransactionContext */

/* the last function fmgr_hook started (toms' unseal() runs once per row) */
static Oid	last_fn = InvalidOid;
static const char *last_convert = NULL;

/*
 * Which of convert_functions is fn_oid, if any?  Citus' own: a C function
 * of the citus library, member of the citus extension (not another SQL
 * name a superuser gave the same C symbol).
 */
static const char *
convert_function(Oid fn_oid)
{
	HeapTuple	tup;
	const char *result = NULL;

	/* built-in functions (most calls, at every executor start) are not Citus' */
	if (fn_oid < FirstNormalObjectId || !IsTransactionState())
		return NULL;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		return NULL;
	/* Citus' functions are in pg_catalog: toms' own (unseal(), per row) stop here */
	if (((Form_pg_proc) GETSTRUCT(tup))->prolang == ClanguageId &&
		((Form_pg_proc) GETSTRUCT(tup))->pronamespace == PG_CATALOG_NAMESPACE)
	{
		bool		isnull;
		Datum		bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);

		if (!isnull)
		{
			char	   *lib = TextDatumGetCString(bin);
			char	   *src = TextDatumGetCString(SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull));
			int			i;

			if (strcmp(lib, "$libdir/citus") == 0)
				for (i = 0; i < lengthof(convert_functions); i++)
					if (strcmp(src, convert_functions[i]) == 0)
						result = convert_functions[i];
			if (result != NULL &&
				getExtensionOfObject(ProcedureRelationId, fn_oid) != get_extension_oid("citus", true))
				result = NULL;
		}
	}
	ReleaseSysCache(tup);
	return result;
}

/* needs_fmgr_hook (hooks.c): Citus' conversions are watched. */
bool
toms_citus_needs_fmgr(Oid fn_oid)
{
	return convert_function(fn_oid) != NULL;
}

/*
 * What toms made on relid, as text: row security enabled and forced,
 * toms' policies and triggers in full, the tenant column's default.
 * Inside SPI; names are printed schema-qualified (search_path is
 * pg_catalog for the query), and the table's own name is the same
 * before the drop and after the rename.  Not read-only: a fresh snapshot,
 * which sees the tables Citus made in this statement.
 */
static char *
protection_text(Oid relid, const char *tenant_col)
{
	Oid			argtypes[2] = {OIDOID, NAMEOID};
	Datum		values[2];
	int			nest = NewGUCNestLevel();
	char	   *text = NULL;

	(void) set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	values[0] = ObjectIdGetDatum(relid);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(tenant_col));
	if (SPI_execute_with_args(
							  "SELECT concat_ws(E'\\n',"
							  " (SELECT format('row security %s, forced %s', relrowsecurity, relforcerowsecurity)"
							  "    FROM pg_class WHERE oid = $1),"
							  " (SELECT string_agg(format('policy %I %s %s %s using %s check %s', polname, polcmd,"
							  "         CASE WHEN polpermissive THEN 'permissive' ELSE 'restrictive' END, polroles,"
							  "         pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)),"
							  "         E'\\n' ORDER BY polname)"
							  "    FROM pg_policy WHERE polrelid = $1 AND polname LIKE 'toms\\_%'),"
							  " (SELECT string_agg(format('%s (%s)', pg_get_triggerdef(oid), tgenabled), E'\\n' ORDER BY tgname)"
							  "    FROM pg_trigger WHERE tgrelid = $1 AND tgname LIKE 'toms\\_%' AND NOT tgisinternal),"
							  " (SELECT format('default %s', pg_get_expr(d.adbin, d.adrelid))"
							  "    FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
							  "   WHERE d.adrelid = $1 AND a.attname = $2))",
							  2, argtypes, values, NULL, false, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	AtEOXact_GUC(true, nest);
	if (text == NULL)
		elog(ERROR, "could not read the protection of relation %u", relid);
	return text;
}

/* Does SQL "exists" with relid as $1 find a row? Inside SPI. */
static bool
state_exists(const char *sql, Oid relid)
{
	Oid			argtype = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);

	if (SPI_execute_with_args(sql, 1, &argtype, &value, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	return SPI_processed > 0;
}

/*
 * alter_distributed_table() of a table with a retention rule: the rule
 * (toms.retention, a reference table) names the table on every node, by
 * each node's OID.  Delete it now, while the name still finds the old
 * table everywhere, and return the INSERT that puts it back, as it was,
 * once the new table has the name (conversion_done).  Inside SPI.
 */
static char *
retention_rule(Oid relid)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	char	   *qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													  get_rel_name(relid));
	char	   *insert;

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(qualname);
	if (SPI_execute_with_args("SELECT pg_catalog.format('INSERT INTO " TOMS_SCHEMA ".retention"
							  " (relid, time_column, keep, set_by, set_at, last_run_at, rows_purged)"
							  " VALUES (%L::pg_catalog.regclass, %L, %L, %L, %L, %L, %s)',"
							  " $2, time_column, keep, set_by, set_at, last_run_at, rows_purged)"
							  " FROM " TOMS_SCHEMA ".retention WHERE relid::pg_catalog.oid = $1",
							  2, argtypes, values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1 ||
		(insert = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)) == NULL)
		elog(ERROR, "could not read the retention rule of relation %u", relid);
	toms_run_ddl(psprintf("DELETE FROM " TOMS_SCHEMA ".retention WHERE relid = %s::pg_catalog.regclass",
						  quote_literal_cstr(qualname)));
	return insert;
}

/*
 * guard.c, DROP TABLE of protected table relid: is it Citus replacing it
 * (undistribute_table(), alter_distributed_table())?  If so, note it and
 * return true; refuse what toms cannot carry over.
 */
bool
toms_citus_replacing(Oid relid)
{
	const TomsProtected *prot;
	Replaced   *r;
	MemoryContext old;
	char	   *tenant_col;
	char	   *protection;
	char	   *retention = NULL;
	ListCell   *lc;

	if (converting == 0 || toms_citus_table_of(relid) != relid)
		return false;
	foreach(lc, replaced)
		if (((Replaced *) lfirst(lc))->oldrel == relid)
			return true;
	prot = toms_protected(relid);
	if (prot == NULL)
		return false;
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s() of protected table \"%s\" must be run by a superuser",
						converting_fn, get_rel_name(relid)),
				 errdetail("Citus copies every tenant's rows into a new table, which row security forbids to other roles."),
				 toms_audit_refused()));
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE || get_rel_relispartition(relid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s() of protected partitioned table \"%s\" is not supported",
						converting_fn, get_rel_name(relid)),
				 errhint("Unprotect the table, convert it, and protect it again.")));
	tenant_col = get_attname(relid, prot->tenant_attnum, false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (state_exists("SELECT 1 FROM " TOMS_SCHEMA ".deletion_steps WHERE relid = $1 AND purged_at IS NULL", relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s() of protected table \"%s\" while a deletion purges it is not supported",
						converting_fn, get_rel_name(relid)),
				 errhint("Wait for stage 2 of the deletion to finish.")));
	if (state_exists("SELECT 1 FROM " TOMS_SCHEMA ".retention WHERE relid::pg_catalog.oid = $1", relid))
	{
		if (strcmp(converting_fn, "undistribute_table") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("undistribute_table() of protected table \"%s\" with a retention rule is not supported",
							get_rel_name(relid)),
					 errdetail("On Citus a retention rule names its table on every node, and the local table exists on the coordinator only."),
					 errhint("Call toms.clear_retention() first.")));
		retention = retention_rule(relid);
	}
	protection = protection_text(relid, tenant_col);

	old = MemoryContextSwitchTo(TopTransactionContext);
	r = palloc0(sizeof(Replaced));
	r->nsp = get_rel_namespace(relid);
	r->name = pstrdup(get_rel_name(relid));
	r->oldrel = relid;
	r->protection = pstrdup(protection);
	r->retention = retention ? pstrdup(retention) : NULL;
	replaced = lappend(replaced, r);
	MemoryContextSwitchTo(old);
	SPI_finish();
	return true;
}

/* guard.c: is relid a protected table Citus is replacing (its policies, triggers)? */
bool
toms_citus_replaced(Oid relid)
{
	ListCell   *lc;

	if (converting == 0)
		return false;
	foreach(lc, replaced)
		if (((Replaced *) lfirst(lc))->oldrel == relid)
			return true;
	return false;
}

/*
 * guard.c, before a utility statement.  In a conversion: the new table
 * receiving toms' tenant policy means that a protected table is being
 * copied, which only a superuser can do in full -- say so before any row
 * is copied; and the rename of the new table to a replaced table's name
 * carries the protection over to it.
 */
void
toms_citus_convert_stmt(Node *parsetree)
{
	RenameStmt *stmt;
	Oid			relid;
	ListCell   *lc;

	if (converting == 0 || parsetree == NULL)
		return;
	if (IsA(parsetree, CreatePolicyStmt))
	{
		CreatePolicyStmt *ps = (CreatePolicyStmt *) parsetree;

		if (ps->policy_name && strcmp(ps->policy_name, "toms_tenant") == 0 && !superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("%s() of a protected table must be run by a superuser", converting_fn),
					 errdetail("Citus copies every tenant's rows into a new table, which row security forbids to other roles."),
					 toms_audit_refused()));
		return;
	}
	if (!IsA(parsetree, RenameStmt))
		return;
	stmt = (RenameStmt *) parsetree;
	if (stmt->renameType != OBJECT_TABLE || stmt->relation == NULL || stmt->newname == NULL)
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	foreach(lc, replaced)
	{
		Replaced   *r = lfirst(lc);
		char		sql[256];

		if (OidIsValid(r->newrel) || r->nsp != get_rel_namespace(relid) ||
			strcmp(r->name, stmt->newname) != 0)
			continue;
		r->newrel = relid;
		snprintf(sql, sizeof(sql),
				 "UPDATE " TOMS_SCHEMA ".protected_tables SET relid = %u::pg_catalog.oid::pg_catalog.regclass"
				 " WHERE relid::pg_catalog.oid = %u", relid, r->oldrel);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		toms_run_ddl(sql);
		if (SPI_processed != 1)
			elog(ERROR, "protected table %u was not registered", r->oldrel);
		SPI_finish();
		CacheInvalidateRelcacheByRelid(relid);
		CommandCounterIncrement();
		return;
	}
}

/*
 * The conversion returned: every replaced table has its replacement,
 * carrying the same protection; record each.
 */
static void
conversion_done(void)
{
	List	   *list = replaced;
	ListCell   *lc;

	replaced = NIL;
	if (list == NIL)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	foreach(lc, list)
	{
		Replaced   *r = lfirst(lc);
		const TomsProtected *prot;
		char	   *now;
		StringInfoData d;

		prot = OidIsValid(r->newrel) ? toms_protected(r->newrel) : NULL;
		if (prot == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("protected table \"%s\" was dropped and not replaced", r->name),
					 errdetail("%s() ended without a table taking its place.", converting_fn)));
		if (r->retention)
			toms_run_ddl(r->retention);
		now = protection_text(r->newrel, get_attname(r->newrel, prot->tenant_attnum, false));
		if (strcmp(now, r->protection) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the table replacing protected table \"%s\" lacks part of its protection", r->name),
					 errdetail("%s() did not re-create toms' policies, triggers and settings as they were.", converting_fn),
					 errdetail_log("Before: %s. After: %s.", r->protection, now)));
		initStringInfo(&d);
		appendStringInfo(&d, "{\"replaced_relid\": %u, \"distributed\": %s, \"retention\": %s}",
						 r->oldrel, toms_citus_table_of(r->newrel) == r->newrel ? "true" : "false",
						 r->retention ? "true" : "false");
		toms_audit_admin_rel(converting_fn, NULL, r->newrel, d.data);
	}
	SPI_finish();
}

/*
 * fmgr_hook (hooks.c), called after toms' other parts on every event, so
 * that an error at the end of a conversion leaves their state popped.
 */
void
toms_citus_fmgr(FmgrHookEventType event, FmgrInfo *flinfo)
{
	bool		conv;

	if (event == FHET_START)
	{
		const char *fn;

		if (flinfo->fn_oid != last_fn || !OidIsValid(last_fn))
		{
			last_convert = convert_function(flinfo->fn_oid);
			last_fn = flinfo->fn_oid;
		}
		fn = last_convert;
		if (fmgr_depth < CONVERT_MAX_DEPTH)
			fmgr_convert[fmgr_depth] = fn != NULL;
		fmgr_depth++;
		if (fn != NULL && converting++ == 0)
		{
			converting_fn = fn;
			replaced = NIL;
		}
		return;
	}
	if (fmgr_depth == 0)
		return;
	fmgr_depth--;
	conv = fmgr_depth < CONVERT_MAX_DEPTH && fmgr_convert[fmgr_depth];
	if (!conv || converting == 0)
		return;
	if (--converting > 0)
		return;
	if (event == FHET_END)
		conversion_done();
	replaced = NIL;
}

static void
convert_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		fmgr_depth = 0;
		converting = 0;
		replaced = NIL;
		last_fn = InvalidOid;
	}
}

void
toms_citus_convert_init(void)
{
	RegisterXactCallback(convert_xact_callback, NULL);
}
