/*-------------------------------------------------------------------------
 *
 * audit_emit.c
 *	  The audit API of toms.h: other parts of toms report administrative
 *	  acts, denials, logins and incidents here.  Also what every record
 *	  carries (who, from where) and the records a backend inserts in its
 *	  own transaction, with the transaction callbacks that settle them.
 *
 *	  Two sinks, chosen by durability (docs/audit.md, "How records are
 *	  written, and what survives what"):
 *	  - In the writing transaction (toms_audit_insert_in_xact): writes to
 *	    protected tables (audit_capture.c) and administrative acts, so that
 *	    a record is exactly as durable as the change.  The backend keeps a
 *	    copy; if the (sub)transaction aborts it goes to the queue instead,
 *	    with fate "rolled back".  At commit the worker is asked to chain the
 *	    transaction's rows.
 *	  - The shared queue (audit_queue.c): denials, logins and incidents,
 *	    which must survive the transaction that raises them, or come when
 *	    there is none.
 *
 *	  This file sits below the tenant context (context.c calls it), so it
 *	  never asks for the context: callers pass the tenant they know.
 *	  Calls audit_record.c, audit_store.c, audit_queue.c and core
 *	  (catalog.c, redact.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "common/ip.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "toms.h"
#include "audit_internal.h"

/* Records this transaction inserted itself (re-queued if it aborts). */
typedef struct PendingRec
{
	struct PendingRec *next;
	SubTransactionId subid;
	AuditRec	rec;
} PendingRec;

static PendingRec *pending_recs = NULL;
static bool xact_inserted = false;
static FullTransactionId xact_fxid;

/* ----------------------------------------------------------------
 * Who and where
 * ----------------------------------------------------------------
 */
static const char *
client_addr(void)
{
	static char addr[NI_MAXHOST] = "";

	if (addr[0] == '\0')
	{
		if (MyProcPort == NULL)
			strlcpy(addr, "background", sizeof(addr));
		else if (MyProcPort->raddr.addr.ss_family == AF_UNIX)
			strlcpy(addr, "local", sizeof(addr));
		else if (pg_getnameinfo_all(&MyProcPort->raddr.addr, MyProcPort->raddr.salen,
									addr, sizeof(addr), NULL, 0, NI_NUMERICHOST) != 0)
			strlcpy(addr, "unknown", sizeof(addr));
	}
	return addr;
}

/* The name of a role ("?" if it is gone); two entries cached. */
const char *
toms_audit_role_name(Oid roleid)
{
	static Oid	cached_id = InvalidOid;
	static char cached[NAMEDATALEN];
	static Oid	cached_id2 = InvalidOid;
	static char cached2[NAMEDATALEN];
	char	   *n;

	if (roleid == cached_id)
		return cached;
	if (roleid == cached_id2)
		return cached2;
	n = GetUserNameFromId(roleid, true);
	if (n == NULL)
		return "?";
	/* two entries: session user and current user */
	cached_id2 = cached_id;
	strlcpy(cached2, cached, sizeof(cached2));
	cached_id = roleid;
	strlcpy(cached, n, sizeof(cached));
	return cached;
}

/* Schema-qualified names of the last few tables, dropped on any relcache flush. */
#define RELNAME_CACHE 8
static struct
{
	Oid			relid;
	char		name[2 * NAMEDATALEN + 8];
}			relname_cache[RELNAME_CACHE];
static int	relname_next = 0;

static void
relname_cache_flush(Oid relid)
{
	int			i;

	for (i = 0; i < RELNAME_CACHE; i++)
		if (!OidIsValid(relid) || relname_cache[i].relid == relid)
			relname_cache[i].relid = InvalidOid;
}

/* The table's schema-qualified, quoted name; its oid if it is gone. */
const char *
toms_audit_relname(Oid relid)
{
	char	   *nsp;
	char	   *rel;
	const char *q;
	int			i;

	for (i = 0; i < RELNAME_CACHE; i++)
		if (relname_cache[i].relid == relid && OidIsValid(relid))
			return relname_cache[i].name;
	rel = get_rel_name(relid);
	if (rel == NULL)
		return psprintf("%u", relid);
	nsp = get_namespace_name(get_rel_namespace(relid));
	q = quote_qualified_identifier(nsp, rel);
	i = relname_next++ % RELNAME_CACHE;
	relname_cache[i].relid = relid;
	strlcpy(relname_cache[i].name, q, sizeof(relname_cache[i].name));
	return relname_cache[i].name;
}

