/*-------------------------------------------------------------------------
 *
 * audit_worker.c
 *	  Background workers that drain the shared audit queue into
 *	  toms.audit_log and keep its hash chain: the launcher, and one worker
 *	  per database.
 *
 *	  A launcher (static worker, no database) starts one worker per
 *	  database that has queued records, and once per database after a
 *	  start or crash restart to reconcile; every database that has the
 *	  extension is served without configuration.  A database worker exits
 *	  after two idle seconds, so that it never keeps DROP DATABASE waiting.
 *	  What a worker does in one transaction is in audit_writer.c.
 *
 *	  Locking: the AuditShared fields are protected by the audit LWLock,
 *	  as audit_queue.c describes; nothing here sleeps while holding it.
 *
 *	  The top of the audit files: calls audit_writer.c, the lower audit
 *	  files and core (databases.c, shmem.c); only toms.c calls it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "toms.h"
#include "audit_internal.h"

PGDLLEXPORT void toms_audit_launcher_main(Datum main_arg);
PGDLLEXPORT void toms_audit_worker_main(Datum main_arg);

#define WORKER_IDLE_EXIT_MS 2000

/* ----------------------------------------------------------------
 * Database worker
 * ----------------------------------------------------------------
 */
static Oid	my_dbid = InvalidOid;

/*
 * SIGTERM (a fast shutdown, or someone killing the worker): finish what is
 * queued for this database, then exit -- the queue lives in shared memory
 * and would not survive the shutdown.
 */
static volatile sig_atomic_t got_sigterm = false;

static void
audit_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
worker_detach(int code, Datum arg)
{
	AuditShared *sh = toms_audit_shared;
	AuditDb    *db;

	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	db = toms_audit_db_slot(my_dbid, false);
	if (db && db->pid == MyProcPid)
	{
		db->pid = 0;
		db->latch = NULL;
		db->starting = false;
	}
	/* whatever we took but did not commit goes back to the queue */
	toms_audit_queue_release(MyProcPid);
	if (sh->launcher_latch)
		SetLatch(sh->launcher_latch);
	LWLockRelease(toms_audit_lock());
}

/*
 * A database's worker: batches (audit_writer.c) every toms.audit_flush_delay
 * or when woken, until idle for WORKER_IDLE_EXIT_MS or told to stop.
 */
void
toms_audit_worker_main(Datum main_arg)
{
	AuditDb    *db;
	bool		first = true;
	int			idle_ms = 0;
	int			drain_rounds = 0;
	MemoryContext loop_cxt;

	my_dbid = DatumGetObjectId(main_arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, audit_sigterm);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	db = toms_audit_db_slot(my_dbid, true);
	if (db == NULL || (db->pid != 0 && db->pid != MyProcPid))
	{
		if (db)
			db->starting = false;
		LWLockRelease(toms_audit_lock());
		proc_exit(0);
	}
	db->pid = MyProcPid;
	db->latch = MyLatch;
	db->starting = false;
	LWLockRelease(toms_audit_lock());
	before_shmem_exit(worker_detach, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(my_dbid, InvalidOid, 0);
	pgstat_report_appname("toms audit worker");
	/*
	 * The batch is the unit of durability: its commit is flushed to the local
	 * WAL before its records count as written, and reaches the standbys as
	 * all WAL does.  It does not wait for a synchronous standby: one that is
	 * away would otherwise stop the worker, fill the queue, and with it
	 * every audited read (docs/audit.md, "Standbys"), and a worker waiting
	 * for it would keep a fast shutdown waiting too.
	 */
	SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);

	toms_audit_writer_setup(my_dbid);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "toms audit worker", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		int			n;
		bool		more;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextSwitchTo(loop_cxt);
		n = toms_audit_writer_batch(&first, &more);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_cxt);
		if (n < 0)
			break;				/* no extension here */
		if (more)
			continue;			/* more is waiting */
		if (got_sigterm)
		{
			/* drained: anything queued from now on waits for the next worker */
			if (n <= 1 || ++drain_rounds > 20)
				break;
			continue;
		}
		if (n > 0)
			idle_ms = 0;
		else
			idle_ms += toms_audit_flush_delay;

		if (idle_ms >= WORKER_IDLE_EXIT_MS)
		{
			bool		busy;

			LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
			busy = toms_audit_queue_has(my_dbid);
			if (!busy)
			{
				db = toms_audit_db_slot(my_dbid, false);
				if (db && db->pid == MyProcPid)
				{
					db->pid = 0;
					db->latch = NULL;
				}
			}
			LWLockRelease(toms_audit_lock());
			if (!busy)
				break;
			idle_ms = 0;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 toms_audit_flush_delay, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	proc_exit(0);
}

