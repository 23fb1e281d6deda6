/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  Keeps toms' tenant filter from being weakened, by anyone, the table
 *	  owner and superusers included.
 *
 *	  Two hooks share the work.  The ProcessUtility hook sees statements:
 *	  DISABLE / NO FORCE ROW LEVEL SECURITY, ALTER or RENAME of a toms_*
 *	  policy or trigger, a permissive policy that would widen the filter,
 *	  retyping or renaming the tenant column, disabling triggers, rules,
 *	  triggers added or tables published by other than toms_admin,
 *	  inheritance tricks, and TRUNCATE.  The object-access hook sees every
 *	  drop however it was reached (DROP POLICY, DROP TABLE, DROP COLUMN,
 *	  DROP ... CASCADE, DROP OWNED, DROP EXTENSION), so nothing can remove a
 *	  toms policy, trigger or tenant column behind the statement check's
 *	  back; and every index, constraint, generated column and statistics
 *	  object as it is created, so that none evaluates a user-defined
 *	  function over every tenant's rows unless toms_admin made it.
 *
 *	  toms itself passes through toms_run_ddl(), which sets a backend-local
 *	  flag for the duration of one SPI statement; no SQL can set it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_statistic_ext.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/policy.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_type.h"
#include "pgstat.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "toms.h"


/* A toms_tenant policy being restored, to check once it exists. */
static Oid	restored_policy_relid = InvalidOid;


static void
refuse(const char *relname, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s on protected table \"%s\"", what, relname),
			 errhint("%s", hint ? hint : "Use toms.unprotect() (toms_admin) first.")));
}

static void
refuse_drop_table(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot drop protected table \"%s\"", get_rel_name(relid)),
			 errhint("Use toms.unprotect() (toms_admin) first, or toms.request_deletion() to delete a tenant's data.")));
}

static bool
is_toms_name(const char *name)
{
	return name != NULL && strncmp(name, "toms_", 5) == 0;
}

static const TomsProtected *
protected_rangevar(RangeVar *rv, Oid *relid)
{
	Oid			oid;

	if (rv == NULL)
		return NULL;
	oid = RangeVarGetRelid(rv, NoLock, true);
	if (relid)
		*relid = oid;
	return OidIsValid(oid) ? toms_protected(oid) : NULL;
}

/* May the current user add what sees every tenant's rows (toms_admin)? */
static bool
is_admin(void)
{
	Oid			admin = get_role_oid("toms_admin", true);

	return superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin));
}

/*
 * Publishing a table ships every row to the subscriber, past row security:
 * toms_admin only.  (FOR ALL TABLES and TABLES IN SCHEMA are for
 * superusers in PostgreSQL already.)
 */
static void
check_publication(List *pubobjects)
{
	ListCell   *lc;

	foreach(lc, pubobjects)
	{
		PublicationObjSpec *obj = lfirst(lc);

		if (obj->pubobjtype == PUBLICATIONOBJ_TABLE && obj->pubtable &&
			protected_rangevar(obj->pubtable->relation, NULL) && !is_admin())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot publish protected table \"%s\"", obj->pubtable->relation->relname),
					 errhint("Logical replication ships every tenant's rows: only toms_admin may publish a protected table.")));
	}
}

static bool
is_guarded_column(const TomsProtected *prot, const char *colname)
{
	AttrNumber	attnum;
	int			i;

	if (colname == NULL)
		return false;
	attnum = get_attnum(prot->relid, colname);
	if (attnum == InvalidAttrNumber)
		return false;
	if (attnum == prot->tenant_attnum || attnum == prot->subject_attnum)
		return true;
	for (i = 0; i < prot->nsensitive; i++)
		if (prot->sensitive[i] == attnum)
			return true;
	return false;
}

/*
 * Expressions that DDL evaluates over every row run past row security: an
 * index's expressions and predicate, CHECK and exclusion constraints (also
 * a domain's, and VALIDATE CONSTRAINT), generated columns, extended
 * statistics' expressions (ANALYZE), and the conversion of ALTER COLUMN
 * ... TYPE.  Built-in functions and those of installed extensions (toms'
 * own among them) were vetted by whoever installed them; a user-defined
 * function can pass each row on (a NOTICE, a side table).  On a protected
 * table, only toms_admin may use one there.
 */
static bool
user_defined(Oid funcid, void *context)
{
	return funcid >= FirstNormalObjectId &&
		!OidIsValid(getExtensionOfObject(ProcedureRelationId, funcid));
}

static bool
calls_user_function(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, calls_user_function, context, 0);
	if (check_functions_in_node(node, user_defined, context))
		return true;
	return expression_tree_walker(node, calls_user_function, context);
}

static void
refuse_user_function(Oid relid, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s calling a user-defined function on protected table \"%s\"",
					what, get_rel_name(relid)),
			 errhint("It is evaluated over every tenant's rows: only toms_admin may do this.")));
}

