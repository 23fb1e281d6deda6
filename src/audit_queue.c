/*-------------------------------------------------------------------------
 *
 * audit_queue.c
 *	  The shared-memory queue between the backends that raise audit
 *	  records and the per-database audit workers that write them, and the
 *	  audit settings (every toms.audit_* and toms.incident_* setting).
 *
 *	  The queue is a ring of fixed-size slots (AuditShared, declared in
 *	  audit_internal.h); slot i holds queue position seq with
 *	  seq % nslots == i.  Backends append at head (toms_audit_enqueue).
 *	  Each database's worker takes the FULL entries of its own database, in
 *	  order, marks them TAKEN while it inserts them, and DONE right after
 *	  its transaction commits (toms_audit_queue_finish); tail advances over
 *	  DONE entries.  A worker that exits puts back what it took but did not
 *	  commit (toms_audit_queue_release).  Entries no worker can serve go to
 *	  the server log (toms_audit_queue_drop).  What survives what is in
 *	  docs/audit.md, "How records are written, and what survives what".
 *
 *	  Locking: everything in AuditShared -- head, tail, the slots, the
 *	  per-database entries (AuditDb), the launcher's pid and latch -- is
 *	  protected by the audit LWLock (toms_audit_lock()), except the
 *	  counters, which are atomics.  Nobody sleeps or does I/O while holding
 *	  it; producers wait for room on cv_space and for durability on
 *	  cv_done, which the workers broadcast.
 *
 *	  Calls core (shmem.c) and audit_record.c only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "toms.h"
#include "audit_internal.h"

/* ----------------------------------------------------------------
 * Settings
 * ----------------------------------------------------------------
 */
typedef enum
{
	QUEUE_FULL_BLOCK,
	QUEUE_FULL_ERROR
} QueueFullPolicy;

static const struct config_enum_entry queue_full_options[] = {
	{"block", QUEUE_FULL_BLOCK, false},
	{"error", QUEUE_FULL_ERROR, false},
	{NULL, 0, false}
};

static const struct config_enum_entry destination_options[] = {
	{"table", AUDIT_DEST_TABLE, false},
	{"table,log", AUDIT_DEST_TABLE_LOG, false},
	{NULL, 0, false}
};

int			toms_audit_flush_delay = 200;
int			toms_audit_retention = 0;
int			toms_audit_incident_denials = 5;
int			toms_audit_incident_window = 60;
int			toms_audit_log_destination = AUDIT_DEST_TABLE;
bool		toms_audit_sync = false;
bool		toms_audit_statement_text = false;
static int	audit_queue_full = QUEUE_FULL_BLOCK;
static int	audit_queue_size = 4096;

/* ----------------------------------------------------------------
 * Shared memory
 * ----------------------------------------------------------------
 */
AuditShared *toms_audit_shared = NULL;
static int	lock_base = -1;

LWLock *
toms_audit_lock(void)
{
	return toms_lwlock(lock_base);
}

static Size
audit_shmem_size(void)
{
	return add_size(offsetof(AuditShared, slots),
					mul_size(audit_queue_size, sizeof(AuditSlot)));
}

static void
audit_shmem_startup(void)
{
	bool		found;

	toms_audit_shared = ShmemInitStruct("toms audit queue", audit_shmem_size(), &found);
	if (!found)
	{
		memset(toms_audit_shared, 0, offsetof(AuditShared, slots));
		toms_audit_shared->nslots = audit_queue_size;
		ConditionVariableInit(&toms_audit_shared->cv_space);
		ConditionVariableInit(&toms_audit_shared->cv_done);
		pg_atomic_init_u64(&toms_audit_shared->n_enqueued, 0);
		pg_atomic_init_u64(&toms_audit_shared->n_written, 0);
		pg_atomic_init_u64(&toms_audit_shared->n_waits, 0);
		pg_atomic_init_u64(&toms_audit_shared->n_full_errors, 0);
		pg_atomic_init_u64(&toms_audit_shared->n_to_log, 0);
		pg_atomic_init_u64(&toms_audit_shared->n_incidents, 0);
		memset(toms_audit_shared->slots, 0, mul_size(audit_queue_size, sizeof(AuditSlot)));
	}
}