/*
 * toms' own background workers (lifecycle, reseal, ...): their type
 * ("toms lifecycle worker"), else NULL.  Their records name them as the
 * application and toms as the actor, so that they are not taken for a
 * superuser's reads (docs/audit.md).
 */
const char *
toms_audit_own_worker(void)
{
	if (MyBackendType == B_BG_WORKER && MyBgworkerEntry != NULL &&
		strcmp(MyBgworkerEntry->bgw_library_name, "toms") == 0)
		return MyBgworkerEntry->bgw_type;
	return NULL;
}

/* The actor of a record made without a tenant context. */
const char *
toms_audit_session_actor(void)
{
	if (toms_audit_own_worker())
		return "toms";
	return toms_audit_role_name(GetSessionUserId());
}

/* Fill the fields every record carries. */
void
toms_audit_fill_common(AuditRec *rec, const char *kind)
{
	const char *worker = toms_audit_own_worker();

	toms_audit_rec_set_str(rec, RS_KIND, kind);
	toms_audit_rec_set_int(rec, RI_PID, MyProcPid);
	toms_audit_rec_set_str(rec, RS_CLIENT_ADDR, client_addr());
	if (worker)
		toms_audit_rec_set_str(rec, RS_APPLICATION_NAME, worker);
	else if (application_name && application_name[0])
		toms_audit_rec_set_str(rec, RS_APPLICATION_NAME, application_name);
	if (IsTransactionState() && OidIsValid(GetSessionUserId()))
	{
		FullTransactionId fxid = GetTopFullTransactionIdIfAny();

		toms_audit_rec_set_str(rec, RS_SESSION_ROLE, toms_audit_role_name(GetSessionUserId()));
		toms_audit_rec_set_str(rec, RS_EFFECTIVE_ROLE, toms_audit_role_name(GetUserId()));
		if (FullTransactionIdIsValid(fxid))
			toms_audit_rec_set_int(rec, RI_XID, (int64) U64FromFullTransactionId(fxid));
	}
}

/* The statement text, secrets blanked, if toms.audit_statement_text. */
void
toms_audit_fill_statement(AuditRec *rec)
{
	if (toms_audit_statement_text && debug_query_string)
		toms_audit_rec_set_str(rec, RS_STATEMENT, toms_redact_secrets(debug_query_string));
}

/* ----------------------------------------------------------------
 * In-transaction records (writes, admin acts)
 * ----------------------------------------------------------------
 */

/* Insert the record in this transaction, fate "committed" (unchained). */
void
toms_audit_insert_in_xact(AuditRec *rec)
{
	Datum		values[AC_NCOLS];
	bool		nulls[AC_NCOLS];
	PendingRec *pr;
	AuditStore *st;

	xact_fxid = GetTopFullTransactionId();
	toms_audit_rec_set_int(rec, RI_XID, (int64) U64FromFullTransactionId(xact_fxid));
	toms_audit_rec_set_str(rec, RS_FATE, "committed");
	toms_audit_rec_to_datums(rec, values, nulls, toms_audit_detail_jsonb());

	/* unchained (seq NULL): the worker chains it once the transaction commits */
	st = toms_audit_store_begin(false);
	toms_audit_store_row(st, values, nulls);
	toms_audit_store_end(st);

	pr = MemoryContextAlloc(TopTransactionContext, offsetof(PendingRec, rec) +
							offsetof(AuditRec, data) + rec->h.used);
	pr->subid = GetCurrentSubTransactionId();
	memcpy(&pr->rec, rec, offsetof(AuditRec, data) + rec->h.used);
	pr->next = pending_recs;
	pending_recs = pr;
	xact_inserted = true;
}

/* A record whose transaction is going away: queue it as rolled back. */
static void
requeue_rolled_back(PendingRec *pr)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));

	/* rebuild it without the fate, then set the new fate */
	toms_audit_rec_copy_except(rec, &pr->rec, RS_FATE);
	toms_audit_rec_set_str(rec, RS_FATE, "rolled back");
	toms_audit_queue(rec, MyDatabaseId, AUDIT_WAIT_BOUNDED);
	pfree(rec);
}

static void
audit_xact_callback(XactEvent event, void *arg)
{
	PendingRec *pr;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (xact_inserted && toms_audit_shared)
			{
				AuditRec   *rec = palloc(sizeof(AuditRec));

				toms_audit_rec_init(rec, AREC_CHAIN, GetCurrentTimestamp());
				toms_audit_rec_set_int(rec, RI_XID, (int64) U64FromFullTransactionId(xact_fxid));
				(void) toms_audit_enqueue(rec, MyDatabaseId, AUDIT_WAIT_BOUNDED);
				pfree(rec);
			}
			break;
		case XACT_EVENT_ABORT:
			for (pr = pending_recs; pr; pr = pr->next)
				requeue_rolled_back(pr);
			break;
		case XACT_EVENT_PREPARE:
			/* chained by the next reconciliation (see docs/audit.md, Limits) */
			break;
		default:
			return;
	}
	pending_recs = NULL;
	xact_inserted = false;
}

