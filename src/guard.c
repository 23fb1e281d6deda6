/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  Keeps toms' tenant filter from being weakened, by anyone, the table
 *	  owner and superusers included (docs/tenancy.md).
 *
 *	  Two hooks share the work (hooks.c installs them and calls the entry
 *	  points at the end of this file).  The ProcessUtility hook sees
 *	  statements: DISABLE / NO FORCE ROW LEVEL SECURITY, ALTER or RENAME of
 *	  a toms_* policy or trigger, a permissive policy that would widen the
 *	  filter, retyping or renaming the tenant column, disabling triggers,
 *	  rules, triggers added or tables published by other than toms_admin,
 *	  inheritance tricks, and TRUNCATE; and DDL on the append-only audit
 *	  trail.  The object-access hook sees every drop however it was reached
 *	  (DROP POLICY, DROP TABLE, DROP COLUMN, DROP ... CASCADE, DROP OWNED,
 *	  DROP EXTENSION), so nothing can remove a toms policy, trigger or
 *	  tenant column behind the statement check's back.
 *
 *	  It also refuses interposing on a protected table (renaming or
 *	  moving it or its schema, inheritance children, materialized views
 *	  filled from it: issue 16).
 *
 *	  What DDL evaluates over a protected table's rows (only LEAKPROOF
 *	  functions in indexes, constraints, generated columns, statistics,
 *	  policies, conversions) is checked by guard_expr.c, foreign and
 *	  unique keys by guard_fk.c, toms' own functions and tables by
 *	  guard_self.c: this file calls them, never the other way round.
 *
 *	  toms itself passes through toms_run_ddl() (catalog.c), which sets a
 *	  backend-local flag for the duration of one SPI statement; no SQL can
 *	  set it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
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
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "toms.h"


/* A toms_tenant policy being restored, to check once it exists. */
static Oid	restored_policy_relid = InvalidOid;

/*
 * Utility statements nest (a function run by one runs others): the level
 * of the one running, and the level at which a materialized view is being
 * filled, DROP EXTENSION toms runs, or CREATE/ALTER EXTENSION toms runs
 * (0: none).  hooks.c calls toms_guard_utility_after() or _failed() for
 * every toms_guard_utility_before().
 */
static int	utility_level = 0;
static int	matview_level = 0;
static int	dropping_level = 0;
static int	extension_level = 0;


/* The hint of most refusals: what is protected can be unprotected. */
static int
hint_unprotect(void)
{
	return errhint("Use toms.unprotect() (toms_admin) first.");
}

static void
refuse_drop_table(Oid relid)
{
	TOMS_REFUSE(errmsg("cannot drop protected table \"%s\"", get_rel_name(relid)),
				errhint("Use toms.unprotect() (toms_admin) first, or toms.request_deletion() to delete a tenant's data."));
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
			protected_rangevar(obj->pubtable->relation, NULL) && !toms_guard_is_admin())
			TOMS_REFUSE(errmsg("cannot publish protected table \"%s\"", obj->pubtable->relation->relname),
						errhint("Logical replication ships every tenant's rows: only toms_admin may publish a protected table."));
	}
}

