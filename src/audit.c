/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  Access audit, backend side: every statement that touches a protected
 *	  table becomes one record per table, and other parts report denials,
 *	  logins, administrative acts and incidents here.
 *
 *	  Two sinks, chosen by durability:
 *	  - Writes (INSERT/UPDATE/DELETE/MERGE/COPY FROM/TRUNCATE on a
 *	    protected table) and admin acts are inserted into toms.audit_log in
 *	    the writing transaction, so a record is exactly as durable as the
 *	    change.  The backend remembers them; if the (sub)transaction aborts
 *	    they go to the queue instead, with fate "rolled back".  At commit it
 *	    asks the worker to chain the transaction's rows.
 *	  - Reads, denials, failed statements, logins and incidents go to a
 *	    shared-memory queue (audit_internal.h) that a per-database worker
 *	    (audit_worker.c) drains every toms.audit_flush_delay, inserting and
 *	    chaining them in one transaction per batch.  toms.audit_sync makes
 *	    the statement wait until its records are committed.
 *
 *	  Nesting: the executor state of each statement carries its pending
 *	  records; a reset callback on its memory context records a statement
 *	  that never reached ExecutorEnd (an error) as "failed", so nothing is
 *	  lost to an error and no stack can be left inconsistent.
 *
 *	  toms.audit_log is append-only: a trigger refuses every INSERT, UPDATE,
 *	  DELETE and TRUNCATE not made by toms itself (toms_audit_writing), and the
 *	  ProcessUtility hook refuses ALTER, RENAME, rules, trigger changes and
 *	  the like on it.  What a superuser does with the triggers switched off
 *	  is caught by the hash chain (toms.verify_audit).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/parallel.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "common/ip.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryjumble.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "catalog/pg_class.h"
#include "utils/timestamp.h"

#include "toms.h"
#include "audit_internal.h"

PG_FUNCTION_INFO_V1(toms_audit_log_guard);
PG_FUNCTION_INFO_V1(toms_verify_audit);
PG_FUNCTION_INFO_V1(toms_audit_stats);
PG_FUNCTION_INFO_V1(toms_audit_flush);
PG_FUNCTION_INFO_V1(toms_audit_admin_sql);

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
	MemoryContextCallback cb;
} AuditStmt;

static AuditStmt *active_stmts = NULL;

/*
 * The client's statement the executor is running (ExecutorRun or
 * ExecutorFinish, where triggers, foreign-key checks and functions run
 * their own statements), and how deep it is nested.
 */
static QueryDesc *top_qd = NULL;
static int	exec_depth = 0;

/* Records this transaction inserted itself (re-queued if it aborts). */
typedef struct PendingRec
{
	struct PendingRec *next;
	SubTransactionId subid;
	AuditRec	rec;
} PendingRec;

static PendingRec *pending_recs = NULL;
static bool xact_inserted = false;
static FullTransactionId xact_fxid;

static int	copy_depth = 0;

/* COPY or TRUNCATE of protected tables in progress (ProcessUtility) */
typedef struct AuditUtility
{
	List	   *recs;			/* AuditRec * */
	List	   *writes;			/* int: in-transaction record */
	bool		is_copy;
} AuditUtility;

/* ----------------------------------------------------------------
 * Who and where
 * ----------------------------------------------------------------
 */
static const char *
client_addr(void)
{
	static char addr[NI_MAXHOST] = "";

	if (addr[0] == '\0')
	{
		if (MyProcPort == NULL)
			strlcpy(addr, "background", sizeof(addr));
		else if (MyProcPort->raddr.addr.ss_family == AF_UNIX)
			strlcpy(addr, "local", sizeof(addr));
		else if (pg_getnameinfo_all(&MyProcPort->raddr.addr, MyProcPort->raddr.salen,
									addr, sizeof(addr), NULL, 0, NI_NUMERICHOST) != 0)
			strlcpy(addr, "unknown", sizeof(addr));
	}
	return addr;
}

static const char *
role_name(Oid roleid)
{
	static Oid	cached_id = InvalidOid;
	static char cached[NAMEDATALEN];
	static Oid	cached_id2 = InvalidOid;
	static char cached2[NAMEDATALEN];
	char	   *n;

	if (roleid == cached_id)
		return cached;
	if (roleid == cached_id2)
		return cached2;
	n = GetUserNameFromId(roleid, true);
	if (n == NULL)
		return "?";
	/* two entries: session user and current user */
	cached_id2 = cached_id;
	strlcpy(cached2, cached, sizeof(cached2));
	cached_id = roleid;
	strlcpy(cached, n, sizeof(cached));
	return cached;
}

