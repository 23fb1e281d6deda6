/*-------------------------------------------------------------------------
 *
 * guard_expr.c
 *	  What DDL evaluates over a protected table's rows, past row security:
 *	  an index's expressions and predicate, CHECK and exclusion constraints
 *	  (also a domain's, and VALIDATE CONSTRAINT), generated columns,
 *	  extended statistics' expressions (ANALYZE), restrictive policies
 *	  (evaluated before the tenant filter), and the conversion of ALTER
 *	  COLUMN ... TYPE.  Any function there can pass each row on (a
 *	  NOTICE, pg_notify(), a side table) or betray it by its error (a
 *	  failing cast), so on a protected table only toms_admin may use one
 *	  that is not LEAKPROOF (PostgreSQL's notion; only a superuser can
 *	  mark a function so), or change a function that such an object
 *	  already calls.
 *
 *	  The layer below guard.c, which calls these checks from the
 *	  ProcessUtility and object-access hooks (hooks.c); nothing here calls
 *	  back into guard.c.  protect.c calls toms_warn_policy_functions().
 *	  What this closes is listed in docs/security-testing.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
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
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/subscripting.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"
#include "utils/syscache.h"

#include "toms.h"


/* What a refused object would evaluate over every row. */
typedef enum GuardExprKind
{
	GUARD_EXPR_INDEX,
	GUARD_EXPR_PARTIAL_INDEX,
	GUARD_EXPR_CONSTRAINT,
	GUARD_EXPR_POLICY,
	GUARD_EXPR_STATISTICS,
	GUARD_EXPR_GENERATED,
	GUARD_EXPR_VALIDATE
} GuardExprKind;

/* May the current user add what sees every tenant's rows (toms_admin)? */
bool
toms_guard_is_admin(void)
{
	Oid			admin = get_role_oid("toms_admin", true);

	return superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin));
}

static bool
not_leakproof(Oid funcid, void *context)
{
	return !get_func_leakproof(funcid);
}

/*
 * Could evaluating this expression over a row tell anyone something about
 * the row?  PostgreSQL's own notion (contain_leaked_vars), made strict: a
 * function or operator counts even when no column is passed to it (a
 * CASE over a column can choose whether it runs), and every node that
 * PostgreSQL does not know to be safe counts -- sub-queries, aggregates,
 * domain checks (their errors), XML.  Casts are functions: a cast that can
 * fail (text to integer) is not leakproof.
 */
static bool
leaky_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
		case T_Const:
		case T_Param:
		case T_ArrayExpr:
		case T_FieldSelect:
		case T_FieldStore:
		case T_NamedArgExpr:
		case T_BoolExpr:
		case T_RelabelType:
		case T_CollateExpr:
		case T_CaseExpr:
		case T_CaseTestExpr:
		case T_RowExpr:
		case T_SQLValueFunction:
		case T_NullTest:
		case T_BooleanTest:
		case T_CoerceToDomainValue:
		case T_ArrayCoerceExpr:	/* its per-element expression is walked */
		case T_List:
			break;
		case T_FuncExpr:
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
		case T_ScalarArrayOpExpr:
		case T_CoerceViaIO:
			if (check_functions_in_node(node, not_leakproof, context))
				return true;
			break;
		case T_RowCompareExpr:
			{
				ListCell   *lc;

				foreach(lc, ((RowCompareExpr *) node)->opnos)
					if (!get_func_leakproof(get_opcode(lfirst_oid(lc))))
						return true;
			}
			break;
		case T_MinMaxExpr:
			{
				TypeCacheEntry *t = lookup_type_cache(((MinMaxExpr *) node)->minmaxtype,
													  TYPECACHE_CMP_PROC);

				if (!OidIsValid(t->cmp_proc) || !get_func_leakproof(t->cmp_proc))
					return true;
			}
			break;
		case T_SubscriptingRef:
			{
				SubscriptingRef *sbsref = (SubscriptingRef *) node;
				const SubscriptRoutines *sbs = getSubscriptingRoutines(sbsref->refcontainertype, NULL);

				if (sbs == NULL ||
					!(sbsref->refassgnexpr != NULL ? sbs->store_leakproof : sbs->fetch_leakproof))
					return true;
			}
			break;
		default:
			return true;
	}
	return expression_tree_walker(node, leaky_walker, context);
}