/* The tenant, subject and sealed columns of a protected table. */
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

			/* to a protected parent: guard_partition.c checks it */
			if (protected_rangevar(pc->name, NULL) && !protected_rangevar(stmt->relation, NULL))
				TOMS_REFUSE(errmsg("cannot attach protected table \"%s\" as a partition",
								   pc->name->relname),
							errhint("Rows of a partition are visible through its parent without the partition's policies."));
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
				TOMS_REFUSE(errmsg("cannot disable row level security on protected table \"%s\"",
								   relname), hint_unprotect());
				break;
			case AT_NoForceRowSecurity:
				TOMS_REFUSE(errmsg("cannot stop forcing row level security on protected table \"%s\"",
								   relname), hint_unprotect());
				break;
			case AT_DropColumn:
				if (is_guarded_column(prot, cmd->name))
					TOMS_REFUSE(errmsg("cannot drop column \"%s\" of protected table \"%s\"",
									   cmd->name, relname), hint_unprotect());
				break;
			case AT_AlterColumnType:
				if (is_guarded_column(prot, cmd->name))
					TOMS_REFUSE(errmsg("cannot change the type of column \"%s\" of protected table \"%s\"",
									   cmd->name, relname), hint_unprotect());
				toms_guard_check_retype(relid, relname, cmd->name, (ColumnDef *) cmd->def);
				break;
			case AT_ValidateConstraint:
				toms_guard_check_validate(relid, cmd->name);
				break;
			case AT_SetNotNull:
				if (!toms_guard_is_admin())
					TOMS_REFUSE(errmsg("cannot set column \"%s\" of protected table \"%s\" NOT NULL",
									   cmd->name, relname),
								errhint("Whether it holds for every row tells about other tenants' rows: add CHECK (column IS NOT NULL) NOT VALID (toms_admin may validate it)."));
				break;
			case AT_AddInherit:
				TOMS_REFUSE(errmsg("cannot add a parent table to protected table \"%s\"", relname),
							errhint("Rows of a child table are visible through its parent without the child's policies."));
				break;
			case AT_DisableTrig:
			case AT_EnableAlwaysTrig:
			case AT_EnableReplicaTrig:
				if (is_toms_name(cmd->name))
					TOMS_REFUSE(errmsg("cannot change trigger \"%s\" on protected table \"%s\"",
									   cmd->name, relname), hint_unprotect());
				break;
			case AT_DisableTrigAll:
			case AT_DisableTrigUser:
				TOMS_REFUSE(errmsg("cannot disable all triggers at once on protected table \"%s\"",
								   relname),
							errhint("Name the triggers; toms' own triggers cannot be disabled."));
				break;
			case AT_EnableRule:
			case AT_EnableAlwaysRule:
			case AT_EnableReplicaRule:
				TOMS_REFUSE(errmsg("cannot enable a rule on protected table \"%s\"", relname),
							errhint("Rules cannot be used on protected tables."));
				break;
			default:
				break;
		}
	}
}

/*
 * RENAME of a policy or trigger on a protected table: toms' own keep their
 * names, and no other takes a name reserved for toms.
 */
static void
check_rename(const RenameStmt *stmt, const char *relname)
{
	bool		policy = stmt->renameType == OBJECT_POLICY;

	if (is_toms_name(stmt->subname))
	{
		if (policy)
			TOMS_REFUSE(errmsg("cannot rename policy \"%s\" on protected table \"%s\"",
							   stmt->subname, relname), hint_unprotect());
		TOMS_REFUSE(errmsg("cannot rename trigger \"%s\" on protected table \"%s\"",
						   stmt->subname, relname), hint_unprotect());
	}
	if (is_toms_name(stmt->newname))
	{
		if (policy)
			TOMS_REFUSE(errmsg("cannot rename policy \"%s\" on protected table \"%s\" to \"%s\"",
							   stmt->subname, relname, stmt->newname),
						errhint("Policy names starting with toms_ are reserved for toms."));
		TOMS_REFUSE(errmsg("cannot rename trigger \"%s\" on protected table \"%s\" to \"%s\"",
						   stmt->subname, relname, stmt->newname),
					errhint("Trigger names starting with toms_ are reserved for toms."));
	}
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
 * Before DROP EXTENSION toms and ALTER EXTENSION toms UPDATE: toms' workers
 * in this database lock toms' tables in their own order, and one in the
 * middle of a batch would deadlock with the DROP or the update script (on
 * Citus, whose deadlock detector then cancels the update on every node).
 * Stop them (a batch is a transaction: it is done again, or its records go
 * to the server log) and keep new ones out until the statement commits,
 * before it locks anything.
 */
static void
quiesce_workers(void)
{
	if (!superuser())
		return;					/* cannot signal them; PostgreSQL sorts it out */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
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

/* Does the schema hold a protected table? */
static bool
schema_has_protected(const char *nspname)
{
	Oid			nsp = get_namespace_oid(nspname, true);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(nsp))
		return false;
	rel = table_open(RelationRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_class_relnamespace, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(nsp));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
		found = toms_protected(((Form_pg_class) GETSTRUCT(tup))->oid) != NULL;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static int
hint_interpose(void)
{
	return errhint("Another object could take its place and see every query meant for it: only toms_admin may do this.");
}

/*
 * Renaming or moving a protected table (or its schema) lets the owner put
 * a look-alike view in its place; an inheritance child adds rows to the
 * parent's results past the child's (missing) protection.
 */
static void
check_interpose(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;

				if ((stmt->renameType == OBJECT_TABLE || stmt->renameType == OBJECT_VIEW ||
					 stmt->renameType == OBJECT_MATVIEW || stmt->renameType == OBJECT_FOREIGN_TABLE) &&
					protected_rangevar(stmt->relation, NULL) && !toms_guard_is_admin())
					TOMS_REFUSE(errmsg("cannot rename protected table \"%s\"", stmt->relation->relname),
								hint_interpose());
				if (stmt->renameType == OBJECT_SCHEMA && schema_has_protected(stmt->subname) &&
					!toms_guard_is_admin())
					TOMS_REFUSE(errmsg("cannot rename schema \"%s\", which holds protected tables", stmt->subname),
								hint_interpose());
			}
			break;
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) parsetree;

				if (stmt->relation && protected_rangevar(stmt->relation, NULL) && !toms_guard_is_admin())
					TOMS_REFUSE(errmsg("cannot move protected table \"%s\" to another schema",
									   stmt->relation->relname),
								hint_interpose());
			}
			break;
		case T_CreateStmt:
			{
				CreateStmt *stmt = (CreateStmt *) parsetree;
				ListCell   *lc;

				if (stmt->partbound != NULL)
					break;		/* a partition: protect() covers it */
				foreach(lc, stmt->inhRelations)
					if (protected_rangevar(lfirst(lc), NULL))
						TOMS_REFUSE(errmsg("cannot create a table inheriting from protected table \"%s\"",
										   ((RangeVar *) lfirst(lc))->relname),
									errhint("A child's rows appear in the parent's results without the child being protected; use partitioning."));
			}
			break;
		case T_AlterTableStmt:
			{
				ListCell   *lc;

				foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
				{
					AlterTableCmd *cmd = lfirst(lc);

					if (cmd->subtype == AT_AddInherit &&
						protected_rangevar((RangeVar *) cmd->def, NULL))
						TOMS_REFUSE(errmsg("cannot make a table inherit from protected table \"%s\"",
										   ((RangeVar *) cmd->def)->relname),
									errhint("A child's rows appear in the parent's results without the child being protected; use partitioning."));
				}
			}
			break;
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *stmt = (CreateTableAsStmt *) parsetree;

				if (stmt->objtype == OBJECT_MATVIEW && !stmt->into->skipData)
					matview_level = utility_level;
			}
			break;
		case T_RefreshMatViewStmt:
			matview_level = utility_level;
			break;
		default:
			break;
	}
}

