/*-------------------------------------------------------------------------
 *
 * guard_self.c
 *	  toms' own objects are not anyone's to rewrite quietly, superusers
 *	  included (docs/tenancy.md, "toms' own objects"):
 *
 *	  - toms' functions (those in its schema or members of the extension)
 *	    cannot be created, replaced, altered or dropped outside toms'
 *	    extension scripts (CREATE/ALTER EXTENSION) and DROP EXTENSION
 *	    (object-access hook);
 *	  - toms' tables cannot be written by INSERT/UPDATE/DELETE/MERGE
 *	    except from toms' own functions, toms' workers and the extension
 *	    scripts (ExecutorStart); a superuser who must repair one sets
 *	    toms.allow_catalog_edits, and every such statement is audited, as
 *	    is COPY ... FROM into one (pg_restore loads them so);
 *	  - nor altered, renamed, moved, truncated, or given triggers, rules
 *	    or policies, nor taken out of the extension (ProcessUtility);
 *	  - the audit trail (toms.audit_log, toms.incidents) is append-only
 *	    for everyone, with its own trigger against writes; its DDL is
 *	    refused here too;
 *	  - where PostgreSQL has no hook (a superuser's UPDATE of pg_proc
 *	    itself), the functions' fingerprints, taken when CREATE or ALTER
 *	    EXTENSION toms ran, are compared by toms.check_functions() (called
 *	    by toms.assess()), which raises an incident;
 *	    toms' lifecycle worker does the same on every round.
 *	  Refusals are recorded as denials in the audit trail.
 *
 *	  "Inside a toms function" is known from fmgr_hook: hooks.c asks
 *	  toms_guard_needs_fmgr() for every function, and it claims those of
 *	  toms' that may write (volatile, or not parallel safe), so their
 *	  calls are counted here.  Called by guard.c and hooks.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "toms.h"

PG_FUNCTION_INFO_V1(toms_check_functions);

/* toms.allow_catalog_edits: a superuser's audited way to repair a table */
static bool allow_catalog_edits = false;

/* the functions fmgr_hook is running, innermost last: toms' own or not */
#define SELF_MAX_DEPTH 1024
static int	fmgr_depth = 0;
static bool fmgr_mine[SELF_MAX_DEPTH];
static int	toms_calls = 0;

/* set while toms writes its fingerprints (utility_after) */
static bool writing_fingerprints = false;

/* set by guard.c while DROP EXTENSION toms runs */
static bool dropping_extension = false;

/* toms' fingerprint of a function: what defines what it does */
#define FINGERPRINT_SQL \
	"pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.concat_ws(" \
	"pg_catalog.chr(31), p.proname, p.pronamespace, p.proowner, p.prolang, p.prokind," \
	" p.prosecdef, p.proleakproof, p.proisstrict, p.provolatile, p.proargtypes," \
	" p.prorettype, p.prosrc, p.probin, p.prosqlbody, p.proconfig), 'UTF8')), 'hex')"

#define TOMS_FUNCTIONS_SQL \
	"SELECT p.oid, p.oid::pg_catalog.regprocedure::text AS signature, " FINGERPRINT_SQL " AS fingerprint" \
	"  FROM pg_catalog.pg_proc p" \
	" WHERE p.pronamespace = %u" \
	"    OR p.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d" \
	"                  WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass" \
	"                    AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass" \
	"                    AND d.refobjid = %u AND d.deptype = 'e')"

static Oid
toms_extension_oid(void)
{
	return get_extension_oid("toms", true);
}

/*
 * A function's schema, read with SnapshotSelf: in a post-create hook the
 * new row is not yet visible to the catalog cache.
 */