static bool
leaky(Node *node)
{
	return leaky_walker(node, NULL);
}

static int
hint_every_row(void)
{
	return errhint("It is evaluated over every tenant's rows: only toms_admin may do this.");
}

/* Validation over every row answers a question about other tenants' rows. */
static int
hint_validation(void)
{
	return errhint("Whether it holds for every row tells about other tenants' rows: add it NOT VALID (toms_admin may validate it).");
}

static void
refuse_leaky(Oid relid, GuardExprKind kind)
{
	const char *relname = get_rel_name(relid);

	switch (kind)
	{
		case GUARD_EXPR_INDEX:
			TOMS_REFUSE(errmsg("cannot create an index calling a function that is not leakproof on protected table \"%s\"",
							   relname), hint_every_row());
			break;
		case GUARD_EXPR_PARTIAL_INDEX:
			TOMS_REFUSE(errmsg("cannot create a partial index calling a function that is not leakproof on protected table \"%s\"",
							   relname), hint_every_row());
			break;
		case GUARD_EXPR_CONSTRAINT:
			TOMS_REFUSE(errmsg("cannot add a constraint calling a function that is not leakproof on protected table \"%s\"",
							   relname), hint_every_row());
			break;
		case GUARD_EXPR_POLICY:
			TOMS_REFUSE(errmsg("cannot create or alter a policy calling a function that is not leakproof on protected table \"%s\"",
							   relname), hint_every_row());
			break;
		case GUARD_EXPR_STATISTICS:
			TOMS_REFUSE(errmsg("cannot create statistics calling a function that is not leakproof on protected table \"%s\"",
							   relname), hint_every_row());
			break;
		case GUARD_EXPR_GENERATED:
			TOMS_REFUSE(errmsg("cannot add a generated column calling a function that is not leakproof on protected table \"%s\"",
							   relname), hint_every_row());
			break;
		case GUARD_EXPR_VALIDATE:
			TOMS_REFUSE(errmsg("cannot validate a constraint calling a function that is not leakproof on protected table \"%s\"",
							   relname), hint_every_row());
			break;
	}
	elog(ERROR, "unexpected guard expression kind %d", (int) kind);
}

/* A domain's constraints: added (GUARD_EXPR_CONSTRAINT) or validated. */
static void
refuse_domain_leaky(Oid typid, GuardExprKind kind)
{
	if (kind == GUARD_EXPR_VALIDATE)
		TOMS_REFUSE(errmsg("cannot validate a constraint calling a function that is not leakproof on domain \"%s\", which a protected table uses",
						   format_type_be(typid)), hint_every_row());
	TOMS_REFUSE(errmsg("cannot add a constraint calling a function that is not leakproof on domain \"%s\", which a protected table uses",
					   format_type_be(typid)), hint_every_row());
}

/*
 * ALTER COLUMN ... TYPE converts every row, by a USING expression or by a
 * cast; the statement is not yet analysed here, so: no USING, both types
 * built in (a cast between built-in types is built in or made by a
 * superuser), no domain (its check), and a leakproof conversion: a cast
 * that can fail (bigint to integer, text to varchar(3)) answers, by its
 * error, whether some tenant holds a value that does not fit.
 */
static bool
leakproof_conversion(Oid oldtype, Oid newtype, int32 newtypmod)
{
	Oid			funcid = InvalidOid;
	CoercionPathType path;

	if (get_typtype(newtype) == TYPTYPE_DOMAIN)
		return false;
	if (oldtype != newtype)
	{
		path = find_coercion_pathway(newtype, oldtype, COERCION_ASSIGNMENT, &funcid);
		if (path == COERCION_PATH_FUNC)
		{
			if (!get_func_leakproof(funcid))
				return false;
		}
		else if (path != COERCION_PATH_RELABELTYPE)
			return false;
	}
	if (newtypmod >= 0 &&
		find_typmod_coercion_function(newtype, &funcid) != COERCION_PATH_NONE &&
		!get_func_leakproof(funcid))
		return false;
	return true;
}