static void
check_utility(Node *parsetree)
{
	check_interpose(parsetree);

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
						TOMS_REFUSE(errmsg("cannot truncate protected table \"%s\"", rv->relname),
									errhint("TRUNCATE bypasses row level security; use toms.request_deletion() to delete a tenant's data."));
					}
				}
				toms_guard_check_truncate((TruncateStmt *) parsetree);
			}
			break;
		case T_AlterTableStmt:
			check_alter_table((AlterTableStmt *) parsetree);
			break;
		case T_AlterDomainStmt:
			toms_guard_check_alter_domain((AlterDomainStmt *) parsetree);
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
					 * missing one, checked against its canonical form --
					 * not the marker that turns read records off on Citus'
					 * shards (citus_protected.c), which only toms sets.
					 */
					if (superuser() &&
						!OidIsValid(get_relation_policy_oid(relid, stmt->policy_name, true)) &&
						(strcmp(stmt->policy_name, "toms_tenant") == 0 || !stmt->permissive) &&
						strcmp(stmt->policy_name, TOMS_UNAUDITED_POLICY) != 0)
					{
						if (stmt->permissive)
							restored_policy_relid = relid;
						break;
					}
					TOMS_REFUSE(errmsg("cannot create policy \"%s\" on protected table \"%s\"",
									   stmt->policy_name, stmt->table->relname),
								errhint("Policy names starting with toms_ are reserved for toms."));
				}
				if (stmt->permissive)
					TOMS_REFUSE(errmsg("cannot create a permissive policy on protected table \"%s\"",
									   stmt->table->relname),
								errhint("A permissive policy widens the tenant filter; restrictive policies are allowed."));
			}
			break;
		case T_AlterPolicyStmt:
			{
				AlterPolicyStmt *stmt = (AlterPolicyStmt *) parsetree;

				if (protected_rangevar(stmt->table, NULL) && is_toms_name(stmt->policy_name))
					TOMS_REFUSE(errmsg("cannot alter policy \"%s\" on protected table \"%s\"",
									   stmt->policy_name, stmt->table->relname),
								hint_unprotect());
			}
			break;
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;
				const TomsProtected *prot;

				if (stmt->renameType != OBJECT_POLICY &&
					stmt->renameType != OBJECT_TRIGGER &&
					stmt->renameType != OBJECT_COLUMN)
					break;
				prot = protected_rangevar(stmt->relation, NULL);
				if (prot == NULL)
					break;
				if (stmt->renameType != OBJECT_COLUMN)
					check_rename(stmt, stmt->relation->relname);
				else if (is_guarded_column(prot, stmt->subname))
					TOMS_REFUSE(errmsg("cannot rename column \"%s\" of protected table \"%s\"",
									   stmt->subname, stmt->relation->relname),
								hint_unprotect());
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
					TOMS_REFUSE(errmsg("cannot create trigger \"%s\" on protected table \"%s\"",
									   stmt->trigname, stmt->relation->relname),
								errhint("Trigger names starting with toms_ are reserved for toms."));
				if (!toms_guard_is_admin())
					TOMS_REFUSE(errmsg("cannot create a trigger on protected table \"%s\"",
									   stmt->relation->relname),
								errhint("A trigger sees every tenant's rows: only toms_admin may add one."));
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

						/* Citus replacing it (issue 15): citus_convert.c */
						if (OidIsValid(relid) && toms_protected(relid) &&
							!toms_citus_replacing(relid))
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
								 errhint("Call toms.unprotect() for each table in toms.protected_tables first."),
								 toms_audit_refused()));
					quiesce_workers();
					dropping_level = utility_level;
					toms_guard_self_dropping(true);
				}
			}
			break;
		case T_RuleStmt:
			{
				RuleStmt   *stmt = (RuleStmt *) parsetree;

				if (protected_rangevar(stmt->relation, NULL))
					TOMS_REFUSE(errmsg("cannot create a rule on protected table \"%s\"",
									   stmt->relation->relname),
								errhint("A rule sees every tenant's rows."));
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
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
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
				 errhint("Only the policy created by toms.protect() may be restored under this name."),
				 toms_audit_refused()));
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
	/* toms.context_scope = transaction refuses a session-level SET */
	toms_context_check_scope(vs->is_local, ExtractSetVariableArgs(vs));
}