static Oid
func_namespace_self(Oid funcid)
{
	Relation	rel = table_open(ProcedureRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	ScanKeyInit(&key, Anum_pg_proc_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(funcid));
	scan = systable_beginscan(rel, ProcedureOidIndexId, true, SnapshotSelf, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		nsp = ((Form_pg_proc) GETSTRUCT(tup))->pronamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/* Is funcid one of toms' functions (its schema, or a member of toms)? */
static bool
is_toms_function(Oid funcid)
{
	Oid			nsp = toms_schema_oid();
	Oid			ext;

	if (!OidIsValid(nsp))
		return false;
	if (get_func_namespace(funcid) == nsp || func_namespace_self(funcid) == nsp)
		return true;
	ext = getExtensionOfObject(ProcedureRelationId, funcid);
	return OidIsValid(ext) && ext == toms_extension_oid();
}

/* May toms' own objects change now? */
static bool
self_change_allowed(void)
{
	return creating_extension || toms_ddl_in_progress() || writing_fingerprints ||
		dropping_extension || IsBinaryUpgrade;
}

/* guard.c: DROP EXTENSION toms begins (true) or ends (false). */
void
toms_guard_self_dropping(bool on)
{
	dropping_extension = on;
}

/* ----------------------------------------------------------------
 * fmgr_hook: which of toms' functions are running
 * ----------------------------------------------------------------
 */
bool
toms_guard_needs_fmgr(Oid fn_oid)
{
	HeapTuple	tup;
	bool		result = false;
	Oid			nsp;

	/* built-in functions (most calls, at every executor start) are not toms' */
	if (fn_oid < FirstNormalObjectId || !IsTransactionState())
		return false;
	nsp = toms_schema_oid();
	if (!OidIsValid(nsp))
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		/*
		 * A function PARALLEL SAFE or RESTRICTED must not write (PostgreSQL's
		 * rule), nor can a STABLE one in SQL or PL/pgSQL; a STABLE C
		 * function of toms may (a tenant key made on first use), so it is
		 * counted unless parallel safe or restricted.  toms.current_tenant(),
		 * called per row by every policy, keeps its fast path.
		 */
		result = proc->pronamespace == nsp &&
			(proc->provolatile == PROVOLATILE_VOLATILE || proc->proparallel == PROPARALLEL_UNSAFE);

		/*
		 * set_tenant(), enter_tenant() and clear_tenant() change only the
		 * setting and write no table (a refusal's record goes through the
		 * audit queue); one of them opens most transactions of a pooled
		 * application, and a counted function is called through the fmgr
		 * hook's wrapper, which costs as much again.
		 */
		if (result && proc->prolang == ClanguageId &&
			(strcmp(NameStr(proc->proname), "set_tenant") == 0 ||
			 strcmp(NameStr(proc->proname), "enter_tenant") == 0 ||
			 strcmp(NameStr(proc->proname), "clear_tenant") == 0))
			result = false;
		ReleaseSysCache(tup);
	}
	return result;
}

/*
 * The last function asked about, for this transaction: unseal() and
 * blind_index() are called once per row.  (A function's schema does not
 * change under it: moving a function into or out of toms' schema is
 * refused.)
 */
static Oid	last_fn = InvalidOid;
static bool last_mine = false;

void
toms_guard_fmgr(FmgrHookEventType event, FmgrInfo *flinfo)
{
	if (event == FHET_START)
	{
		bool		mine;

		if (flinfo->fn_oid != last_fn || !OidIsValid(last_fn))
		{
			last_mine = IsTransactionState() && OidIsValid(toms_schema_oid()) &&
				get_func_namespace(flinfo->fn_oid) == toms_schema_oid();
			last_fn = flinfo->fn_oid;
		}
		mine = last_mine;

		if (fmgr_depth < SELF_MAX_DEPTH)
			fmgr_mine[fmgr_depth] = mine;
		fmgr_depth++;
		if (mine)
			toms_calls++;
		return;
	}
	if (fmgr_depth > 0)
	{
		fmgr_depth--;			/* FHET_END, FHET_ABORT */
		if (fmgr_depth < SELF_MAX_DEPTH && fmgr_mine[fmgr_depth] && toms_calls > 0)
			toms_calls--;
	}
}

static void
self_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		fmgr_depth = 0;
		toms_calls = 0;
		last_fn = InvalidOid;
		writing_fingerprints = false;
		dropping_extension = false;
	}
}

/* ----------------------------------------------------------------
 * toms' functions (object-access hook)
 * ----------------------------------------------------------------
 */
