/*-------------------------------------------------------------------------
 *
 * tenant_exec.c
 *	  Tenant separation at execution time, called from hooks.c:
 *
 *	  - ExecutorStart: fail closed -- a statement that touches a protected
 *	    table under row security needs a verified context even where the
 *	    policy would not be evaluated (an empty table still raises "no
 *	    tenant context"); a protected table reached through a view or
 *	    SECURITY DEFINER function whose owner bypasses row security, and a
 *	    cursor WITH HOLD over one, are refused;
 *	  - ExecutorRun: a cursor stays with the tenant it was opened under;
 *	  - fmgr_hook: the stack of SECURITY DEFINER functions being run;
 *	  - ExecutorCheckPerms: a foreign key's check over a protected table's
 *	    existing rows takes PostgreSQL's own per-row path.
 *
 *	  The filter itself is the catalog policy toms.protect() creates
 *	  (protect.c); guard.c keeps anyone from weakening it.
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

/*
 * Statements under the tenant filter that have started and not ended, with
 * the tenant they started under: a cursor is read by later ExecutorRun
 * calls, and its scans keep the tenant they began with (an index scan
 * computes toms.current_tenant() once), so reading it after the context
 * changed to another tenant is refused.  Entries live in the statement's
 * memory and unlink themselves when it goes.
 */
typedef struct TenantStmt
{
	QueryDesc  *qd;
	uint64		version;		/* toms_context_version when last checked */
	char		tenant[TOMS_MAX_TENANT_LEN + 1];	/* the tenant it started under */
	Oid			relid;			/* a protected table it reads (for the audit) */
	MemoryContextCallback cb;
	struct TenantStmt *next;
} TenantStmt;

static TenantStmt *tenant_stmts = NULL;

/*
 * SECURITY DEFINER functions being run, innermost last (fmgr_hook): inside
 * one owned by a superuser or BYPASSRLS role, PostgreSQL applies no row
 * security, so such a function would hand a caller who is subject to the
 * tenant filter every tenant's rows.  toms' own functions are exempt.
 * definer_eff[d] is the kind in force at depth d: a function that only
 * has SET clauses changes no user and inherits the kind of its caller.
 */
typedef enum DefinerKind
{
	DEFINER_NONE = 0,			/* outside any SECURITY DEFINER function */
	DEFINER_INHERIT,			/* SET clauses only: no user change */
	DEFINER_FOREIGN,			/* a SECURITY DEFINER function not of toms */
	DEFINER_TOMS				/* one of toms' own */
} DefinerKind;

#define DEFINER_MAX_DEPTH 1024
static int	definer_depth = 0;
static uint8 definer_eff[DEFINER_MAX_DEPTH];

static DefinerKind
definer_kind(Oid fn_oid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	DefinerKind kind = DEFINER_INHERIT;

	if (HeapTupleIsValid(tup))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		if (proc->prosecdef)
			kind = OidIsValid(toms_schema_oid()) && proc->pronamespace == toms_schema_oid() ?
				DEFINER_TOMS : DEFINER_FOREIGN;
		ReleaseSysCache(tup);
	}
	return kind;
}

static DefinerKind
definer_in_force(void)
{
	return definer_depth > 0 && definer_depth <= DEFINER_MAX_DEPTH ?
		(DefinerKind) definer_eff[definer_depth - 1] :
		definer_depth > DEFINER_MAX_DEPTH ? DEFINER_FOREIGN : DEFINER_NONE;
}

/*
 * fmgr_hook (hooks.c): keep the stack of SECURITY DEFINER functions being
 * run.  hooks.c calls the other libraries' hooks first on FHET_START (an
 * error there leaves nothing pushed) and after this on FHET_END/ABORT.
 */
void
toms_tenant_fmgr(FmgrHookEventType event, FmgrInfo *flinfo)
{
	if (event == FHET_START)
	{
		DefinerKind kind;

		/* (*private belongs to whichever hook claims it, so no caching) */
		kind = definer_kind(flinfo->fn_oid);
		if (kind == DEFINER_INHERIT)
			kind = definer_in_force();
		if (definer_depth < DEFINER_MAX_DEPTH)
			definer_eff[definer_depth] = (uint8) kind;
		definer_depth++;
		return;
	}
	if (definer_depth > 0)
		definer_depth--;		/* FHET_END, FHET_ABORT */
}

