/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *	  Two-stage deletion, stage 1, and the settings of deletion and
 *	  retention (docs/deletion.md; measures 6b, 8a).
 *
 *	  Stage 1 is SQL (sql/install/50_lifecycle.sql): request_deletion()
 *	  marks a whole tenant 'deleting', which context.c refuses to enter, or
 *	  records one data subject of a tenant.  Subjects are hidden by a
 *	  restrictive policy "toms_subject" that protect() asks us to put on
 *	  every table with a subject column (toms_lifecycle_on_protect); its USING
 *	  clause calls toms.subject_visible(subject) for each row.
 *
 *	  That function must be cheap per row and right after every commit, so
 *	  each backend caches the hidden subjects in a hash table keyed by
 *	  subject (each entry lists the tenants it is hidden in).  The cache is
 *	  dropped by a relcache callback whenever toms.deletion_requests is
 *	  invalidated; request_deletion() and cancel_deletion() send that
 *	  invalidation through toms._lifecycle_event(), so other backends see
 *	  the change when the transaction commits, the requester sees it at its
 *	  next command, and an abort reverts it.  The cache is rebuilt with the
 *	  latest snapshot (not the transaction's), so that a rebuild triggered
 *	  in a long repeatable-read transaction cannot keep an old view after
 *	  the invalidation that prompted it has been consumed.
 *
 *	  On a Citus cluster toms.deletion_requests is a reference table
 *	  (toms.citus_setup()): every node reads its local copy, and the
 *	  statement trigger toms_invalidate on the table -- which Citus puts on
 *	  each node's copy -- sends the invalidation on every node that the
 *	  request's distributed transaction writes, so stage 1 hides the scope
 *	  on all nodes when it commits (docs/scaling.md).
 *
 *	  Stage 2 and retention are in lifecycle_worker.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "toms.h"

/* Settings read by stage 1 (the worker's are in lifecycle_worker.c). */
static int	deletion_grace = 7 * 24 * 3600;	/* seconds */
static bool deletion_approval = false;

/* Longest subject id (bytes); the table's CHECK says the same. */
#define SUBJECT_KEY_LEN 260

typedef struct HiddenSubject
{
	char		subject[SUBJECT_KEY_LEN];	/* hash key */
	List	   *tenants;		/* of char *, in hidden_cxt */
} HiddenSubject;

static MemoryContext hidden_cxt = NULL;
static HTAB *hidden = NULL;
static bool hidden_valid = false;
static long nhidden = 0;
static Oid	requests_relid = InvalidOid;

static void
lifecycle_relcache_cb(Oid relid)
{
	if (!OidIsValid(relid) || relid == requests_relid || !OidIsValid(requests_relid))
		hidden_valid = false;
}

/*
 * The relation that holds toms.deletion_requests' rows here: the table, or
 * on a Citus node its local shard (citus_catalog.c).  A Citus node without
 * its copy fails closed rather than hide nothing.
 */
static Oid
lookup_requests_relid(void)
{
	Oid			nsp = get_namespace_oid(TOMS_SCHEMA, true);
	Oid			relid;

	if (!OidIsValid(nsp))
		return InvalidOid;
	relid = get_relname_relid("deletion_requests", nsp);
	if (!OidIsValid(relid))
		return InvalidOid;
	relid = toms_citus_local_relid(nsp, "deletion_requests", relid);
	if (!OidIsValid(relid))
		toms_citus_no_copy("deletion_requests");
	return relid;
}

/*
 * Rebuild the hidden-subject cache from toms.deletion_requests: every
 * subject request that was not cancelled (a completed one stays hidden, so
 * that rows re-created under a deleted subject's id stay out of sight as a
 * deleted tenant's would).
 */
static void
rebuild_hidden(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	AttrNumber	att_tenant,
				att_subject,
				att_state;
	HASHCTL		ctl;
	Oid			relid;

	if (hidden_cxt == NULL)
		hidden_cxt = AllocSetContextCreate(CacheMemoryContext, "toms hidden subjects",
										   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(hidden_cxt);
	hidden = NULL;
	nhidden = 0;

	relid = lookup_requests_relid();
	requests_relid = relid;
	if (!OidIsValid(relid))
	{
		/* Extension not (yet) installed here: nothing is hidden. */
		hidden_valid = true;
		return;
	}

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = SUBJECT_KEY_LEN;
	ctl.entrysize = sizeof(HiddenSubject);
	ctl.hcxt = hidden_cxt;
	hidden = hash_create("toms hidden subjects", 64, &ctl,
						 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	rel = table_open(relid, AccessShareLock);
	att_tenant = get_attnum(relid, "tenant");
	att_subject = get_attnum(relid, "subject");
	att_state = get_attnum(relid, "state");
	if (att_tenant == InvalidAttrNumber || att_subject == InvalidAttrNumber ||
		att_state == InvalidAttrNumber)
		elog(ERROR, "toms.deletion_requests lacks expected columns");

	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		d;
		char	   *subject;
		char	   *state;
		char	   *tenant;
		HiddenSubject *e;
		bool		found;
		MemoryContext old;

		d = heap_getattr(tup, att_subject, RelationGetDescr(rel), &isnull);
		if (isnull)
			continue;
		subject = TextDatumGetCString(d);
		d = heap_getattr(tup, att_state, RelationGetDescr(rel), &isnull);
		state = isnull ? "" : TextDatumGetCString(d);
		if (strcmp(state, "cancelled") == 0)
			continue;
		d = heap_getattr(tup, att_tenant, RelationGetDescr(rel), &isnull);
		if (isnull || strlen(subject) >= SUBJECT_KEY_LEN)
			continue;
		tenant = TextDatumGetCString(d);

		e = hash_search(hidden, subject, HASH_ENTER, &found);
		if (!found)
			e->tenants = NIL;
		old = MemoryContextSwitchTo(hidden_cxt);
		e->tenants = lappend(e->tenants, pstrdup(tenant));
		MemoryContextSwitchTo(old);
		nhidden++;
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	hidden_valid = true;
}

PG_FUNCTION_INFO_V1(toms_subject_visible);

/*
 * toms.subject_visible(subject text) -> bool, in the USING clause of the
 * toms_subject policy.  Rows of other tenants are already filtered out by
 * the tenant policy; without a tenant context that policy decides alone.
 */
Datum
toms_subject_visible(PG_FUNCTION_ARGS)
{
	char	   *subject;
	HiddenSubject *e;
	const TomsContext *ctx;
	ListCell   *lc;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	if (!hidden_valid)
		rebuild_hidden();
	if (nhidden == 0)
		PG_RETURN_BOOL(true);

	subject = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strlen(subject) >= SUBJECT_KEY_LEN)
		PG_RETURN_BOOL(true);
	e = hash_search(hidden, subject, HASH_FIND, NULL);
	if (e == NULL)
		PG_RETURN_BOOL(true);

	ctx = toms_context(true);
	if (ctx == NULL || ctx->tenant == NULL)
		PG_RETURN_BOOL(true);
	foreach(lc, e->tenants)
	{
		if (strcmp((char *) lfirst(lc), ctx->tenant) == 0)
			PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}

PG_FUNCTION_INFO_V1(toms_lifecycle_invalidate_trigger);

/*
 * Statement trigger on toms.deletion_requests (and, on Citus, on its copy
 * on each node): every backend of this node reloads the hidden subjects
 * once the writing transaction commits.
 */
Datum
toms_lifecycle_invalidate_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "toms_lifecycle_invalidate_trigger: not called by trigger manager");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(toms_lifecycle_event);

/*
 * toms._lifecycle_event(action, tenant, detail, invalidate): the audit
 * record of an administrative act of this part and, with invalidate, the
 * invalidation that makes every backend reload the hidden subjects (and
 * whatever context.c caches about toms.tenants) once we commit.
 */
Datum
toms_lifecycle_event(PG_FUNCTION_ARGS)
{
	char	   *action = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *tenant = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *detail = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool		invalidate = !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);

	if (action == NULL)
		elog(ERROR, "toms._lifecycle_event needs an action");
	toms_audit_admin(action, tenant, detail);

	if (invalidate)
	{
		Oid			nsp = get_namespace_oid(TOMS_SCHEMA, false);
		Oid			relid;

		relid = get_relname_relid("deletion_requests", nsp);
		if (OidIsValid(relid))
			CacheInvalidateRelcacheByRelid(relid);
		relid = get_relname_relid("tenants", nsp);
		if (OidIsValid(relid))
			CacheInvalidateRelcacheByRelid(relid);
	}
	PG_RETURN_VOID();
}

/*
 * protect(..., subject_column => col): add the restrictive policy that
 * hides the subjects whose deletion was requested.  Called inside SPI by
 * protect.c; the DDL passes the guard through toms_run_ddl(), and the guard
 * keeps every toms_* policy from being dropped or altered afterwards.
 */
void
toms_lifecycle_on_protect(Oid relid, const char *subject_column)
{
	char	   *relname;
	char	   *nspname;
	StringInfoData sql;

	if (subject_column == NULL)
		return;
	if (get_attnum(relid, subject_column) == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						subject_column, get_rel_name(relid))));

	relname = get_rel_name(relid);
	nspname = get_namespace_name(get_rel_namespace(relid));
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "CREATE POLICY toms_subject ON %s AS RESTRICTIVE FOR ALL TO PUBLIC "
					 "USING (%s.subject_visible(%s::text))",
					 quote_qualified_identifier(nspname, relname),
					 quote_identifier(TOMS_SCHEMA),
					 quote_identifier(subject_column));
	toms_run_ddl(sql.data);
	pfree(sql.data);
}

void
toms_lifecycle_init(void)
{
	DefineCustomIntVariable("toms.deletion_grace",
							gettext_noop("Grace period between a deletion request and its stage 2."),
							gettext_noop("A request may lengthen it; only a superuser may shorten it."),
							&deletion_grace,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("toms.deletion_approval",
							 gettext_noop("Stage 2 of a deletion also needs approval by a second role."),
							 NULL,
							 &deletion_approval,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	toms_on_relcache(lifecycle_relcache_cb);
}