void
toms_guard_self_function(ObjectAccessType access, Oid funcid)
{
	if (self_change_allowed() || !is_toms_function(funcid))
		return;
	if (access == OAT_POST_CREATE)
		CommandCounterIncrement();	/* a new row: let the name be found; we refuse anyway */
	toms_audit_denied("change of a toms function", NULL, InvalidOid, format_procedure(funcid));
	if (access == OAT_DROP)
		TOMS_REFUSE_RECORDED(errmsg("cannot drop function %s of toms", format_procedure(funcid)),
					errhint("toms' functions change only with ALTER EXTENSION toms UPDATE or DROP EXTENSION toms."));
	TOMS_REFUSE(errmsg("cannot create, replace or alter function %s in toms' schema", format_procedure(funcid)),
				errhint("toms' functions change only with ALTER EXTENSION toms UPDATE."));
}

/* ----------------------------------------------------------------
 * toms' tables
 * ----------------------------------------------------------------
 */

/*
 * A table of toms whose writes this file guards.  Not the audit trail (it
 * has its own guard), nor password_history: the password hook writes it
 * from CREATE/ALTER ROLE, with no toms function running.
 */
static bool
is_toms_table(Oid relid)
{
	Oid			nsp = toms_schema_oid();
	char	   *name;

	if (!OidIsValid(relid) || !OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		return false;
	name = get_rel_name(relid);
	return name != NULL && strcmp(name, "audit_log") != 0 && strcmp(name, "incidents") != 0 &&
		strcmp(name, "incident_closures") != 0 && strcmp(name, "password_history") != 0;
}

static void
refuse_table_ddl(Oid relid)
{
	toms_audit_denied("DDL on a toms table", NULL, relid, NULL);
	TOMS_REFUSE_RECORDED(errmsg("cannot change table \"%s\" of toms", get_rel_name(relid)),
				errhint("toms' tables change only with ALTER EXTENSION toms UPDATE."));
}

static void
check_table_rangevar(RangeVar *rv)
{
	Oid			relid;

	if (rv == NULL)
		return;
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (is_toms_table(relid))
		refuse_table_ddl(relid);
}

/*
 * CREATE INDEX on, or DROP INDEX of an index of, any table in toms' schema
 * (its indexes are no extension members, so PostgreSQL lets a superuser
 * drop them): audit_log_seq keeps seq unique and its verification fast,
 * and an index of one's own could be unique on what toms never made so.
 */
static void
check_index_rel(Oid relid)
{
	Oid			nsp = toms_schema_oid();
	char		relkind;

	if (!OidIsValid(relid) || !OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		return;
	relkind = get_rel_relkind(relid);
	if (relkind == RELKIND_INDEX || relkind == RELKIND_PARTITIONED_INDEX)
		relid = IndexGetRelation(relid, false);
	refuse_table_ddl(relid);
}

/* ProcessUtility: DDL on toms' tables, and toms' extension membership. */
void
toms_guard_self_utility(Node *parsetree)
{
	ListCell   *lc;

	/*
	 * toms' own superuser-only functions change its tables' structure
	 * (toms.citus_setup: reference tables on Citus); nothing else does.
	 */
	if (self_change_allowed() || !toms_extension_exists() || (toms_calls > 0 && superuser()))
		return;
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			check_table_rangevar(((AlterTableStmt *) parsetree)->relation);
			break;
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;

				/* toms finds itself by its schema's name */
				if (stmt->renameType == OBJECT_SCHEMA && stmt->subname &&
					strcmp(stmt->subname, TOMS_SCHEMA) == 0)
				{
					toms_audit_denied("DDL on toms' schema", NULL, InvalidOid, NULL);
					TOMS_REFUSE_RECORDED(errmsg("cannot rename schema \"%s\" of toms", stmt->subname),
								errhint("toms' objects change only with ALTER EXTENSION toms UPDATE."));
				}
				check_table_rangevar(stmt->relation);
			}
			break;
		case T_AlterObjectSchemaStmt:
			check_table_rangevar(((AlterObjectSchemaStmt *) parsetree)->relation);
			break;
		case T_CreateTrigStmt:
			check_table_rangevar(((CreateTrigStmt *) parsetree)->relation);
			break;
		case T_IndexStmt:
			check_index_rel(RangeVarGetRelid(((IndexStmt *) parsetree)->relation, NoLock, true));
			break;
		case T_DropStmt:
			if (((DropStmt *) parsetree)->removeType == OBJECT_INDEX)
				foreach(lc, ((DropStmt *) parsetree)->objects)
					check_index_rel(RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)),
													 NoLock, true));
			break;
		case T_RuleStmt:
			check_table_rangevar(((RuleStmt *) parsetree)->relation);
			break;
		case T_CreatePolicyStmt:
			check_table_rangevar(((CreatePolicyStmt *) parsetree)->table);
			break;
		case T_AlterPolicyStmt:
			check_table_rangevar(((AlterPolicyStmt *) parsetree)->table);
			break;
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) parsetree)->relations)
				check_table_rangevar(lfirst(lc));
			break;
		case T_CopyStmt:
			{
				/*
				 * COPY ... FROM is how pg_restore loads toms' configuration
				 * tables: not refused, but not quiet either.
				 */
				CopyStmt   *stmt = (CopyStmt *) parsetree;
				Oid			relid;

				if (!stmt->is_from || stmt->relation == NULL)
					break;
				relid = RangeVarGetRelid(stmt->relation, NoLock, true);
				if (is_toms_table(relid))
					toms_audit_admin_rel("direct load of a toms table", NULL, relid, NULL);
			}
			break;
		case T_AlterExtensionContentsStmt:
			if (strcmp(((AlterExtensionContentsStmt *) parsetree)->extname, "toms") == 0)
			{
				toms_audit_denied("change of toms' extension members", NULL, InvalidOid, NULL);
				TOMS_REFUSE_RECORDED(errmsg("cannot add objects to or remove objects from extension toms"),
							errhint("toms' objects change only with ALTER EXTENSION toms UPDATE."));
			}
			break;
		default:
			break;
	}
}