/* Nothing is left running at the end of a top-level transaction. */
static void
tenant_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		definer_depth = 0;
}

/* A statement's memory is going: forget its entry. */
static void
tenant_stmt_gone(void *arg)
{
	TenantStmt **link;

	for (link = &tenant_stmts; *link; link = &(*link)->next)
		if (*link == arg)
		{
			*link = ((TenantStmt *) arg)->next;
			break;
		}
}

/*
 * A protected table reached, by a caller under the tenant filter, through
 * a view or SECURITY DEFINER function whose owner bypasses row security:
 * it would hand out every tenant's rows.
 */
static void
refuse_privileged_view(Oid relid)
{
	toms_audit_denied("protected table reached through a privileged view", NULL, relid, NULL);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("protected table \"%s\" is reached through a view owned by a role that bypasses row security",
					get_rel_name(relid)),
			 errhint("Give the view an owner subject to row security, or make it security_invoker.")));
}

static void
refuse_privileged_definer(Oid relid)
{
	toms_audit_denied("protected table reached through a privileged SECURITY DEFINER function",
					  NULL, relid, NULL);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("protected table \"%s\" is reached through a SECURITY DEFINER function owned by a role that bypasses row security",
					get_rel_name(relid)),
			 errhint("Give the function an owner subject to row security.")));
}

/*
 * Fail closed: a statement that touches a protected table under row
 * security needs a verified context, even where the policy would never be
 * evaluated (an empty table, a constant-false filter).  Also refused here:
 * a protected table reached through a view or SECURITY DEFINER function
 * whose owner bypasses row security, and a cursor WITH HOLD over one.
 */
Oid
toms_tenant_executor_check(QueryDesc *queryDesc, int eflags, char *tenant)
{
	ListCell   *lc;
	Oid			filtered = InvalidOid;

	if (queryDesc->plannedstmt && toms_extension_exists())
	{
		foreach(lc, queryDesc->plannedstmt->rtable)
		{
			RangeTblEntry *rte = lfirst(lc);

			/*
			 * A partition the planner added under its parent (no
			 * permissions of its own) is covered by the parent's check.
			 */
			if (rte->rtekind != RTE_RELATION ||
				(rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_PARTITIONED_TABLE) ||
				rte->requiredPerms == 0)
				continue;
			if (toms_protected(rte->relid) == NULL)
				continue;
			if (check_enable_rls(rte->relid, InvalidOid, true) != RLS_ENABLED)
			{
				/*
				 * Outside row security as the owner of a SECURITY DEFINER
				 * function, called by a session that is subject to it
				 * (foreign-key checks and maintenance commands excepted).
				 */
				if (definer_in_force() == DEFINER_FOREIGN && !InNoForceRLSOperation() &&
					!InSecurityRestrictedOperation() &&
					check_enable_rls(rte->relid, GetSessionUserId(), true) == RLS_ENABLED)
					refuse_privileged_definer(rte->relid);
				continue;
			}

			/*
			 * The current user is subject to the filter, but the table is
			 * reached through a view whose owner is not (a superuser or
			 * BYPASSRLS role): the view would hand out every tenant's rows.
			 */
			if (OidIsValid(rte->checkAsUser) &&
				check_enable_rls(rte->relid, rte->checkAsUser, true) != RLS_ENABLED)
				refuse_privileged_view(rte->relid);
			filtered = rte->relid;
		}
		if (OidIsValid(filtered))
		{
			const TomsContext *ctx;

			/* a refused context is recorded as a denial on this table */
			toms_audit_denial_relation(filtered);
			ctx = toms_context(false);
			toms_audit_denial_relation(InvalidOid);

			strlcpy(tenant, ctx->tenant, TOMS_MAX_TENANT_LEN + 1);

			/*
			 * A cursor WITH HOLD outlives its transaction and with it the
			 * (SET LOCAL) tenant context it was opened under; its rows are
			 * then read from a store no hook sees, by whoever holds the
			 * connection next.
			 */
			if (ActivePortal && (ActivePortal->cursorOptions & CURSOR_OPT_HOLD) &&
				!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
			{
				toms_audit_denied("cursor WITH HOLD on a protected table", tenant,
								  filtered, NULL);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("cursor \"%s\" cannot be declared WITH HOLD: it reads protected table \"%s\"",
								ActivePortal->name, get_rel_name(filtered)),
						 errdetail("A held cursor outlives its transaction and the tenant context it was opened under."),
						 errhint("Declare the cursor without WITH HOLD and read it inside the transaction.")));
			}
		}
	}

	return filtered;
}

