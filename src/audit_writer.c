/*-------------------------------------------------------------------------
 *
 * audit_writer.c
 *	  One unit of work of a database's audit worker (audit_worker.c): take
 *	  the database's queued entries, write them into toms.audit_log with
 *	  their seq and hash, and commit, in one transaction.
 *
 *	  The worker is the only writer of the chain in its database.  In one
 *	  transaction per batch it inserts queued records with their seq and
 *	  hash, chains the rows that committed transactions wrote themselves
 *	  (announced by AREC_CHAIN entries, in commit order), counts denials
 *	  and records incidents, applies retention, and commits; only then are
 *	  the entries marked DONE.  So a crash loses at most the uncommitted
 *	  batch's queue entries (which toms.audit_sync waits for), and never
 *	  writes a record twice.  The first batch after a start chains every
 *	  committed row that a crash left unchained.  docs/audit.md describes
 *	  the chain, retention seals and incidents.
 *
 *	  Takes entries under the audit lock as audit_queue.c prescribes;
 *	  never holds it across I/O.  Calls the lower audit files only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "toms.h"
#include "audit_internal.h"

#define AUDIT_BATCH 4096		/* at most this many entries per transaction */
#define BATCH_ARENA (2 * 1024 * 1024)	/* and at most this many bytes */

static Oid	my_dbid = InvalidOid;
static AuditRec **batch = NULL;	/* entries taken, packed in batch_arena */
static char *batch_arena = NULL;
static uint64 *batch_seqs = NULL;

/* the batch's new rows, stored by heap multi-insert (AuditStore) */
static AuditStore *pending = NULL;

/*
 * The batch's rows are formed here.  Its first block is kept across
 * batches: a fresh multi-megabyte allocation per batch would be mapped and
 * faulted in page by page each time.
 */
static MemoryContext rows_cxt = NULL;
#define ROWS_CXT_SIZE (4 * 1024 * 1024)
static SPIPlanPtr plan_update = NULL;
static SPIPlanPtr plan_head = NULL;	/* the newest chained record */
static SPIPlanPtr plan_chain_xid = NULL;	/* unchained rows of one transaction */
static SPIPlanPtr plan_chain_all = NULL;	/* of every committed one */

#define CHAIN_COLUMNS "seq, ts, kind, action, session_role, effective_role," \
	" actor, tenant, grant_id, justification, relname, row_count," \
	" query_id, client_addr, application_name, pid, xid, fate," \
	" statement, detail, hash, ctid"
static SPIPlanPtr plan_incident = NULL;
static int64 head_seq = 0;
static bool detail_jsonb = true;	/* toms.audit_log.detail is jsonb (0.2.0) */
static uint8 head_hash[AUDIT_HASH_LEN];
static TimestampTz last_retention = 0;

/* repeated denials by one role/actor */
#define DENIAL_SLOTS 64
typedef struct DenialCount
{
	char		key[2 * NAMEDATALEN + 260];
	TimestampTz start;
	int			count;
} DenialCount;
static DenialCount denials[DENIAL_SLOTS];

static void
spi_exec_plan(SPIPlanPtr plan, Datum *values, const char *nulls, int expect)
{
	int			ret = SPI_execute_plan(plan, values, nulls, false, 0);

	if (ret != expect)
		elog(ERROR, "toms audit worker: statement failed: %s", SPI_result_code_string(ret));
}

static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

	if (p == NULL)
		elog(ERROR, "toms audit worker: could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(p);
	return p;
}

/*
 * The upsert of an incident: counted into the open one of the same kind,
 * tenant and detail, or a new one.  Since 0.2.0 an incident is closed by
 * a row in toms.incident_closures (toms.close_incident), never by an
 * update; 0.1.0's table (until ALTER EXTENSION UPDATE) has closed_at and a
 * unique index over its open incidents.
 */
/*
 * The NOTIFY payload: any role may LISTEN, so it says that something
 * happened and where to look, never whose (no tenant, no detail naming
 * roles or actors, no timing); toms_auditor reads the row (issue 16).
 */
#define INCIDENT_RETURNING \
	" pg_catalog.json_build_object('id', id, 'kind', kind, 'severity', severity," \
	" 'count', count, 'database', pg_catalog.current_database())::text"
static int	incident_plan_v2 = -1;

