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
 *	  SIGTERM is PostgreSQL's die(): a worker leaves whatever it waits on (a
 *	  lock, a latch, a synchronous standby).  One exception keeps shutdown
 *	  clean: a SIGTERM that finds a worker between transactions lets it
 *	  drain its queue first, for about AUDIT_DRAIN_MS (checked after each
 *	  batch), each lock wait bounded by the same (lock_timeout); a second
 *	  SIGTERM ends the drain.  A batch cut short is rolled back and its records go back to
 *	  the queue (worker_detach): the next worker writes them, or in a
 *	  shutdown the launcher puts them in the server log (launcher_exit).
 *	  A SIGTERM outside a shutdown (pg_terminate_backend) leaves the queue
 *	  as it is: it lives in shared memory, and the launcher the postmaster
 *	  starts again a second later serves it (postmaster_stopping).
 *	  docs/operations.md, "Shutdown".
 *
 *	  The launcher also watches the synchronous standbys: one that stays
 *	  away for toms.standby_incident_after raises an incident in every
 *	  database (watch_sync_standbys).
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
#include "replication/syncrep.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/pidfile.h"
#include "utils/timestamp.h"

#include "toms.h"
#include "audit_internal.h"

PGDLLEXPORT void toms_audit_launcher_main(Datum main_arg);
PGDLLEXPORT void toms_audit_worker_main(Datum main_arg);

#define WORKER_IDLE_EXIT_MS 2000
/* how long a worker told to stop between transactions drains its queue */
#define AUDIT_DRAIN_MS 3000
/* how long the launcher, told to stop, waits for the workers' drain */
#define LAUNCHER_WAIT_MS 5000

/* toms.standby_incident_after (s): a synchronous standby away this long */
static int	standby_incident_after = 60;

/* ----------------------------------------------------------------
 * Database worker
 * ----------------------------------------------------------------
 */
static Oid	my_dbid = InvalidOid;
static bool stopping = false;	/* told to stop: draining or dying */

/*
 * SIGTERM (a fast shutdown, or someone killing the worker): die(), so that
 * the next interrupt check leaves any wait; got_sigterm remembers it, so
 * that a worker between transactions may first drain (see the top of the
 * file).  The queue lives in shared memory and would not survive a
 * shutdown.
 */
static volatile sig_atomic_t got_sigterm = false;

static void
audit_sigterm(SIGNAL_ARGS)
{
	got_sigterm = true;
	die(postgres_signal_arg);
}

/*
 * Told to stop, between transactions and waiting on nothing: take the
 * pending die() back, once, and bound every lock wait of the drain.  A
 * second SIGTERM sets it again, and the next interrupt check leaves.
 */
static void
begin_drain(void)
{
	char		ms[32];
	AuditDb    *db;

	ProcDiePending = false;
	got_sigterm = false;
	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	db = toms_audit_db_slot(my_dbid, false);
	if (db && db->pid == MyProcPid)
		db->draining = true;
	LWLockRelease(toms_audit_lock());
	snprintf(ms, sizeof(ms), "%d", AUDIT_DRAIN_MS);
	SetConfigOption("lock_timeout", ms, PGC_SUSET, PGC_S_OVERRIDE);
	ereport(DEBUG1, (errmsg("toms audit worker draining its queue before it exits")));
}

/*
 * Is the server shutting down?  In PG15 a background worker gets the same
 * SIGTERM from pg_terminate_backend() as from a smart or fast shutdown, and
 * no flag in shared memory tells them apart; but the postmaster writes
 * "stopping" into the status line of postmaster.pid before it signals any
 * child (smart, fast and immediate alike), as pg_ctl reads it.  A file we
 * cannot read counts as a shutdown: the queue then goes to the server log,
 * as before, never away.  Reads a file: never call it under the audit lock.
 */
static bool
postmaster_stopping(void)
{
	char		path[MAXPGPATH];
	char		line[MAXPGPATH + 64];
	FILE	   *f;
	int			n = 0;
	bool		pm_stopping = true;

	snprintf(path, sizeof(path), "%s/postmaster.pid", DataDir);
	f = fopen(path, "r");
	if (f == NULL)
		return true;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		if (++n == LOCK_FILE_LINE_PM_STATUS)
		{
			pm_stopping = strncmp(line, PM_STATUS_STOPPING, strlen(PM_STATUS_STOPPING)) == 0;
			break;
		}
	}
	fclose(f);
	return pm_stopping;
}