static void
audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	PendingRec *pr;

	/*
	 * The list is newest first, and every record made since mySubid began
	 * now carries mySubid (its committed children's were relabelled, its
	 * aborted children's removed): they are a prefix of the list, and the
	 * older records behind them belong to its ancestors.  Stopping there
	 * keeps a transaction of many subtransactions (a function called per
	 * row, each call a subtransaction) linear.
	 */
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			for (pr = pending_recs; pr && pr->subid == mySubid; pr = pr->next)
				pr->subid = parentSubid;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			while ((pr = pending_recs) != NULL && pr->subid == mySubid)
			{
				requeue_rolled_back(pr);
				pending_recs = pr->next;
			}
			break;
		default:
			break;
	}
}

/* ----------------------------------------------------------------
 * The audit API of toms.h
 * ----------------------------------------------------------------
 */
/*
 * The table a statement denied without naming one was about: audit_capture.c
 * knows the protected tables of the statement running (it registers here,
 * being above this file).
 */
static Oid	(*statement_relation) (void) = NULL;
static Oid	denial_relid = InvalidOid;

void
toms_audit_denial_relation(Oid relid)
{
	denial_relid = relid;
}

void
toms_audit_set_statement_relation(Oid (*fn) (void))
{
	statement_relation = fn;
}

static void
admin_record(const char *action, const char *tenant, Oid relid, const char *detail)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));

	toms_audit_rec_init(rec, AREC_RECORD, GetCurrentTimestamp());
	toms_audit_fill_common(rec, "admin");
	toms_audit_rec_set_str(rec, RS_ACTION, action);
	toms_audit_rec_set_str(rec, RS_TENANT, tenant);
	toms_audit_rec_set_str(rec, RS_ACTOR, toms_audit_session_actor());
	if (OidIsValid(relid))
		toms_audit_rec_set_str(rec, RS_RELNAME, toms_audit_relname(relid));
	toms_audit_rec_set_str(rec, RS_DETAIL, detail);
	toms_audit_fill_statement(rec);
	if (IsTransactionState() && !IsAbortedTransactionBlockState() && !XactReadOnly)
		toms_audit_insert_in_xact(rec);
	else
		toms_audit_queue(rec, MyDatabaseId, AUDIT_WAIT);
	pfree(rec);
}

void
toms_audit_admin(const char *action, const char *tenant, const char *detail)
{
	admin_record(action, tenant, InvalidOid, detail);
}

void
toms_audit_admin_rel(const char *action, const char *tenant, Oid relid, const char *detail)
{
	admin_record(action, tenant, relid, detail);
}

/*
 * A denial.  tenant: the verified tenant context it happened under (or
 * NULL); claimed: a tenant asked for and refused, which goes into the
 * detail, never into the tenant column.
 */
static void
denied_record(const char *reason, const char *tenant, const char *claimed, Oid relid,
			  const char *detail, AuditWait wait)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));
	bool		in_xact = IsTransactionState();
	StringInfoData d;

	toms_audit_rec_init(rec, AREC_RECORD, GetCurrentTimestamp());
	toms_audit_fill_common(rec, "denied");
	toms_audit_rec_set_str(rec, RS_ACTION, reason);
	toms_audit_rec_set_str(rec, RS_TENANT, tenant);
	toms_audit_rec_set_str(rec, RS_FATE, "denied");
	if (in_xact && OidIsValid(GetSessionUserId()))
		toms_audit_rec_set_str(rec, RS_ACTOR, toms_audit_session_actor());
	if (!OidIsValid(relid))
		relid = denial_relid;
	denial_relid = InvalidOid;
	if (!OidIsValid(relid) && in_xact && statement_relation)
		relid = statement_relation();
	if (OidIsValid(relid) && in_xact)
		toms_audit_rec_set_str(rec, RS_RELNAME, toms_audit_relname(relid));
	if (claimed)
	{
		initStringInfo(&d);
		appendStringInfoString(&d, "{\"claimed_tenant\": ");
		escape_json(&d, claimed);
		appendStringInfoChar(&d, '}');
		detail = d.data;
	}
	toms_audit_rec_set_str(rec, RS_DETAIL, detail);
	toms_audit_fill_statement(rec);
	toms_audit_queue(rec, MyDatabaseId, wait);
	pfree(rec);
}