/*
 * ALTER COLUMN ... TYPE converts every row, by a USING expression or by a
 * cast; the statement is not yet analysed here, so: no USING, and both
 * types built in (a cast between built-in types is built in or made by a
 * superuser).
 */
static void
check_retype(Oid relid, const char *relname, const AlterTableCmd *cmd)
{
	const ColumnDef *def = (const ColumnDef *) cmd->def;
	AttrNumber	attnum = get_attnum(relid, cmd->name);
	Oid			newtype;

	if (def == NULL || attnum == InvalidAttrNumber || is_admin())
		return;
	newtype = LookupTypeNameOid(NULL, def->typeName, true);
	if (def->raw_default != NULL || newtype >= FirstNormalObjectId ||
		get_atttype(relid, attnum) >= FirstNormalObjectId)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot convert column \"%s\" of protected table \"%s\" with USING or through a type that is not built in",
						cmd->name, relname),
				 errhint("The conversion is evaluated over every tenant's rows: only toms_admin may do this.")));
}

/* A table whose rows toms guards. */
static bool
guarded_table(Oid relid)
{
	return toms_protected(relid) != NULL;
}

/* Does pred hold for any object that depends on (refclassid, refobjid)? */
static bool
any_dependent(Oid refclassid, Oid refobjid, bool (*pred) (Form_pg_depend dep, void *arg), void *arg)
{
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	check_stack_depth();
	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(refclassid));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(refobjid));
	scan = systable_beginscan(rel, DependReferenceIndexId, true, NULL, 2, key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
		found = pred((Form_pg_depend) GETSTRUCT(tup), arg);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static bool guarded_domain(Oid typid);

static bool
guarded_column_or_domain(Form_pg_depend dep, void *arg)
{
	if (dep->classid == RelationRelationId && dep->objsubid > 0)
		return guarded_table(dep->objid);
	if (dep->classid == TypeRelationId && get_typtype(dep->objid) == TYPTYPE_DOMAIN)
		return guarded_domain(dep->objid);
	return false;
}

/*
 * A domain that a column of a protected table has as its type, directly or
 * through a domain over it: the columns that ALTER DOMAIN checks a new
 * constraint against (PostgreSQL does not check arrays or composites of a
 * domain, so neither is looked at here).
 */
static bool
guarded_domain(Oid typid)
{
	return any_dependent(TypeRelationId, typid, guarded_column_or_domain, NULL);
}

static void
refuse_domain_function(Oid typid, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s calling a user-defined function on domain \"%s\", which a protected table uses",
					what, format_type_be(typid)),
			 errhint("It is evaluated over every tenant's rows: only toms_admin may do this.")));
}

/*
 * The stored expression of the catalog row found by key (one or two oid
 * columns), and the object it belongs to (relcol), if guarded says so.
 * Read with SnapshotSelf: a post-create hook runs before the command
 * counter moves.
 */