/* Fill the fields every record carries. */
static void
rec_fill_common(AuditRec *rec, const char *kind)
{
	toms_audit_rec_set_str(rec, RS_KIND, kind);
	toms_audit_rec_set_int(rec, RI_PID, MyProcPid);
	toms_audit_rec_set_str(rec, RS_CLIENT_ADDR, client_addr());
	if (application_name && application_name[0])
		toms_audit_rec_set_str(rec, RS_APPLICATION_NAME, application_name);
	if (IsTransactionState() && OidIsValid(GetSessionUserId()))
	{
		FullTransactionId fxid = GetTopFullTransactionIdIfAny();

		toms_audit_rec_set_str(rec, RS_SESSION_ROLE, role_name(GetSessionUserId()));
		toms_audit_rec_set_str(rec, RS_EFFECTIVE_ROLE, role_name(GetUserId()));
		if (FullTransactionIdIsValid(fxid))
			toms_audit_rec_set_int(rec, RI_XID, (int64) U64FromFullTransactionId(fxid));
	}
}

static void
rec_fill_statement(AuditRec *rec)
{
	if (toms_audit_statement_text && debug_query_string)
		toms_audit_rec_set_str(rec, RS_STATEMENT, toms_redact_secrets(debug_query_string));
}

/* ----------------------------------------------------------------
 * In-transaction records (writes, admin acts)
 * ----------------------------------------------------------------
 */
static void
audit_insert_in_xact(AuditRec *rec)
{
	Datum		values[AC_NCOLS];
	bool		nulls[AC_NCOLS];
	PendingRec *pr;
	AuditStore *st;

	xact_fxid = GetTopFullTransactionId();
	toms_audit_rec_set_int(rec, RI_XID, (int64) U64FromFullTransactionId(xact_fxid));
	toms_audit_rec_set_str(rec, RS_FATE, "committed");
	toms_audit_rec_to_datums(rec, values, nulls);

	/* unchained (seq NULL): the worker chains it once the transaction commits */
	st = toms_audit_store_begin(false);
	toms_audit_store_row(st, values, nulls);
	toms_audit_store_end(st);

	pr = MemoryContextAlloc(TopTransactionContext, offsetof(PendingRec, rec) +
							offsetof(AuditRec, data) + rec->h.used);
	pr->subid = GetCurrentSubTransactionId();
	memcpy(&pr->rec, rec, offsetof(AuditRec, data) + rec->h.used);
	pr->next = pending_recs;
	pending_recs = pr;
	xact_inserted = true;
}

/* A record whose transaction is going away: queue it as rolled back. */
static void
requeue_rolled_back(PendingRec *pr)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));

	/* rebuild it without the fate, then set the new fate */
	toms_audit_rec_copy_except(rec, &pr->rec, RS_FATE);
	toms_audit_rec_set_str(rec, RS_FATE, "rolled back");
	toms_audit_queue(rec, MyDatabaseId, true);
	pfree(rec);
}

static void
audit_xact_callback(XactEvent event, void *arg)
{
	PendingRec *pr;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (xact_inserted && toms_audit_shared)
			{
				AuditRec   *rec = palloc(sizeof(AuditRec));

				toms_audit_rec_init(rec, AREC_CHAIN, GetCurrentTimestamp());
				toms_audit_rec_set_int(rec, RI_XID, (int64) U64FromFullTransactionId(xact_fxid));
				(void) toms_audit_enqueue(rec, MyDatabaseId, true);
				pfree(rec);
			}
			break;
		case XACT_EVENT_ABORT:
			for (pr = pending_recs; pr; pr = pr->next)
				requeue_rolled_back(pr);
			break;
		case XACT_EVENT_PREPARE:
			/* chained by the next reconciliation (see docs/audit.md, Limits) */
			break;
		default:
			return;
	}
	pending_recs = NULL;
	xact_inserted = false;
	active_stmts = NULL;
}

static void
audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	PendingRec *pr;
	PendingRec **link;

	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			for (pr = pending_recs; pr; pr = pr->next)
				if (pr->subid == mySubid)
					pr->subid = parentSubid;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			link = &pending_recs;
			while ((pr = *link) != NULL)
			{
				if (pr->subid == mySubid)
				{
					requeue_rolled_back(pr);
					*link = pr->next;
				}
				else
					link = &pr->next;
			}
			break;
		default:
			break;
	}
}

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