/* ----------------------------------------------------------------
 * Launcher
 * ----------------------------------------------------------------
 */
static BackgroundWorkerHandle *handles[AUDIT_MAX_DBS];

static bool
start_worker(AuditDb *db, int idx)
{
	BackgroundWorker bgw;

	toms_bgworker(&bgw, "toms_audit_worker_main", "toms audit worker", db->dbid,
				  BgWorkerStart_RecoveryFinished, BGW_NEVER_RESTART);
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &handles[idx]))
		return false;
	db->starting = true;
	return true;
}

/* Logins (and incidents) raised before a database was chosen. */
static void
resolve_unassigned(void)
{
	AuditShared *sh = toms_audit_shared;
	uint64		i;
	bool		any = false;
	List	   *dbs;
	ListCell   *lc;

	LWLockAcquire(toms_audit_lock(), LW_SHARED);
	for (i = sh->tail; i < sh->head && !any; i++)
		if (sh->slots[i % sh->nslots].state == SLOT_FULL &&
			!OidIsValid(sh->slots[i % sh->nslots].dbid))
			any = true;
	LWLockRelease(toms_audit_lock());
	if (!any)
		return;

	/* the databases, read outside the queue lock (no I/O under it) */
	dbs = toms_databases(false);
	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	for (i = sh->tail; i < sh->head; i++)
	{
		AuditSlot  *slot = &sh->slots[i % sh->nslots];
		char	   *name;

		if (slot->state != SLOT_FULL || OidIsValid(slot->dbid))
			continue;
		name = toms_audit_rec_get_str(&slot->rec, RS_DATABASE);
		if (name == NULL)
			continue;
		foreach(lc, dbs)
		{
			TomsDatabase *d = lfirst(lc);

			if (strcmp(NameStr(d->name), name) == 0)
				slot->dbid = d->oid;
		}
	}
	toms_audit_queue_drop(InvalidOid, true);
	LWLockRelease(toms_audit_lock());
	list_free_deep(dbs);
	ConditionVariableBroadcast(&sh->cv_done);
	ConditionVariableBroadcast(&sh->cv_space);
}

/*
 * Shutting down: the database workers drain their queues on their own
 * SIGTERM.  Give them a moment, then whatever is still queued (for a
 * database whose worker was not running) goes to the server log rather
 * than nowhere.
 */