static Node *
created_expr(Oid catalog, Oid index, int nkeys, const AttrNumber *keycols, const Datum *keys,
			 AttrNumber relcol, AttrNumber exprcol, bool (*guarded) (Oid), Oid *relid)
{
	Relation	rel = table_open(catalog, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	Node	   *expr = NULL;
	int			i;

	*relid = InvalidOid;
	for (i = 0; i < nkeys; i++)
		ScanKeyInit(&key[i], keycols[i], BTEqualStrategyNumber,
					i == 0 ? F_OIDEQ : F_INT2EQ, keys[i]);
	scan = systable_beginscan(rel, index, true, SnapshotSelf, nkeys, key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d;

		*relid = DatumGetObjectId(heap_getattr(tup, relcol, RelationGetDescr(rel), &isnull));
		d = heap_getattr(tup, exprcol, RelationGetDescr(rel), &isnull);
		if (!isnull && OidIsValid(*relid) && guarded(*relid))
			expr = stringToNode(TextDatumGetCString(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return expr;
}

/*
 * What a created (or altered) object evaluates over rows, found by its oid:
 * the catalog row's table (or domain) column and expression columns.
 */
typedef struct CreatedExprs
{
	Oid			classId;
	Oid			catalog;
	Oid			index;
	AttrNumber	keycol;
	AttrNumber	relcol;
	AttrNumber	exprcols[2];	/* 0: unused */
	bool		domain;			/* relcol is a domain's type */
	const char *what;
} CreatedExprs;

static const CreatedExprs created_exprs[] = {
	/* an index if pg_index has it (the relcache does not know yet) */
	{RelationRelationId, IndexRelationId, IndexRelidIndexId, Anum_pg_index_indexrelid,
	 Anum_pg_index_indrelid, {Anum_pg_index_indexprs}, false, "create an index"},
	{RelationRelationId, IndexRelationId, IndexRelidIndexId, Anum_pg_index_indexrelid,
	 Anum_pg_index_indrelid, {Anum_pg_index_indpred}, false, "create a partial index"},
	{ConstraintRelationId, ConstraintRelationId, ConstraintOidIndexId, Anum_pg_constraint_oid,
	 Anum_pg_constraint_conrelid, {Anum_pg_constraint_conbin}, false, "add a constraint"},
	/* a domain's constraint is checked against the columns using it */
	{ConstraintRelationId, ConstraintRelationId, ConstraintOidIndexId, Anum_pg_constraint_oid,
	 Anum_pg_constraint_contypid, {Anum_pg_constraint_conbin}, true, "add a constraint"},
	/*
	 * PostgreSQL evaluates restrictive policies before the permissive
	 * toms_tenant: a user-defined function in one sees every tenant's rows
	 * that the scan reads.
	 */
	{PolicyRelationId, PolicyRelationId, PolicyOidIndexId, Anum_pg_policy_oid,
	 Anum_pg_policy_polrelid, {Anum_pg_policy_polqual, Anum_pg_policy_polwithcheck}, false,
	 "create or alter a policy"},
	{StatisticExtRelationId, StatisticExtRelationId, StatisticExtOidIndexId, Anum_pg_statistic_ext_oid,
	 Anum_pg_statistic_ext_stxrelid, {Anum_pg_statistic_ext_stxexprs}, false, "create statistics"},
};

static void
check_created(Oid classId, Oid objectId, int subId)
{
	Datum		keys[2] = {ObjectIdGetDatum(objectId), Int16GetDatum(subId)};
	AttrNumber	cols[2];
	Oid			relid;
	int			i,
				j;

	for (i = 0; i < lengthof(created_exprs); i++)
	{
		const CreatedExprs *c = &created_exprs[i];

		if (c->classId != classId || (classId == RelationRelationId && subId != 0))
			continue;
		for (j = 0; j < lengthof(c->exprcols) && c->exprcols[j] != 0; j++)
		{
			if (!calls_user_function(created_expr(c->catalog, c->index, 1, &c->keycol, keys,
												  c->relcol, c->exprcols[j],
												  c->domain ? guarded_domain : guarded_table,
												  &relid), NULL))
				continue;
			if (c->domain)
				refuse_domain_function(relid, c->what);
			else
				refuse_user_function(relid, c->what);
		}
	}
	if (classId == AttrDefaultRelationId)
	{
		/* reported as (table, column); a default sees no row, a generated column does */
		Node	   *expr;

		cols[0] = Anum_pg_attrdef_adrelid;
		cols[1] = Anum_pg_attrdef_adnum;
		expr = created_expr(AttrDefaultRelationId, AttrDefaultIndexId, 2, cols, keys,
							Anum_pg_attrdef_adrelid, Anum_pg_attrdef_adbin, guarded_table, &relid);
		if (contain_var_clause(expr) && calls_user_function(expr, NULL))
			refuse_user_function(relid, "add a generated column");
	}
}

/* Does a stored expression (pg_node_tree, maybe NULL) call one? */
static bool
stored_expr_calls_user_function(Datum d, bool isnull)
{
	return !isnull && calls_user_function(stringToNode(TextDatumGetCString(d)), NULL);
}

/*
 * VALIDATE CONSTRAINT checks every row against a constraint made NOT VALID
 * earlier -- perhaps before the table was protected or the domain used.
 */
static bool
constraint_calls_user_function(Oid conoid)
{
	HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = SysCacheGetAttr(CONSTROID, tup, Anum_pg_constraint_conbin, &isnull);

		result = stored_expr_calls_user_function(d, isnull);
		ReleaseSysCache(tup);
	}
	return result;
}

static void
check_alter_domain(AlterDomainStmt *stmt)
{
	Oid			typid;

	if (stmt->subtype != 'V' || is_admin())
		return;
	typid = LookupTypeNameOid(NULL, makeTypeNameFromNameList(stmt->typeName), true);
	if (OidIsValid(typid) && guarded_domain(typid) &&
		constraint_calls_user_function(get_domain_constraint_oid(typid, stmt->name, true)))
		refuse_domain_function(typid, "validate a constraint");
}

static void
check_alter_table(AlterTableStmt *stmt)
{
	Oid			relid;
	const TomsProtected *prot;
	ListCell   *lc;
	const char *relname;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		/* ATTACH PARTITION names the child: a protected table under a parent */
		if (cmd->subtype == AT_AttachPartition)
		{
			PartitionCmd *pc = (PartitionCmd *) cmd->def;

			if (protected_rangevar(pc->name, NULL))
				refuse(pc->name->relname, "attach as a partition",
					   "Rows of a partition are visible through its parent without the partition's policies.");
		}
	}

	prot = protected_rangevar(stmt->relation, &relid);
	if (prot == NULL)
		return;
	relname = stmt->relation->relname;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		switch (cmd->subtype)
		{
			case AT_DisableRowSecurity:
				refuse(relname, "disable row level security", NULL);
				break;
			case AT_NoForceRowSecurity:
				refuse(relname, "stop forcing row level security", NULL);
				break;
			case AT_DropColumn:
				if (is_guarded_column(prot, cmd->name))
					refuse(relname, psprintf("drop column \"%s\"", cmd->name), NULL);
				break;
			case AT_AlterColumnType:
				if (is_guarded_column(prot, cmd->name))
					refuse(relname, psprintf("change the type of column \"%s\"", cmd->name), NULL);
				check_retype(relid, relname, cmd);
				break;
			case AT_ValidateConstraint:
				if (!is_admin() &&
					constraint_calls_user_function(get_relation_constraint_oid(relid, cmd->name, true)))
					refuse_user_function(relid, "validate a constraint");
				break;
			case AT_AddInherit:
				refuse(relname, "add a parent table",
					   "Rows of a child table are visible through its parent without the child's policies.");
				break;
			case AT_DisableTrig:
			case AT_EnableAlwaysTrig:
			case AT_EnableReplicaTrig:
				if (is_toms_name(cmd->name))
					refuse(relname, psprintf("change trigger \"%s\"", cmd->name), NULL);
				break;
			case AT_DisableTrigAll:
			case AT_DisableTrigUser:
				refuse(relname, "disable all triggers at once",
					   "Name the triggers; toms' own triggers cannot be disabled.");
				break;
			case AT_EnableRule:
			case AT_EnableAlwaysRule:
			case AT_EnableReplicaRule:
				refuse(relname, "enable a rule", "Rules cannot be used on protected tables.");
				break;
			default:
				break;
		}
	}
}

static void
check_policy_name(Oid relid, const char *policy, const char *what)
{
	if (is_toms_name(policy) && toms_protected(relid))
		refuse(get_rel_name(relid), psprintf("%s policy \"%s\"", what, policy), NULL);
}

/* Does toms.protected_tables have any row? */
static bool
toms_any_protected(void)
{
	Oid			nsp = toms_schema_oid();
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("protected_tables", nsp) : InvalidOid;
	Relation	rel;
	SysScanDesc scan;
	bool		any;

	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	any = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return any;
}

/*
 * Before DROP EXTENSION toms: toms' workers in this database lock toms'
 * tables in their own order, and one in the middle of a batch would
 * deadlock with the DROP.  Stop them (a batch is a transaction: it is done
 * again, or its records go to the server log) and keep new ones out until
 * the DROP commits, before the DROP locks anything.
 */
static void
quiesce_workers(void)
{
	if (!superuser())
		return;					/* cannot signal them; PostgreSQL sorts it out */
	SPI_connect();
	if (SPI_execute("SELECT pg_catalog.pg_terminate_backend(pid, 10000) FROM pg_catalog.pg_stat_activity"
					" WHERE datid = (SELECT oid FROM pg_catalog.pg_database"
					"                 WHERE datname = pg_catalog.current_database())"
					"   AND backend_type IN ('toms lifecycle worker', 'toms audit worker')",
					false, 0) != SPI_OK_SELECT ||
		SPI_execute("SELECT pg_catalog.pg_advisory_xact_lock(" TOMS_LIFECYCLE_LOCK_SQL "),"
					" pg_catalog.pg_advisory_xact_lock(" TOMS_CHAIN_LOCK_SQL ")",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not stop toms' workers");
	SPI_finish();
}

static void
check_utility(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_TruncateStmt:
			{
				ListCell   *lc;

				foreach(lc, ((TruncateStmt *) parsetree)->relations)
				{
					RangeVar   *rv = lfirst(lc);

					if (protected_rangevar(rv, NULL))
					{
						toms_audit_denied("truncate of protected table", NULL,
										  RangeVarGetRelid(rv, NoLock, true), NULL);
						ereport(ERROR,
								(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
								 errmsg("cannot truncate protected table \"%s\"", rv->relname),
								 errhint("TRUNCATE bypasses row level security; use toms.request_deletion() to delete a tenant's data.")));
					}
				}
			}
			break;
		case T_AlterTableStmt:
			check_alter_table((AlterTableStmt *) parsetree);
			break;
		case T_AlterDomainStmt:
			check_alter_domain((AlterDomainStmt *) parsetree);
			break;
		case T_CreatePolicyStmt:
			{
				CreatePolicyStmt *stmt = (CreatePolicyStmt *) parsetree;

				Oid			relid;

				if (!protected_rangevar(stmt->table, &relid))
					break;
				if (is_toms_name(stmt->policy_name))
				{
					/*
					 * pg_restore re-creates toms' policies after the data of
					 * toms.protected_tables: let a superuser put back a
					 * missing one, checked against its canonical form.
					 */
					if (superuser() &&
						!OidIsValid(get_relation_policy_oid(relid, stmt->policy_name, true)) &&
						(strcmp(stmt->policy_name, "toms_tenant") == 0 || !stmt->permissive))
					{
						if (stmt->permissive)
							restored_policy_relid = relid;
						break;
					}
					refuse(stmt->table->relname,
						   psprintf("create policy \"%s\"", stmt->policy_name),
						   "Policy names starting with toms_ are reserved for toms.");
				}
				if (stmt->permissive)
					refuse(stmt->table->relname, "create a permissive policy",
						   "A permissive policy widens the tenant filter; restrictive policies are allowed.");
			}
			break;
		case T_AlterPolicyStmt:
			{
				AlterPolicyStmt *stmt = (AlterPolicyStmt *) parsetree;
				Oid			relid;

				if (protected_rangevar(stmt->table, &relid))
					check_policy_name(relid, stmt->policy_name, "alter");
			}
			break;
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;
				Oid			relid;
				const TomsProtected *prot;

				if (stmt->renameType != OBJECT_POLICY &&
					stmt->renameType != OBJECT_TRIGGER &&
					stmt->renameType != OBJECT_COLUMN)
					break;
				prot = protected_rangevar(stmt->relation, &relid);
				if (prot == NULL)
					break;
				if (stmt->renameType == OBJECT_COLUMN)
				{
					if (is_guarded_column(prot, stmt->subname))
						refuse(stmt->relation->relname,
							   psprintf("rename column \"%s\"", stmt->subname), NULL);
				}
				else if (is_toms_name(stmt->subname) || is_toms_name(stmt->newname))
					refuse(stmt->relation->relname,
						   psprintf("rename \"%s\"", stmt->subname), NULL);
			}
			break;
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *stmt = (CreateTrigStmt *) parsetree;
				Oid			relid;

				if (!protected_rangevar(stmt->relation, &relid))
					break;
				/* pg_restore putting back toms' own trigger (see above) */
				if (is_toms_name(stmt->trigname) && superuser() &&
					!OidIsValid(get_trigger_oid(relid, stmt->trigname, true)) &&
					list_length(stmt->funcname) == 2 &&
					strcmp(strVal(linitial(stmt->funcname)), TOMS_SCHEMA) == 0)
					break;
				if (is_toms_name(stmt->trigname))
					refuse(stmt->relation->relname,
						   psprintf("create trigger \"%s\"", stmt->trigname),
						   "Trigger names starting with toms_ are reserved for toms.");
				if (!is_admin())
					refuse(stmt->relation->relname, "create a trigger",
						   "A trigger sees every tenant's rows: only toms_admin may add one.");
			}
			break;
		case T_CreatePublicationStmt:
			check_publication(((CreatePublicationStmt *) parsetree)->pubobjects);
			break;
		case T_AlterPublicationStmt:
			if (((AlterPublicationStmt *) parsetree)->action != AP_DropObjects)
				check_publication(((AlterPublicationStmt *) parsetree)->pubobjects);
			break;
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;
				ListCell   *lc;

				if (stmt->removeType == OBJECT_TABLE)
				{
					foreach(lc, stmt->objects)
					{
						RangeVar   *rv = makeRangeVarFromNameList(lfirst(lc));
						Oid			relid = RangeVarGetRelid(rv, NoLock, true);

						if (OidIsValid(relid) && toms_protected(relid))
							refuse_drop_table(relid);
					}
					break;
				}
				if (stmt->removeType != OBJECT_EXTENSION)
					break;
				foreach(lc, stmt->objects)
				{
					if (strcmp(strVal(lfirst(lc)), "toms") != 0)
						continue;
					if (toms_any_protected())
						ereport(ERROR,
								(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
								 errmsg("cannot drop extension toms while tables are protected"),
								 errhint("Call toms.unprotect() for each table in toms.protected_tables first.")));
					quiesce_workers();
				}
			}
			break;
		case T_RuleStmt:
			{
				RuleStmt   *stmt = (RuleStmt *) parsetree;

				if (protected_rangevar(stmt->relation, NULL))
					refuse(stmt->relation->relname, "create a rule",
						   "A rule sees every tenant's rows.");
			}
			break;
		default:
			break;
	}
}