/* CREATE or ALTER EXTENSION toms: its functions' fingerprints follow. */
static bool
is_toms_extension_stmt(Node *parsetree)
{
	if (IsA(parsetree, CreateExtensionStmt))
		return strcmp(((CreateExtensionStmt *) parsetree)->extname, "toms") == 0;
	if (IsA(parsetree, AlterExtensionStmt))
		return strcmp(((AlterExtensionStmt *) parsetree)->extname, "toms") == 0;
	return false;
}

/*
 * toms' subject policy is restrictive wherever it is created.  Citus
 * (issue 15) re-creates a table's policies on its shards from pg_policy
 * without "AS RESTRICTIVE": as a permissive policy, toms_subject would be
 * OR-ed with the tenant filter and show every tenant's rows whose subject
 * is not hidden.  toms never makes it permissive, so none is.
 */
static void
keep_subject_policy_restrictive(Node *parsetree)
{
	if (parsetree && IsA(parsetree, CreatePolicyStmt) &&
		strcmp(((CreatePolicyStmt *) parsetree)->policy_name, "toms_subject") == 0)
		((CreatePolicyStmt *) parsetree)->permissive = false;
}

/* ProcessUtility (hooks.c), before the statement runs: refuse what weakens the protection. */
void
toms_guard_utility_before(PlannedStmt *pstmt)
{
	keep_subject_policy_restrictive(pstmt->utilityStmt);
	utility_level++;
	restored_policy_relid = InvalidOid;
	if (is_toms_extension_stmt(pstmt->utilityStmt))
		extension_level = utility_level;
	/* also where Citus forwards the update to a worker (issue 15) */
	if (IsA(pstmt->utilityStmt, AlterExtensionStmt) && is_toms_extension_stmt(pstmt->utilityStmt) &&
		IsTransactionState() && toms_extension_exists())
		quiesce_workers();
	if (IsTransactionState())
		toms_guard_audit_ddl(pstmt->utilityStmt);
	hide_context_value(pstmt->utilityStmt);
	if (!toms_ddl_in_progress() && toms_extension_exists())
		toms_citus_convert_stmt(pstmt->utilityStmt);	/* Citus (issue 15): citus_convert.c */
	if (!toms_ddl_in_progress() && toms_extension_exists() &&
		!toms_citus_forwarded_stmt(pstmt->utilityStmt))	/* Citus (issue 15): citus_guard.c */
	{
		toms_guard_self_utility(pstmt->utilityStmt);
		check_utility(pstmt->utilityStmt);
	}
}