/* Schema-qualified names of the last few tables, dropped on any relcache flush. */
#define RELNAME_CACHE 8
static struct
{
	Oid			relid;
	char		name[2 * NAMEDATALEN + 8];
}			relname_cache[RELNAME_CACHE];
static int	relname_next = 0;

static void
relname_cache_flush(Oid relid)
{
	int			i;

	for (i = 0; i < RELNAME_CACHE; i++)
		if (!OidIsValid(relid) || relname_cache[i].relid == relid)
			relname_cache[i].relid = InvalidOid;
}

static const char *
qualified_relname(Oid relid)
{
	char	   *nsp;
	char	   *rel;
	const char *q;
	int			i;

	for (i = 0; i < RELNAME_CACHE; i++)
		if (relname_cache[i].relid == relid && OidIsValid(relid))
			return relname_cache[i].name;
	rel = get_rel_name(relid);
	if (rel == NULL)
		return psprintf("%u", relid);
	nsp = get_namespace_name(get_rel_namespace(relid));
	q = quote_qualified_identifier(nsp, rel);
	i = relname_next++ % RELNAME_CACHE;
	relname_cache[i].relid = relid;
	strlcpy(relname_cache[i].name, q, sizeof(relname_cache[i].name));
	return relname_cache[i].name;
}

/* A record for one table touched by one statement (rows set later). */
static AuditRec *
access_record(Oid relid, const char *action, uint64 query_id)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));
	const TomsContext *ctx = toms_context(true);

	toms_audit_rec_init(rec, AREC_RECORD, GetCurrentStatementStartTimestamp());
	rec_fill_common(rec, "access");
	toms_audit_rec_set_str(rec, RS_ACTION, action);
	toms_audit_rec_set_str(rec, RS_RELNAME, qualified_relname(relid));
	if (query_id != 0)
		toms_audit_rec_set_int(rec, RI_QUERY_ID, (int64) query_id);
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
		toms_audit_rec_set_str(rec, RS_ACTOR, role_name(GetSessionUserId()));
	rec_fill_statement(rec);
	return rec;
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
	if (!superuser_arg(user) && !has_bypassrls_privilege(user))
		return;
	if (strcmp(action, "SELECT") == 0)
		detail = psprintf("role %s read %s bypassing row security",
						  role_name(user), qualified_relname(relid));
	else
		detail = psprintf("role %s wrote %s bypassing row security",
						  role_name(user), qualified_relname(relid));
	toms_incident("privileged_access", "high", NULL, detail);
}

/* The statement's memory is going away: it failed unless it ended. */
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
		toms_audit_rec_set_str(st->recs[i], RS_FATE, "failed");
		toms_audit_queue(st->recs[i], MyDatabaseId, true);
	}
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

	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) || copy_depth > 0 || !audit_backend_active())
		return;
	ps = queryDesc->plannedstmt;
	if (ps == NULL || queryDesc->estate == NULL)
		return;

	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		const char *action;
		bool		write;

		rti++;
		if (rte->rtekind != RTE_RELATION ||
			(rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_PARTITIONED_TABLE))
			continue;
		if (toms_protected(rte->relid) == NULL)
			continue;
		write = list_member_int(ps->resultRelations, rti) && ps->commandType != CMD_SELECT;
		action = write ? cmd_action(ps->commandType) : "SELECT";

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
			st = stmt_for(queryDesc);
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
		if (st == NULL)
			st = stmt_for(queryDesc);
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
				audit_insert_in_xact(st->recs[i]);
			else
				last = toms_audit_enqueue(st->recs[i], MyDatabaseId, false);
		}
		if (toms_audit_sync)
			toms_audit_wait_durable(last, false);
	}
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

		if (OidIsValid(relid) && toms_protected(relid))
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
		toms_audit_queue(lfirst(lc), MyDatabaseId, true);
	}
}