/*
 * The entry of database dbid, created if create and there is room; NULL
 * otherwise.  Caller holds the audit lock (exclusive when create).
 */
AuditDb *
toms_audit_db_slot(Oid dbid, bool create)
{
	int			i;
	AuditDb    *free_slot = NULL;

	if (toms_audit_shared == NULL || !OidIsValid(dbid))
		return NULL;
	for (i = 0; i < AUDIT_MAX_DBS; i++)
	{
		if (toms_audit_shared->dbs[i].dbid == dbid)
			return &toms_audit_shared->dbs[i];
		if (free_slot == NULL && !OidIsValid(toms_audit_shared->dbs[i].dbid))
			free_slot = &toms_audit_shared->dbs[i];
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(AuditDb));
	free_slot->dbid = dbid;
	return free_slot;
}

/*
 * A record that cannot reach the table (no room where we cannot wait or
 * fail, no worker, no extension in its database): it goes to the server
 * log instead, never silently away, and is counted in written_to_log.
 */
void
toms_audit_log_instead(const AuditRec *rec)
{
	pg_atomic_fetch_add_u64(&toms_audit_shared->n_to_log, 1);
	toms_audit_rec_to_log(rec);
}

/* ----------------------------------------------------------------
 * Producers
 * ----------------------------------------------------------------
 */

/*
 * Append a record to the queue for database dbid.  When the queue is full:
 * AUDIT_WAIT waits (policy block) or raises 54000 (policy error);
 * AUDIT_WAIT_BOUNDED (no error possible) waits a bounded time and then
 * writes it to the server log; AUDIT_NO_WAIT writes it to the server log
 * at once.  Returns the queue position, 0 if it went to the log.
 */
uint64
toms_audit_enqueue(const AuditRec *rec, Oid dbid, AuditWait wait)
{
	bool		in_abort = (wait != AUDIT_WAIT);
	AuditShared *sh = toms_audit_shared;
	uint64		seq = 0;
	bool		counted = false;
	int			tries = 0;
	Size		sz = offsetof(AuditRec, data) + rec->h.used;
	bool		wake;
	bool		have_worker = false;
	Latch	   *latch = NULL;

	/* no worker, or (on a standby) no way to write: the server log has it */
	if (sh == NULL || MyProc == NULL || RecoveryInProgress())
	{
		if (sh)
			toms_audit_log_instead(rec);
		return 0;
	}

	for (;;)
	{
		LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
		if (sh->head - sh->tail < (uint64) sh->nslots)
		{
			AuditSlot  *slot = &sh->slots[sh->head % sh->nslots];
			int			i;

			seq = ++sh->head;
			slot->seq = seq;
			slot->state = SLOT_FULL;
			slot->dbid = dbid;
			slot->taker = 0;
			memcpy(&slot->rec, rec, sz);
			for (i = 0; i < AUDIT_MAX_DBS; i++)
			{
				if (OidIsValid(dbid) && sh->dbs[i].dbid == dbid)
				{
					have_worker = sh->dbs[i].pid != 0;
					latch = sh->dbs[i].latch;
					break;
				}
			}
			wake = toms_audit_sync || !have_worker ||
				(sh->head - sh->tail) * 2 > (uint64) sh->nslots;
			if (wake && !have_worker)
				latch = sh->launcher_latch;
			LWLockRelease(toms_audit_lock());
			break;
		}
		LWLockRelease(toms_audit_lock());

		if (wait == AUDIT_NO_WAIT)
		{
			/* let the launcher see to the workers; do not sleep here */
			if (sh->launcher_latch)
				SetLatch(sh->launcher_latch);
			toms_audit_log_instead(rec);
			return 0;
		}
		if (!counted)
		{
			pg_atomic_fetch_add_u64(&sh->n_waits, 1);
			counted = true;
		}
		if (!in_abort && audit_queue_full == QUEUE_FULL_ERROR)
		{
			pg_atomic_fetch_add_u64(&sh->n_full_errors, 1);
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("toms audit queue is full"),
					 errdetail("The audit worker has not caught up; the statement was not run so that its audit record is not lost."),
					 errhint("Raise toms.audit_queue_size or set toms.audit_queue_full = block.")));
		}
		if (in_abort && ++tries > 100)
		{
			ConditionVariableCancelSleep();
			toms_audit_log_instead(rec);
			return 0;
		}
		if (sh->launcher_latch)
			SetLatch(sh->launcher_latch);
		if (!in_abort)
			CHECK_FOR_INTERRUPTS();
		(void) ConditionVariableTimedSleep(&sh->cv_space, 100, PG_WAIT_EXTENSION);
	}
	if (counted)
		ConditionVariableCancelSleep();
	pg_atomic_fetch_add_u64(&sh->n_enqueued, 1);
	if (wake && latch)
		SetLatch(latch);
	return seq;
}