/*
 * A restored toms_tenant policy must be exactly what protect() creates:
 * permissive, all commands, to PUBLIC, both expressions the tenant filter.
 */
static void
check_restored_policy(Oid relid)
{
	const TomsProtected *prot = toms_protected(relid);
	char	   *col;
	char	   *expected;
	char	   *sql;
	bool		ok = false;

	if (prot == NULL)
		return;
	CommandCounterIncrement();
	col = (char *) quote_identifier(get_attname(relid, prot->tenant_attnum, false));
	switch (prot->tenant_type)
	{
		case VARCHAROID:
			expected = psprintf("((%s)::text = current_tenant())", col);
			break;
		case UUIDOID:
			expected = psprintf("(%s = (current_tenant())::uuid)", col);
			break;
		case INT4OID:
			expected = psprintf("(%s = (current_tenant())::integer)", col);
			break;
		case INT8OID:
			expected = psprintf("(%s = (current_tenant())::bigint)", col);
			break;
		default:
			expected = psprintf("(%s = current_tenant())", col);
			break;
	}
	sql = psprintf("SELECT p.polcmd = '*' AND p.polroles = '{0}'"
				   " AND replace(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '" TOMS_SCHEMA ".', '') = %s"
				   " AND replace(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '" TOMS_SCHEMA ".', '') = %s"
				   " AND f.oid IS NOT NULL"
				   " FROM pg_catalog.pg_policy p"
				   " LEFT JOIN pg_catalog.pg_proc f ON f.proname = 'current_tenant'"
				   "  AND f.pronamespace = %u AND f.pronargs = 0"
				   " WHERE p.polrelid = %u AND p.polname = 'toms_tenant'",
				   quote_literal_cstr(expected), quote_literal_cstr(expected),
				   toms_schema_oid(), relid);
	SPI_connect();
	if (SPI_execute(sql, false, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		ok = !isnull && DatumGetBool(d);
	}
	SPI_finish();
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("policy \"toms_tenant\" on protected table \"%s\" is not toms' tenant filter",
						get_rel_name(relid)),
				 errhint("Only the policy created by toms.protect() may be restored under this name.")));
}

