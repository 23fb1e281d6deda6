/*-------------------------------------------------------------------------
 *
 * audit_internal.h
 *	  Private to the audit files (src/audit_*.c): the audit record, the
 *	  shared queue between backends and the audit workers, the settings
 *	  they share, and what each audit file offers the ones above it.
 *
 *	  The audit files are layered; each calls only those listed before it
 *	  (and core files such as catalog.c and shmem.c):
 *	    audit_record.c   the fixed-size record; column values; JSON line
 *	    audit_store.c    rows into toms.audit_log; the hash chain
 *	    audit_queue.c    the shared queue; the audit settings
 *	    audit_emit.c     the audit API of toms.h; in-transaction records
 *	  Above them, at the level of toms' features: audit_capture.c (the
 *	  executor and COPY/TRUNCATE, called by hooks.c; may use the tenant
 *	  context), audit_sql.c (SQL-callable functions), audit_writer.c (one
 *	  batch of a database worker) and audit_worker.c (the workers).
 *	  docs/audit.md describes what the audit does.
 *
 *	  Every .c file includes postgres.h before this header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOMS_AUDIT_INTERNAL_H
#define TOMS_AUDIT_INTERNAL_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

/* Columns of toms.audit_log, in table order (the canonical order). */
enum
{
	AC_SEQ = 0,
	AC_TS,
	AC_KIND,
	AC_ACTION,
	AC_SESSION_ROLE,
	AC_EFFECTIVE_ROLE,
	AC_ACTOR,
	AC_TENANT,
	AC_GRANT_ID,
	AC_JUSTIFICATION,
	AC_RELNAME,
	AC_ROW_COUNT,
	AC_QUERY_ID,
	AC_CLIENT_ADDR,
	AC_APPLICATION_NAME,
	AC_PID,
	AC_XID,
	AC_FATE,
	AC_STATEMENT,
	AC_DETAIL,
	AC_NCANON,					/* columns covered by the hash */
	AC_HASH = AC_NCANON,
	AC_NCOLS
};

#define AUDIT_HASH_LEN 32		/* BLAKE2b-256 */

/* String fields of a record (a subset of the columns). */
enum
{
	RS_KIND = 0,
	RS_ACTION,
	RS_SESSION_ROLE,
	RS_EFFECTIVE_ROLE,
	RS_ACTOR,
	RS_TENANT,
	RS_JUSTIFICATION,
	RS_RELNAME,
	RS_CLIENT_ADDR,
	RS_APPLICATION_NAME,
	RS_FATE,
	RS_STATEMENT,
	RS_DETAIL,
	RS_DATABASE,				/* login records: database name (not a column) */
	RS_NSTR
};

/* Integer fields, each with a "present" bit. */
enum
{
	RI_GRANT_ID = 0,
	RI_ROW_COUNT,
	RI_QUERY_ID,
	RI_XID,
	RI_PID,
	RI_NINT
};

/* What a queue entry asks the worker to do. */
typedef enum AuditRecType
{
	AREC_RECORD = 1,			/* insert this record, chained */
	AREC_CHAIN,					/* chain the rows written by transaction xid */
	AREC_INCIDENT				/* raise/count an incident */
} AuditRecType;

#define AUDIT_REC_SIZE 2048
#define AUDIT_STR_NULL 0xFFFF

typedef struct AuditRecHead
{
	uint8		type;			/* AuditRecType */
	uint8		intmask;		/* bit i: ints[i] present */
	uint16		used;			/* bytes of data[] in use */
	TimestampTz ts;
	int64		ints[RI_NINT];
	uint16		off[RS_NSTR];
	uint16		len[RS_NSTR];	/* AUDIT_STR_NULL: absent */
} AuditRecHead;

#define AUDIT_REC_DATA (AUDIT_REC_SIZE - sizeof(AuditRecHead))

/* A record: fixed size, so that it can live in a queue slot as is. */
typedef struct AuditRec
{
	AuditRecHead h;
	char		data[AUDIT_REC_DATA];
} AuditRec;

/* audit_record.c */
extern void toms_audit_rec_init(AuditRec *rec, AuditRecType type, TimestampTz ts);
extern void toms_audit_rec_set_str(AuditRec *rec, int field, const char *s);
extern void toms_audit_rec_set_int(AuditRec *rec, int field, int64 v);
extern char *toms_audit_rec_get_str(const AuditRec *rec, int field);
/* dst := src without string field skip (so that it can be set anew) */
extern void toms_audit_rec_copy_except(AuditRec *dst, const AuditRec *src, int skip);

/*
 * Build the column values (without seq and hash) of a record; text values
 * are palloc'd in the current memory context.
 */
extern void toms_audit_rec_to_datums(const AuditRec *rec, Datum *values, bool *nulls,
									 bool detail_jsonb);
/* The record, or a JSON text, as one line "toms_audit: {...}" in the server log. */
extern void toms_audit_rec_to_log(const AuditRec *rec);
extern void toms_audit_log_json(const char *json);

/*
 * The detail column (jsonb; text in toms 0.1.0's table): always one JSON
 * object.  Records converted by the 0.2.0 upgrade keep their 0.1.0 text
 * under this key.
 */
#define AUDIT_DETAIL_0_1_0 "text_0_1_0"
extern char *toms_audit_detail_object(const char *s);
extern Datum toms_audit_detail_from_0_1_0(const char *s);
extern char *toms_audit_detail_canonical(Datum jsonb, uint8 *tag);

/* audit_store.c */

/*
 * Rows into toms.audit_log straight through the table AM.  bulk: heap
 * multi-inserts through a bulk-insert ring (the worker's batches).
 */
