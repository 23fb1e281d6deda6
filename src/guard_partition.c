/*-------------------------------------------------------------------------
 *
 * guard_partition.c
 *	  Partitions of a protected table (docs/tenancy.md, "Partitioned
 *	  tables"): every partition is protected as its parent, however it got
 *	  there, and stays protected when it leaves.
 *
 *	  hooks.c calls toms_guard_partition_before() before a utility
 *	  statement runs, and toms_guard_partition_after() with what it
 *	  returned once the statement has run:
 *	    CREATE TABLE ... PARTITION OF a protected table, and ATTACH
 *	    PARTITION to one: the new partition (and its own partitions) are
 *	    protected after the statement; a table attached must not bring rows
 *	    that would be invisible (no tenant, or a tenant that is not active)
 *	    and, unless toms_admin attaches it or it is protected already, no
 *	    rows of tenants other than the attaching session's;
 *	    DETACH PARTITION: the detached table keeps its policies and row;
 *	    PostgreSQL drops the trigger clones it had from the parent, so its
 *	    sealed-column trigger is created again;
 *	    plain inheritance (INHERITS, ALTER TABLE ... INHERIT) from a
 *	    protected table is refused: a child's rows would show through the
 *	    parent under the parent's filter, written by whoever owns the child.
 *	  The state between the two calls is returned by value, so nested
 *	  utility statements (a serial column's sequence) cannot disturb it.
 *
 *	  The work on toms' tables runs as the owner of toms' tables (the
 *	  extension's owner), as toms.protect() does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "toms.h"

/* As the owner of toms' tables, with a safe search_path, in SPI. */
typedef struct AsOwner
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} AsOwner;