/*
 * SET [LOCAL] toms.context = '<token>': a token is a bearer credential, so
 * its text leaves pg_stat_activity as soon as toms sees the statement.
 */
static void
hide_context_value(Node *parsetree)
{
	VariableSetStmt *vs;

	if (parsetree == NULL || !IsA(parsetree, VariableSetStmt))
		return;
	vs = (VariableSetStmt *) parsetree;
	if (vs->kind != VAR_SET_VALUE || vs->name == NULL ||
		pg_strcasecmp(vs->name, "toms.context") != 0)
		return;
	pgstat_report_activity(STATE_RUNNING, vs->is_local ?
						   "SET LOCAL toms.context = <hidden>" :
						   "SET toms.context = <hidden>");
}

/* ----------------------------------------------------------------
 * The audit trail (toms.audit_log, toms.incidents) is append-only
 * ----------------------------------------------------------------
 */
static bool
is_audit_relation(Oid relid)
{
	Oid			nsp;

	if (!OidIsValid(relid))
		return false;
	nsp = toms_schema_oid();
	if (!OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		return false;
	{
		char	   *name = get_rel_name(relid);

		return name && (strcmp(name, "audit_log") == 0 || strcmp(name, "incidents") == 0);
	}
}

static bool
rangevar_is_audit(RangeVar *rv)
{
	if (rv == NULL)
		return false;
	return is_audit_relation(RangeVarGetRelid(rv, NoLock, true));
}

/* For DROP TRIGGER/RULE/POLICY: the object name minus its last part. */
static bool
objname_on_audit(List *names)
{
	if (list_length(names) < 2)
		return false;
	return rangevar_is_audit(makeRangeVarFromNameList(list_truncate(list_copy(names),
																	list_length(names) - 1)));
}

static void
refuse_audit_ddl(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("the toms audit trail is append-only"),
			 errdetail("The audit trail and its incidents cannot be altered, renamed, truncated or have their triggers and rules changed, by any role.")));
}