static void
worker_detach(int code, Datum arg)
{
	AuditShared *sh = toms_audit_shared;
	AuditDb    *db;
	bool		shutdown = (stopping || got_sigterm) && postmaster_stopping();

	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	db = toms_audit_db_slot(my_dbid, false);
	if (db && db->pid == MyProcPid)
	{
		db->pid = 0;
		db->latch = NULL;
		db->starting = false;
		db->draining = false;
	}
	/* whatever we took but did not commit goes back to the queue */
	toms_audit_queue_release(MyProcPid);
	/*
	 * a shutdown, and no launcher left to do it: the server log has it.
	 * Outside a shutdown the records stay queued for the next launcher.
	 */
	if (shutdown && sh->launcher_pid == 0)
		toms_audit_queue_drop(my_dbid, false);
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
	bool		draining = false;
	TimestampTz drain_start = 0;
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

		/* between transactions: a stop may drain first (only once) */
		if (got_sigterm && !draining)
		{
			draining = true;
			stopping = true;
			drain_start = GetCurrentTimestamp();
			begin_drain();
		}
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
		if (draining &&
			TimestampDifferenceExceeds(drain_start, GetCurrentTimestamp(), AUDIT_DRAIN_MS))
			break;				/* the rest waits for the next worker, or the log */
		if (more)
			continue;			/* more is waiting */
		if (draining)
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
 * The launcher exits (before_shmem_exit).  Told to stop -- wherever that
 * found it, even in a wait die() ended: the database workers drain their
 * queues on their own SIGTERM.  Give them a moment, then whatever is still
 * queued (for a database whose worker was not running, or a batch a stop
 * cut short) goes to the server log rather than nowhere.  Exiting for any
 * other reason -- a SIGTERM outside a shutdown (pg_terminate_backend)
 * among them -- it leaves the queue, in shared memory, to the launcher the
 * postmaster starts a second later (exit code 1, bgw_restart_time 1 s).
 */
static void
launcher_exit(int code, Datum arg)
{
	AuditShared *sh = toms_audit_shared;
	int			waited;
	uint64		i;

	if (!got_sigterm || !postmaster_stopping())
	{
		LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
		sh->launcher_pid = 0;
		sh->launcher_latch = NULL;
		LWLockRelease(toms_audit_lock());
		return;
	}
	for (waited = 0; waited < LAUNCHER_WAIT_MS; waited += 50)
	{
		bool		busy = false;
		int			d;
		int			rc;

		/* a worker draining, or a batch in flight (it commits or comes back) */
		LWLockAcquire(toms_audit_lock(), LW_SHARED);
		for (d = 0; d < AUDIT_MAX_DBS; d++)
			if (sh->dbs[d].pid != 0 && sh->dbs[d].draining)
				busy = true;
		for (i = sh->tail; i < sh->head && !busy; i++)
			if (sh->slots[i % sh->nslots].state == SLOT_TAKEN)
				busy = true;
		LWLockRelease(toms_audit_lock());
		if (!busy)
			break;
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_POSTMASTER_DEATH, 50,
					   PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (rc & WL_POSTMASTER_DEATH)
			break;
	}
	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	for (i = sh->tail; i < sh->head; i++)
	{
		AuditSlot  *slot = &sh->slots[i % sh->nslots];
		AuditDb    *db = OidIsValid(slot->dbid) ? toms_audit_db_slot(slot->dbid, false) : NULL;

		/* a database whose worker still runs (it was not told to stop) keeps its own */
		if (db && db->pid != 0)
			continue;
		if (slot->state == SLOT_FULL && slot->rec.h.type == AREC_RECORD)
		{
			slot->state = SLOT_DONE;
			toms_audit_log_instead(&slot->rec);
		}
	}
	sh->launcher_pid = 0;
	sh->launcher_latch = NULL;
	LWLockRelease(toms_audit_lock());
}

/* Told to stop, between two rounds: take the pending die() back, exit. */
static void
launcher_shutdown(void)
{
	ProcDiePending = false;
	/* exit code 1: the postmaster restarts us if it is not shutting down */
	proc_exit(1);
}

/* ----------------------------------------------------------------
 * Synchronous standbys that stay away
 * ----------------------------------------------------------------
 */

/* An incident in every database (those without toms drop it). */
static void
raise_standby_incident(const char *detail)
{
	List	   *dbs = toms_databases(true);
	ListCell   *lc;
	AuditRec   *rec = palloc(sizeof(AuditRec));

	toms_audit_rec_init(rec, AREC_INCIDENT, GetCurrentTimestamp());
	toms_audit_rec_set_str(rec, RS_ACTION, "sync_standby_absent");
	toms_audit_rec_set_str(rec, RS_FATE, "high");
	toms_audit_rec_set_str(rec, RS_DETAIL, detail);
	/* never sleep here: we start the workers that make room */
	foreach(lc, dbs)
		(void) toms_audit_enqueue(rec, ((TomsDatabase *) lfirst(lc))->oid, AUDIT_NO_WAIT);
	pfree(rec);
	list_free_deep(dbs);
}

/*
 * synchronous_standby_names asks for num_sync standbys; fewer are
 * streaming (what pg_stat_replication shows as sync or quorum) for
 * toms.standby_incident_after: an incident, once per absence, and a
 * WARNING in the server log; their return is logged.  Checked once a
 * second.
 */
static void
watch_sync_standbys(void)
{
	static TimestampTz away_since = 0;
	static TimestampTz last_check = 0;
	static bool raised = false;
	TimestampTz now = GetCurrentTimestamp();
	SyncRepStandbyData *standbys = NULL;
	int			n;
	int			need;

	if (!TimestampDifferenceExceeds(last_check, now, 1000))
		return;
	last_check = now;
	if (standby_incident_after <= 0 || SyncRepConfig == NULL ||
		SyncRepStandbyNames == NULL || SyncRepStandbyNames[0] == '\0')
	{
		if (raised && standby_incident_after > 0)
			ereport(LOG,
					(errmsg("toms: synchronous standbys are no longer required")));
		away_since = 0;
		raised = false;
		return;
	}
	need = SyncRepConfig->num_sync;
	n = SyncRepGetCandidateStandbys(&standbys);
	if (standbys)
		pfree(standbys);
	if (n >= need)
	{
		if (raised)
			ereport(LOG,
					(errmsg("toms: the synchronous standbys are back")));
		away_since = 0;
		raised = false;
		return;
	}
	if (away_since == 0)
		away_since = now;
	if (!raised &&
		TimestampDifferenceExceeds(away_since, now, standby_incident_after * 1000))
	{
		StringInfoData d;

		initStringInfo(&d);
		appendStringInfoString(&d, "{\"synchronous_standby_names\":");
		escape_json(&d, SyncRepStandbyNames);
		appendStringInfo(&d, ",\"required\":%d,\"streaming\":%d,\"away_since\":", need, n);
		escape_json(&d, timestamptz_to_str(away_since));
		appendStringInfoChar(&d, '}');
		ereport(WARNING,
				(errmsg("toms: a synchronous standby has been away for more than %d s", standby_incident_after),
				 errdetail("synchronous_standby_names requires %d, %d streaming.", need, n),
				 errhint("Writes that commit with synchronous_commit on wait for it; bring it back or change synchronous_standby_names.")));
		raise_standby_incident(d.data);
		pfree(d.data);
		raised = true;
	}
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
	before_shmem_exit(launcher_exit, (Datum) 0);

	/* a standby writes nothing: its records go to the server log */
	while (RecoveryInProgress())
	{
		if (got_sigterm)
			launcher_shutdown();
		CHECK_FOR_INTERRUPTS();
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

		if (got_sigterm)
			launcher_shutdown();
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		resolve_unassigned();
		watch_sync_standbys();

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

	DefineCustomIntVariable("toms.standby_incident_after",
							gettext_noop("A synchronous standby away this long raises an incident; 0 never."),
							NULL, &standby_incident_after, 60, 0, 86400, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);

	/* also on a standby, where it waits for promotion */
	toms_bgworker(&bgw, "toms_audit_launcher_main", "toms audit launcher", InvalidOid,
				  BgWorkerStart_ConsistentState, 1);
	RegisterBackgroundWorker(&bgw);
}