void
toms_audit_utility_end(void *arg, QueryCompletion *qc)
{
	AuditUtility *au = arg;
	ListCell   *lc;
	ListCell   *lw;
	uint64		last = 0;

	copy_depth--;
	forboth(lc, au->recs, lw, au->writes)
	{
		AuditRec   *rec = lfirst(lc);
		bool		write = lfirst_int(lw);

		if (qc)
			toms_audit_rec_set_int(rec, RI_ROW_COUNT, (int64) qc->nprocessed);
		if (write)
			audit_insert_in_xact(rec);
		else
			last = toms_audit_enqueue(rec, MyDatabaseId, false);
	}
	if (toms_audit_sync)
		toms_audit_wait_durable(last, false);
}

/* ----------------------------------------------------------------
 * The audit API of toms.h
 * ----------------------------------------------------------------
 */
void
toms_audit_admin(const char *action, const char *tenant, const char *detail)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));

	toms_audit_rec_init(rec, AREC_RECORD, GetCurrentTimestamp());
	rec_fill_common(rec, "admin");
	toms_audit_rec_set_str(rec, RS_ACTION, action);
	toms_audit_rec_set_str(rec, RS_TENANT, tenant);
	toms_audit_rec_set_str(rec, RS_ACTOR, role_name(GetSessionUserId()));
	toms_audit_rec_set_str(rec, RS_DETAIL, detail);
	rec_fill_statement(rec);
	if (IsTransactionState() && !IsAbortedTransactionBlockState())
		audit_insert_in_xact(rec);
	else
		toms_audit_queue(rec, MyDatabaseId, false);
	pfree(rec);
}

void
toms_audit_denied(const char *reason, const char *tenant, Oid relid, const char *detail)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));

	toms_audit_rec_init(rec, AREC_RECORD, GetCurrentTimestamp());
	rec_fill_common(rec, "denied");
	toms_audit_rec_set_str(rec, RS_ACTION, reason);
	toms_audit_rec_set_str(rec, RS_TENANT, tenant);
	toms_audit_rec_set_str(rec, RS_FATE, "denied");
	if (IsTransactionState() && OidIsValid(GetSessionUserId()))
		toms_audit_rec_set_str(rec, RS_ACTOR, role_name(GetSessionUserId()));
	if (OidIsValid(relid) && IsTransactionState())
		toms_audit_rec_set_str(rec, RS_RELNAME, qualified_relname(relid));
	toms_audit_rec_set_str(rec, RS_DETAIL, detail);
	rec_fill_statement(rec);
	toms_audit_queue(rec, MyDatabaseId, false);
	pfree(rec);
}

void
toms_audit_login(bool success, const char *role, const char *database,
				 const char *method, const char *reason)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));
	StringInfoData d;

	toms_audit_rec_init(rec, AREC_RECORD, GetCurrentTimestamp());
	toms_audit_rec_set_str(rec, RS_KIND, "login");
	toms_audit_rec_set_str(rec, RS_ACTION, success ? "LOGIN" : "LOGIN FAILED");
	toms_audit_rec_set_str(rec, RS_SESSION_ROLE, role);
	toms_audit_rec_set_str(rec, RS_ACTOR, role);
	toms_audit_rec_set_str(rec, RS_FATE, success ? "succeeded" : "failed");
	toms_audit_rec_set_int(rec, RI_PID, MyProcPid);
	toms_audit_rec_set_str(rec, RS_CLIENT_ADDR, client_addr());
	if (MyProcPort && MyProcPort->application_name)
		toms_audit_rec_set_str(rec, RS_APPLICATION_NAME, MyProcPort->application_name);
	initStringInfo(&d);
	appendStringInfoString(&d, "{\"database\":");
	escape_json(&d, database ? database : "");
	if (method)
	{
		appendStringInfoString(&d, ",\"method\":");
		escape_json(&d, method);
	}
	if (reason)
	{
		appendStringInfoString(&d, ",\"reason\":");
		escape_json(&d, reason);
	}
	appendStringInfoChar(&d, '}');
	toms_audit_rec_set_str(rec, RS_DETAIL, d.data);
	toms_audit_rec_set_str(rec, RS_DATABASE, database);
	/* before InitPostgres has a database: the launcher resolves the name */
	toms_audit_queue(rec, OidIsValid(MyDatabaseId) ? MyDatabaseId : InvalidOid, false);
	pfree(rec);
}