void
toms_audit_denied(const char *reason, const char *tenant, Oid relid, const char *detail)
{
	denied_record(reason, tenant, NULL, relid, detail, AUDIT_WAIT);
}

void
toms_audit_denied_claim(const char *reason, const char *claimed, Oid relid)
{
	denied_record(reason, NULL, claimed, relid, NULL, AUDIT_WAIT);
}

/*
 * The guard's refusal (TOMS_REFUSE in toms.h), called among the arguments
 * of its ereport, after errmsg: CopyErrorData() then gives the error being
 * built.  The denial names the refusal's message and the table the guard
 * last found protected, if the message names it.
 */
int
toms_audit_refused(void)
{
	ErrorData  *edata;
	Oid			relid;
	char	   *name;

	if (!IsTransactionState() || toms_audit_shared == NULL)
		return 0;
	edata = CopyErrorData();
	relid = toms_protected_last();
	name = OidIsValid(relid) ? get_rel_name(relid) : NULL;
	if (name == NULL || edata->message == NULL ||
		strstr(edata->message, psprintf("\"%s\"", name)) == NULL)
		relid = InvalidOid;
	denied_record(edata->message ? edata->message : "refused by the guard", NULL, NULL, relid,
				  NULL, AUDIT_WAIT_BOUNDED);
	FreeErrorData(edata);
	return 0;
}

void
toms_audit_login(bool success, const char *role, const char *database,
				 const char *method, const char *reason)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));
	StringInfoData d;

	toms_audit_rec_init(rec, AREC_RECORD, GetCurrentTimestamp());
	toms_audit_rec_set_str(rec, RS_KIND, "login");
	toms_audit_rec_set_str(rec, RS_ACTION, success ? "LOGIN" : "LOGIN FAILED");
	toms_audit_rec_set_str(rec, RS_SESSION_ROLE, role);
	toms_audit_rec_set_str(rec, RS_ACTOR, role);
	toms_audit_rec_set_str(rec, RS_FATE, success ? "succeeded" : "failed");
	toms_audit_rec_set_int(rec, RI_PID, MyProcPid);
	toms_audit_rec_set_str(rec, RS_CLIENT_ADDR, client_addr());
	if (MyProcPort && MyProcPort->application_name)
		toms_audit_rec_set_str(rec, RS_APPLICATION_NAME, MyProcPort->application_name);
	initStringInfo(&d);
	appendStringInfoString(&d, "{\"database\":");
	escape_json(&d, database ? database : "");
	if (method)
	{
		appendStringInfoString(&d, ",\"method\":");
		escape_json(&d, method);
	}
	if (reason)
	{
		appendStringInfoString(&d, ",\"reason\":");
		escape_json(&d, reason);
	}
	appendStringInfoChar(&d, '}');
	toms_audit_rec_set_str(rec, RS_DETAIL, d.data);
	toms_audit_rec_set_str(rec, RS_DATABASE, database);
	/* before InitPostgres has a database: the launcher resolves the name */
	toms_audit_queue(rec, OidIsValid(MyDatabaseId) ? MyDatabaseId : InvalidOid, AUDIT_WAIT);
	pfree(rec);
}

void
toms_incident(const char *kind, const char *severity, const char *tenant, const char *detail)
{
	AuditRec   *rec = palloc(sizeof(AuditRec));

	toms_audit_rec_init(rec, AREC_INCIDENT, GetCurrentTimestamp());
	toms_audit_rec_set_str(rec, RS_ACTION, kind);
	toms_audit_rec_set_str(rec, RS_FATE, severity ? severity : "high");
	toms_audit_rec_set_str(rec, RS_TENANT, tenant);
	toms_audit_rec_set_str(rec, RS_DETAIL, detail);
	if (!OidIsValid(MyDatabaseId) && MyProcPort)
		toms_audit_rec_set_str(rec, RS_DATABASE, MyProcPort->database_name);
	(void) toms_audit_enqueue(rec, MyDatabaseId, AUDIT_WAIT);
	pfree(rec);
}

/* The transaction callbacks and the relation-name cache (from _PG_init). */
void
toms_audit_emit_init(void)
{
	RegisterXactCallback(audit_xact_callback, NULL);
	RegisterSubXactCallback(audit_subxact_callback, NULL);
	toms_on_relcache(relname_cache_flush);
}
