/*-------------------------------------------------------------------------
 *
 * hooks.c
 *	  The one file that installs PostgreSQL hooks (as contrib/sepgsql's
 *	  hooks.c does).  Each hook calls the features' checks in the order
 *	  written below, so the order is visible here and does not depend on
 *	  the order of the *_init() calls in toms.c.  Every hook chains to the
 *	  hook that was installed before toms (another preloaded library) or to
 *	  PostgreSQL's standard function.
 *
 *	  ProcessUtility
 *	    0. transaction control (BEGIN, COMMIT, SAVEPOINT, PREPARE
 *	       TRANSACTION, ...) goes straight on: none of the checks below
 *	       looks at it (toms follows transactions through its callbacks),
 *	       and an application sends two of them in nearly every transaction;
 *	       only the shared contexts note PREPARE TRANSACTION's gid, and
 *	       after COMMIT/ROLLBACK PREPARED see whether to start over
 *	       (context_cache.c)
 *	    1. contexts:  role DDL and the like noted for the commit's bump
 *	                  of the shared contexts              (context_cache.c)
 *	       password:  ALTER ROLE of a deactivated role        (password.c)
 *	    2. audit:     COPY/TRUNCATE records begun             (audit_capture.c)
 *	    -- in PG_TRY, so that a refusal below is a failed COPY --
 *	    3. guard:     refuse DDL that weakens the protection   (guard.c),
 *	                  then partitions checked (guard_partition.c)
 *	    4. the statement
 *	    5. guard:     a restored policy is checked            (guard.c),
 *	                  then new partitions protected (guard_partition.c)
 *	    -- end of PG_TRY; on error: the guard's statement level ends,
 *	       the audit records a failed COPY --
 *	    6. audit:     COPY/TRUNCATE records completed          (audit_capture.c)
 *	    7. password:  history follows a renamed role          (password.c)
 *
 *	  ExecutorStart
 *	    0. guard:     direct writes of toms' tables; a materialized view
 *	                  filled from a protected table  (guard.c, guard_self.c);
 *	       contexts:  DML on pg_authid/pg_auth_members noted (context_cache.c)
 *	    1. tenant:    fail closed without a context; privileged views and
 *	                  SECURITY DEFINER paths; WITH HOLD  (tenant_exec.c)
 *	    2. the executor starts
 *	    3. tenant:    the tenant the statement started under (tenant_exec.c)
 *	    4. audit:     one record per protected table and action (audit_capture.c)
 *	  ExecutorRun     tenant: a cursor stays in its tenant (tenant_exec.c); audit
 *	                  knows the client's statement nested ones run in
 *	  ExecutorFinish  audit nesting, as ExecutorRun
 *	  ExecutorEnd     audit: records completed with their row counts
 *	  ExecutorCheckPerms  tenant: a foreign key's check over a protected
 *	                  table's rows takes PostgreSQL's per-row path
 *	                  (tenant_exec.c)
 *
 *	  object_access_hook       guard (guard.c), after the other libraries
 *	  fmgr_hook                SECURITY DEFINER stack (tenant_exec.c), then
 *	                           toms' own functions running (guard_self.c),
 *	                           then Citus replacing a table, whose end is
 *	                           checked after the others (citus_convert.c)
 *	  needs_fmgr_hook          other libraries, then toms' functions that may
 *	                           write (guard_self.c), then Citus'
 *	                           undistribute_table() and
 *	                           alter_distributed_table() (citus_convert.c)
 *	  check_password_hook      password policy (password.c)
 *	  ClientAuthentication_hook  TLS, login audit, lock-out (account.c)
 *	  emit_log_hook            secrets out of the server log (redact.c)
 *	  shmem_request/startup    toms' shared memory (shmem.c)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/objectaccess.h"
#include "commands/user.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "libpq/auth.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/elog.h"

#include "toms.h"

static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ExecutorCheckPerms_hook_type prev_ExecutorCheckPerms = NULL;
static object_access_hook_type prev_object_access = NULL;
static fmgr_hook_type prev_fmgr = NULL;
static needs_fmgr_hook_type prev_needs_fmgr = NULL;
static check_password_hook_type prev_check_password = NULL;
static ClientAuthentication_hook_type prev_client_auth = NULL;
static emit_log_hook_type prev_emit_log = NULL;

static void
toms_hook_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	toms_shmem_request();
}

static void
toms_hook_shmem_startup(void)
{
	if (prev_shmem_startup)
		prev_shmem_startup();
	toms_shmem_startup();
}

/* The statement itself: the hook installed before toms, or PostgreSQL's. */
static void
next_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					ProcessUtilityContext context, ParamListInfo params,
					QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/*
 * COMMIT PREPARED / ROLLBACK PREPARED: then the shared contexts, if the
 * prepared transaction changed what verification reads (context_cache.c).
 */
static void
finish_prepared(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	TransactionStmt *stmt = (TransactionStmt *) pstmt->utilityStmt;
	bool		commit = stmt->kind == TRANS_STMT_COMMIT_PREPARED;

	PG_TRY();
	{
		next_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		toms_context_cache_prepared_done(stmt->gid, commit);
		PG_RE_THROW();
	}
	PG_END_TRY();
	toms_context_cache_prepared_done(stmt->gid, commit);
}

