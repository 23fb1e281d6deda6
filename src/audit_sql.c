/*-------------------------------------------------------------------------
 *
 * audit_sql.c
 *	  The SQL-callable functions of the audit (sql/install/30_audit.sql):
 *	  the append-only guard trigger of toms.audit_log and toms.incidents,
 *	  toms.verify_audit (walk the hash chain), toms.audit_stats,
 *	  toms.audit_flush, toms._audit_admin_event, toms.close_incident,
 *	  toms.set_audit_reads and the upgrade's conversion of 0.1.0 details.
 *	  docs/audit.md describes them.
 *
 *	  Reads the shared queue under the audit lock, as audit_queue.c
 *	  prescribes; calls the lower audit files only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "toms.h"
#include "audit_internal.h"

PG_FUNCTION_INFO_V1(toms_audit_log_guard);
PG_FUNCTION_INFO_V1(toms_verify_audit);
PG_FUNCTION_INFO_V1(toms_audit_stats);
PG_FUNCTION_INFO_V1(toms_audit_flush);
PG_FUNCTION_INFO_V1(toms_audit_admin_sql);
PG_FUNCTION_INFO_V1(toms_close_incident);
PG_FUNCTION_INFO_V1(toms_set_audit_reads);
PG_FUNCTION_INFO_V1(toms_audit_detail_0_1_0);

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
 * toms.verify_audit(from_seq, to_seq): walk the chain in seq order,
 * recompute each
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
	MemoryContext outer_cxt;

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

	outer_cxt = CurrentMemoryContext;
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
				toms_audit_chain_hash(prev, values, nulls,
									  TupleDescAttr(SPI_tuptable->tupdesc, AC_DETAIL)->atttypid == JSONBOID,
									  h);
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
	/* detail was made in SPI's memory, which SPI_finish frees */
	if (detail)
		detail = MemoryContextStrdup(outer_cxt, detail);
	SPI_finish();

	if (ok)
		detail = nrows == 0 ? pstrdup("no records to verify") :
			psprintf("%lld records verified (%lld to %lld)", (long long) nrows,
					 (long long) from, (long long) (from + nrows - 1));
	else
		toms_incident("audit_chain_break", "critical", NULL, detail);

	/*
	 * A verification of the whole chain is itself recorded: toms.assess()
	 * (control 7) verifies only what was added since the last one.
	 */
	if (whole && !RecoveryInProgress())
	{
		StringInfoData d;

		initStringInfo(&d);
		appendStringInfo(&d, "{\"whole\": true, \"ok\": %s, \"from\": %lld, \"to\": %lld, \"records\": %lld}",
						 ok ? "true" : "false", (long long) from,
						 (long long) (ok ? from + nrows - 1 : first_bad), (long long) nrows);
		/*
		 * Monitoring verifies the chain while a synchronous standby may be
		 * away: the record of a verification is, like the audit worker's
		 * batches, durable locally and reaches the standbys as WAL does
		 * (docs/operations.md).  Only where this transaction wrote nothing
		 * before, so no write of the caller's loses its own semantics.
		 */
		if (!TransactionIdIsValid(GetTopTransactionIdIfAny()))
			(void) set_config_option("synchronous_commit", "local", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);
		toms_audit_admin("verify_audit", NULL, d.data);
	}

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
		uint64		q;

		/*
		 * Done when every record of this database that was queued before
		 * the call and whose transaction has ended is written.  Not the
		 * global tail: a record still reserved by a transaction that is
		 * open (a worker's long batch, another session) or one of another
		 * database would hold every caller back.
		 */
		LWLockAcquire(toms_audit_lock(), LW_SHARED);
		done = true;
		for (q = sh->tail; q < target && done; q++)
		{
			AuditSlot  *slot = &sh->slots[q % sh->nslots];

			if ((slot->state == SLOT_FULL || slot->state == SLOT_TAKEN) &&
				slot->dbid == MyDatabaseId)
				done = false;
		}
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

/* toms._audit_admin_event(): an administrative act done in SQL */
Datum
toms_audit_admin_sql(PG_FUNCTION_ARGS)
{
	toms_audit_admin(PG_ARGISNULL(0) ? "unknown" : text_to_cstring(PG_GETARG_TEXT_PP(0)),
					 PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
					 PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)));
	PG_RETURN_VOID();
}

/*
 * toms.close_incident(id, note): close an open incident by appending its
 * closing to toms.incident_closures (never an update), and audit it.
 */