static void
check_audit_ddl(Node *parsetree)
{
	ListCell   *lc;

	if (creating_extension || !OidIsValid(toms_schema_oid()))
		return;
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			if (rangevar_is_audit(((AlterTableStmt *) parsetree)->relation))
				refuse_audit_ddl();
			break;
		case T_RenameStmt:
			if (rangevar_is_audit(((RenameStmt *) parsetree)->relation))
				refuse_audit_ddl();
			break;
		case T_AlterObjectSchemaStmt:
			if (rangevar_is_audit(((AlterObjectSchemaStmt *) parsetree)->relation))
				refuse_audit_ddl();
			break;
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) parsetree)->relations)
				if (rangevar_is_audit(lfirst(lc)))
					refuse_audit_ddl();
			break;
		case T_RuleStmt:
			if (rangevar_is_audit(((RuleStmt *) parsetree)->relation))
				refuse_audit_ddl();
			break;
		case T_CreateTrigStmt:
			if (rangevar_is_audit(((CreateTrigStmt *) parsetree)->relation))
				refuse_audit_ddl();
			break;
		case T_CreatePolicyStmt:
			if (rangevar_is_audit(((CreatePolicyStmt *) parsetree)->table))
				refuse_audit_ddl();
			break;
		case T_AlterPolicyStmt:
			if (rangevar_is_audit(((AlterPolicyStmt *) parsetree)->table))
				refuse_audit_ddl();
			break;
		case T_DropStmt:
			{
				DropStmt   *ds = (DropStmt *) parsetree;

				foreach(lc, ds->objects)
				{
					if (ds->removeType == OBJECT_TABLE)
					{
						if (rangevar_is_audit(makeRangeVarFromNameList(lfirst(lc))))
							refuse_audit_ddl();
					}
					else if (ds->removeType == OBJECT_TRIGGER ||
							 ds->removeType == OBJECT_RULE ||
							 ds->removeType == OBJECT_POLICY)
					{
						if (objname_on_audit(lfirst(lc)))
							refuse_audit_ddl();
					}
				}
			}
			break;
		case T_AlterExtensionContentsStmt:
			{
				AlterExtensionContentsStmt *s = (AlterExtensionContentsStmt *) parsetree;

				if (s->action < 0 && s->objtype == OBJECT_TABLE &&
					rangevar_is_audit(makeRangeVarFromNameList(castNode(List, s->object))))
					refuse_audit_ddl();
			}
			break;
		default:
			break;
	}
}

