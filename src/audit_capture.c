/*-------------------------------------------------------------------------
 *
 * audit_capture.c
 *	  Access audit, capture side: every statement that touches a protected
 *	  table becomes one record per table and action.  hooks.c calls the
 *	  entry points here from ExecutorStart, ExecutorRun/Finish (nesting),
 *	  ExecutorEnd and ProcessUtility (COPY, TRUNCATE).
 *
 *	  Writes (INSERT/UPDATE/DELETE/MERGE, COPY FROM, TRUNCATE) are inserted
 *	  in the writing transaction (toms_audit_insert_in_xact, audit_emit.c);
 *	  reads and failed statements go to the shared queue (audit_queue.c).
 *	  A record carries the verified tenant context (context.c) and notes
 *	  superuser or BYPASSRLS access as an incident.
 *
 *	  Nesting: the executor state of each statement carries its pending
 *	  records; a reset callback on its memory context records a statement
 *	  that never reached ExecutorEnd (an error) as "failed", so nothing is
 *	  lost to an error and no stack can be left inconsistent.  Reads by
 *	  statements nested in the client's statement are merged into its
 *	  records.
 *
 *	  A feature-level file: calls the tenant context, protected.c and the
 *	  lower audit files; nothing below calls it.  toms_audit_init, the
 *	  audit part's set-up, is here for that reason: it reaches every
 *	  lower audit file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/queryjumble.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "toms.h"
#include "audit_internal.h"

/* Statement records that never reached ExecutorEnd are "failed". */
typedef struct AuditStmt
{
	struct AuditStmt *next;
	QueryDesc  *qd;
	bool		ended;
	/* a statement's own records, and the nested reads merged into them */
	int			nrecs;
	int			maxrecs;
	AuditRec  **recs;
	bool	   *writes;
	int64	   *nested_rows;	/* rows of merged nested reads; -1: own record */
	/* a nested read: its records are top's recs[idx[..]] */
	struct AuditStmt *top;
	int			nidx;
	int		   *idx;
	Oid			first_rel;		/* its first protected table */
	MemoryContextCallback cb;
} AuditStmt;

static AuditStmt *active_stmts = NULL;

/*
 * The newest queue position of a failed statement's record, whose
 * durability toms.audit_sync still has to wait for (see audit_stmt_reset).
 */
static uint64 failed_seq = 0;

/*
 * The client's statement the executor is running (ExecutorRun or
 * ExecutorFinish, where triggers, foreign-key checks and functions run
 * their own statements), and how deep it is nested.
 */
static QueryDesc *top_qd = NULL;
static int	exec_depth = 0;

/* COPY or TRUNCATE of protected tables in progress (ProcessUtility) */
typedef struct AuditUtility
{
	List	   *recs;			/* AuditRec * */
	List	   *writes;			/* int, one per record: in-transaction */
	bool		is_copy;
} AuditUtility;

/*
 * While a COPY or TRUNCATE of a protected table runs, its records stand
 * for the statements it runs itself: the executor adds none.
 */
static int	copy_depth = 0;

/* ----------------------------------------------------------------
 * Executor hooks
 * ----------------------------------------------------------------
 */
static bool
audit_backend_active(void)
{
	return toms_audit_shared != NULL && IsUnderPostmaster && !IsParallelWorker() &&
		!toms_audit_writing && MyDatabaseId != InvalidOid;
}

static const char *
cmd_action(CmdType op)
{
	switch (op)
	{
		case CMD_INSERT:
			return "INSERT";
		case CMD_UPDATE:
			return "UPDATE";
		case CMD_DELETE:
			return "DELETE";
		case CMD_MERGE:
			return "MERGE";
		default:
			return "SELECT";
	}
}

