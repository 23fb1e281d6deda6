/*-------------------------------------------------------------------------
 *
 * lifecycle_worker.c
 *	  Background workers for deletion stage 2 and retention (docs/deletion.md;
 *	  measures 6b, 8a), and, on a Citus coordinator, the copy of toms'
 *	  tables to a node added later (docs/scaling.md).
 *
 *	  A launcher (static worker, connected to no database, as PostgreSQL's
 *	  logical replication launcher is) wakes every toms.lifecycle_naptime
 *	  and starts one dynamic worker per connectable, non-template database
 *	  that has none running.  That worker leaves at once where toms is not
 *	  installed; elsewhere it carries out what is due and exits, so that it
 *	  never holds a database connection for longer than its work (DROP
 *	  DATABASE and CREATE DATABASE ... TEMPLATE stay possible).
 *
 *	  All the state of a deletion lives in toms.deletion_requests and
 *	  toms.deletion_steps.  Each unit of work -- one batch of one table, one
 *	  phase transition, one certificate -- is one transaction that does the
 *	  work and records it (worker_spi's StartTransactionCommand ... Commit
 *	  pattern), so a crash or pg_terminate_backend() loses at most the unit
 *	  in flight and no batch is applied twice or half.  The logic of each
 *	  unit is in SQL (toms._deletion_work() and friends in
 *	  50_lifecycle.sql); this file runs it, and does the one thing SQL
 *	  cannot: VACUUM of the purged tables, which needs a top-level command.
 *
 *	  A session-level advisory lock keeps a second worker out of the same
 *	  database.  On start the worker reconciles by logging each request it
 *	  resumes: there is nothing half-done to repair, since every unit is
 *	  atomic, and VACUUM and the wait for standbys are idempotent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "commands/vacuum.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "toms.h"

PGDLLEXPORT void toms_lifecycle_launcher_main(Datum arg);
PGDLLEXPORT void toms_lifecycle_worker_main(Datum arg);

/* Settings (PGC_SIGHUP: worker timings and sizes). */
static int	lifecycle_naptime = 10000;	/* ms */
static int	deletion_batch_size = 10000;
static int	deletion_batch_pause = 10;	/* ms */
static int	deletion_copies = -1;
static int	deletion_copies_timeout = 0;	/* s; 0 = wait for ever */

#define WORKER_APPNAME "toms lifecycle worker"

/* ---------------------------------------------------------------------
 * Launcher
 * ---------------------------------------------------------------------
 */

typedef struct DbWorker
{
	Oid			dboid;
	BackgroundWorkerHandle *handle;
	TimestampTz started;		/* when its last worker was started */
} DbWorker;

static DbWorker *dbworkers = NULL;
static int	ndbworkers = 0;

static bool
worker_running(DbWorker *w)
{
	pid_t		pid;

	if (w->handle == NULL)
		return false;
	switch (GetBackgroundWorkerPid(w->handle, &pid))
	{
		case BGWH_STARTED:
		case BGWH_NOT_YET_STARTED:
			return true;
		default:
			pfree(w->handle);
			w->handle = NULL;
			return false;
	}
}

static void
start_db_worker(DbWorker *w)
{
	BackgroundWorker worker;

	toms_bgworker(&worker, "toms_lifecycle_worker_main", "toms lifecycle worker", w->dboid,
				  BgWorkerStart_RecoveryFinished, BGW_NEVER_RESTART);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &w->handle))
	{
		/* No free slot: try again at the next round. */
		w->handle = NULL;
		ereport(LOG,
				(errmsg("toms lifecycle launcher could not start a worker for database %u", w->dboid),
				 errhint("Consider increasing max_worker_processes.")));
	}
}