static void
launcher_shutdown(void)
{
	AuditShared *sh = toms_audit_shared;
	int			waited;
	uint64		i;

	for (waited = 0; waited < 5000; waited += 50)
	{
		bool		busy = false;
		int			d;

		LWLockAcquire(toms_audit_lock(), LW_SHARED);
		for (d = 0; d < AUDIT_MAX_DBS; d++)
			if (sh->dbs[d].pid != 0)
				busy = true;
		LWLockRelease(toms_audit_lock());
		if (!busy)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	for (i = sh->tail; i < sh->head; i++)
	{
		AuditSlot  *slot = &sh->slots[i % sh->nslots];

		if (slot->state == SLOT_FULL && slot->rec.h.type == AREC_RECORD)
		{
			slot->state = SLOT_DONE;
			toms_audit_log_instead(&slot->rec);
		}
	}
	sh->launcher_pid = 0;
	sh->launcher_latch = NULL;
	LWLockRelease(toms_audit_lock());
	/* exit code 1: the postmaster restarts us if it is not shutting down */
	proc_exit(1);
}

void
toms_audit_launcher_main(Datum main_arg)
{
	AuditShared *sh = toms_audit_shared;
	List	   *dbs;
	ListCell   *lc;
	TimestampTz last_maint = GetCurrentTimestamp();

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, audit_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("toms audit launcher");

	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	sh->launcher_pid = MyProcPid;
	sh->launcher_latch = MyLatch;
	LWLockRelease(toms_audit_lock());

	/* a standby writes nothing: its records go to the server log */
	while (RecoveryInProgress())
	{
		CHECK_FOR_INTERRUPTS();
		if (got_sigterm)
			launcher_shutdown();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}

	/* after a start or a crash: every database reconciles once */
	dbs = toms_databases(true);
	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	foreach(lc, dbs)
	{
		AuditDb    *db = toms_audit_db_slot(((TomsDatabase *) lfirst(lc))->oid, true);

		if (db)
			db->reconcile = true;
	}
	LWLockRelease(toms_audit_lock());
	list_free_deep(dbs);

	for (;;)
	{
		bool		want[AUDIT_MAX_DBS];
		uint64		i;
		int			d;

		CHECK_FOR_INTERRUPTS();
		if (got_sigterm)
			launcher_shutdown();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		resolve_unassigned();

		/* with retention on, visit every database now and then */
		if (toms_audit_retention > 0 &&
			TimestampDifferenceExceeds(last_maint, GetCurrentTimestamp(), 60000))
		{
			last_maint = GetCurrentTimestamp();
			dbs = toms_databases(true);
			LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
			foreach(lc, dbs)
				(void) toms_audit_db_slot(((TomsDatabase *) lfirst(lc))->oid, true);
			LWLockRelease(toms_audit_lock());
			list_free_deep(dbs);
		}

		memset(want, 0, sizeof(want));
		LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
		for (d = 0; d < AUDIT_MAX_DBS; d++)
		{
			AuditDb    *db = &sh->dbs[d];
			pid_t		pid;

			if (!OidIsValid(db->dbid))
				continue;
			if (db->starting && handles[d] &&
				GetBackgroundWorkerPid(handles[d], &pid) == BGWH_STOPPED)
			{
				/* it never attached: the database is gone or unusable */
				db->starting = false;
				if (db->pid == 0)
				{
					toms_audit_queue_drop(db->dbid, false);
					db->reconcile = false;
				}
			}
			if (db->reconcile || (toms_audit_retention > 0 && TimestampDifferenceExceeds(db->last_flush, GetCurrentTimestamp(), 60000)))
				want[d] = true;
		}
		for (i = sh->tail; i < sh->head; i++)
		{
			AuditSlot  *slot = &sh->slots[i % sh->nslots];
			AuditDb    *db;

			if (slot->state != SLOT_FULL || !OidIsValid(slot->dbid))
				continue;
			db = toms_audit_db_slot(slot->dbid, true);
			if (db == NULL)
			{
				toms_audit_queue_drop(slot->dbid, false);
				continue;
			}
			want[db - sh->dbs] = true;
		}
		for (d = 0; d < AUDIT_MAX_DBS; d++)
		{
			AuditDb    *db = &sh->dbs[d];

			if (want[d] && db->pid == 0 && !db->starting)
			{
				if (!start_worker(db, d))
					ereport(LOG,
							(errmsg("toms audit launcher: could not start a worker for database %u", db->dbid),
							 errhint("Raise max_worker_processes.")));
			}
		}
		LWLockRelease(toms_audit_lock());

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 toms_audit_flush_delay, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

void
toms_audit_worker_init(void)
{
	BackgroundWorker bgw;

	/* also on a standby, where it waits for promotion */
	toms_bgworker(&bgw, "toms_audit_launcher_main", "toms audit launcher", InvalidOid,
				  BgWorkerStart_ConsistentState, 1);
	RegisterBackgroundWorker(&bgw);
}