/* Wait until queue entry seq has been committed by a worker. */
void
toms_audit_wait_durable(uint64 seq, bool in_abort)
{
	AuditShared *sh = toms_audit_shared;
	int			waited = 0;

	if (seq == 0 || sh == NULL)
		return;
	for (;;)
	{
		AuditSlot  *slot = &sh->slots[(seq - 1) % sh->nslots];
		bool		done;

		LWLockAcquire(toms_audit_lock(), LW_SHARED);
		done = slot->seq != seq || slot->state == SLOT_DONE || slot->state == SLOT_EMPTY;
		LWLockRelease(toms_audit_lock());
		if (done)
			break;
		if (in_abort && waited > 10000)
			break;
		if (!in_abort)
			CHECK_FOR_INTERRUPTS();
		(void) ConditionVariableTimedSleep(&sh->cv_done, 50, PG_WAIT_EXTENSION);
		waited += 50;
	}
	ConditionVariableCancelSleep();
}

/*
 * Enqueue, and with toms.audit_sync wait until the record is committed
 * (bounded where the enqueue is; not at all with AUDIT_NO_WAIT).
 */
void
toms_audit_queue(const AuditRec *rec, Oid dbid, AuditWait wait)
{
	uint64		seq = toms_audit_enqueue(rec, dbid, wait);

	if (toms_audit_sync && wait != AUDIT_NO_WAIT)
		toms_audit_wait_durable(seq, wait != AUDIT_WAIT);
}

/* ----------------------------------------------------------------
 * Consumers (audit_writer.c, audit_worker.c)
 * ----------------------------------------------------------------
 */

/* Advance tail over DONE entries.  Caller holds the lock exclusively. */
static void
advance_tail(AuditShared *sh)
{
	while (sh->tail < sh->head &&
		   sh->slots[sh->tail % sh->nslots].state == SLOT_DONE)
	{
		sh->slots[sh->tail % sh->nslots].state = SLOT_EMPTY;
		sh->tail++;
	}
}

/*
 * Entries seqs[0..n) that this worker took: DONE (committed) or, if not
 * done, FULL again.  Then let waiting producers go.  Lock not held.
 */
void
toms_audit_queue_finish(const uint64 *seqs, int n, bool done)
{
	AuditShared *sh = toms_audit_shared;
	int			i;

	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		AuditSlot  *slot = &sh->slots[(seqs[i] - 1) % sh->nslots];

		if (slot->seq == seqs[i] && slot->state == SLOT_TAKEN)
		{
			slot->state = done ? SLOT_DONE : SLOT_FULL;
			slot->taker = 0;
		}
	}
	advance_tail(sh);
	LWLockRelease(toms_audit_lock());
	if (done)
		pg_atomic_fetch_add_u64(&sh->n_written, n);
	ConditionVariableBroadcast(&sh->cv_done);
	ConditionVariableBroadcast(&sh->cv_space);
}