static void
toms_hook_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						 ProcessUtilityContext context, ParamListInfo params,
						 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	void	   *volatile audit = NULL;
	TomsPartitionWork partition;

	if (IsA(parsetree, TransactionStmt))
	{
		TransactionStmt *stmt = (TransactionStmt *) parsetree;

		toms_context_cache_utility(parsetree);	/* PREPARE: its gid */
		if (stmt->kind == TRANS_STMT_COMMIT_PREPARED ||
			stmt->kind == TRANS_STMT_ROLLBACK_PREPARED)
			finish_prepared(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
		else
			next_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
		return;
	}
	toms_context_cache_utility(parsetree);
	toms_password_utility_before(parsetree);
	audit = toms_audit_utility_begin(pstmt);
	PG_TRY();
	{
		toms_guard_utility_before(pstmt);
		partition = toms_guard_partition_before(pstmt);
		next_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
		toms_guard_utility_after();
		toms_guard_partition_after(partition);
	}
	PG_CATCH();
	{
		toms_guard_utility_failed();
		if (audit)
			toms_audit_utility_failed(audit);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (audit)
		toms_audit_utility_end(audit, qc);
	toms_password_utility_after(parsetree);
}

static void
toms_hook_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	char		tenant[TOMS_MAX_TENANT_LEN + 1];
	Oid			filtered;

	toms_guard_executor_start(queryDesc);
	toms_context_cache_executor_start(queryDesc);
	filtered = toms_tenant_executor_check(queryDesc, eflags, tenant);
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	if (OidIsValid(filtered))
		toms_tenant_executor_started(queryDesc, eflags, filtered, tenant);
	toms_audit_executor_start(queryDesc, eflags);
}

static void
toms_hook_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
					  bool execute_once)
{
	void	   *saved;

	toms_tenant_executor_run(queryDesc);
	saved = toms_audit_nest_enter(queryDesc);
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		toms_audit_nest_leave(saved);
	}
	PG_END_TRY();
}

static void
toms_hook_ExecutorFinish(QueryDesc *queryDesc)
{
	void	   *saved = toms_audit_nest_enter(queryDesc);

	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		toms_audit_nest_leave(saved);
	}
	PG_END_TRY();
}

static void
toms_hook_ExecutorEnd(QueryDesc *queryDesc)
{
	toms_audit_executor_end(queryDesc);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/* only ever narrows: toms answers "no" after the other libraries' "yes" */
static bool
toms_hook_ExecutorCheckPerms(List *rangeTable, bool ereport_on_violation)
{
	if (prev_ExecutorCheckPerms && !prev_ExecutorCheckPerms(rangeTable, ereport_on_violation))
		return false;
	return toms_tenant_check_perms(rangeTable, ereport_on_violation);
}

static void
toms_hook_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	toms_guard_object_access(access, classId, objectId, subId, arg);
}

/*
 * PostgreSQL calls fmgr_hook for SECURITY DEFINER functions and functions
 * with SET clauses without asking needs_fmgr_hook; besides those, the
 * guard wants toms' own functions that may write (guard_self.c: writes of
 * toms' tables come only from them), and Citus' functions that replace a
 * table (citus_convert.c).
 */
static bool
toms_hook_needs_fmgr(Oid fn_oid)
{
	if (prev_needs_fmgr && prev_needs_fmgr(fn_oid))
		return true;
	return toms_guard_needs_fmgr(fn_oid) || toms_citus_needs_fmgr(fn_oid);
}

static void
toms_hook_fmgr(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	if (event == FHET_START)
	{
		/* the other hooks first: an error there leaves nothing pushed */
		if (prev_fmgr)
			prev_fmgr(event, flinfo, private);
		toms_tenant_fmgr(event, flinfo);
		toms_guard_fmgr(event, flinfo);
		toms_citus_fmgr(event, flinfo);
		return;
	}
	toms_guard_fmgr(event, flinfo);
	toms_tenant_fmgr(event, flinfo);
	if (prev_fmgr)
		prev_fmgr(event, flinfo, private);
	/* last: the end of a Citus conversion may raise, the rest is popped */
	toms_citus_fmgr(event, flinfo);
}

static void
toms_hook_check_password(const char *username, const char *shadow_pass,
						 PasswordType password_type, Datum validuntil_time,
						 bool validuntil_null)
{
	if (prev_check_password)
		prev_check_password(username, shadow_pass, password_type,
							validuntil_time, validuntil_null);
	toms_check_password(username, shadow_pass, password_type,
						validuntil_time, validuntil_null);
}

static void
toms_hook_client_auth(Port *port, int status)
{
	if (prev_client_auth)
		prev_client_auth(port, status);
	toms_account_client_auth(port, status);
}

static void
toms_hook_emit_log(ErrorData *edata)
{
	toms_redact_log(edata);
	if (prev_emit_log)
		prev_emit_log(edata);
}

void
toms_hooks_install(void)
{
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = toms_hook_shmem_request;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = toms_hook_shmem_startup;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = toms_hook_ProcessUtility;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = toms_hook_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = toms_hook_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = toms_hook_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = toms_hook_ExecutorEnd;
	prev_ExecutorCheckPerms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = toms_hook_ExecutorCheckPerms;
	prev_object_access = object_access_hook;
	object_access_hook = toms_hook_object_access;
	prev_fmgr = fmgr_hook;
	fmgr_hook = toms_hook_fmgr;
	prev_needs_fmgr = needs_fmgr_hook;
	needs_fmgr_hook = toms_hook_needs_fmgr;
	prev_check_password = check_password_hook;
	check_password_hook = toms_hook_check_password;
	prev_client_auth = ClientAuthentication_hook;
	ClientAuthentication_hook = toms_hook_client_auth;
	prev_emit_log = emit_log_hook;
	emit_log_hook = toms_hook_emit_log;
}