void
toms_incident(const char *kind, const char *severity, const char *tenant, const char *detail)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));

	toms_audit_rec_init(rec, AREC_INCIDENT, GetCurrentTimestamp());
	toms_audit_rec_set_str(rec, RS_ACTION, kind);
	toms_audit_rec_set_str(rec, RS_FATE, severity ? severity : "high");
	toms_audit_rec_set_str(rec, RS_TENANT, tenant);
	toms_audit_rec_set_str(rec, RS_DETAIL, detail);
	if (!OidIsValid(MyDatabaseId) && MyProcPort)
		toms_audit_rec_set_str(rec, RS_DATABASE, MyProcPort->database_name);
	(void) toms_audit_enqueue(rec, MyDatabaseId, false);
	pfree(rec);
}

/* ----------------------------------------------------------------
 * SQL-callable functions
 * ----------------------------------------------------------------
 */

/* Trigger on toms.audit_log and toms.incidents: only toms writes them. */
Datum
toms_audit_log_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "toms_audit_log_guard: not called as a trigger");
	if (!toms_audit_writing)
	{
		if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("only toms can add records to toms.%s", RelationGetRelationName(td->tg_relation)),
					 errdetail("Audit records are written by toms itself.")));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("toms.%s is append-only", RelationGetRelationName(td->tg_relation)),
				 errdetail("No role can update, delete or truncate audit records; toms.audit_retention removes old records.")));
	}
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		return PointerGetDatum(NULL);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		return PointerGetDatum(td->tg_newtuple);
	return PointerGetDatum(td->tg_trigtuple);
}

/* Is there a seal that summarises every record before seq, with hash? */
static bool
find_seal(int64 upto, uint8 *hash)
{
	Datum		arg = Int64GetDatum(upto);
	Oid			argtype = INT8OID;
	bool		found = false;
	int			ret;

	/* an edited seal whose hash is not hex is no seal (no error) */
	ret = SPI_execute_with_args("SELECT CASE WHEN h ~ '^([0-9a-f][0-9a-f])*$' THEN pg_catalog.decode(h, 'hex') END"
								" FROM (SELECT detail::jsonb ->> 'hash' AS h FROM " TOMS_SCHEMA ".audit_log"
								" WHERE kind = 'seal' AND seq > $1"
								" AND (detail::jsonb ->> 'upto')::bigint = $1 ORDER BY seq LIMIT 1) s",
								1, &argtype, &arg, NULL, false, 1);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull && VARSIZE_ANY_EXHDR(DatumGetByteaPP(d)) == AUDIT_HASH_LEN)
		{
			memcpy(hash, VARDATA_ANY(DatumGetByteaPP(d)), AUDIT_HASH_LEN);
			found = true;
		}
	}
	return found;
}