void
toms_guard_check_retype(Oid relid, const char *relname, const char *colname,
						const ColumnDef *def)
{
	AttrNumber	attnum = get_attnum(relid, colname);
	Oid			newtype;
	Oid			oldtype;
	int32		newtypmod = -1;

	if (def == NULL || attnum == InvalidAttrNumber || toms_guard_is_admin())
		return;
	typenameTypeIdAndMod(NULL, def->typeName, &newtype, &newtypmod);
	oldtype = get_atttype(relid, attnum);
	if (def->raw_default != NULL || newtype >= FirstNormalObjectId ||
		oldtype >= FirstNormalObjectId)
		TOMS_REFUSE(errmsg("cannot convert column \"%s\" of protected table \"%s\" with USING or through a type that is not built in",
						   colname, relname),
					errhint("The conversion is evaluated over every tenant's rows: only toms_admin may do this."));
	if (!leakproof_conversion(oldtype, newtype, newtypmod))
		TOMS_REFUSE(errmsg("cannot convert column \"%s\" of protected table \"%s\" with a conversion that is not leakproof",
						   colname, relname),
					errhint("A conversion that can fail tells, by its error, what another tenant's rows hold: only toms_admin may do this."));
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
	GuardExprKind kind;
} CreatedExprs;

static const CreatedExprs created_exprs[] = {
	/* an index if pg_index has it (the relcache does not know yet) */
	{RelationRelationId, IndexRelationId, IndexRelidIndexId, Anum_pg_index_indexrelid,
	 Anum_pg_index_indrelid, {Anum_pg_index_indexprs}, false, GUARD_EXPR_INDEX},
	{RelationRelationId, IndexRelationId, IndexRelidIndexId, Anum_pg_index_indexrelid,
	 Anum_pg_index_indrelid, {Anum_pg_index_indpred}, false, GUARD_EXPR_PARTIAL_INDEX},
	{ConstraintRelationId, ConstraintRelationId, ConstraintOidIndexId, Anum_pg_constraint_oid,
	 Anum_pg_constraint_conrelid, {Anum_pg_constraint_conbin}, false, GUARD_EXPR_CONSTRAINT},
	/* a domain's constraint is checked against the columns using it */
	{ConstraintRelationId, ConstraintRelationId, ConstraintOidIndexId, Anum_pg_constraint_oid,
	 Anum_pg_constraint_contypid, {Anum_pg_constraint_conbin}, true, GUARD_EXPR_CONSTRAINT},
	/*
	 * PostgreSQL evaluates restrictive policies before the permissive
	 * toms_tenant: a user-defined function in one sees every tenant's rows
	 * that the scan reads.
	 */
	{PolicyRelationId, PolicyRelationId, PolicyOidIndexId, Anum_pg_policy_oid,
	 Anum_pg_policy_polrelid, {Anum_pg_policy_polqual, Anum_pg_policy_polwithcheck}, false,
	 GUARD_EXPR_POLICY},
	{StatisticExtRelationId, StatisticExtRelationId, StatisticExtOidIndexId, Anum_pg_statistic_ext_oid,
	 Anum_pg_statistic_ext_stxrelid, {Anum_pg_statistic_ext_stxexprs}, false, GUARD_EXPR_STATISTICS},
};

/*
 * An index, constraint, column default, statistics object or policy just
 * created (or a policy altered), unless the user is toms_admin: the caller
 * checks that.
 */
void
toms_guard_check_created(Oid classId, Oid objectId, int subId)
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
			if (!leaky(created_expr(c->catalog, c->index, 1, &c->keycol, keys,
									c->relcol, c->exprcols[j],
									c->domain ? guarded_domain : guarded_table, &relid)))
				continue;
			if (c->domain)
				refuse_domain_leaky(relid, c->kind);
			else
				refuse_leaky(relid, c->kind);
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
		if (contain_var_clause(expr) && leaky(expr))
			refuse_leaky(relid, GUARD_EXPR_GENERATED);
	}
}