/* A record for one table touched by one statement (rows set later). */
static AuditRec *
access_record(Oid relid, const char *action, uint64 query_id)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));
	const TomsContext *ctx = toms_context(true);

	toms_audit_rec_init(rec, AREC_RECORD, GetCurrentStatementStartTimestamp());
	toms_audit_fill_common(rec, "access");
	toms_audit_rec_set_str(rec, RS_ACTION, action);
	toms_audit_rec_set_str(rec, RS_RELNAME, toms_audit_relname(relid));
	if (query_id != 0)
		toms_audit_rec_set_int(rec, RI_QUERY_ID, (int64) query_id);
	if (toms_audit_own_worker())
	{
		/* toms itself (lifecycle, reseal): not a superuser's read */
		StringInfoData d;

		initStringInfo(&d);
		appendStringInfoString(&d, "{\"toms_worker\": ");
		escape_json(&d, toms_audit_own_worker());
		appendStringInfoChar(&d, '}');
		toms_audit_rec_set_str(rec, RS_DETAIL, d.data);
	}
	if (ctx)
	{
		toms_audit_rec_set_str(rec, RS_TENANT, ctx->tenant);
		toms_audit_rec_set_str(rec, RS_ACTOR, ctx->actor);
		if (ctx->grant_id != 0)
		{
			toms_audit_rec_set_int(rec, RI_GRANT_ID, ctx->grant_id);
			toms_audit_rec_set_str(rec, RS_JUSTIFICATION, ctx->justification);
		}
	}
	else
		toms_audit_rec_set_str(rec, RS_ACTOR, toms_audit_session_actor());
	toms_audit_fill_statement(rec);
	return rec;
}

/*
 * Is a role a superuser or BYPASSRLS role?  Asked at every audited read
 * (check_privileged) and at every read of a table whose read audit is off
 * (current and session user), so the answer is kept for the role last
 * asked about in each of two places, as superuser_arg() keeps its own, and
 * dropped when any role changes (privileged_reset).
 */
#define PRIV_CURRENT 0
#define PRIV_SESSION 1
static Oid	privileged_role[2] = {InvalidOid, InvalidOid};
static bool privileged_answer[2];

/* pg_authid changed (syscache callback, registered by toms_audit_init) */
static void
privileged_reset(Datum arg, int cacheid, uint32 hashvalue)
{
	privileged_role[PRIV_CURRENT] = InvalidOid;
	privileged_role[PRIV_SESSION] = InvalidOid;
}

static bool
role_privileged(Oid role, int which)
{
	if (role != privileged_role[which])
	{
		privileged_answer[which] = superuser_arg(role) || has_bypassrls_privilege(role);
		privileged_role[which] = role;
	}
	return privileged_answer[which];
}

/*
 * Reads of a table whose read audit is off (toms.set_audit_reads) are
 * still recorded for superusers and BYPASSRLS roles (session or current)
 * and under a need-to-know grant.
 */
static bool
read_always_audited(void)
{
	const TomsContext *ctx;

	if (role_privileged(GetUserId(), PRIV_CURRENT) ||
		role_privileged(GetSessionUserId(), PRIV_SESSION))
		return true;
	ctx = toms_context(true);
	return ctx != NULL && ctx->grant_id != 0;
}

/* The denial of a statement that names no table: its first protected table. */
static Oid
statement_relation(void)
{
	AuditStmt  *st;

	for (st = active_stmts; st; st = st->next)
		if (!st->ended && OidIsValid(st->first_rel))
			return st->first_rel;
	return InvalidOid;
}

/* Superuser and BYPASSRLS access to a protected table is an incident. */
static void
check_privileged(Oid relid, const char *action)
{
	Oid			user = GetUserId();
	char	   *detail;

	if (MyBackendType != B_BACKEND)
		return;
	/* a foreign-key check runs as the table's owner, outside row security */
	if (InNoForceRLSOperation())
		return;
	if (!role_privileged(user, PRIV_CURRENT))
		return;
	if (strcmp(action, "SELECT") == 0)
		detail = psprintf("role %s read %s bypassing row security",
						  toms_audit_role_name(user), toms_audit_relname(relid));
	else
		detail = psprintf("role %s wrote %s bypassing row security",
						  toms_audit_role_name(user), toms_audit_relname(relid));
	toms_incident("privileged_access", "high", NULL, detail);
}

/*
 * The statement's memory is going away: it failed unless it ended.
 *
 * A memory-context reset callback must not block: it runs while memory is
 * freed, mostly inside transaction or subtransaction abort with interrupts
 * held off.  So the records are queued without waiting for room: if the
 * queue is full they go to the server log at once, counted in
 * written_to_log like every such fallback.  toms.audit_sync's wait for
 * their durability is left to wait_failed(): at the end of the enclosing
 * statement, or of the (sub)transaction, whichever comes first after the
 * memory goes.  (The executor memory of a statement run by a function is
 * freed only after the transaction callbacks when its error ends the
 * transaction; its records are then waited for at the next statement's
 * end.)
 */