static int64
spi_int8(const char *sql, bool *isnull)
{
	Datum		d;

	/* not read-only: a fresh snapshot, taken after the chain head was read */
	if (SPI_execute(sql, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
	{
		*isnull = true;
		return 0;
	}
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	return *isnull ? 0 : DatumGetInt64(d);
}

/*
 * toms.verify_audit(from, to): walk the chain in seq order, recompute each
 * hash from the previous one and the record, and stop at the first record
 * that does not match, is missing, or is out of place.
 */
Datum
toms_verify_audit(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		out[3];
	bool		outnull[3] = {false, false, false};
	bool		ok = true;
	int64		first_bad = 0;
	char	   *detail = NULL;
	bool		isnull;
	int64		minseq,
				maxseq,
				from,
				to,
				expect,
				nrows = 0;
	uint8		prev[AUDIT_HASH_LEN];
	Portal		portal;
	Datum		args[2];
	Oid			argtypes[2] = {INT8OID, INT8OID};
	bool		whole;
	int64		head_seq = 0;
	uint8		head_hash[AUDIT_HASH_LEN];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	/*
	 * The chain head the worker last wrote, read before the snapshots the
	 * queries below take, so that every record up to it is visible to
	 * them.  A transaction-wide snapshot (REPEATABLE READ) may predate it:
	 * then the head is not checked.
	 */
	if (toms_audit_shared && !IsolationUsesXactSnapshot())
	{
		AuditDb    *db;

		LWLockAcquire(toms_audit_lock(), LW_SHARED);
		db = toms_audit_db_slot(MyDatabaseId, false);
		if (db)
		{
			head_seq = db->head_seq;
			memcpy(head_hash, db->head_hash, AUDIT_HASH_LEN);
		}
		LWLockRelease(toms_audit_lock());
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	minseq = spi_int8("SELECT min(seq) FROM " TOMS_SCHEMA ".audit_log", &isnull);
	maxseq = spi_int8("SELECT max(seq) FROM " TOMS_SCHEMA ".audit_log", &isnull);
	if (isnull)
		minseq = 1, maxseq = 0;
	from = PG_ARGISNULL(0) ? minseq : Max(PG_GETARG_INT64(0), minseq);
	to = PG_ARGISNULL(1) ? maxseq : Min(PG_GETARG_INT64(1), maxseq);
	whole = PG_ARGISNULL(0) && PG_ARGISNULL(1);
	memset(prev, 0, sizeof(prev));

	if (from > 1)
	{
		/* the previous hash: the record before, or the seal of the removed prefix */
		Datum		a = Int64GetDatum(from - 1);
		Oid			t = INT8OID;

		if (SPI_execute_with_args("SELECT hash FROM " TOMS_SCHEMA ".audit_log WHERE seq = $1",
								  1, &t, &a, NULL, false, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			bytea	   *h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 1, &isnull));

			if (!isnull && VARSIZE_ANY_EXHDR(h) == AUDIT_HASH_LEN)
				memcpy(prev, VARDATA_ANY(h), AUDIT_HASH_LEN);
		}
		else if (!find_seal(from - 1, prev))
		{
			ok = false;
			first_bad = from - 1;
			detail = psprintf("records up to %lld are missing and no retention seal accounts for them",
							  (long long) (from - 1));
		}
	}

	if (ok && from <= to)
	{
		args[0] = Int64GetDatum(from);
		args[1] = Int64GetDatum(to);
		portal = SPI_cursor_open_with_args(NULL,
										   "SELECT seq, ts, kind, action, session_role, effective_role,"
										   " actor, tenant, grant_id, justification, relname, row_count,"
										   " query_id, client_addr, application_name, pid, xid, fate,"
										   " statement, detail, hash FROM " TOMS_SCHEMA ".audit_log"
										   " WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
										   2, argtypes, args, NULL, false, CURSOR_OPT_NO_SCROLL);
		expect = from;
		while (ok)
		{
			uint64		i;

			SPI_cursor_fetch(portal, true, 10000);
			if (SPI_processed == 0)
				break;
			for (i = 0; i < SPI_processed && ok; i++)
			{
				Datum		values[AC_NCOLS];
				bool		nulls[AC_NCOLS];
				uint8		h[AUDIT_HASH_LEN];
				int64		seq;
				bytea	   *stored;

				heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
				seq = DatumGetInt64(values[AC_SEQ]);
				if (seq != expect)
				{
					ok = false;
					first_bad = expect;
					detail = psprintf("record %lld is missing (deleted)", (long long) expect);
					break;
				}
				toms_audit_chain_hash(prev, values, nulls, h);
				stored = nulls[AC_HASH] ? NULL : DatumGetByteaPP(values[AC_HASH]);
				if (stored == NULL || VARSIZE_ANY_EXHDR(stored) != AUDIT_HASH_LEN ||
					memcmp(VARDATA_ANY(stored), h, AUDIT_HASH_LEN) != 0)
				{
					ok = false;
					first_bad = seq;
					detail = psprintf("record %lld does not match its hash (edited, inserted or reordered)",
									  (long long) seq);
					break;
				}
				if (seq == head_seq && memcmp(h, head_hash, AUDIT_HASH_LEN) != 0)
				{
					ok = false;
					first_bad = seq;
					detail = psprintf("the chain was rewritten: record %lld differs from the chain head toms wrote",
									  (long long) seq);
					break;
				}
				memcpy(prev, h, AUDIT_HASH_LEN);
				expect++;
				nrows++;
				CHECK_FOR_INTERRUPTS();
			}
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
		if (ok && expect <= to)
		{
			ok = false;
			first_bad = expect;
			detail = psprintf("record %lld is missing (deleted)", (long long) expect);
		}
	}

	if (ok && whole && head_seq > maxseq)
	{
		/* the newest records the worker wrote are gone */
		ok = false;
		first_bad = maxseq + 1;
		detail = psprintf("records %lld to %lld are missing (deleted from the end of the trail)",
						  (long long) maxseq + 1, (long long) head_seq);
	}

	if (ok && whole)
	{
		int64		stray = spi_int8("SELECT count(*) FROM " TOMS_SCHEMA ".audit_log"
									 " WHERE seq IS NULL AND ts < now() - interval '1 minute'", &isnull);

		if (stray > 0)
		{
			ok = false;
			outnull[1] = true;
			detail = psprintf("%lld unchained records older than a minute (added bypassing toms, or the audit worker is not running)",
							  (long long) stray);
		}
	}
	SPI_finish();

	if (ok)
		detail = nrows == 0 ? pstrdup("no records to verify") :
			psprintf("%lld records verified (%lld to %lld)", (long long) nrows,
					 (long long) from, (long long) (from + nrows - 1));
	else
		toms_incident("audit_chain_break", "critical", NULL, detail);

	out[0] = BoolGetDatum(ok);
	if (ok || outnull[1])
		outnull[1] = true;
	else
		out[1] = Int64GetDatum(first_bad);
	out[2] = CStringGetTextDatum(detail);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, out, outnull)));
}