static void
as_owner_begin(AsOwner *ao)
{
	Oid			relid = toms_relid("protected_tables");
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&ao->save_userid, &ao->save_sec_context);
	SetUserIdAndSecContext(owner, ao->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ao->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
as_owner_end(AsOwner *ao)
{
	SPI_finish();
	AtEOXact_GUC(true, ao->save_nestlevel);
	SetUserIdAndSecContext(ao->save_userid, ao->save_sec_context);
}

static Oid
rangevar_oid(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

static char *
column_name(Oid relid, AttrNumber attnum)
{
	return attnum == InvalidAttrNumber ? NULL : get_attname(relid, attnum, false);
}

static bool
same_name(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Do the two tables protect the same tenant, subject and sealed columns? */
static bool
same_protection(Oid a, const TomsProtected *pa, Oid b, const TomsProtected *pb)
{
	int			i,
				j;

	if (!same_name(column_name(a, pa->tenant_attnum), column_name(b, pb->tenant_attnum)) ||
		!same_name(column_name(a, pa->subject_attnum), column_name(b, pb->subject_attnum)) ||
		pa->nsensitive != pb->nsensitive)
		return false;
	for (i = 0; i < pa->nsensitive; i++)
	{
		char	   *name = column_name(a, pa->sensitive[i]);
		bool		found = false;

		for (j = 0; j < pb->nsensitive && !found; j++)
			found = same_name(name, column_name(b, pb->sensitive[j]));
		if (!found)
			return false;
	}
	return true;
}

/*
 * ATTACH PARTITION of table "child" to protected table "parent": what the
 * child holds must be rows toms can account for.
 */
static void
check_attach(Oid parent, Oid child)
{
	const TomsProtected *pprot = toms_protected(parent);
	const TomsProtected *cprot = toms_protected(child);
	const TomsContext *ctx;
	char	   *tenant_col = get_attname(parent, pprot->tenant_attnum, false);
	char	   *current = NULL;
	bool		admin = toms_guard_is_admin();
	bool		child_protected = cprot != NULL;
	AsOwner		ao;
	Oid			argtypes[1] = {TEXTOID};
	Oid			oidtype[1] = {OIDOID};
	Datum		values[1];
	char		nulls[1] = {' '};
	int64		invisible,
				others;
	bool		isnull;
	bool		own_code = false;

	if (get_rel_relkind(child) == RELKIND_FOREIGN_TABLE)
		TOMS_REFUSE(errmsg("cannot attach foreign table \"%s\" to protected table \"%s\"",
						   get_rel_name(child), get_rel_name(parent)),
					errhint("Row security does not apply to foreign tables."));
	if (cprot != NULL && !same_protection(parent, pprot, child, cprot))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot attach protected table \"%s\" to protected table \"%s\"",
						get_rel_name(child), get_rel_name(parent)),
				 errdetail("The two tables are protected with different tenant, subject or sensitive columns."),
				 errhint("Use toms.unprotect() (toms_admin) on the table first.")));
	if (get_attnum(child, tenant_col) == InvalidAttrNumber)
		return;					/* PostgreSQL refuses it: the columns differ */

	ctx = toms_context(true);
	if (ctx != NULL)
		current = pstrdup(ctx->tenant);

	as_owner_begin(&ao);
	if (current)
		values[0] = CStringGetTextDatum(current);
	else
		nulls[0] = 'n';
	/* one pass over the table, grouped by tenant, then the tenants */
	if (SPI_execute_with_args(psprintf("SELECT coalesce(sum(g.n) FILTER (WHERE x.tenant IS NULL), 0)::pg_catalog.int8,"
									   " coalesce(sum(g.n) FILTER (WHERE g.t IS DISTINCT FROM $1), 0)::pg_catalog.int8"
									   " FROM (SELECT s.t, count(*) AS n"
									   "        FROM (SELECT %s::pg_catalog.text AS t FROM %s) s GROUP BY s.t) g"
									   " LEFT JOIN " TOMS_SCHEMA ".tenants x ON x.tenant = g.t AND x.status = 'active'",
									   quote_identifier(tenant_col),
									   quote_qualified_identifier(get_namespace_name(get_rel_namespace(child)),
																  get_rel_name(child))),
							  1, argtypes, values, nulls, true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not check the rows of table %u", child);
	invisible = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	others = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	/*
	 * What would see every tenant's rows once the table is a partition,
	 * and what the guard refuses to add to a protected table to anyone but
	 * toms_admin: triggers, rules, publications of its own.
	 */
	if (!admin)
	{
		values[0] = ObjectIdGetDatum(child);
		if (SPI_execute_with_args("SELECT 1 FROM (SELECT $1::pg_catalog.regclass AS relid UNION"
								  "               SELECT relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass)) t"
								  " WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.relid"
								  "                AND NOT g.tgisinternal AND g.tgparentid = 0"
								  "                AND g.tgname !~ '^toms_')"
								  "    OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = t.relid"
								  "                AND r.rulename <> '_RETURN')"
								  "    OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel p WHERE p.prrelid = t.relid)",
								  1, oidtype, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look at the triggers of table %u", child);
		own_code = SPI_processed > 0;
	}
	as_owner_end(&ao);

	if (own_code)
		TOMS_REFUSE(errmsg("cannot attach \"%s\" to protected table \"%s\"",
						   get_rel_name(child), get_rel_name(parent)),
					errhint("It has triggers, rules or publications of its own, which would see every tenant's rows: drop them, or have toms_admin attach it."));


	/*
	 * The owner of an unprotected table wrote its rows without the filter:
	 * attaching them would write into tenants it cannot enter.  Checked
	 * first, so that the second check tells no one which tenants exist.
	 */
	if (others > 0 && !admin && !child_protected)
	{
		toms_audit_denied("attach of other tenants' rows", current, parent, get_rel_name(child));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot attach \"%s\" to protected table \"%s\"",
						get_rel_name(child), get_rel_name(parent)),
				 errdetail("It holds rows of tenants other than the current tenant context."),
				 errhint("Only toms_admin may attach rows of other tenants.")));
	}
	if (invisible > 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("cannot attach \"%s\" to protected table \"%s\"",
						get_rel_name(child), get_rel_name(parent)),
				 errdetail_plural("%lld row has no tenant or a tenant that is not active in toms.tenants: it would be invisible.",
								  "%lld rows have no tenant or a tenant that is not active in toms.tenants: they would be invisible.",
								  (unsigned long) invisible, (long long) invisible),
				 errhint("Create the tenants with toms.create_tenant(), or move the rows out, first.")));

	/* The parent's trigger is cloned onto the child: its own must make room. */
	if (child_protected &&
		OidIsValid(get_trigger_oid(child, "toms_sealed_check", true)))
	{
		as_owner_begin(&ao);
		toms_run_ddl(psprintf("DROP TRIGGER toms_sealed_check ON %s",
							  quote_qualified_identifier(get_namespace_name(get_rel_namespace(child)),
														 get_rel_name(child))));
		as_owner_end(&ao);
	}
}

static void
refuse_inheritance(const char *child, Oid parent)
{
	TOMS_REFUSE(errmsg("cannot make \"%s\" an inheritance child of protected table \"%s\"",
					   child, get_rel_name(parent)),
				errhint("A child's rows would be visible through the parent. Partitioned tables can be protected; plain inheritance cannot."));
}