static void
audit_stmt_reset(void *arg)
{
	AuditStmt  *st = arg;
	AuditStmt **link;
	int			i;

	for (link = &active_stmts; *link; link = &(*link)->next)
		if (*link == st)
		{
			*link = st->next;
			break;
		}
	if (st->ended)
		return;
	for (i = 0; i < st->nrecs; i++)
	{
		uint64		seq;

		toms_audit_rec_set_str(st->recs[i], RS_FATE, "failed");
		seq = toms_audit_enqueue(st->recs[i], MyDatabaseId, AUDIT_NO_WAIT);
		failed_seq = Max(failed_seq, seq);
	}
}

/*
 * With toms.audit_sync, wait until the records of failed statements are
 * committed (in_abort: bounded, no interrupts; see audit_queue.c).
 */
static void
wait_failed(bool in_abort)
{
	uint64		seq = failed_seq;

	failed_seq = 0;
	if (toms_audit_sync && seq != 0)
		toms_audit_wait_durable(seq, in_abort);
}

static AuditStmt *
find_stmt(const QueryDesc *qd)
{
	AuditStmt  *st;

	for (st = active_stmts; st; st = st->next)
		if (st->qd == qd)
			return st;
	return NULL;
}

/* The statement's entry, created in its memory on first use. */
static AuditStmt *
stmt_for(QueryDesc *qd)
{
	AuditStmt  *st = find_stmt(qd);
	MemoryContext oldcxt;

	if (st)
		return st;
	oldcxt = MemoryContextSwitchTo(qd->estate->es_query_cxt);
	st = palloc0(sizeof(AuditStmt));
	st->qd = qd;
	st->cb.func = audit_stmt_reset;
	st->cb.arg = st;
	MemoryContextRegisterResetCallback(qd->estate->es_query_cxt, &st->cb);
	st->next = active_stmts;
	active_stmts = st;
	MemoryContextSwitchTo(oldcxt);
	return st;
}

/*
 * The index of st's record for (relid, action, write), added if new; the
 * first time a table is seen, superuser access to it is an incident.
 */
static int
stmt_record(AuditStmt *st, Oid relid, const char *action, bool write, uint64 query_id,
			bool own)
{
	MemoryContext oldcxt;
	int			i;

	for (i = 0; i < st->nrecs; i++)
		if (st->writes[i] == write && st->recs[i]->h.ints[RI_ROW_COUNT] == (int64) relid &&
			strcmp(toms_audit_rec_get_str(st->recs[i], RS_ACTION), action) == 0)
			return i;

	oldcxt = MemoryContextSwitchTo(st->qd->estate->es_query_cxt);
	if (st->nrecs == st->maxrecs)
	{
		st->maxrecs = Max(4, st->maxrecs * 2);
		if (st->recs == NULL)
		{
			st->recs = palloc(sizeof(AuditRec *) * st->maxrecs);
			st->writes = palloc(sizeof(bool) * st->maxrecs);
			st->nested_rows = palloc(sizeof(int64) * st->maxrecs);
		}
		else
		{
			st->recs = repalloc(st->recs, sizeof(AuditRec *) * st->maxrecs);
			st->writes = repalloc(st->writes, sizeof(bool) * st->maxrecs);
			st->nested_rows = repalloc(st->nested_rows, sizeof(int64) * st->maxrecs);
		}
	}
	st->recs[st->nrecs] = access_record(relid, action, query_id);
	MemoryContextSwitchTo(oldcxt);
	/* remember the relid in row_count until ExecutorEnd sets it */
	st->recs[st->nrecs]->h.ints[RI_ROW_COUNT] = (int64) relid;
	st->writes[st->nrecs] = write;
	st->nested_rows[st->nrecs] = own ? -1 : 0;
	check_privileged(relid, action);
	return st->nrecs++;
}

/*
 * One record per table and action of each statement the client sends.
 * Reads by statements nested in it -- foreign-key checks, triggers,
 * functions, a PL/pgSQL loop -- are merged into its records (with their
 * rows added up), so a row-by-row check cannot multiply the trail.  Nested
 * writes keep records of their own: their fate follows their
 * subtransaction.
 */