/*
 * ExecutorStart: INSERT, UPDATE, DELETE or MERGE of one of toms' tables
 * outside toms' functions, workers and scripts.
 */
void
toms_guard_self_executor(QueryDesc *queryDesc)
{
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	ListCell   *lc;

	if (pstmt->commandType == CMD_SELECT && !pstmt->hasModifyingCTE)
		return;
	/*
	 * Citus writes the copies of toms' reference tables on every node from
	 * its own sessions (citus_guard.c: superuser or toms_admin; the act
	 * itself was a toms function on the coordinator).
	 */
	if (self_change_allowed() || toms_calls > 0 || IsBackgroundWorker ||
		!toms_extension_exists() || toms_citus_forwarded())
		return;
	foreach(lc, pstmt->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind != RTE_RELATION ||
			(rte->requiredPerms & (ACL_INSERT | ACL_UPDATE | ACL_DELETE)) == 0 ||
			!is_toms_table(rte->relid))
			continue;
		/* without the privilege, PostgreSQL's own refusal comes first */
		if (pg_class_aclmask(rte->relid, GetUserId(),
							 rte->requiredPerms & (ACL_INSERT | ACL_UPDATE | ACL_DELETE),
							 ACLMASK_ANY) == 0)
			continue;
		if (allow_catalog_edits && superuser())
		{
			toms_audit_admin_rel("direct edit of a toms table", NULL, rte->relid, NULL);
			continue;
		}
		toms_audit_denied("direct edit of a toms table", NULL, rte->relid, NULL);
		TOMS_REFUSE_RECORDED(errmsg("cannot write table \"%s\" of toms directly", get_rel_name(rte->relid)),
					errhint("Use toms' functions; a superuser repairing the table sets toms.allow_catalog_edits, and the edit is audited."));
	}
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

		return name && (strcmp(name, "audit_log") == 0 || strcmp(name, "incidents") == 0 ||
						strcmp(name, "incident_closures") == 0);
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
			 errdetail("The audit trail and its incidents cannot be altered, renamed, truncated or have their triggers and rules changed, by any role."),
			 toms_audit_refused()));
}