/*
 * What worker pid took but did not commit goes back to the queue.  Caller
 * holds the lock exclusively.
 */
void
toms_audit_queue_release(int pid)
{
	AuditShared *sh = toms_audit_shared;
	uint64		i;

	for (i = sh->tail; i < sh->head; i++)
	{
		AuditSlot  *slot = &sh->slots[i % sh->nslots];

		if (slot->state == SLOT_TAKEN && slot->taker == pid)
		{
			slot->state = SLOT_FULL;
			slot->taker = 0;
		}
	}
}

/* Is anything queued for database dbid?  Caller holds the lock. */
bool
toms_audit_queue_has(Oid dbid)
{
	AuditShared *sh = toms_audit_shared;
	uint64		i;

	for (i = sh->tail; i < sh->head; i++)
	{
		AuditSlot  *slot = &sh->slots[i % sh->nslots];

		if (slot->state == SLOT_FULL && slot->dbid == dbid)
			return true;
	}
	return false;
}

/*
 * The queued entries for dbid (unresolved: for no database yet), which no
 * worker can serve, go to the server log.  Caller holds the lock
 * exclusively.
 */
void
toms_audit_queue_drop(Oid dbid, bool unresolved)
{
	AuditShared *sh = toms_audit_shared;
	uint64		i;

	for (i = sh->tail; i < sh->head; i++)
	{
		AuditSlot  *slot = &sh->slots[i % sh->nslots];

		if (slot->state != SLOT_FULL || (unresolved ? OidIsValid(slot->dbid) : slot->dbid != dbid))
			continue;
		if (slot->rec.h.type == AREC_RECORD)
			toms_audit_log_instead(&slot->rec);
		slot->state = SLOT_DONE;
	}
	advance_tail(sh);
}

/* ----------------------------------------------------------------
 * Set-up
 * ----------------------------------------------------------------
 */

/* The audit settings and the queue's shared memory (from _PG_init). */
void
toms_audit_queue_init(void)
{
	DefineCustomIntVariable("toms.audit_flush_delay",
							gettext_noop("Longest time a queued audit record waits before the worker commits it."),
							NULL, &toms_audit_flush_delay, 200, 1, 10000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("toms.audit_sync",
							 gettext_noop("Statements wait until their queued audit records are committed."),
							 NULL, &toms_audit_sync, false, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("toms.audit_queue_full",
							 gettext_noop("What a statement does when the audit queue is full: block or error."),
							 NULL, &audit_queue_full, QUEUE_FULL_BLOCK, queue_full_options,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.audit_queue_size",
							gettext_noop("Number of audit records the shared queue holds."),
							NULL, &audit_queue_size, 4096, 16, 1048576, PGC_POSTMASTER,
							0, NULL, NULL, NULL);
	DefineCustomBoolVariable("toms.audit_statement_text",
							 gettext_noop("Record statement text (secrets redacted) with each audit record."),
							 NULL, &toms_audit_statement_text, false, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("toms.audit_log_destination",
							 gettext_noop("Where audit records go: \"table\" or \"table,log\"."),
							 NULL, &toms_audit_log_destination, AUDIT_DEST_TABLE,
							 destination_options, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.audit_retention",
							gettext_noop("Age after which the audit worker removes records (sealed); 0 keeps them."),
							NULL, &toms_audit_retention, 0, 0, INT_MAX, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.incident_denials",
							gettext_noop("Denials by one role within toms.incident_window that raise an incident."),
							NULL, &toms_audit_incident_denials, 5, 1, INT_MAX, PGC_SIGHUP,
							0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.incident_window",
							gettext_noop("Window in which repeated denials are counted."),
							NULL, &toms_audit_incident_window, 60, 1, 86400, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);

	lock_base = toms_shmem_register(audit_shmem_size(), 1, audit_shmem_startup);
}