void
toms_lifecycle_launcher_main(Datum arg)
{
	MemoryContext roundcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("toms lifecycle launcher");

	roundcxt = AllocSetContextCreate(TopMemoryContext, "toms lifecycle launcher",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		List	   *dbs;
		ListCell   *lc;
		DbWorker   *next;
		int			nnext = 0;
		TimestampTz now;
		long		sleep_ms = lifecycle_naptime;
		MemoryContext oldcxt;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(roundcxt);
		oldcxt = MemoryContextSwitchTo(roundcxt);
		dbs = toms_databases(true);
		MemoryContextSwitchTo(oldcxt);

		/*
		 * Keep the handles of databases that still exist.  A database gets
		 * a new worker once per naptime at most: the postmaster sets our
		 * latch whenever one of our workers starts or exits, and that alone
		 * must not start the next one.
		 */
		next = MemoryContextAllocZero(TopMemoryContext, sizeof(DbWorker) * (list_length(dbs) + 1));
		now = GetCurrentTimestamp();
		foreach(lc, dbs)
		{
			Oid			dboid = ((TomsDatabase *) lfirst(lc))->oid;
			DbWorker   *w = &next[nnext];
			int			i;

			w->dboid = dboid;
			for (i = 0; i < ndbworkers; i++)
			{
				if (dbworkers[i].dboid == dboid)
				{
					w->handle = dbworkers[i].handle;
					w->started = dbworkers[i].started;
					dbworkers[i].handle = NULL;
				}
			}
			if (!worker_running(w))
			{
				long		due_ms = lifecycle_naptime -
					TimestampDifferenceMilliseconds(w->started, now);

				if (w->started == 0 || due_ms <= 0)
				{
					start_db_worker(w);
					w->started = now;
				}
				else
					sleep_ms = Min(sleep_ms, due_ms);
			}
			nnext++;
		}
		if (dbworkers)
		{
			int			i;

			for (i = 0; i < ndbworkers; i++)
				if (dbworkers[i].handle)
					pfree(dbworkers[i].handle);
			pfree(dbworkers);
		}
		dbworkers = next;
		ndbworkers = nnext;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 10), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * Per-database worker
 * ---------------------------------------------------------------------
 */

/* Begin / end one unit of work: one transaction with SPI and a snapshot. */
static void
unit_begin(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
unit_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
check_signals(void)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/* Sleep ms milliseconds, waking for signals. */
static void
pause_ms(int ms)
{
	if (ms <= 0)
		return;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	check_signals();
}

/*
 * Are client sessions working (running a statement, or inside a
 * transaction)?  Read from the backends' status, refreshed each call.
 */
static bool
clients_active(void)
{
	bool		active = false;
	int			n;
	int			i;

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (i = 1; i <= n && !active; i++)
	{
		PgBackendStatus *be = pgstat_fetch_stat_beentry(i);

		if (be == NULL || be->st_procpid == MyProcPid || be->st_backendType != B_BACKEND)
			continue;
		active = be->st_state == STATE_RUNNING || be->st_state == STATE_IDLEINTRANSACTION ||
			be->st_state == STATE_FASTPATH;
	}
	pgstat_clear_backend_activity_snapshot();
	return active;
}

/*
 * After a batch that took batch_ms: while client sessions are working,
 * pause toms.deletion_batch_pause, and at least twice as long as the batch
 * took, so that a purge holds at most a third of one backend's time
 * against a busy server; on a server with nothing else to do, go on at
 * once.
 */
static void
pause_after_batch(long batch_ms)
{
	if (!clients_active())
	{
		check_signals();
		return;
	}
	pause_ms(Max(deletion_batch_pause, 2 * batch_ms));
}

/* Is toms installed here, at a version with the lifecycle tables? */
static bool
toms_installed(void)
{
	bool		ok = false;

	unit_begin("toms: checking the extension");
	if (OidIsValid(get_extension_oid("toms", true)))
	{
		if (SPI_execute("SELECT pg_catalog.to_regprocedure('toms._deletion_work(uuid[])') IS NOT NULL",
						true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			bool		isnull;

			ok = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
	}
	unit_end();
	return ok;
}

/*
 * One worker per database at a time, even if a restarted launcher starts a
 * second one while the first still runs: a session-level advisory lock,
 * released when the worker exits.
 */
static bool
lock_database(void)
{
	bool		ok = false;
	bool		isnull;

	unit_begin("toms: lifecycle lock");
	if (SPI_execute("SELECT pg_catalog.pg_try_advisory_lock(" TOMS_LIFECYCLE_LOCK_SQL ")",
					false, 1) == SPI_OK_SELECT && SPI_processed == 1)
		ok = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	unit_end();
	return ok;
}

/* Log the requests that a previous worker left in stage 2. */
static void
reconcile(void)
{
	uint64		i;
	bool		isnull;

	unit_begin("toms: reconciling deletions");
	/*
	 * A Citus worker holds a copy: the coordinator carries them out (not
	 * before ALTER EXTENSION toms UPDATE has created the function).
	 */
	if (toms_sql_version_current() &&
		SPI_execute("SELECT toms._citus_worker_node()", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		unit_end();
		return;
	}
	if (SPI_execute("SELECT id::text, state FROM toms.deletion_requests "
					"WHERE state IN ('purging', 'shredding', 'vacuuming', 'waiting_copies') "
					"ORDER BY requested_at", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read toms.deletion_requests");
	for (i = 0; i < SPI_processed; i++)
		ereport(LOG,
				(errmsg("toms lifecycle worker resumes deletion request %s at phase %s",
						SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
						SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2))));
	unit_end();
}

/*
 * On a Citus coordinator: nodes added (citus_add_node) or re-activated
 * (citus_activate_node) since toms.citus_setup() hold no copy of toms'
 * administrative tables and fail closed until they do (citus_catalog.c);
 * Citus copies reference tables to a new node only lazily.  Ask Citus for
 * the copy with its own replicate_reference_tables() -- every reference
 * table, as create_distributed_table() or the rebalancer would -- once per
 * round while a node lacks it.  A failure (the node down, a lock) is
 * logged naming the nodes and retried at the next round.  Nothing happens
 * off Citus, on a worker, or before toms.citus_setup().
 */
static void
run_citus_copies(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *volatile nodes = NULL;

	PG_TRY();
	{
		bool		isnull;

		unit_begin("toms: Citus nodes without toms' tables");
		/* not before ALTER EXTENSION toms UPDATE has created the function */
		if (toms_sql_version_current() &&
			SPI_execute("SELECT pg_catalog.array_to_string(toms._citus_nodes_without_copy(), ', ')",
						true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull && VARSIZE_ANY_EXHDR(DatumGetPointer(d)) > 0)
				nodes = MemoryContextStrdup(TopMemoryContext, TextDatumGetCString(d));
		}
		unit_end();

		if (nodes != NULL)
		{
			ereport(LOG,
					(errmsg("toms lifecycle worker copies toms' administrative tables to Citus node %s",
							nodes)));
			unit_begin("toms: copying toms' tables to Citus nodes");
			if (SPI_execute("SELECT pg_catalog.replicate_reference_tables('block_writes')",
							false, 0) != SPI_OK_SELECT)
				elog(ERROR, "replicate_reference_tables() failed");
			/*
			 * Citus copied over its own connections, which have committed:
			 * a new snapshot (not read-only) sees their placements.
			 */
			if (SPI_execute("SELECT 1 WHERE pg_catalog.cardinality(toms._citus_nodes_without_copy()) > 0",
							false, 1) != SPI_OK_SELECT || SPI_processed > 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("replicate_reference_tables() left a node without a placement of toms' tables")));
			unit_end();
			ereport(LOG,
					(errmsg("toms lifecycle worker copied toms' administrative tables to Citus node %s",
							nodes)));
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* logged and retried at the next round: deletions and retention go on */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (nodes != NULL)
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("toms lifecycle worker could not copy toms' administrative tables to Citus node %s",
							nodes),
					 errdetail("The copy failed: %s", edata->message),
					 errhint("The copy is retried at the next round; until it lands the node refuses every tenant context.")));
		else
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("toms lifecycle worker could not check the Citus nodes for copies of toms' tables"),
					 errdetail("The check failed: %s", edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	if (nodes != NULL)
		pfree(nodes);
}

/*
 * VACUUM one table as a top-level command.  vacuum() commits the
 * transaction we start and runs its own per table, so the statement is
 * parsed into a context of ours, and PortalContext (which it allocates
 * under) is set as a backend's would be.
 */
static void
vacuum_table(Oid relid)
{
	MemoryContext vcxt;
	MemoryContext old;
	char	   *relname;
	char	   *nspname;
	char	   *sql;
	List	   *parsed;
	RawStmt    *raw;
	ParseState *pstate;

	vcxt = AllocSetContextCreate(TopMemoryContext, "toms vacuum", ALLOCSET_DEFAULT_SIZES);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	relname = get_rel_name(relid);
	if (relname == NULL)
	{
		/* Dropped since it was purged: nothing left to vacuum. */
		CommitTransactionCommand();
		MemoryContextDelete(vcxt);
		return;
	}
	nspname = get_namespace_name(get_rel_namespace(relid));

	old = MemoryContextSwitchTo(vcxt);
	sql = psprintf("VACUUM (INDEX_CLEANUP ON, PARALLEL 0) %s",
				   quote_qualified_identifier(nspname, relname));
	pgstat_report_activity(STATE_RUNNING, sql);
	parsed = raw_parser(sql, RAW_PARSE_DEFAULT);
	raw = linitial_node(RawStmt, parsed);
	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = sql;
	MemoryContextSwitchTo(old);

	PortalContext = vcxt;
	ExecVacuum(pstate, castNode(VacuumStmt, raw->stmt), true);
	PortalContext = NULL;
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextDelete(vcxt);
}

/*
 * Stage 2: run units until none is due.  Requests whose unit failed are
 * skipped for the rest of this round (their error is in last_error).
 */
static void
run_deletions(void)
{
	StringInfoData skip;
	int			nskip = 0;

	initStringInfo(&skip);
	appendStringInfoString(&skip, "{");
	for (;;)
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1];
		char	   *action;
		char	   *request;
		Oid			relid = InvalidOid;
		bool		isnull;
		TimestampTz unit_start;

		check_signals();
		unit_start = GetCurrentTimestamp();
		unit_begin("toms: deletion stage 2");
		args[0] = CStringGetTextDatum(psprintf("%s}", skip.data));
		if (SPI_execute_with_args("SELECT action, request::text, relid "
								  "FROM toms._deletion_work($1::uuid[])",
								  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "toms._deletion_work() failed");
		action = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		request = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		if (isnull)
			relid = InvalidOid;
		/* Keep them past SPI_finish. */
		action = MemoryContextStrdup(TopMemoryContext, action);
		request = request ? MemoryContextStrdup(TopMemoryContext, request) : NULL;
		unit_end();

		if (strcmp(action, "idle") == 0)
			break;
		if (strcmp(action, "error") == 0)
		{
			appendStringInfo(&skip, "%s%s", nskip++ ? "," : "", request);
		}
		else if (strcmp(action, "vacuum") == 0)
		{
			vacuum_table(relid);
			unit_begin("toms: deletion stage 2");
			args[0] = CStringGetTextDatum(request);
			{
				Oid			types[2] = {TEXTOID, OIDOID};
				Datum		vals[2];

				vals[0] = args[0];
				vals[1] = ObjectIdGetDatum(relid);
				if (SPI_execute_with_args("SELECT toms._deletion_vacuumed($1::uuid, $2)",
										  2, types, vals, NULL, false, 1) != SPI_OK_SELECT)
					elog(ERROR, "toms._deletion_vacuumed() failed");
			}
			unit_end();
		}
		else if (strcmp(action, "done") == 0)
			ereport(LOG,
					(errmsg("toms lifecycle worker completed deletion request %s", request)));
		else if (strcmp(action, "batch") == 0)
			pause_after_batch(TimestampDifferenceMilliseconds(unit_start, GetCurrentTimestamp()));
		pfree(action);
		if (request)
			pfree(request);
	}
	pfree(skip.data);
}

/*
 * Retention: expired partitions dropped whole; then every rule's leaves,
 * batch by batch, then one audit record.
 */
static void
run_retention(void)
{
	Oid		   *rules;
	Oid		   *leaves;
	int			n;
	int			i;
	Oid			cur = InvalidOid;
	int64		total = 0;
	ItemPointerData after;		/* a leaf's cursor (see _retention_batch) */

	/*
	 * First whole partitions whose bounds hold only expired rows
	 * (lifecycle_partition.c): dropped, not emptied row by row.
	 */
	unit_begin("toms: retention");
	/* not before ALTER EXTENSION toms UPDATE has created the function */
	if (toms_sql_version_current() &&
		SPI_execute("SELECT toms._retention_drop_expired(r.relid) FROM toms.retention r"
					" JOIN pg_catalog.pg_class c ON c.oid = r.relid WHERE c.relkind = 'p'",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "toms._retention_drop_expired() failed");
	unit_end();

	unit_begin("toms: retention");
	if (SPI_execute("SELECT rule, leaf FROM toms._retention_targets()", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "toms._retention_targets() failed");
	n = (int) SPI_processed;
	rules = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * (n + 1));
	leaves = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * (n + 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		rules[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		leaves[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	unit_end();

	for (i = 0; i <= n; i++)
	{
		/* Close the previous rule with its audit record. */
		if (OidIsValid(cur) && (i == n || rules[i] != cur))
		{
			Oid			types[2] = {OIDOID, INT8OID};
			Datum		vals[2];

			unit_begin("toms: retention");
			vals[0] = ObjectIdGetDatum(cur);
			vals[1] = Int64GetDatum(total);
			if (SPI_execute_with_args("SELECT toms._retention_done($1, $2)",
									  2, types, vals, NULL, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "toms._retention_done() failed");
			unit_end();
			total = 0;
		}
		if (i == n)
			break;
		cur = rules[i];
		ItemPointerSet(&after, 0, 0);
		for (;;)
		{
			Oid			types[4] = {OIDOID, OIDOID, INT4OID, TIDOID};
			Datum		vals[4];
			int64		done;
			bool		isnull;
			Datum		last;
			TimestampTz batch_start;

			check_signals();
			batch_start = GetCurrentTimestamp();
			unit_begin("toms: retention");
			vals[0] = ObjectIdGetDatum(rules[i]);
			vals[1] = ObjectIdGetDatum(leaves[i]);
			vals[2] = Int32GetDatum(deletion_batch_size);
			vals[3] = PointerGetDatum(&after);
			if (SPI_execute_with_args("SELECT purged, last FROM toms._retention_batch($1, $2, $3, $4)",
									  4, types, vals, NULL, false, 1) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "toms._retention_batch() failed");
			done = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			last = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			if (!isnull)
				after = *(ItemPointer) DatumGetPointer(last);
			unit_end();
			total += done;
			if (done < deletion_batch_size)
				break;
			pause_after_batch(TimestampDifferenceMilliseconds(batch_start, GetCurrentTimestamp()));
		}
	}
	pfree(rules);
	pfree(leaves);
}

void
toms_lifecycle_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	SetConfigOption("application_name", WORKER_APPNAME, PGC_SU_BACKEND, PGC_S_OVERRIDE);
	/* A background purge has no business taking parallel workers. */
	SetConfigOption("max_parallel_workers_per_gather", "0", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A batch need not be durable at its commit: it deletes rows and records
	 * the count in one transaction, so a batch lost in a crash is lost whole
	 * and simply done again.  What must survive -- the destruction of keys
	 * and the certificate -- commits synchronously (SET LOCAL in SQL).
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The lock first, then the check: DROP EXTENSION toms holds the same
	 * lock until it commits (guard.c), so toms seen installed under the lock
	 * stays installed while this worker runs.
	 */
	if (!lock_database())
		proc_exit(0);
	if (!toms_installed())
		proc_exit(0);

	reconcile();
	run_citus_copies();
	run_deletions();
	run_retention();
	/* toms' functions as its scripts made them (guard_self.c, issue 16) */
	unit_begin("checking toms' functions");
	toms_guard_verify_functions();
	unit_end();
	proc_exit(0);
}

void
toms_lifecycle_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("toms.lifecycle_naptime",
							gettext_noop("Time between two rounds of the lifecycle worker."),
							NULL,
							&lifecycle_naptime,
							10000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("toms.deletion_batch_size",
							gettext_noop("Rows deleted per committed batch by deletion and retention."),
							NULL,
							&deletion_batch_size,
							10000, 1, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("toms.deletion_batch_pause",
							gettext_noop("Pause between two batches of deletion and retention."),
							NULL,
							&deletion_batch_pause,
							10, 0, 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("toms.deletion_copies",
							gettext_noop("Streaming standbys that must replay a deletion before its certificate."),
							gettext_noop("-1 means every standby that was streaming when stage 2 started."),
							&deletion_copies,
							-1, -1, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("toms.deletion_copies_timeout",
							gettext_noop("How long a deletion waits for its standbys before certifying fewer copies."),
							gettext_noop("0 waits for ever; a certificate issued with fewer copies says so."),
							&deletion_copies_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	toms_bgworker(&worker, "toms_lifecycle_launcher_main", "toms lifecycle launcher", InvalidOid,
				  BgWorkerStart_RecoveryFinished, 10);
	RegisterBackgroundWorker(&worker);
}