Datum
toms_close_incident(PG_FUNCTION_ARGS)
{
	int64		id;
	char	   *note;
	Datum		args[3];
	Oid			argtypes[3] = {INT8OID, TEXTOID, TEXTOID};
	char	   *kind;
	char	   *tenant;
	bool		closed;
	bool		isnull;
	StringInfoData d;
	MemoryContext outer_cxt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("incident id must not be null")));
	id = PG_GETARG_INT64(0);
	note = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (note == NULL || note[strspn(note, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("closing an incident needs a note"),
				 errhint("Say what was found and done, for the auditors who read it later.")));
	args[0] = Int64GetDatum(id);

	outer_cxt = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the row lock keeps two closings of one incident apart */
	if (SPI_execute_with_args("SELECT i.kind, i.tenant, EXISTS (SELECT 1 FROM " TOMS_SCHEMA ".incident_closures c"
							  " WHERE c.incident_id = i.id)"
							  " FROM " TOMS_SCHEMA ".incidents i WHERE i.id = $1 FOR NO KEY UPDATE OF i",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read toms.incidents");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("incident %lld does not exist", (long long) id)));
	/* in the caller's memory: SPI_finish frees SPI's */
	kind = MemoryContextStrdup(outer_cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	tenant = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (tenant)
		tenant = MemoryContextStrdup(outer_cxt, tenant);
	closed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	if (closed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("incident %lld is already closed", (long long) id),
				 errhint("See toms.incident_closures.")));
	args[1] = CStringGetTextDatum(note);
	args[2] = CStringGetTextDatum(toms_audit_role_name(GetSessionUserId()));
	toms_audit_writing = true;
	PG_TRY();
	{
		if (SPI_execute_with_args("INSERT INTO " TOMS_SCHEMA ".incident_closures"
								  " (incident_id, closed_at, closed_by, note)"
								  " VALUES ($1, pg_catalog.clock_timestamp(), $3, $2)",
								  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record the closing of incident %lld", (long long) id);
	}
	PG_FINALLY();
	{
		toms_audit_writing = false;
	}
	PG_END_TRY();
	SPI_finish();

	initStringInfo(&d);
	appendStringInfo(&d, "{\"incident\": %lld, \"kind\": ", (long long) id);
	escape_json(&d, kind);
	appendStringInfoString(&d, ", \"note\": ");
	escape_json(&d, note);
	appendStringInfoChar(&d, '}');
	toms_audit_admin("close_incident", tenant, d.data);
	PG_RETURN_VOID();
}

/*
 * toms.set_audit_reads(tbl, on): per-statement read records of one
 * protected table on or off (writes, denials, superuser reads and reads
 * under a grant are recorded either way: audit_capture.c).
 */
Datum
toms_set_audit_reads(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	bool		on = PG_GETARG_BOOL(1);
	Datum		args[2];
	Oid			argtypes[2] = {OIDOID, BOOLOID};

	if (!toms_protected(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid)),
				 errhint("Protect it with toms.protect(..., audit_reads => ...).")));
	args[0] = ObjectIdGetDatum(relid);
	args[1] = BoolGetDatum(on);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* a partitioned table: its partitions too (each is read directly as well) */
	if (SPI_execute_with_args("UPDATE " TOMS_SCHEMA ".protected_tables SET audit_reads = $2"
							  " WHERE relid::pg_catalog.oid = $1 OR relid::pg_catalog.oid IN (SELECT t.relid::pg_catalog.oid"
							  " FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass) t)",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update toms.protected_tables");
	toms_citus_audit_reads(relid, on);	/* Citus: the shards (citus_protected.c) */
	SPI_finish();
	/* every backend's cache of the tables' protection */
	{
		List	   *tree = find_all_inheritors(relid, NoLock, NULL);
		ListCell   *lc;

		foreach(lc, tree)
			CacheInvalidateRelcacheByRelid(lfirst_oid(lc));
	}
	toms_audit_admin_rel("set_audit_reads", NULL, relid,
						 on ? "{\"audit_reads\": true}" : "{\"audit_reads\": false}");
	PG_RETURN_VOID();
}

/*
 * toms._audit_detail_0_1_0(text) -> jsonb: the upgrade to 0.2.0 converts
 * the detail of the records 0.1.0 wrote with it (audit_record.c), then
 * drops it.
 */
Datum
toms_audit_detail_0_1_0(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(toms_audit_detail_from_0_1_0(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}