typedef struct AuditStore AuditStore;
extern AuditStore *toms_audit_store_begin(bool bulk);
extern void toms_audit_store_row(AuditStore *st, const Datum *values, const bool *nulls);
extern void toms_audit_store_end(AuditStore *st);

/*
 * hash = BLAKE2b-256(prev || canonical(values[0..AC_NCANON-1])); detail_jsonb:
 * values[AC_DETAIL] is jsonb (0.2.0), else text (0.1.0's table).
 */
extern void toms_audit_chain_hash(const uint8 *prev, const Datum *values, const bool *nulls,
								  bool detail_jsonb, uint8 *out);
/* Is toms.audit_log.detail jsonb (0.2.0) rather than text (0.1.0)? */
extern bool toms_audit_detail_jsonb(void);

/* set while toms itself writes toms.audit_log or toms.incidents with SQL */
extern bool toms_audit_writing;

/* ----------------------------------------------------------------
 * Shared queue (audit_queue.c describes it and its locking rules)
 * ----------------------------------------------------------------
 */
typedef enum AuditSlotState
{
	SLOT_EMPTY = 0,
	SLOT_FULL,
	SLOT_TAKEN,
	SLOT_DONE
} AuditSlotState;

typedef struct AuditSlot
{
	uint64		seq;
	int			state;
	Oid			dbid;			/* InvalidOid: login not yet resolved */
	int			taker;			/* pid of the worker inserting it */
	AuditRec	rec;
} AuditSlot;

#define AUDIT_MAX_DBS 32

typedef struct AuditDb
{
	Oid			dbid;			/* InvalidOid: free */
	int			pid;			/* worker pid, 0 if none */
	bool		starting;		/* launcher registered a worker */
	bool		reconcile;		/* chain every unchained committed row */
	bool		noext;			/* extension absent: records to the log */
	bool		draining;		/* its worker, told to stop, drains */
	Latch	   *latch;
	/* anchor: the chain head the worker last wrote */
	int64		head_seq;
	uint8		head_hash[AUDIT_HASH_LEN];
	TimestampTz last_flush;
} AuditDb;

typedef struct AuditShared
{
	uint64		head;
	uint64		tail;
	int			nslots;
	int			launcher_pid;
	Latch	   *launcher_latch;
	ConditionVariable cv_space; /* producers waiting for a free slot */
	ConditionVariable cv_done;	/* producers waiting for durability */
	pg_atomic_uint64 n_enqueued;
	pg_atomic_uint64 n_written;
	pg_atomic_uint64 n_waits;
	pg_atomic_uint64 n_full_errors;
	pg_atomic_uint64 n_to_log;
	pg_atomic_uint64 n_incidents;
	AuditDb		dbs[AUDIT_MAX_DBS];
	AuditSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} AuditShared;

/* audit_queue.c */

/* the audit settings */
extern int	toms_audit_flush_delay;
extern int	toms_audit_retention;
extern int	toms_audit_incident_denials;
extern int	toms_audit_incident_window;
extern bool toms_audit_sync;
extern bool toms_audit_statement_text;

/* toms.audit_log_destination */
typedef enum AuditDestination
{
	AUDIT_DEST_TABLE,			/* toms.audit_log only */
	AUDIT_DEST_TABLE_LOG		/* and one JSON line per record in the server log */
} AuditDestination;
extern int	toms_audit_log_destination;

extern AuditShared *toms_audit_shared;
extern LWLock *toms_audit_lock(void);
/* caller holds the audit lock (exclusive when create) */
extern AuditDb *toms_audit_db_slot(Oid dbid, bool create);
/* a record that cannot reach the table: the server log, counted */
extern void toms_audit_log_instead(const AuditRec *rec);

/* producers: what one may do when the queue is full */
typedef enum AuditWait
{
	AUDIT_WAIT,					/* as toms.audit_queue_full says: wait, or
								 * raise 54000 */
	AUDIT_WAIT_BOUNDED,			/* no error possible (transaction abort):
								 * wait a bounded time, then the server log */
	AUDIT_NO_WAIT				/* must not sleep (a memory-context reset
								 * callback): the server log at once */
} AuditWait;
extern uint64 toms_audit_enqueue(const AuditRec *rec, Oid dbid, AuditWait wait);
extern void toms_audit_wait_durable(uint64 seq, bool in_abort);
/* enqueue; with toms.audit_sync also wait until it is committed */
extern void toms_audit_queue(const AuditRec *rec, Oid dbid, AuditWait wait);

/* consumers; all but toms_audit_queue_finish with the audit lock held */
extern void toms_audit_queue_finish(const uint64 *seqs, int n, bool done);
extern void toms_audit_queue_release(int pid);
extern bool toms_audit_queue_has(Oid dbid);
extern void toms_audit_queue_drop(Oid dbid, bool unresolved);

extern void toms_audit_queue_init(void);

/* audit_emit.c: what audit_capture.c needs besides the API of toms.h */
extern const char *toms_audit_role_name(Oid roleid);
extern const char *toms_audit_relname(Oid relid);
extern const char *toms_audit_own_worker(void);
extern const char *toms_audit_session_actor(void);
extern void toms_audit_set_statement_relation(Oid (*fn) (void));
extern void toms_audit_fill_common(AuditRec *rec, const char *kind);
extern void toms_audit_fill_statement(AuditRec *rec);
extern void toms_audit_insert_in_xact(AuditRec *rec);
extern void toms_audit_emit_init(void);

/* audit_writer.c: one batch of a database's worker (audit_worker.c) */
extern void toms_audit_writer_setup(Oid dbid);
/* 0: nothing was due; entries taken + 1; -1: no extension here */
extern int	toms_audit_writer_batch(bool *first, bool *more);

#endif							/* TOMS_AUDIT_INTERNAL_H */
