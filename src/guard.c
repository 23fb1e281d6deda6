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
 *	  triggers added by other than toms_admin, inheritance tricks, and
 *	  TRUNCATE.  The object-access hook sees every drop however it was
 *	  reached (DROP POLICY, DROP TABLE, DROP COLUMN, DROP ... CASCADE, DROP
 *	  OWNED, DROP EXTENSION), so nothing can remove a toms policy, trigger or
 *	  tenant column behind the statement check's back.
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
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/policy.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "toms.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access = NULL;

/* Set while toms itself runs DDL through toms_run_ddl(). */
static bool guard_bypass = false;

/* A toms_tenant policy being restored, to check once it exists. */
static Oid	restored_policy_relid = InvalidOid;

bool
toms_guard_bypassed(void)
{
	return guard_bypass;
}

void
toms_run_ddl(const char *sql)
{
	bool		save = guard_bypass;

	guard_bypass = true;
	PG_TRY();
	{
		int			rc = SPI_execute(sql, false, 0);

		if (rc < 0)
			elog(ERROR, "toms could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	}
	PG_FINALLY();
	{
		guard_bypass = save;
	}
	PG_END_TRY();
}

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
	Oid			nsp = get_namespace_oid(TOMS_SCHEMA, true);
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
				Oid			admin = get_role_oid("toms_admin", true);
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
				if (!superuser() && !(OidIsValid(admin) && has_privs_of_role(GetUserId(), admin)))
					refuse(stmt->relation->relname, "create a trigger",
						   "A trigger sees every tenant's rows: only toms_admin may add one.");
			}
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
					if (strcmp(strVal(lfirst(lc)), "toms") == 0 && toms_any_protected())
						ereport(ERROR,
								(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
								 errmsg("cannot drop extension toms while tables are protected"),
								 errhint("Call toms.unprotect() for each table in toms.protected_tables first.")));
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

static void
guard_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	restored_policy_relid = InvalidOid;
	hide_context_value(pstmt->utilityStmt);
	if (!guard_bypass && toms_extension_exists())
		check_utility(pstmt->utilityStmt);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

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

static void
guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);

	if (access != OAT_DROP || guard_bypass)
		return;
	if ((classId == RelationRelationId || classId == PolicyRelationId ||
		 classId == TriggerRelationId) && toms_extension_exists())
		check_drop(classId, objectId, subId);
}

void
guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = guard_ProcessUtility;
	prev_object_access = object_access_hook;
	object_access_hook = guard_object_access;
}