void
toms_audit_executor_start(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *ps;
	ListCell   *lc;
	int			rti = 0;
	AuditStmt  *st = NULL;
	AuditStmt  *top = NULL;
	MemoryContext oldcxt;
	int			always = -1;	/* read_always_audited(), once asked */

	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) || copy_depth > 0 || !audit_backend_active())
		return;
	ps = queryDesc->plannedstmt;
	if (ps == NULL || queryDesc->estate == NULL)
		return;

	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		const TomsProtected *prot;
		const char *action;
		bool		write;

		rti++;
		if (rte->rtekind != RTE_RELATION ||
			(rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_PARTITIONED_TABLE))
			continue;
		/*
		 * A partition the planner added under its partitioned parent has no
		 * permissions of its own to check: it is audited as that parent,
		 * which is the statement's target when rows are written through it
		 * (resultRelations then lists the partitions).
		 */
		if (rte->requiredPerms == 0)
			continue;
		prot = toms_protected(rte->relid);
		if (prot == NULL)
			continue;
		write = (list_member_int(ps->resultRelations, rti) ||
				 (rte->relkind == RELKIND_PARTITIONED_TABLE &&
				  (rte->requiredPerms & (ACL_INSERT | ACL_UPDATE | ACL_DELETE)) != 0)) &&
			ps->commandType != CMD_SELECT;
		action = write ? cmd_action(ps->commandType) : "SELECT";
		if (st == NULL)
			st = stmt_for(queryDesc);
		if (!OidIsValid(st->first_rel))
			st->first_rel = rte->relid;
		if (!write && !prot->audit_reads)
		{
			if (always < 0)
				always = read_always_audited();
			if (!always)
				continue;
		}

		if (!write && exec_depth > 0 && top_qd != NULL && top_qd != queryDesc &&
			top_qd->estate != NULL)
		{
			int			i;

			/* a nested read: into the client's statement */
			if (top == NULL)
				top = stmt_for(top_qd);
			i = stmt_record(top, rte->relid, action, false, top_qd->plannedstmt->queryId, false);
			if (top->nested_rows[i] < 0)
				continue;		/* the client's statement reads it itself */
			if (st->top == NULL)
			{
				oldcxt = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);
				st->top = top;
				st->idx = palloc(sizeof(int) * list_length(ps->rtable));
				MemoryContextSwitchTo(oldcxt);
			}
			st->idx[st->nidx++] = i;
			continue;
		}
		(void) stmt_record(st, rte->relid, action, write, ps->queryId, true);
	}
}

/*
 * ExecutorRun and ExecutorFinish (hooks.c): the statement a nested one runs
 * inside.  hooks.c restores the saved one with toms_audit_nest_leave in
 * PG_FINALLY.
 */
void *
toms_audit_nest_enter(QueryDesc *queryDesc)
{
	QueryDesc  *save_top = top_qd;

	if (exec_depth == 0)
		top_qd = queryDesc;
	exec_depth++;
	return save_top;
}

void
toms_audit_nest_leave(void *saved)
{
	exec_depth--;
	top_qd = (QueryDesc *) saved;
}

/* ExecutorEnd (hooks.c), before the executor state goes. */
void
toms_audit_executor_end(QueryDesc *queryDesc)
{
	AuditStmt  *st = find_stmt(queryDesc);

	if (st && !st->ended)
	{
		uint64		rows = queryDesc->estate ? queryDesc->estate->es_processed : 0;
		uint64		last = 0;
		int			i;

		st->ended = true;
		/* nested reads: credit their rows to the client's statement */
		for (i = 0; i < st->nidx; i++)
			if (st->top->nested_rows[st->idx[i]] >= 0)
				st->top->nested_rows[st->idx[i]] += rows;
		for (i = 0; i < st->nrecs; i++)
		{
			toms_audit_rec_set_int(st->recs[i], RI_ROW_COUNT,
								   st->nested_rows[i] < 0 ? (int64) rows : st->nested_rows[i]);
			if (st->writes[i])
				toms_audit_insert_in_xact(st->recs[i]);
			else
				last = toms_audit_enqueue(st->recs[i], MyDatabaseId, AUDIT_WAIT);
		}
		if (toms_audit_sync)
			toms_audit_wait_durable(last, false);
	}
	/* statements nested in this one that failed (a caught error) */
	wait_failed(false);
}