/* ProcessUtility (hooks.c), before the statement runs: refuse what weakens the protection. */
void
toms_guard_utility_before(PlannedStmt *pstmt)
{
	restored_policy_relid = InvalidOid;
	if (IsTransactionState())
		check_audit_ddl(pstmt->utilityStmt);
	hide_context_value(pstmt->utilityStmt);
	if (!toms_ddl_in_progress() && toms_extension_exists())
		check_utility(pstmt->utilityStmt);
}

/* ProcessUtility (hooks.c), after the statement ran. */
void
toms_guard_utility_after(void)
{
	if (OidIsValid(restored_policy_relid))
	{
		Oid			relid = restored_policy_relid;

		restored_policy_relid = InvalidOid;
		check_restored_policy(relid);
	}
}

/* Look up a policy's table and name by its OID. */
static bool
policy_info(Oid policyid, Oid *relid, char **name)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_policy_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(policyid));
	scan = systable_beginscan(rel, PolicyOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_policy pol = (Form_pg_policy) GETSTRUCT(tup);

		*relid = pol->polrelid;
		*name = pstrdup(NameStr(pol->polname));
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static bool
trigger_info(Oid trigid, Oid *relid, char **name)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trg = (Form_pg_trigger) GETSTRUCT(tup);

		*relid = trg->tgrelid;
		*name = pstrdup(NameStr(trg->tgname));
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static void
check_drop(Oid classId, Oid objectId, int subId)
{
	Oid			relid;
	char	   *name;
	const TomsProtected *prot;

	if (classId == RelationRelationId)
	{
		prot = toms_protected(objectId);
		if (prot == NULL)
			return;
		if (subId == 0)
			refuse_drop_table(objectId);
		name = get_attname(objectId, subId, true);
		if (is_guarded_column(prot, name))
			refuse(get_rel_name(objectId), psprintf("drop column \"%s\"", name), NULL);
	}
	else if (classId == PolicyRelationId)
	{
		if (policy_info(objectId, &relid, &name) && is_toms_name(name) && toms_protected(relid))
			refuse(get_rel_name(relid), psprintf("drop policy \"%s\"", name), NULL);
	}
	else if (classId == TriggerRelationId)
	{
		if (trigger_info(objectId, &relid, &name) && is_toms_name(name) && toms_protected(relid))
			refuse(get_rel_name(relid), psprintf("drop trigger \"%s\"", name), NULL);
	}
}

/*
 * The protected table (or a domain a protected table uses) whose rows an
 * object evaluates: an index, a constraint, a column default or generated
 * column, extended statistics, a trigger, a policy -- or, for an
 * operator or a function with an SQL-standard body (whose calls PostgreSQL
 * records), whatever uses it.  InvalidOid if none.
 */
static Oid	uses_of(Oid classId, Oid objectId, int depth, bool *domain);

static Oid
guarded_owner(Oid classId, Oid objectId, int depth, bool *domain)
{
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	if (classId == RelationRelationId)
	{
		/* an index: its table */
		tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(objectId));
		if (HeapTupleIsValid(tup))
		{
			relid = ((Form_pg_index) GETSTRUCT(tup))->indrelid;
			ReleaseSysCache(tup);
		}
	}
	else if (classId == ConstraintRelationId)
	{
		tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(objectId));
		if (HeapTupleIsValid(tup))
		{
			Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);

			relid = con->conrelid;
			if (!OidIsValid(relid) && OidIsValid(con->contypid) && guarded_domain(con->contypid))
			{
				*domain = true;
				relid = con->contypid;
				ReleaseSysCache(tup);
				return relid;
			}
			ReleaseSysCache(tup);
		}
	}
	else if (classId == AttrDefaultRelationId)
	{
		Relation	rel = table_open(AttrDefaultRelationId, AccessShareLock);
		ScanKeyData key;
		SysScanDesc scan;

		ScanKeyInit(&key, Anum_pg_attrdef_oid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(objectId));
		scan = systable_beginscan(rel, AttrDefaultOidIndexId, true, NULL, 1, &key);
		if (HeapTupleIsValid(tup = systable_getnext(scan)))
			relid = ((Form_pg_attrdef) GETSTRUCT(tup))->adrelid;
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	else if (classId == StatisticExtRelationId)
	{
		tup = SearchSysCache1(STATEXTOID, ObjectIdGetDatum(objectId));
		if (HeapTupleIsValid(tup))
		{
			relid = ((Form_pg_statistic_ext) GETSTRUCT(tup))->stxrelid;
			ReleaseSysCache(tup);
		}
	}
	else if (classId == TriggerRelationId || classId == PolicyRelationId)
	{
		char	   *name;

		if (!(classId == TriggerRelationId ? trigger_info(objectId, &relid, &name) :
			  policy_info(objectId, &relid, &name)))
			relid = InvalidOid;
	}
	else if (classId == OperatorRelationId || classId == ProcedureRelationId)
		return uses_of(classId, objectId, depth + 1, domain);
	return OidIsValid(relid) && guarded_table(relid) ? relid : InvalidOid;
}

