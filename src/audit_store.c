/*-------------------------------------------------------------------------
 *
 * audit_store.c
 *	  Rows into toms.audit_log, and the hash chain over them.
 *
 *	  Rows go straight through the table access method, as COPY does: no
 *	  SQL, no triggers (the table has only a statement trigger that refuses
 *	  everyone but toms), no privilege needed.  A backend stores the
 *	  records of its own writes one at a time, in its own transaction
 *	  (audit_emit.c); the audit worker stores its batches with heap
 *	  multi-inserts through a bulk-insert ring (audit_writer.c), so that the
 *	  trail does not push the audited tables out of shared buffers.
 *
 *	  The chain hash is computed over a canonical encoding that depends on
 *	  the values alone, so that an auditor can recompute it outside the
 *	  database (docs/audit.md, "Tamper evidence: the hash chain").
 *
 *	  Calls only core (catalog.c) below it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "toms.h"
#include "audit_internal.h"

/*
 * Set while toms itself writes toms.audit_log or toms.incidents with SQL
 * (the worker): the tables' guard trigger lets those statements pass.
 */
bool		toms_audit_writing = false;

#define AUDIT_STORE_CHUNK 100	/* rows per heap multi-insert */

static BulkInsertState worker_bistate = NULL;

struct AuditStore
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;	/* NULL: one row at a time */
	int			nslots;
	int			n;
	TupleTableSlot *slots[AUDIT_STORE_CHUNK];
};

/*
 * toms.audit_log.detail is jsonb since 0.2.0; until ALTER EXTENSION
 * UPDATE has run, the 0.1.0 table (text) is written as it is.
 */
bool
toms_audit_detail_jsonb(void)
{
	Oid			relid = get_relname_relid("audit_log", toms_schema_oid());

	if (!OidIsValid(relid))
		return false;

	/*
	 * The lock the rows are stored under, taken first: the update cannot
	 * change the type between this answer and the rows (it takes an
	 * AccessExclusiveLock; a text datum in a jsonb column would be garbage).
	 */
	LockRelationOid(relid, RowExclusiveLock);
	return get_atttype(relid, AC_DETAIL + 1) == JSONBOID;
}

static Oid
audit_col_type(int col)
{
	switch (col)
	{
		case AC_SEQ:
		case AC_GRANT_ID:
		case AC_ROW_COUNT:
		case AC_QUERY_ID:
		case AC_XID:
			return INT8OID;
		case AC_TS:
			return TIMESTAMPTZOID;
		case AC_PID:
			return INT4OID;
		case AC_HASH:
			return BYTEAOID;
		default:
			return TEXTOID;
	}
}

AuditStore *
toms_audit_store_begin(bool bulk)
{
	AuditStore *st = palloc0(sizeof(AuditStore));
	Oid			relid = get_relname_relid("audit_log", toms_schema_oid());
	TupleDesc	desc;
	int			c;

	if (!OidIsValid(relid))
		elog(ERROR, "toms.audit_log does not exist");
	st->rel = table_open(relid, RowExclusiveLock);
	if (st->rel->rd_rel->relkind != RELKIND_RELATION)
		elog(ERROR, "toms.audit_log is not a plain table");
	desc = RelationGetDescr(st->rel);
	/* the values bypass SQL's coercions: the row type must be ours */
	if (desc->natts != AC_NCOLS)
		elog(ERROR, "toms.audit_log has %d columns, expected %d", desc->natts, AC_NCOLS);
	for (c = 0; c < AC_NCOLS; c++)
		if ((TupleDescAttr(desc, c)->atttypid != audit_col_type(c) &&
			 !(c == AC_DETAIL && TupleDescAttr(desc, c)->atttypid == JSONBOID)) ||
			TupleDescAttr(desc, c)->attisdropped)
			elog(ERROR, "column %d of toms.audit_log has an unexpected type", c + 1);
	st->estate = CreateExecutorState();
	st->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(st->rri, st->rel, 1, NULL, 0);
	ExecOpenIndices(st->rri, false);
	if (bulk)
	{
		/*
		 * The worker's bulk-insert state is kept for its life, so that its
		 * ring of buffers is reused batch after batch rather than a fresh
		 * one (and fresh shared buffers) taken for each.
		 */
		if (worker_bistate == NULL)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

			worker_bistate = GetBulkInsertState();
			MemoryContextSwitchTo(oldcxt);
		}
		st->bistate = worker_bistate;
	}
	return st;
}

static void
audit_store_flush(AuditStore *st)
{
	int			i;

	if (st->n == 0)
		return;
	if (st->bistate)
		table_multi_insert(st->rel, st->slots, st->n, GetCurrentCommandId(true), 0, st->bistate);
	else
		for (i = 0; i < st->n; i++)
			table_tuple_insert(st->rel, st->slots[i], GetCurrentCommandId(true), 0, NULL);
	for (i = 0; i < st->n; i++)
	{
		if (st->rri->ri_NumIndices > 0)
			list_free(ExecInsertIndexTuples(st->rri, st->slots[i], st->estate,
											false, false, NULL, NIL));
		ResetPerTupleExprContext(st->estate);
		ExecClearTuple(st->slots[i]);
	}
	st->n = 0;
}