/*
 * ExecutorCheckPerms_hook (hooks.c): PostgreSQL's check of a new or
 * validated foreign key over a table's existing rows.
 *
 * ALTER TABLE ... ADD FOREIGN KEY and VALIDATE CONSTRAINT check the rows
 * with one LEFT JOIN query run as the current user (RI_Initial_Check),
 * which asks ExecCheckRTPerms() first, without raising, whether it may: if
 * not, PostgreSQL checks each row with the key's own lookup instead
 * (RI_FKey_check_ins), which runs as the referenced table's owner in a
 * referential-integrity operation (SECURITY_NOFORCE_RLS) -- the one place
 * PostgreSQL exempts from forced row security.  As the table owner under
 * the forced policy, the join query has no tenant context and fails
 * (Citus re-creates a shard's foreign keys as the owner after a move or
 * split); so toms answers "no" for such a check of a protected table that
 * is under the filter for the current user, and PostgreSQL falls back to
 * its per-row check.  toms exempts nothing itself: the answer only denies,
 * and only to a caller that asked not to be refused (in PostgreSQL 15
 * RI_Initial_Check alone asks so); every other statement is checked as
 * before, the join query typed by the owner included.
 */
bool
toms_tenant_check_perms(List *rangeTable, bool ereport_on_violation)
{
	ListCell   *lc;

	if (ereport_on_violation || !toms_extension_exists())
		return true;
	foreach(lc, rangeTable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_RELATION && toms_protected(rte->relid) != NULL &&
			check_enable_rls(rte->relid, InvalidOid, true) == RLS_ENABLED)
			return false;
	}
	return true;
}

/*
 * After standard_ExecutorStart: remember the tenant a statement under the
 * filter started under, for toms_tenant_executor_run().
 */
void
toms_tenant_executor_started(QueryDesc *queryDesc, int eflags, Oid filtered,
							 const char *tenant)
{
	if (OidIsValid(filtered) && queryDesc->estate && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);
		TenantStmt *ts = palloc(sizeof(TenantStmt));

		ts->qd = queryDesc;
		ts->version = toms_context_version;
		strlcpy(ts->tenant, tenant, sizeof(ts->tenant));
		ts->relid = filtered;
		ts->cb.func = tenant_stmt_gone;
		ts->cb.arg = ts;
		MemoryContextRegisterResetCallback(queryDesc->estate->es_query_cxt, &ts->cb);
		ts->next = tenant_stmts;
		tenant_stmts = ts;
		MemoryContextSwitchTo(oldcxt);
	}
}

/*
 * A statement under the tenant filter is run again (a cursor fetch) after
 * the context changed: only under the tenant it started under.
 */
void
toms_tenant_executor_run(const QueryDesc *queryDesc)
{
	TenantStmt *ts;

	for (ts = tenant_stmts; ts; ts = ts->next)
	{
		if (ts->qd != queryDesc)
			continue;
		if (ts->version != toms_context_version)
		{
			const TomsContext *ctx = toms_context(false);

			if (strcmp(ctx->tenant, ts->tenant) != 0)
			{
				toms_audit_denied("cursor read under another tenant context", ctx->tenant,
								  ts->relid, NULL);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 ActivePortal && ActivePortal->name[0] ?
						 errmsg("cursor \"%s\" was opened under another tenant context",
								ActivePortal->name) :
						 errmsg("statement was started under another tenant context"),
						 errhint("Open the cursor again under the current context.")));
			}
			ts->version = toms_context_version;
		}
		break;
	}

}


void
toms_tenant_exec_init(void)
{
	RegisterXactCallback(tenant_xact_callback, NULL);
}