/* toms.audit_stats: the queue and its counters. */
Datum
toms_audit_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		v[10];
	bool		n[10] = {false};
	int			workers = 0;
	int			i;
	AuditShared *sh = toms_audit_shared;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (sh == NULL)
		PG_RETURN_NULL();
	LWLockAcquire(toms_audit_lock(), LW_SHARED);
	v[0] = Int32GetDatum(sh->nslots);
	v[1] = Int64GetDatum((int64) (sh->head - sh->tail));
	for (i = 0; i < AUDIT_MAX_DBS; i++)
		if (sh->dbs[i].pid != 0)
			workers++;
	v[8] = Int32GetDatum(workers);
	v[9] = Int32GetDatum(sh->launcher_pid);
	n[9] = sh->launcher_pid == 0;
	LWLockRelease(toms_audit_lock());
	v[2] = Int64GetDatum((int64) pg_atomic_read_u64(&sh->n_enqueued));
	v[3] = Int64GetDatum((int64) pg_atomic_read_u64(&sh->n_written));
	v[4] = Int64GetDatum((int64) pg_atomic_read_u64(&sh->n_waits));
	v[5] = Int64GetDatum((int64) pg_atomic_read_u64(&sh->n_full_errors));
	v[6] = Int64GetDatum((int64) pg_atomic_read_u64(&sh->n_to_log));
	v[7] = Int64GetDatum((int64) pg_atomic_read_u64(&sh->n_incidents));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, v, n)));
}

/*
 * toms.audit_flush(timeout_ms): wait until everything queued before the
 * call (in any database) is committed by the workers.  For tests and for
 * callers who want a barrier without toms.audit_sync.
 */
Datum
toms_audit_flush(PG_FUNCTION_ARGS)
{
	int			timeout = PG_GETARG_INT32(0);
	AuditShared *sh = toms_audit_shared;
	uint64		target;
	TimestampTz start = GetCurrentTimestamp();
	bool		done = false;
	int			i;

	if (sh == NULL)
		PG_RETURN_BOOL(false);
	LWLockAcquire(toms_audit_lock(), LW_SHARED);
	target = sh->head;
	LWLockRelease(toms_audit_lock());
	for (;;)
	{
		LWLockAcquire(toms_audit_lock(), LW_SHARED);
		done = sh->tail >= target;
		if (!done)
		{
			for (i = 0; i < AUDIT_MAX_DBS; i++)
				if (sh->dbs[i].latch)
					SetLatch(sh->dbs[i].latch);
			if (sh->launcher_latch)
				SetLatch(sh->launcher_latch);
		}
		LWLockRelease(toms_audit_lock());
		if (done || TimestampDifferenceExceeds(start, GetCurrentTimestamp(), timeout))
			break;
		CHECK_FOR_INTERRUPTS();
		(void) ConditionVariableTimedSleep(&sh->cv_done, 20, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	PG_RETURN_BOOL(done);
}

/* toms.audit_admin_event(): an administrative act done in SQL */
Datum
toms_audit_admin_sql(PG_FUNCTION_ARGS)
{
	toms_audit_admin(PG_ARGISNULL(0) ? "unknown" : text_to_cstring(PG_GETARG_TEXT_PP(0)),
					 PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
					 PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)));
	PG_RETURN_VOID();
}


/* ----------------------------------------------------------------
 * Set-up
 * ----------------------------------------------------------------
 */
void
toms_audit_init(void)
{
	toms_audit_queue_init();

	/* query ids are part of the record */
	EnableQueryId();
	RegisterXactCallback(audit_xact_callback, NULL);
	RegisterSubXactCallback(audit_subxact_callback, NULL);
	toms_on_relcache(relname_cache_flush);
}
