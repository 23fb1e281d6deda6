/*-------------------------------------------------------------------------
 *
 * audit_internal.h
 *	  Private to audit.c and audit_worker.c: the audit record, the shared
 *	  queue between backends and the audit workers, and the canonical
 *	  encoding that the hash chain is computed over.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOMS_AUDIT_INTERNAL_H
#define TOMS_AUDIT_INTERNAL_H

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
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

extern void toms_audit_rec_init(AuditRec *rec, AuditRecType type, TimestampTz ts);
extern void toms_audit_rec_set_str(AuditRec *rec, int field, const char *s);
extern void toms_audit_rec_set_int(AuditRec *rec, int field, int64 v);
extern char *toms_audit_rec_get_str(const AuditRec *rec, int field);
/* a record that cannot reach the table: one JSON line in the server log */
extern void toms_audit_rec_to_log(const AuditRec *rec);

/*
 * Build the column values (without seq and hash) of a record; text values
 * are palloc'd in the current memory context.
 */
extern void toms_audit_rec_to_datums(const AuditRec *rec, Datum *values, bool *nulls);

/*
 * Rows into toms.audit_log straight through the table AM, as COPY does:
 * no SQL, no triggers (the table has only a statement trigger that refuses
 * everyone but toms), no privilege needed.  bulk: heap multi-inserts
 * through a bulk-insert ring (the worker's batches), so that the trail
 * does not push the audited tables out of shared buffers.
 */
typedef struct AuditStore AuditStore;
extern AuditStore *toms_audit_store_begin(bool bulk);
extern void toms_audit_store_row(AuditStore *st, const Datum *values, const bool *nulls);
extern void toms_audit_store_end(AuditStore *st);

/* hash = BLAKE2b-256(prev || canonical(values[0..AC_NCANON-1])) */
extern void toms_audit_chain_hash(const uint8 *prev, const Datum *values, const bool *nulls,
								  uint8 *out);

/* ----------------------------------------------------------------
 * Shared queue
 *
 * A ring of fixed-size slots; slot i holds queue position seq with
 * seq % nslots == i.  Backends append at head; each database's worker takes
 * the FULL entries of its own database (in order), marks them TAKEN while
 * it inserts them, and DONE right after its transaction commits (no
 * interrupt is processed in between, so a SIGTERM'd worker leaves only
 * uncommitted entries TAKEN, and the launcher puts them back).  tail
 * advances over DONE entries.  Everything in AuditShared is protected by
 * the part's LWLock (index lock_base), except the atomics.
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

extern AuditShared *toms_audit_shared;
extern LWLock *toms_audit_lock(void);

/* settings shared by both files */
extern int	toms_audit_flush_delay;
extern int	toms_audit_retention;
extern int	toms_audit_incident_denials;
extern int	toms_audit_incident_window;
/* toms.audit_log_destination */
typedef enum AuditDestination
{
	AUDIT_DEST_TABLE,			/* toms.audit_log only */
	AUDIT_DEST_TABLE_LOG		/* and one JSON line per record in the server log */
} AuditDestination;
extern int	toms_audit_log_destination;

/* audit.c: set while toms itself writes toms.audit_log */
extern bool toms_audit_writing;

/* audit_worker.c */
extern AuditDb *toms_audit_db_slot(Oid dbid, bool create);
extern void toms_audit_log_json(const char *json);

#endif							/* TOMS_AUDIT_INTERNAL_H */