/*
 * ProcessUtility (hooks.c): COPY and TRUNCATE of a protected table.
 * toms_audit_utility_begin returns the records to complete (NULL if none);
 * hooks.c runs the statement in PG_TRY and calls toms_audit_utility_failed
 * or toms_audit_utility_end.
 */
void *
toms_audit_utility_begin(PlannedStmt *pstmt)
{
	Node	   *parsetree = pstmt->utilityStmt;
	List	   *recs = NIL;
	List	   *writes = NIL;
	ListCell   *lc;
	AuditUtility *au;

	if (!audit_backend_active() || !IsTransactionState())
		return NULL;
	if (IsA(parsetree, CopyStmt) && ((CopyStmt *) parsetree)->relation)
	{
		CopyStmt   *cs = (CopyStmt *) parsetree;
		Oid			relid = RangeVarGetRelid(cs->relation, NoLock, true);

		const TomsProtected *prot = OidIsValid(relid) ? toms_protected(relid) : NULL;

		if (prot && (cs->is_from || prot->audit_reads || read_always_audited()))
		{
			recs = lappend(recs, access_record(relid, "COPY", pstmt->queryId));
			writes = lappend_int(writes, cs->is_from);
			check_privileged(relid, cs->is_from ? "COPY FROM" : "SELECT");
		}
	}
	else if (IsA(parsetree, TruncateStmt))
	{
		foreach(lc, ((TruncateStmt *) parsetree)->relations)
		{
			Oid			relid = RangeVarGetRelid(lfirst(lc), NoLock, true);

			if (OidIsValid(relid) && toms_protected(relid))
			{
				recs = lappend(recs, access_record(relid, "TRUNCATE", pstmt->queryId));
				writes = lappend_int(writes, true);
			}
		}
	}
	if (recs == NIL)
		return NULL;
	au = palloc(sizeof(AuditUtility));
	au->recs = recs;
	au->writes = writes;
	au->is_copy = IsA(parsetree, CopyStmt);
	copy_depth++;
	return au;
}

/* The statement failed: a failed COPY is recorded; a refused TRUNCATE the guard records. */
void
toms_audit_utility_failed(void *arg)
{
	AuditUtility *au = arg;
	ListCell   *lc;

	copy_depth--;
	if (!au->is_copy)
		return;
	foreach(lc, au->recs)
	{
		toms_audit_rec_set_str(lfirst(lc), RS_FATE, "failed");
		toms_audit_queue(lfirst(lc), MyDatabaseId, AUDIT_WAIT_BOUNDED);
	}
}

void
toms_audit_utility_end(void *arg, QueryCompletion *qc)
{
	AuditUtility *au = arg;
	ListCell   *lc;
	uint64		last = 0;

	copy_depth--;
	foreach(lc, au->recs)
	{
		AuditRec   *rec = lfirst(lc);
		bool		write = list_nth_int(au->writes, foreach_current_index(lc));

		if (qc)
			toms_audit_rec_set_int(rec, RI_ROW_COUNT, (int64) qc->nprocessed);
		if (write)
			toms_audit_insert_in_xact(rec);
		else
			last = toms_audit_enqueue(rec, MyDatabaseId, AUDIT_WAIT);
	}
	if (toms_audit_sync)
		toms_audit_wait_durable(last, false);
	wait_failed(false);
}

/*
 * The end of the transaction: the statements' entries lived in executor
 * memory that is gone now, and the records of statements that failed in
 * it are waited for (abort frees a failed statement's memory before the
 * transaction callbacks run).
 */
static void
capture_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			wait_failed(true);
			active_stmts = NULL;
			break;
		default:
			break;
	}
}

/* A savepoint rolled back: its failed statements, as at transaction end. */
static void
capture_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		wait_failed(true);
}

/*
 * The audit part's set-up (from _PG_init): the settings and the queue,
 * the transaction callbacks of the in-transaction records, query ids, and
 * the role callback of read_always_audited().
 */
void
toms_audit_init(void)
{
	toms_audit_queue_init();
	toms_audit_emit_init();
	toms_audit_set_statement_relation(statement_relation);

	/* query ids are part of the record */
	EnableQueryId();
	RegisterXactCallback(capture_xact_callback, NULL);
	RegisterSubXactCallback(capture_subxact_callback, NULL);
	CacheRegisterSyscacheCallback(AUTHOID, privileged_reset, (Datum) 0);
}