/* Does a stored expression (pg_node_tree, maybe NULL) call one? */
static bool
stored_expr_leaky(Datum d, bool isnull)
{
	return !isnull && leaky(stringToNode(TextDatumGetCString(d)));
}

/*
 * VALIDATE CONSTRAINT checks every row against a constraint made NOT VALID
 * earlier -- perhaps before the table was protected or the domain used.
 */
static bool
constraint_leaky(Oid conoid)
{
	HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = SysCacheGetAttr(CONSTROID, tup, Anum_pg_constraint_conbin, &isnull);

		result = stored_expr_leaky(d, isnull);
		ReleaseSysCache(tup);
	}
	return result;
}

/* ALTER TABLE ... VALIDATE CONSTRAINT conname on protected table relid */
void
toms_guard_check_validate(Oid relid, const char *conname)
{
	if (toms_guard_is_admin())
		return;
	if (constraint_leaky(get_relation_constraint_oid(relid, conname, true)))
		refuse_leaky(relid, GUARD_EXPR_VALIDATE);
	TOMS_REFUSE(errmsg("cannot validate a constraint on protected table \"%s\"", get_rel_name(relid)),
				hint_validation());
}

/* ALTER DOMAIN ... VALIDATE CONSTRAINT of a domain a protected table uses */
void
toms_guard_check_alter_domain(const AlterDomainStmt *stmt)
{
	Oid			typid;

	if (stmt->subtype != 'V' || toms_guard_is_admin())
		return;
	typid = LookupTypeNameOid(NULL, makeTypeNameFromNameList(stmt->typeName), true);
	if (!OidIsValid(typid) || !guarded_domain(typid))
		return;
	if (constraint_leaky(get_domain_constraint_oid(typid, stmt->name, true)))
		refuse_domain_leaky(typid, GUARD_EXPR_VALIDATE);
	TOMS_REFUSE(errmsg("cannot validate a constraint on domain \"%s\", which a protected table uses",
					   format_type_be(typid)),
				hint_validation());
}

/* A domain a protected table uses (guard_fk.c). */
bool
toms_guard_domain_guarded(Oid typid)
{
	return guarded_domain(typid);
}

/* A policy's table and name, by the policy's oid. */
bool
toms_guard_policy_info(Oid policyid, Oid *relid, char **name)
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

/* A trigger's table and name, by the trigger's oid. */
bool
toms_guard_trigger_info(Oid trigid, Oid *relid, char **name)
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

		if (!(classId == TriggerRelationId ? toms_guard_trigger_info(objectId, &relid, &name) :
			  toms_guard_policy_info(objectId, &relid, &name)))
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
 * followed.  The caller lets toms_admin pass.
 */
void
toms_guard_check_function_change(Oid funcid)
{
	bool		domain = false;
	Oid			owner = uses_of(ProcedureRelationId, funcid, 0, &domain);

	if (!OidIsValid(owner))
		return;
	if (domain)
		TOMS_REFUSE(errmsg("cannot change function %s: it is evaluated over the rows of the protected tables using domain \"%s\"",
						   format_procedure(funcid), format_type_be(owner)),
					errhint("Only toms_admin may change a function that protected rows pass through."));
	TOMS_REFUSE(errmsg("cannot change function %s: it is evaluated over the rows of protected table \"%s\"",
					   format_procedure(funcid), get_rel_name(owner)),
				errhint("Only toms_admin may change a function that protected rows pass through."));
}

/*
 * toms.protect(): restrictive policies already on the table run before the
 * tenant filter.  toms_admin protecting the table vets them; say which
 * ones call a function that is not leakproof (a user-defined one can no
 * longer be changed by others, see above).
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

		if (stored_expr_leaky(qual, qnull) ||
			stored_expr_leaky(check, cnull))
			ereport(WARNING,
					(errmsg("policy \"%s\" on table \"%s\" calls a function that is not leakproof",
							NameStr(pol->polname), get_rel_name(relid)),
					 errdetail("Restrictive policies run before toms' tenant filter: the function sees every tenant's rows that a query reads."),
					 errhint("Drop the policy unless the function is trusted.")));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}