static void
prepare_incident_plan(void)
{
	Oid			it[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID};
	int			v2 = OidIsValid(get_relname_relid("incident_closures", toms_schema_oid()));

	if (plan_incident && v2 == incident_plan_v2)
		return;
	if (plan_incident)
		SPI_freeplan(plan_incident);
	incident_plan_v2 = v2;
	if (v2)
		plan_incident = prepare("WITH open AS (SELECT i.id FROM " TOMS_SCHEMA ".incidents i"
								" WHERE i.kind = $1 AND coalesce(i.tenant, '') = coalesce($3, '')"
								" AND i.detail = coalesce($4, '')"
								" AND NOT EXISTS (SELECT 1 FROM " TOMS_SCHEMA ".incident_closures c"
								" WHERE c.incident_id = i.id)"
								" ORDER BY i.id DESC LIMIT 1),"
								" upd AS (UPDATE " TOMS_SCHEMA ".incidents i"
								" SET last_seen = greatest(i.last_seen, $6), count = i.count + $7, severity = $2"
								" FROM open WHERE i.id = open.id RETURNING i.*),"
								" ins AS (INSERT INTO " TOMS_SCHEMA ".incidents"
								" (kind, severity, tenant, detail, first_seen, last_seen, count)"
								" SELECT $1, $2, $3, coalesce($4, ''), $5, $6, $7"
								" WHERE NOT EXISTS (SELECT 1 FROM open) RETURNING *)"
								" SELECT id, count," INCIDENT_RETURNING
								" FROM (SELECT * FROM upd UNION ALL SELECT * FROM ins) x",
								7, it);
	else
		plan_incident = prepare("INSERT INTO " TOMS_SCHEMA ".incidents AS i"
								" (kind, severity, tenant, detail, first_seen, last_seen, count)"
								" VALUES ($1, $2, $3, coalesce($4, ''), $5, $6, $7)"
								" ON CONFLICT (kind, (coalesce(tenant, '')), detail) WHERE closed_at IS NULL"
								" DO UPDATE SET last_seen = greatest(i.last_seen, excluded.last_seen),"
								" count = i.count + excluded.count, severity = excluded.severity"
								" RETURNING id, count," INCIDENT_RETURNING,
								7, it);
}

static void
prepare_plans(void)
{
	prepare_incident_plan();
	if (plan_update)
		return;
	plan_head = prepare("SELECT seq, hash FROM " TOMS_SCHEMA ".audit_log WHERE seq IS NOT NULL"
						" ORDER BY seq DESC LIMIT 1", 0, NULL);
	{
		Oid			ut[3] = {INT8OID, BYTEAOID, TIDOID};

		plan_update = prepare("UPDATE " TOMS_SCHEMA ".audit_log SET seq = $1, hash = $2 WHERE ctid = $3",
							  3, ut);
	}
}

static bytea *
hash_bytea(const uint8 *h)
{
	bytea	   *b = palloc(VARHDRSZ + AUDIT_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + AUDIT_HASH_LEN);
	memcpy(VARDATA(b), h, AUDIT_HASH_LEN);
	return b;
}

/* Finish storing the batch's new records. */
static void
flush_pending(void)
{
	if (pending)
	{
		toms_audit_store_end(pending);
		pending = NULL;
	}
}

/* Add one record at the head of the chain. */
static void
chain_insert(Datum *values, bool *nulls)
{
	uint8		h[AUDIT_HASH_LEN];

	values[AC_SEQ] = Int64GetDatum(head_seq + 1);
	nulls[AC_SEQ] = false;
	toms_audit_chain_hash(head_hash, values, nulls, detail_jsonb, h);
	values[AC_HASH] = PointerGetDatum(hash_bytea(h));
	nulls[AC_HASH] = false;
	if (pending == NULL)
		pending = toms_audit_store_begin(true);
	toms_audit_store_row(pending, values, nulls);
	head_seq++;
	memcpy(head_hash, h, AUDIT_HASH_LEN);
}

/*
 * Chain the unchained rows of transaction xid (or, xid < 0, of every
 * committed transaction: reconciliation after a crash).
 */