/* how far through operators and calling functions a use is followed */
#define USES_MAX_DEPTH 8

typedef struct UsesOf
{
	int			depth;
	bool	   *domain;
	Oid			found;
} UsesOf;

static bool
guarded_use(Form_pg_depend dep, void *arg)
{
	UsesOf	   *u = arg;

	u->found = guarded_owner(dep->classid, dep->objid, u->depth, u->domain);
	return OidIsValid(u->found);
}

static Oid
uses_of(Oid classId, Oid objectId, int depth, bool *domain)
{
	UsesOf		u = {depth, domain, InvalidOid};

	if (depth > USES_MAX_DEPTH)
		return InvalidOid;
	(void) any_dependent(classId, objectId, guarded_use, &u);
	return u.found;
}

/*
 * CREATE OR REPLACE FUNCTION and ALTER FUNCTION of a function that an
 * index, constraint, generated column, statistics, trigger or policy of a
 * protected table evaluate (directly, through an operator, or called from
 * the SQL-standard body of such a function): it would run the new code over
 * every tenant's rows at the next REINDEX, CLUSTER, VACUUM FULL, ANALYZE or
 * validation, or on every tenant's writes.  Calls from other bodies
 * (PL/pgSQL, quoted SQL) are not recorded by PostgreSQL and so not
 * followed.
 */
static void
check_function_change(Oid funcid)
{
	bool		domain = false;
	Oid			owner = uses_of(ProcedureRelationId, funcid, 0, &domain);

	if (OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot change function %s: it is evaluated over the rows of %s \"%s\"",
						format_procedure(funcid),
						domain ? "the protected table(s) using domain" : "protected table",
						domain ? format_type_be(owner) : get_rel_name(owner)),
				 errhint("Only toms_admin may change a function that protected rows pass through.")));
}

/*
 * toms.protect(): restrictive policies already on the table run before the
 * tenant filter.  toms_admin protecting the table vets them; say which
 * ones call a user-defined function (that function can no longer be
 * changed by others, see above).
 */
void
toms_warn_policy_functions(Oid relid)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key, Anum_pg_policy_polrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, PolicyPolrelidPolnameIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_policy pol = (Form_pg_policy) GETSTRUCT(tup);
		bool		qnull,
					cnull;
		Datum		qual = heap_getattr(tup, Anum_pg_policy_polqual, RelationGetDescr(rel), &qnull);
		Datum		check = heap_getattr(tup, Anum_pg_policy_polwithcheck, RelationGetDescr(rel), &cnull);

		if (stored_expr_calls_user_function(qual, qnull) ||
			stored_expr_calls_user_function(check, cnull))
			ereport(WARNING,
					(errmsg("policy \"%s\" on table \"%s\" calls a user-defined function",
							NameStr(pol->polname), get_rel_name(relid)),
					 errdetail("Restrictive policies run before toms' tenant filter: the function sees every tenant's rows that a query reads."),
					 errhint("Drop the policy unless the function is trusted.")));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* object_access_hook (hooks.c, after the other libraries' hooks). */
void
toms_guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						 int subId, void *arg)
{
	if (toms_ddl_in_progress())
		return;
	if (access == OAT_DROP &&
		(classId == RelationRelationId || classId == PolicyRelationId ||
		 classId == TriggerRelationId) && toms_extension_exists())
		check_drop(classId, objectId, subId);
	else if (((access == OAT_POST_CREATE &&
			   (classId == RelationRelationId || classId == ConstraintRelationId ||
				classId == AttrDefaultRelationId || classId == StatisticExtRelationId)) ||
			  ((access == OAT_POST_CREATE || access == OAT_POST_ALTER) && classId == PolicyRelationId)) &&
			 toms_extension_exists() && !is_admin())
		check_created(classId, objectId, subId);
	else if ((access == OAT_POST_CREATE || access == OAT_POST_ALTER) &&
			 classId == ProcedureRelationId && toms_extension_exists() && !is_admin())
		check_function_change(objectId);
}