/* ProcessUtility (guard.c): DDL on the audit trail, by anyone. */
void
toms_guard_audit_ddl(Node *parsetree)
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

/* ----------------------------------------------------------------
 * Fingerprints of toms' functions
 * ----------------------------------------------------------------
 */

/*
 * After CREATE or ALTER EXTENSION toms: what the scripts created is what
 * toms.check_functions() compares with later.  (A version without the
 * table, 0.1.0, has none.)
 */
void
toms_guard_record_fingerprints(void)
{
	Oid			nsp = get_namespace_oid(TOMS_SCHEMA, true);
	Oid			ext = toms_extension_oid();
	bool		save = writing_fingerprints;

	if (!OidIsValid(nsp) || !OidIsValid(ext) ||
		!OidIsValid(get_relname_relid("function_fingerprints", nsp)))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	writing_fingerprints = true;
	PG_TRY();
	{
		if (SPI_execute("DELETE FROM " TOMS_SCHEMA ".function_fingerprints", false, 0) != SPI_OK_DELETE ||
			SPI_execute(psprintf("INSERT INTO " TOMS_SCHEMA ".function_fingerprints (fn, signature, fingerprint) "
								 TOMS_FUNCTIONS_SQL, nsp, ext), false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record the fingerprints of toms' functions");
	}
	PG_FINALLY();
	{
		writing_fingerprints = save;
	}
	PG_END_TRY();
	SPI_finish();
}

/*
 * Compare toms' functions with their fingerprints; each difference goes
 * to store (if any), and one incident is raised if there is any.  Runs
 * its own SPI connection.
 */
static uint64
compare_functions(Tuplestorestate *store, TupleDesc desc)
{
	Oid			nsp = toms_schema_oid();
	Oid			ext = toms_extension_oid();
	uint64		i,
				n;

	if (!OidIsValid(nsp) || !OidIsValid(ext) ||
		!OidIsValid(get_relname_relid("function_fingerprints", nsp)))
		return 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(psprintf("WITH now AS (" TOMS_FUNCTIONS_SQL ")"
							 " SELECT coalesce(n.signature, f.signature),"
							 "        CASE WHEN f.fn IS NULL THEN 'added' WHEN n.oid IS NULL THEN 'dropped'"
							 "             ELSE 'changed' END"
							 "   FROM now n FULL JOIN " TOMS_SCHEMA ".function_fingerprints f ON f.fn = n.oid"
							 "  WHERE n.fingerprint IS DISTINCT FROM f.fingerprint"
							 "  ORDER BY 1", nsp, ext), true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not compare toms' functions with their fingerprints");
	n = SPI_processed;
	for (i = 0; store != NULL && i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		char	   *sig = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		char	   *what = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		values[0] = CStringGetTextDatum(sig ? sig : "?");
		values[1] = CStringGetTextDatum(what ? what : "?");
		tuplestore_putvalues(store, desc, values, nulls);
	}
	SPI_finish();
	if (n > 0)
		toms_incident("toms_function_changed", "high", NULL,
					  psprintf(UINT64_FORMAT " of toms' functions differ from what its extension scripts created", n));
	return n;
}

/*
 * toms.check_functions(): toms' functions that differ from what its
 * scripts created (added, dropped, changed); one incident if any.
 */
Datum
toms_check_functions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	(void) compare_functions(rsinfo->setResult, rsinfo->setDesc);
	PG_RETURN_VOID();
}

/*
 * The same, from a background worker (lifecycle_worker.c, every round
 * of its database): not relying on any SQL function of toms, which a
 * superuser's edit of pg_proc could have replaced.
 */
void
toms_guard_verify_functions(void)
{
	(void) compare_functions(NULL, NULL);
}

/* Settings and the transaction callback (from _PG_init). */
void
toms_guard_init(void)
{
	DefineCustomBoolVariable("toms.allow_catalog_edits",
							 gettext_noop("Let a superuser write toms' tables directly (each statement is audited)."),
							 NULL, &allow_catalog_edits, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	RegisterXactCallback(self_xact_callback, NULL);
}