static void
chain_existing(int64 xid)
{
	Portal		portal;
	Datum		arg = Int64GetDatum(xid);
	Oid			argtype = INT8OID;

	if (plan_chain_xid == NULL)
	{
		plan_chain_xid = prepare("SELECT " CHAIN_COLUMNS " FROM " TOMS_SCHEMA ".audit_log"
								 " WHERE seq IS NULL AND xid = $1 ORDER BY ts, ctid",
								 1, &argtype);
		plan_chain_all = prepare("SELECT " CHAIN_COLUMNS " FROM " TOMS_SCHEMA ".audit_log"
								 " WHERE seq IS NULL AND $1 < 0 ORDER BY xid, ts, ctid",
								 1, &argtype);
	}
	portal = SPI_cursor_open(NULL, xid >= 0 ? plan_chain_xid : plan_chain_all, &arg, NULL, false);
	for (;;)
	{
		SPITupleTable *tt;
		uint64		n,
					i;

		SPI_cursor_fetch(portal, true, 1000);
		n = SPI_processed;
		tt = SPI_tuptable;
		if (n == 0)
			break;
		for (i = 0; i < n; i++)
		{
			Datum		values[AC_NCOLS + 1];
			bool		nulls[AC_NCOLS + 1];
			uint8		h[AUDIT_HASH_LEN];
			Datum		uv[3];

			heap_deform_tuple(tt->vals[i], tt->tupdesc, values, nulls);
			values[AC_SEQ] = Int64GetDatum(head_seq + 1);
			nulls[AC_SEQ] = false;
			toms_audit_chain_hash(head_hash, values, nulls, detail_jsonb, h);
			uv[0] = values[AC_SEQ];
			uv[1] = PointerGetDatum(hash_bytea(h));
			uv[2] = values[AC_NCOLS];	/* ctid */
			spi_exec_plan(plan_update, uv, NULL, SPI_OK_UPDATE);
			head_seq++;
			memcpy(head_hash, h, AUDIT_HASH_LEN);
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);
}

/*
 * Incidents of one batch, counted in memory first: an attack that queues
 * thousands of the same incident costs one upsert, not thousands of
 * versions of one row.
 */
typedef struct PendingIncident
{
	struct PendingIncident *next;
	char	   *kind;
	char	   *severity;
	char	   *tenant;
	char	   *detail;
	TimestampTz first;
	TimestampTz last;
	int64		n;
} PendingIncident;

static PendingIncident *pending_incidents = NULL;

static bool
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Count an incident (palloc'd in the batch's memory). */
static void
raise_incident(const char *kind, const char *severity, const char *tenant,
			   const char *detail, TimestampTz ts)
{
	PendingIncident *pi;

	for (pi = pending_incidents; pi; pi = pi->next)
		if (same_str(pi->kind, kind) && same_str(pi->tenant, tenant) &&
			same_str(pi->detail ? pi->detail : "", detail ? detail : ""))
		{
			pi->n++;
			pi->first = Min(pi->first, ts);
			pi->last = Max(pi->last, ts);
			pi->severity = pstrdup(severity ? severity : "high");
			return;
		}
	pi = palloc0(sizeof(PendingIncident));
	pi->kind = pstrdup(kind);
	pi->severity = pstrdup(severity ? severity : "high");
	pi->tenant = tenant ? pstrdup(tenant) : NULL;
	pi->detail = detail ? pstrdup(detail) : NULL;
	pi->first = pi->last = ts;
	pi->n = 1;
	pi->next = pending_incidents;
	pending_incidents = pi;
}

/* Store the batch's incidents; announce new ones, then every power of ten. */
static void
flush_incidents(void)
{
	PendingIncident *pi;

	for (pi = pending_incidents; pi; pi = pi->next)
	{
		Datum		v[7];
		char		n[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
		bool		isnull;
		int64		count;
		int64		t;

		v[0] = CStringGetTextDatum(pi->kind);
		v[1] = CStringGetTextDatum(pi->severity);
		if (pi->tenant)
			v[2] = CStringGetTextDatum(pi->tenant);
		else
			n[2] = 'n';
		if (pi->detail)
			v[3] = CStringGetTextDatum(pi->detail);
		else
			n[3] = 'n';
		v[4] = TimestampTzGetDatum(pi->first);
		v[5] = TimestampTzGetDatum(pi->last);
		v[6] = Int64GetDatum(pi->n);
		spi_exec_plan(plan_incident, v, n,
					  incident_plan_v2 ? SPI_OK_SELECT : SPI_OK_INSERT_RETURNING);
		count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		for (t = 1; t <= count; t *= 10)
		{
			if (count - pi->n < t)
			{
				char	   *payload = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

				Async_Notify("toms_incident", payload);
				pg_atomic_fetch_add_u64(&toms_audit_shared->n_incidents, 1);
				break;
			}
		}
	}
	pending_incidents = NULL;
}

static void
count_denial(const AuditRec *rec)
{
	char	   *role = toms_audit_rec_get_str(rec, RS_SESSION_ROLE);
	char	   *actor = toms_audit_rec_get_str(rec, RS_ACTOR);
	char		key[sizeof(denials[0].key)];
	TimestampTz now = rec->h.ts;
	DenialCount *slot = NULL;
	DenialCount *oldest = &denials[0];
	int			i;

	snprintf(key, sizeof(key), "role %s, actor %s", role ? role : "?", actor ? actor : "?");
	for (i = 0; i < DENIAL_SLOTS; i++)
	{
		if (strcmp(denials[i].key, key) == 0)
		{
			slot = &denials[i];
			break;
		}
		if (denials[i].start < oldest->start)
			oldest = &denials[i];
	}
	if (slot == NULL)
	{
		slot = oldest;
		strlcpy(slot->key, key, sizeof(slot->key));
		slot->start = now;
		slot->count = 0;
	}
	if (TimestampDifferenceExceeds(slot->start, now, toms_audit_incident_window * 1000))
	{
		slot->start = now;
		slot->count = 0;
	}
	/* keyed by role and actor only: probing many tenants is one incident */
	if (++slot->count >= toms_audit_incident_denials)
		raise_incident("repeated_denials", "high", NULL,
					   psprintf("repeated denials for %s", key), now);
}

/*
 * Retention: remove the oldest records (a prefix of the chain) older than
 * toms.audit_retention and append a seal record naming the last removed
 * seq and its hash, so that verify_audit can start from it.
 */
static void
apply_retention(void)
{
	TimestampTz cutoff;
	Datum		arg;
	Oid			argtype = TIMESTAMPTZOID;
	bool		isnull;
	int64		upto;
	int64		removed;
	char		hex[2 * AUDIT_HASH_LEN + 1];
	Datum		values[AC_NCOLS];
	bool		nulls[AC_NCOLS];
	int			i;

	if (toms_audit_retention <= 0 ||
		!TimestampDifferenceExceeds(last_retention, GetCurrentTimestamp(), 10000))
		return;
	last_retention = GetCurrentTimestamp();
	cutoff = GetCurrentTimestamp() - (TimestampTz) toms_audit_retention * USECS_PER_SEC;
	arg = TimestampTzGetDatum(cutoff);
	if (SPI_execute_with_args("SELECT coalesce(min(seq) FILTER (WHERE ts >= $1), max(seq) + 1) - 1"
							  " FROM (SELECT seq, ts FROM " TOMS_SCHEMA ".audit_log"
							  " WHERE seq IS NOT NULL ORDER BY seq LIMIT 100000) s",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		return;
	upto = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || upto <= 0)
		return;
	/* never remove the head itself: the seal chains onto it */
	arg = Int64GetDatum(upto);
	argtype = INT8OID;
	if (SPI_execute_with_args("SELECT hash FROM " TOMS_SCHEMA ".audit_log WHERE seq = $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		return;
	{
		bytea	   *h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));

		if (isnull || VARSIZE_ANY_EXHDR(h) != AUDIT_HASH_LEN)
			return;
		hex[hex_encode(VARDATA_ANY(h), AUDIT_HASH_LEN, hex)] = '\0';
	}
	if (SPI_execute_with_args("DELETE FROM " TOMS_SCHEMA ".audit_log WHERE seq <= $1",
							  1, &argtype, &arg, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "toms audit worker: retention delete failed");
	removed = SPI_processed;
	if (removed == 0)
		return;

	for (i = 0; i < AC_NCOLS; i++)
		nulls[i] = true;
	values[AC_TS] = TimestampTzGetDatum(GetCurrentTimestamp());
	nulls[AC_TS] = false;
	values[AC_KIND] = CStringGetTextDatum("seal");
	nulls[AC_KIND] = false;
	values[AC_ACTION] = CStringGetTextDatum("retention");
	nulls[AC_ACTION] = false;
	values[AC_PID] = Int32GetDatum(MyProcPid);
	nulls[AC_PID] = false;
	{
		char	   *d = psprintf("{\"upto\": %lld, \"hash\": \"%s\", \"removed\": %lld, \"before\": \"%s\"}",
								 (long long) upto, hex, (long long) removed,
								 timestamptz_to_str(cutoff));

		values[AC_DETAIL] = detail_jsonb ? DirectFunctionCall1(jsonb_in, CStringGetDatum(d)) :
			CStringGetTextDatum(d);
	}
	nulls[AC_DETAIL] = false;
	chain_insert(values, nulls);
}

/* Emit the records chained in this batch as JSON lines. */
static void
export_to_log(int64 from_seq)
{
	Datum		arg = Int64GetDatum(from_seq);
	Oid			argtype = INT8OID;
	uint64		i;

	if (SPI_execute_with_args("SELECT pg_catalog.row_to_json(a)::text FROM"
							  " (SELECT pg_catalog.current_database() AS database, l.*"
							  " FROM " TOMS_SCHEMA ".audit_log l WHERE seq > $1 ORDER BY seq) a",
							  1, &argtype, &arg, NULL, false, 0) != SPI_OK_SELECT)
		return;
	for (i = 0; i < SPI_processed; i++)
		toms_audit_log_json(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
}

/*
 * One unit of work: take this database's queued entries, write them (and
 * whatever else is due) in one transaction, commit, mark them done.
 * *first: the worker's first batch (reconciles; cleared here).  *more: set
 * when entries were left for the next batch.  Returns 0 if nothing was
 * due, the number of entries taken plus one after a transaction, and -1 if
 * the extension is not installed in this database (the entries went to the
 * server log).
 */
int
toms_audit_writer_batch(bool *first, bool *more)
{
	AuditShared *sh = toms_audit_shared;
	AuditDb    *db;
	int			n = 0;
	int			max_n;
	Size		used = 0;
	uint64		i;
	bool		reconcile;
	bool		has_ext;
	bool		retention_due;
	int64		start_seq;

	/*
	 * Take at most half the queue, so that producers keep room while this
	 * batch is written (its slots are freed only after our commit).
	 */
	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	max_n = Max(1, Min(AUDIT_BATCH, sh->nslots / 2));
	*more = false;
	for (i = sh->tail; i < sh->head; i++)
	{
		AuditSlot  *slot = &sh->slots[i % sh->nslots];
		Size		sz = offsetof(AuditRec, data) + slot->rec.h.used;

		if (slot->state != SLOT_FULL || slot->dbid != my_dbid)
			continue;
		if (n >= max_n || used + MAXALIGN(sz) > BATCH_ARENA)
		{
			*more = true;
			break;
		}
		slot->state = SLOT_TAKEN;
		slot->taker = MyProcPid;
		batch[n] = (AuditRec *) (batch_arena + used);
		memcpy(batch[n], &slot->rec, sz);
		used += MAXALIGN(sz);
		batch_seqs[n] = slot->seq;
		n++;
	}
	db = toms_audit_db_slot(my_dbid, false);
	reconcile = db ? db->reconcile : false;
	if (*first && db && db->head_seq > 0)
	{
		head_seq = db->head_seq;
		memcpy(head_hash, db->head_hash, AUDIT_HASH_LEN);
	}
	LWLockRelease(toms_audit_lock());

	retention_due = toms_audit_retention > 0 &&
		TimestampDifferenceExceeds(last_retention, GetCurrentTimestamp(), 10000);
	if (n == 0 && !reconcile && !*first && !retention_due)
		return 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();

	/*
	 * One chain writer per database, whatever happens; taken before any
	 * lock on toms' tables, so that waiting for it (DROP EXTENSION takes it
	 * too) can never close a cycle.
	 */
	(void) DirectFunctionCall2(pg_advisory_xact_lock_int4, Int32GetDatum(TOMS_CHAIN_LOCK_KEY1),
							   Int32GetDatum(TOMS_CHAIN_LOCK_KEY2));
	PushActiveSnapshot(GetTransactionSnapshot());
	has_ext = OidIsValid(get_extension_oid("toms", true));
	if (!has_ext)
	{
		/* nowhere to put them in this database: the server log has them */
		for (i = 0; i < n; i++)
			if (batch[i]->h.type == AREC_RECORD)
				toms_audit_log_instead(batch[i]);
		PopActiveSnapshot();
		CommitTransactionCommand();
		LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
		db = toms_audit_db_slot(my_dbid, false);
		if (db)
			db->reconcile = false;
		LWLockRelease(toms_audit_lock());
		toms_audit_queue_finish(batch_seqs, n, true);
		*first = false;
		return -1;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	toms_audit_writing = true;
	pgstat_report_activity(STATE_RUNNING, "toms audit: writing records");
	detail_jsonb = toms_audit_detail_jsonb();
	prepare_plans();

	{
		bool		isnull;

		/*
		 * Continue from the chain head we wrote (kept in shared memory), or
		 * after a restart from the newest record.  If someone added records
		 * past our head bypassing toms, continue after them so that nothing
		 * collides: verify_audit reports them.  Records deleted from the end
		 * leave a gap that verify_audit reports too.
		 */
		if (SPI_execute_plan(plan_head, NULL, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			int64		tseq;
			bytea	   *h;

			tseq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			if (tseq > head_seq)
			{
				head_seq = tseq;
				memset(head_hash, 0, AUDIT_HASH_LEN);
				h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
				if (!isnull && VARSIZE_ANY_EXHDR(h) == AUDIT_HASH_LEN)
					memcpy(head_hash, VARDATA_ANY(h), AUDIT_HASH_LEN);
			}
		}
	}
	start_seq = head_seq;

	if (reconcile)
		chain_existing(-1);

	for (i = 0; i < n; i++)
	{
		AuditRec   *rec = batch[i];

		switch (rec->h.type)
		{
			case AREC_RECORD:
				{
					Datum		values[AC_NCOLS];
					bool		nulls[AC_NCOLS];
					char	   *kind;
					MemoryContext oldcxt = MemoryContextSwitchTo(rows_cxt);

					toms_audit_rec_to_datums(rec, values, nulls, detail_jsonb);
					chain_insert(values, nulls);
					kind = toms_audit_rec_get_str(rec, RS_KIND);
					if (kind && strcmp(kind, "denied") == 0)
						count_denial(rec);
					MemoryContextSwitchTo(oldcxt);
				}
				break;
			case AREC_CHAIN:
				chain_existing(rec->h.ints[RI_XID]);
				break;
			case AREC_INCIDENT:
				raise_incident(toms_audit_rec_get_str(rec, RS_ACTION),
							   toms_audit_rec_get_str(rec, RS_FATE),
							   toms_audit_rec_get_str(rec, RS_TENANT),
							   toms_audit_rec_get_str(rec, RS_DETAIL),
							   rec->h.ts);
				break;
		}
	}

	flush_pending();
	flush_incidents();
	apply_retention();
	flush_pending();
	if (toms_audit_log_destination == AUDIT_DEST_TABLE_LOG && head_seq > start_seq)
		export_to_log(start_seq);

	toms_audit_writing = false;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextReset(rows_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);

	/* no interrupt is processed between the commit and this */
	LWLockAcquire(toms_audit_lock(), LW_EXCLUSIVE);
	db = toms_audit_db_slot(my_dbid, false);
	if (db)
	{
		if (reconcile)
			db->reconcile = false;
		db->head_seq = head_seq;
		memcpy(db->head_hash, head_hash, AUDIT_HASH_LEN);
		db->last_flush = GetCurrentTimestamp();
	}
	LWLockRelease(toms_audit_lock());
	toms_audit_queue_finish(batch_seqs, n, true);
	*first = false;
	return n + 1;
}

/* Set up the writer of database dbid (once, in the worker). */
void
toms_audit_writer_setup(Oid dbid)
{
	my_dbid = dbid;
	batch = MemoryContextAlloc(TopMemoryContext, sizeof(AuditRec *) * AUDIT_BATCH);
	batch_arena = MemoryContextAlloc(TopMemoryContext, BATCH_ARENA);
	batch_seqs = MemoryContextAlloc(TopMemoryContext, sizeof(uint64) * AUDIT_BATCH);
	rows_cxt = AllocSetContextCreate(TopMemoryContext, "toms audit rows",
									 ROWS_CXT_SIZE, ROWS_CXT_SIZE, ROWS_CXT_SIZE);
}