void
toms_audit_store_row(AuditStore *st, const Datum *values, const bool *nulls)
{
	HeapTuple	tup;

	if (st->n == AUDIT_STORE_CHUNK || (st->n > 0 && st->bistate == NULL))
		audit_store_flush(st);
	if (st->n == st->nslots)
		st->slots[st->nslots++] = MakeSingleTupleTableSlot(RelationGetDescr(st->rel),
														   &TTSOpsHeapTuple);
	tup = heap_form_tuple(RelationGetDescr(st->rel), (Datum *) values, (bool *) nulls);
	ExecStoreHeapTuple(tup, st->slots[st->n++], true);
}

void
toms_audit_store_end(AuditStore *st)
{
	int			i;

	audit_store_flush(st);
	for (i = 0; i < st->nslots; i++)
		ExecDropSingleTupleTableSlot(st->slots[i]);
	if (st->bistate)
		ReleaseBulkInsertStatePin(st->bistate);
	ExecCloseIndices(st->rri);
	FreeExecutorState(st->estate);
	table_close(st->rel, NoLock);
	pfree(st);
	/* later commands of this transaction see the rows */
	CommandCounterIncrement();
}

static void
put_be(uint8 *p, uint64 v, int n)
{
	int			i;

	for (i = n - 1; i >= 0; i--)
	{
		p[i] = (uint8) (v & 0xff);
		v >>= 8;
	}
}

/*
 * The hash's input, gathered in a buffer and hashed in few updates: one
 * crypto_generichash_update() per field cost the audit worker more than
 * the compression itself.
 */
typedef struct HashBuf
{
	crypto_generichash_state st;
	int			used;
	uint8		buf[1024];
} HashBuf;

static void
hb_flush(HashBuf *hb)
{
	if (hb->used > 0)
		crypto_generichash_update(&hb->st, hb->buf, hb->used);
	hb->used = 0;
}

static void
hb_add(HashBuf *hb, const uint8 *p, uint32 len)
{
	if (len > sizeof(hb->buf) - hb->used)
	{
		hb_flush(hb);
		if (len > sizeof(hb->buf))
		{
			crypto_generichash_update(&hb->st, p, len);
			return;
		}
	}
	memcpy(hb->buf + hb->used, p, len);
	hb->used += len;
}

/* the field's marker byte (1 or 2), its 4-byte length, then its bytes */
static void
hb_add_bytes(HashBuf *hb, uint8 marker, const uint8 *p, uint32 len)
{
	uint8		head[5];

	head[0] = marker;
	put_be(head + 1, len, 4);
	hb_add(hb, head, 5);
	hb_add(hb, p, len);
}

/*
 * The canonical encoding: per column, in table order, one byte 0 (NULL) or
 * 1 followed by the value -- big-endian 8 bytes for bigint and timestamptz
 * (microseconds since 2000-01-01), 4 bytes for integer, a 4-byte length and
 * the UTF-8 bytes for text.  The detail (jsonb) is hashed as the text
 * jsonb prints (detail::text), after the byte 2 instead of 1 -- except in a
 * record written by toms 0.1.0 and converted by the upgrade, whose 0.1.0
 * text is hashed as 0.1.0 hashed it (toms_audit_detail_canonical).  It
 * depends on nothing but the values, so an external verifier can recompute
 * it.  (Gathered in a HashBuf; the bytes hashed are the same as if each
 * were passed to the hash on its own.)
 */
void
toms_audit_chain_hash(const uint8 *prev, const Datum *values, const bool *nulls,
					  bool detail_jsonb, uint8 *out)
{
	HashBuf		hb;
	int			i;

	crypto_generichash_init(&hb.st, NULL, 0, AUDIT_HASH_LEN);
	hb.used = 0;
	hb_add(&hb, prev, AUDIT_HASH_LEN);
	for (i = 0; i < AC_NCANON; i++)
	{
		uint8		buf[9];

		if (nulls[i])
		{
			buf[0] = 0;
			hb_add(&hb, buf, 1);
			continue;
		}
		buf[0] = 1;
		switch (i)
		{
			case AC_SEQ:
			case AC_TS:
			case AC_GRANT_ID:
			case AC_ROW_COUNT:
			case AC_QUERY_ID:
			case AC_XID:
				put_be(buf + 1, (uint64) DatumGetInt64(values[i]), 8);
				hb_add(&hb, buf, 9);
				break;
			case AC_PID:
				put_be(buf + 1, (uint64) (uint32) DatumGetInt32(values[i]), 4);
				hb_add(&hb, buf, 5);
				break;
			case AC_DETAIL:
				if (detail_jsonb)
				{
					char	   *c = toms_audit_detail_canonical(values[i], &buf[0]);

					hb_add_bytes(&hb, buf[0], (const uint8 *) c, strlen(c));
					pfree(c);
					break;
				}
				/* FALLTHROUGH */
			default:
				{
					text	   *t = DatumGetTextPP(values[i]);

					hb_add_bytes(&hb, 1, (const uint8 *) VARDATA_ANY(t),
								 VARSIZE_ANY_EXHDR(t));
					if ((Pointer) t != DatumGetPointer(values[i]))
						pfree(t);
				}
				break;
		}
	}
	hb_flush(&hb);
	crypto_generichash_final(&hb.st, out, AUDIT_HASH_LEN);
}