/* CREATE TABLE (or FOREIGN TABLE) ... PARTITION OF / INHERITS */
static void
check_create(CreateStmt *stmt, bool foreign, TomsPartitionWork *work)
{
	ListCell   *lc;

	foreach(lc, stmt->inhRelations)
	{
		Oid			parent = rangevar_oid(lfirst(lc));

		if (!OidIsValid(parent) || toms_protected(parent) == NULL)
			continue;
		if (stmt->partbound == NULL)
			refuse_inheritance(stmt->relation->relname, parent);
		if (foreign)
			TOMS_REFUSE(errmsg("cannot create foreign table \"%s\" as a partition of protected table \"%s\"",
							   stmt->relation->relname, get_rel_name(parent)),
						errhint("Row security does not apply to foreign tables."));
		work->parent = parent;
	}
}

static void
check_alter(AlterTableStmt *stmt, TomsPartitionWork *work)
{
	ListCell   *lc;
	Oid			relid = InvalidOid;
	bool		resolved = false;

	if (stmt->objtype != OBJECT_TABLE && stmt->objtype != OBJECT_FOREIGN_TABLE)
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype == AT_AddInherit)
		{
			Oid			parent = rangevar_oid((RangeVar *) cmd->def);

			if (OidIsValid(parent) && toms_protected(parent))
				refuse_inheritance(stmt->relation->relname, parent);
			continue;
		}
		if (cmd->subtype != AT_AttachPartition && cmd->subtype != AT_DetachPartition &&
			cmd->subtype != AT_DetachPartitionFinalize)
			continue;
		if (!resolved)
		{
			relid = rangevar_oid(stmt->relation);
			resolved = true;
		}
		if (!OidIsValid(relid) || toms_protected(relid) == NULL)
			continue;
		if (cmd->subtype == AT_AttachPartition)
		{
			Oid			child = rangevar_oid(((PartitionCmd *) cmd->def)->name);

			if (OidIsValid(child))
				check_attach(relid, child);
			work->parent = relid;
		}
		else
			work->detached = rangevar_oid(((PartitionCmd *) cmd->def)->name);
	}
}

/* ProcessUtility (hooks.c), before the statement, after the guard's checks. */
TomsPartitionWork
toms_guard_partition_before(PlannedStmt *pstmt)
{
	TomsPartitionWork work = {InvalidOid, InvalidOid};
	Node	   *parsetree = pstmt->utilityStmt;

	if (toms_ddl_in_progress() || !IsTransactionState() || !toms_extension_exists())
		return work;
	switch (nodeTag(parsetree))
	{
		case T_CreateStmt:
			check_create((CreateStmt *) parsetree, false, &work);
			break;
		case T_CreateForeignTableStmt:
			check_create(&((CreateForeignTableStmt *) parsetree)->base, true, &work);
			break;
		case T_AlterTableStmt:
			check_alter((AlterTableStmt *) parsetree, &work);
			break;
		default:
			break;
	}
	return work;
}

/* ProcessUtility (hooks.c), after the statement: protect what came in. */
void
toms_guard_partition_after(TomsPartitionWork work)
{
	AsOwner		ao;
	const TomsProtected *prot;

	if (!OidIsValid(work.parent) && !OidIsValid(work.detached))
		return;
	as_owner_begin(&ao);
	if (OidIsValid(work.parent) && toms_protected(work.parent))
	{
		List	   *all = find_all_inheritors(work.parent, ShareUpdateExclusiveLock, NULL);
		ListCell   *lc;

		/* parents before their partitions */
		foreach(lc, all)
		{
			Oid			part = lfirst_oid(lc);

			if (part != work.parent && toms_protected(part) == NULL)
				toms_protect_partition(part, get_partition_parent(part, false));
		}
	}
	if (OidIsValid(work.detached) && (prot = toms_protected(work.detached)) != NULL &&
		!get_rel_relispartition(work.detached))
	{
		char	  **names = palloc(sizeof(char *) * (prot->nsensitive + 1));
		int			n = prot->nsensitive;
		int			i;

		for (i = 0; i < n; i++)
			names[i] = get_attname(work.detached, prot->sensitive[i], false);
		toms_sealed_on_protect(work.detached, n, names);
		toms_audit_admin_rel("detach", NULL, work.detached, "{\"still_protected\": true}");
	}
	as_owner_end(&ao);
}

/*
 * A trigger PostgreSQL cloned onto a partition from its parent's: dropped
 * by PostgreSQL alone (DETACH PARTITION, the parent's trigger dropped),
 * never by DROP TRIGGER on the partition.
 */
bool
toms_guard_partition_clone(Oid trigid)
{
	Relation	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		clone = false;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		clone = OidIsValid(((Form_pg_trigger) GETSTRUCT(tup))->tgparentid);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return clone;
}