/* A statement's level ends, however it ended. */
static void
leave_level(void)
{
	if (matview_level >= utility_level)
		matview_level = 0;
	if (extension_level >= utility_level)
		extension_level = 0;
	if (dropping_level >= utility_level && dropping_level > 0)
	{
		dropping_level = 0;
		toms_guard_self_dropping(false);
	}
	if (utility_level > 0)
		utility_level--;
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
	if (extension_level == utility_level && extension_level > 0)
	{
		extension_level = 0;
		toms_guard_record_fingerprints();
	}
	leave_level();
}

/* ProcessUtility (hooks.c), the statement failed. */
void
toms_guard_utility_failed(void)
{
	leave_level();
}

/*
 * ExecutorStart (hooks.c), before the tenant checks: direct writes of
 * toms' tables (guard_self.c), and a materialized view being filled from
 * a protected table -- it would keep a copy of the rows outside row
 * security (by a superuser: every tenant's), readable by whoever it is
 * granted to; a plain view over one is checked at execution instead.
 */
void
toms_guard_executor_start(QueryDesc *queryDesc)
{
	ListCell   *lc;

	toms_guard_self_executor(queryDesc);
	if (matview_level == 0 || matview_level > utility_level)
		return;
	foreach(lc, queryDesc->plannedstmt->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_RELATION && toms_protected(rte->relid))
		{
			toms_audit_denied("materialized view of protected table", NULL, rte->relid, NULL);
			TOMS_REFUSE_RECORDED(errmsg("cannot fill a materialized view from protected table \"%s\"",
							   get_rel_name(rte->relid)),
						errhint("A materialized view keeps the rows outside row security; use a view, or a protected table."));
		}
	}
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
		{
			if (!toms_citus_replaced(objectId))
				refuse_drop_table(objectId);
			return;
		}
		name = get_attname(objectId, subId, true);
		if (is_guarded_column(prot, name))
			TOMS_REFUSE(errmsg("cannot drop column \"%s\" of protected table \"%s\"",
							   name, get_rel_name(objectId)), hint_unprotect());
	}
	else if (classId == PolicyRelationId)
	{
		if (toms_guard_policy_info(objectId, &relid, &name) && is_toms_name(name) &&
			toms_protected(relid) && !toms_citus_replaced(relid))
			TOMS_REFUSE(errmsg("cannot drop policy \"%s\" on protected table \"%s\"",
							   name, get_rel_name(relid)), hint_unprotect());
	}
	else if (classId == TriggerRelationId)
	{
		if (toms_guard_trigger_info(objectId, &relid, &name) && is_toms_name(name) &&
			toms_protected(relid) && !toms_guard_partition_clone(objectId) &&
			!toms_citus_replaced(relid))
			TOMS_REFUSE(errmsg("cannot drop trigger \"%s\" on protected table \"%s\"",
							   name, get_rel_name(relid)), hint_unprotect());
	}
}

/* object_access_hook (hooks.c, after the other libraries' hooks). */
void
toms_guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						 int subId, void *arg)
{
	/* the other kinds (a function's execution, a schema search) come often */
	if (access != OAT_POST_CREATE && access != OAT_POST_ALTER && access != OAT_DROP)
		return;
	if (toms_ddl_in_progress())
		return;
	if (classId == ProcedureRelationId && toms_extension_exists())
		toms_guard_self_function(access, objectId);
	if (toms_citus_forwarded() || toms_citus_copying_marker(classId))	/* Citus (issue 15): citus_guard.c */
		return;
	if (access == OAT_DROP &&
		(classId == RelationRelationId || classId == PolicyRelationId ||
		 classId == TriggerRelationId) && toms_extension_exists())
		check_drop(classId, objectId, subId);
	else if (((access == OAT_POST_CREATE &&
			   (classId == RelationRelationId || classId == ConstraintRelationId ||
				classId == AttrDefaultRelationId || classId == StatisticExtRelationId)) ||
			  ((access == OAT_POST_CREATE || access == OAT_POST_ALTER) && classId == PolicyRelationId)) &&
			 toms_extension_exists() && !toms_guard_is_admin())
	{
		/* what it evaluates first (the more telling refusal), then its keys */
		toms_guard_check_created(classId, objectId, subId);
		if (access == OAT_POST_CREATE && classId == ConstraintRelationId)
			toms_guard_check_constraint_keys(objectId);
		else if (access == OAT_POST_CREATE && classId == RelationRelationId && subId == 0)
			toms_guard_check_unique_index(objectId);
	}
	else if ((access == OAT_POST_CREATE || access == OAT_POST_ALTER) &&
			 classId == ProcedureRelationId && toms_extension_exists() && !toms_guard_is_admin())
		toms_guard_check_function_change(objectId);
}

