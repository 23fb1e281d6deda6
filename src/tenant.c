/*-------------------------------------------------------------------------
 *
 * tenant.c
 *	  Tenant separation: the toms.context setting, its verification, the
 *	  functions that enter and leave a tenant, and toms.protect().
 *
 *	  toms.context holds either a bare tenant id or a PASETO v4.public token.
 *	  It is never trusted because it was set: toms_context() verifies it
 *	  where it is used -- the session user's membership or live grant for a
 *	  bare id, the signature, expiry and toms_app membership for a token --
 *	  and caches the result per backend, keyed by the setting's value.  The
 *	  cache is dropped whenever one of toms' tenant tables changes (their
 *	  triggers send relcache invalidations, which are transactional) or role
 *	  membership changes, and an entry never outlives its token's exp or its
 *	  grant's end.
 *
 *	  A protected table carries the toms-owned policy "toms_tenant", whose
 *	  filter compares the tenant column with toms.current_tenant(); guard.c
 *	  keeps anyone from weakening it.  An ExecutorStart hook makes the check
 *	  fail closed even where the policy would not be evaluated (an empty
 *	  table still raises "no tenant context"); an ExecutorRun hook keeps a
 *	  cursor to the tenant it was opened under; an fmgr hook follows the
 *	  SECURITY DEFINER functions being run, so that one owned by a role
 *	  outside row security cannot hand out every tenant's rows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "common/hashfn.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "toms.h"

PG_FUNCTION_INFO_V1(toms_current_tenant);
PG_FUNCTION_INFO_V1(toms_current_tenant_opt);
PG_FUNCTION_INFO_V1(toms_current_actor);
PG_FUNCTION_INFO_V1(toms_set_tenant);
PG_FUNCTION_INFO_V1(toms_enter_tenant);
PG_FUNCTION_INFO_V1(toms_clear_tenant);
PG_FUNCTION_INFO_V1(toms_validate_tenant);
PG_FUNCTION_INFO_V1(toms_protect);
PG_FUNCTION_INFO_V1(toms_unprotect);
PG_FUNCTION_INFO_V1(toms_invalidate_trigger);
PG_FUNCTION_INFO_V1(toms_audit_admin_sql);

/* Longest toms.context value looked at (a token is a few hundred bytes). */
#define TOMS_MAX_CONTEXT_LEN 8192

/* Verified contexts remembered per backend before the cache starts over. */
#define CTX_CACHE_MAX 1024

/* toms.context: a tenant id or a token; verified where used */
static char *context_value = NULL;

/* Bumped by the setting's assign hook: every change, SET, RESET, rollback. */
static uint64 context_version = 1;

/* Bumped by invalidation of toms' tenant tables or of role membership. */
static uint64 cache_generation = 1;

/*
 * Verified contexts, keyed by a hash of the setting's value (the value
 * itself is compared too: a collision is a miss, never a false hit).
 * Everything lives in ctx_cxt; invalidation callbacks only bump
 * cache_generation, and the next toms_context() call starts the cache over,
 * so a pointer handed out stays valid until the next call.
 */
typedef struct CtxCacheEntry
{
	uint64		key;			/* hash of value */
	char	   *value;
	Oid			session_user;
	uint64		version;		/* context_version when last confirmed */
	TomsContext ctx;
} CtxCacheEntry;

static MemoryContext ctx_cxt = NULL;
static HTAB *ctx_cache = NULL;
static uint64 ctx_cache_generation = 0;
static long ctx_cache_fills = 0;
static CtxCacheEntry *ctx_last = NULL;

/* Relations whose changes invalidate the caches (resolved lazily). */
static Oid	watched_tenants = InvalidOid;
static Oid	watched_protected = InvalidOid;

/* Protected-table cache: relid -> TomsProtected (or a negative entry). */
typedef struct ProtEntry
{
	Oid			relid;			/* hash key */
	bool		is_protected;
	TomsProtected info;
} ProtEntry;

static HTAB *prot_cache = NULL;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;

static void tenant_ExecutorStart(QueryDesc *queryDesc, int eflags);
static void tenant_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction,
							   uint64 count, bool execute_once);

/*
 * Statements under the tenant filter that have started and not ended, with
 * the tenant they started under: a cursor is read by later ExecutorRun
 * calls, and its scans keep the tenant they began with (an index scan
 * computes toms.current_tenant() once), so reading it after the context
 * changed to another tenant is refused.  Entries live in the statement's
 * memory and unlink themselves when it goes.
 */
typedef struct TenantStmt
{
	QueryDesc  *qd;
	uint64		version;		/* context_version when last checked */
	char		tenant[TOMS_MAX_TENANT_LEN + 1];	/* the tenant it started under */
	Oid			relid;			/* a protected table it reads (for the audit) */
	MemoryContextCallback cb;
	struct TenantStmt *next;
} TenantStmt;

static TenantStmt *tenant_stmts = NULL;

/*
 * SECURITY DEFINER functions being run, innermost last (fmgr_hook): inside
 * one owned by a superuser or BYPASSRLS role, PostgreSQL applies no row
 * security, so such a function would hand a caller who is subject to the
 * tenant filter every tenant's rows.  toms' own functions are exempt.
 * definer_eff[d] is the kind in force at depth d: a function that only
 * has SET clauses changes no user and inherits the kind of its caller.
 */
typedef enum DefinerKind
{
	DEFINER_NONE = 0,			/* outside any SECURITY DEFINER function */
	DEFINER_INHERIT,			/* SET clauses only: no user change */
	DEFINER_FOREIGN,			/* a SECURITY DEFINER function not of toms */
	DEFINER_TOMS				/* one of toms' own */
} DefinerKind;

#define DEFINER_MAX_DEPTH 1024
static int	definer_depth = 0;
static uint8 definer_eff[DEFINER_MAX_DEPTH];
static fmgr_hook_type prev_fmgr_hook = NULL;

/* ----------------------------------------------------------------
 * Helpers
 * ----------------------------------------------------------------
 */

/*
 * toms' schema, and whether the extension is installed in this database:
 * asked by every statement, so the two syscache lookups are remembered
 * until pg_namespace or pg_class changes (the invalidation that would
 * refresh the syscache resets this too, so it is never stale).
 */
static bool ext_cache_valid = false;
static Oid	ext_nsp = InvalidOid;
static bool ext_installed = false;

static void
ext_cache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	ext_cache_valid = false;
}

static void
ext_cache_fill(void)
{
	ext_nsp = get_namespace_oid(TOMS_SCHEMA, true);
	ext_installed = OidIsValid(ext_nsp) &&
		OidIsValid(get_relname_relid("protected_tables", ext_nsp));
	ext_cache_valid = true;
}

Oid
toms_schema_oid(void)
{
	if (!ext_cache_valid)
		ext_cache_fill();
	return ext_nsp;
}

bool
toms_extension_exists(void)
{
	if (!IsTransactionState())
		return false;
	if (!ext_cache_valid)
		ext_cache_fill();
	return ext_installed;
}

static Oid
toms_relid(const char *relname)
{
	Oid			nsp = toms_schema_oid();

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(relname, nsp);
}

void
toms_validate_tenant_id(const char *tenant)
{
	const char *why = toms_tenant_id_problem(tenant);

	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", why),
				 errdetail("A tenant id has 1 to %d bytes, no control characters, and does not start with \"v4.\".",
						   TOMS_MAX_TENANT_LEN)));
}

static void
invalidate_caches(void)
{
	cache_generation++;
	if (prot_cache)
	{
		hash_destroy(prot_cache);
		prot_cache = NULL;
	}
}

static void
tenant_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == watched_tenants || relid == watched_protected)
	{
		invalidate_caches();
		/* the tables may have been dropped and recreated */
		watched_tenants = InvalidOid;
		watched_protected = InvalidOid;
		return;
	}
	/*
	 * Changes to members, grants and trusted keys are announced as an
	 * invalidation of toms.tenants (see toms_invalidate_trigger), so only
	 * protected tables themselves remain: drop their entry.
	 */
	if (prot_cache)
		hash_search(prot_cache, &relid, HASH_REMOVE, NULL);
}

static void
tenant_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	/* role membership or attributes changed */
	cache_generation++;
}

static void
watch_relations(void)
{
	if (!OidIsValid(watched_tenants))
		watched_tenants = toms_relid("tenants");
	if (!OidIsValid(watched_protected))
		watched_protected = toms_relid("protected_tables");
}

static void
context_assign_hook(const char *newval, void *extra)
{
	context_version++;
}

/*
 * The snapshot for reading toms' own tables: the latest committed state, so
 * a revoked membership or distrusted key stops working at once.  A parallel
 * worker cannot take a new snapshot; it uses the leader's.  The caller
 * unregisters it.
 */
Snapshot
toms_lookup_snapshot(void)
{
	if (IsInParallelMode())
		return RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	return RegisterSnapshot(GetLatestSnapshot());
}

/*
 * Scan one of toms' tables with an equality key on a text column, through
 * the named index.  No SPI: this runs inside policy evaluation, and must
 * neither recurse into the executor hooks nor depend on the caller's
 * privileges on toms' tables.
 */
typedef bool (*row_cb) (HeapTuple tup, TupleDesc desc, void *arg);

static void
scan_by_text(const char *relname, const char *indexname, AttrNumber attnum,
			 const char *value, row_cb cb, void *arg)
{
	Oid			relid = toms_relid(relname);
	Oid			indexid = toms_relid(indexname);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Snapshot	snap;

	if (!OidIsValid(relid) || !OidIsValid(indexid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"toms\" is not installed in this database")));

	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, attnum, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(value));
	snap = toms_lookup_snapshot();
	scan = systable_beginscan(rel, indexid, true, snap, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		if (!cb(tup, RelationGetDescr(rel), arg))
			break;
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
}

static char *
tuple_text(HeapTuple tup, TupleDesc desc, const char *colname)
{
	int			attnum = SPI_fnumber(desc, colname);
	bool		isnull;
	Datum		d;

	if (attnum <= 0)
		elog(ERROR, "toms table lacks column \"%s\"", colname);
	d = heap_getattr(tup, attnum, desc, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

static Datum
tuple_datum(HeapTuple tup, TupleDesc desc, const char *colname, bool *isnull)
{
	int			attnum = SPI_fnumber(desc, colname);

	if (attnum <= 0)
		elog(ERROR, "toms table lacks column \"%s\"", colname);
	return heap_getattr(tup, attnum, desc, isnull);
}

static bool
tenant_status_cb(HeapTuple tup, TupleDesc desc, void *arg)
{
	*(char **) arg = tuple_text(tup, desc, "status");
	return false;
}

/* NULL if the tenant does not exist. */
static char *
tenant_status(const char *tenant)
{
	char	   *status = NULL;

	scan_by_text("tenants", "tenants_pkey", 1, tenant, tenant_status_cb, &status);
	return status;
}

typedef struct AccessCheck
{
	Oid			member;
	bool		is_member;
	int64		grant_id;
	char	   *justification;
	TimestampTz valid_until;
	TimestampTz now;
} AccessCheck;

static bool
member_cb(HeapTuple tup, TupleDesc desc, void *arg)
{
	AccessCheck *ac = arg;
	bool		isnull;
	Oid			role = DatumGetObjectId(tuple_datum(tup, desc, "role", &isnull));

	if (!isnull && has_privs_of_role(ac->member, role))
	{
		ac->is_member = true;
		return false;
	}
	return true;
}

static bool
grant_cb(HeapTuple tup, TupleDesc desc, void *arg)
{
	AccessCheck *ac = arg;
	bool		isnull;
	Oid			role;
	TimestampTz until;

	(void) tuple_datum(tup, desc, "revoked_at", &isnull);
	if (!isnull)
		return true;
	until = DatumGetTimestampTz(tuple_datum(tup, desc, "valid_until", &isnull));
	if (isnull || until <= ac->now)
		return true;
	role = DatumGetObjectId(tuple_datum(tup, desc, "role", &isnull));
	if (isnull || !has_privs_of_role(ac->member, role))
		return true;
	/* of several live grants, use the one that lasts longest */
	if (ac->grant_id == 0 || until > ac->valid_until)
	{
		ac->grant_id = DatumGetInt64(tuple_datum(tup, desc, "id", &isnull));
		ac->justification = tuple_text(tup, desc, "justification");
		ac->valid_until = until;
	}
	return true;
}

static Oid
toms_app_role(void)
{
	return get_role_oid("toms_app", true);
}

/* Why a context was refused: message, optional hint, tenant if known. */
typedef struct Denial
{
	const char *why;
	const char *hint;
	const char *tenant;
} Denial;

/* Refuse a context: audit the attempt, then raise 42501 naming the problem. */
static void
deny(const Denial *d)
{
	toms_audit_denied(d->why, d->tenant, InvalidOid, NULL);

	/*
	 * The statement may carry a token (SET toms.context = '...',
	 * enter_tenant('...')): keep it out of the server log.
	 */
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", d->why),
			 d->hint ? errhint("%s", d->hint) : 0,
			 errhidestmt(true),
			 errhidecontext(true)));
}

static bool
tenant_active(const char *tenant, Denial *d)
{
	char	   *status = tenant_status(tenant);

	d->tenant = tenant;
	if (status == NULL)
	{
		d->why = psprintf("tenant \"%s\" does not exist", tenant);
		return false;
	}
	if (strcmp(status, "active") != 0)
	{
		d->why = psprintf("tenant \"%s\" is not active", tenant);
		d->hint = "The tenant is being deleted or has been deleted.";
		return false;
	}
	return true;
}

/*
 * Verify a context value from scratch.  On success fills *ctx (strings in
 * the current memory context) and returns true; otherwise describes the
 * problem in *d.  Raises only for what cannot happen in normal use.
 */
static bool
verify_context(const char *value, Oid session_user, TomsContext *ctx, Denial *d)
{
	TimestampTz now = GetCurrentStatementStartTimestamp();

	memset(ctx, 0, sizeof(*ctx));
	memset(d, 0, sizeof(*d));
	ctx->valid_until = DT_NOEND;

	if (strlen(value) > TOMS_MAX_CONTEXT_LEN)
	{
		d->why = "token malformed";
		return false;
	}

	if (strncmp(value, "v4.", 3) == 0)
	{
		TomsToken	tok;
		const char *why = NULL;
		Oid			app = toms_app_role();

		if (!superuser_arg(session_user) &&
			(!OidIsValid(app) || !is_member_of_role(session_user, app)))
		{
			d->why = psprintf("role \"%s\" may not use tenant tokens",
							  GetUserNameFromId(session_user, false));
			d->hint = "Grant toms_app to the application's login role.";
			return false;
		}

		memset(&tok, 0, sizeof(tok));
		if (!toms_token_verify(value, &tok, &why))
		{
			d->why = why ? why : "token malformed";
			return false;
		}
		if (toms_tenant_id_problem(tok.tenant))
		{
			d->why = "token claims invalid";
			return false;
		}
		if (!tenant_active(tok.tenant, d))
			return false;
		ctx->tenant = tok.tenant;
		ctx->actor = tok.subject;
		ctx->key_id = tok.key_id;
		ctx->from_token = true;
		ctx->valid_until = tok.expires;
		return true;
	}
	else
	{
		AccessCheck ac;

		if ((d->why = toms_tenant_id_problem(value)) != NULL)
			return false;
		if (!tenant_active(value, d))
			return false;

		memset(&ac, 0, sizeof(ac));
		ac.member = session_user;
		ac.now = now;
		scan_by_text("members", "members_tenant_idx", 2, value, member_cb, &ac);
		if (!ac.is_member)
		{
			scan_by_text("grants", "grants_tenant_idx", 3, value, grant_cb, &ac);
			if (ac.grant_id == 0)
			{
				d->why = psprintf("role \"%s\" is not a member of tenant \"%s\"",
								  GetUserNameFromId(session_user, false), value);
				d->hint = "Ask a toms_admin for toms.add_member() or toms.grant_access().";
				return false;
			}
			ctx->grant_id = ac.grant_id;
			ctx->justification = ac.justification;
			ctx->valid_until = ac.valid_until;
		}
		ctx->tenant = pstrdup(value);
		ctx->actor = GetUserNameFromId(session_user, false);
		return true;
	}
}

static char *
cache_strdup(const char *str)
{
	return str ? MemoryContextStrdup(ctx_cxt, str) : NULL;
}

static bool
entry_live(CtxCacheEntry *e, Oid session_user, TimestampTz now)
{
	return e->session_user == session_user && now < e->ctx.valid_until;
}

/* Start the cache over if anything was invalidated or it grew too large. */
static void
ctx_cache_prepare(void)
{
	if (ctx_cache && ctx_cache_generation == cache_generation &&
		ctx_cache_fills < CTX_CACHE_MAX)
		return;
	if (ctx_cxt == NULL)
		ctx_cxt = AllocSetContextCreate(CacheMemoryContext, "toms context cache",
										ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(ctx_cxt);
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(CtxCacheEntry);
		ctl.hcxt = ctx_cxt;
		ctx_cache = hash_create("toms verified contexts", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	ctx_cache_generation = cache_generation;
	ctx_cache_fills = 0;
	ctx_last = NULL;
}

const TomsContext *
toms_context(bool missing_ok)
{
	Oid			session_user = GetSessionUserId();
	TimestampTz now = GetCurrentStatementStartTimestamp();
	CtxCacheEntry *e;
	TomsContext ctx;
	Denial		denial;
	uint64		key;
	bool		found;

	/* Fast path: the same setting as last time, nothing invalidated. */
	e = ctx_last;
	if (e && e->version == context_version &&
		ctx_cache_generation == cache_generation &&
		entry_live(e, session_user, now))
		return &e->ctx;

	if (context_value == NULL || context_value[0] == '\0')
	{
		Denial		none = {"no tenant context",
			"Call toms.set_tenant() or toms.enter_tenant(), or SET toms.context.", NULL};

		if (missing_ok)
			return NULL;
		deny(&none);
	}

	ctx_cache_prepare();
	key = hash_bytes_extended((const unsigned char *) context_value,
							  strlen(context_value), 0);
	e = hash_search(ctx_cache, &key, HASH_FIND, NULL);
	if (e && strcmp(e->value, context_value) == 0 && entry_live(e, session_user, now))
	{
		e->version = context_version;
		ctx_last = e;
		return &e->ctx;
	}

	if (!verify_context(context_value, session_user, &ctx, &denial))
	{
		if (missing_ok)
			return NULL;
		deny(&denial);
	}

	/* verification reads tables, which may have processed invalidations */
	ctx_cache_prepare();
	e = hash_search(ctx_cache, &key, HASH_ENTER, &found);
	e->value = cache_strdup(context_value);
	e->session_user = session_user;
	e->version = context_version;
	e->ctx = ctx;
	e->ctx.tenant = cache_strdup(ctx.tenant);
	e->ctx.actor = cache_strdup(ctx.actor);
	e->ctx.justification = cache_strdup(ctx.justification);
	e->ctx.key_id = cache_strdup(ctx.key_id);
	ctx_cache_fills++;
	ctx_last = e;
	return &e->ctx;
}

/* ----------------------------------------------------------------
 * Protected tables
 * ----------------------------------------------------------------
 */

static bool
protected_row_cb(HeapTuple tup, TupleDesc desc, void *arg)
{
	ProtEntry  *pe = arg;
	bool		isnull;
	char	   *col;
	Datum		d;

	pe->is_protected = true;
	col = NameStr(*DatumGetName(tuple_datum(tup, desc, "tenant_column", &isnull)));
	pe->info.tenant_attnum = get_attnum(pe->relid, col);
	pe->info.tenant_type = get_atttype(pe->relid, pe->info.tenant_attnum);
	d = tuple_datum(tup, desc, "subject_column", &isnull);
	pe->info.subject_attnum = isnull ? InvalidAttrNumber :
		get_attnum(pe->relid, NameStr(*DatumGetName(d)));
	d = tuple_datum(tup, desc, "sensitive", &isnull);
	if (!isnull)
	{
		ArrayType  *arr = DatumGetArrayTypeP(d);
		Datum	   *elems;
		int			n,
					i;

		deconstruct_array(arr, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR,
						  &elems, NULL, &n);
		if (n > 0)
		{
			pe->info.sensitive = MemoryContextAlloc(CacheMemoryContext,
													sizeof(AttrNumber) * n);
			for (i = 0; i < n; i++)
				pe->info.sensitive[i] =
					get_attnum(pe->relid, NameStr(*DatumGetName(elems[i])));
			pe->info.nsensitive = n;
		}
	}
	return false;
}

const TomsProtected *
toms_protected(Oid relid)
{
	ProtEntry  *pe;
	bool		found;

	if (!OidIsValid(relid) || !toms_extension_exists())
		return NULL;
	watch_relations();
	if (relid == watched_protected || relid == watched_tenants)
		return NULL;

	if (prot_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ProtEntry);
		ctl.hcxt = CacheMemoryContext;
		prot_cache = hash_create("toms protected tables", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	pe = hash_search(prot_cache, &relid, HASH_FIND, NULL);
	if (pe)
		return pe->is_protected ? &pe->info : NULL;

	{
		ProtEntry	tmp;
		Oid			tbl = toms_relid("protected_tables");
		Oid			idx = toms_relid("protected_tables_pkey");
		Relation	rel;
		SysScanDesc scan;
		ScanKeyData key;
		HeapTuple	tup;
		Snapshot	snap;

		memset(&tmp, 0, sizeof(tmp));
		tmp.relid = relid;
		if (!OidIsValid(tbl) || !OidIsValid(idx))
			return NULL;
		rel = table_open(tbl, AccessShareLock);
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
		snap = toms_lookup_snapshot();
		scan = systable_beginscan(rel, idx, true, snap, 1, &key);
		if (HeapTupleIsValid(tup = systable_getnext(scan)))
			protected_row_cb(tup, RelationGetDescr(rel), &tmp);
		systable_endscan(scan);
		UnregisterSnapshot(snap);
		table_close(rel, AccessShareLock);

		/* the scan may have processed invalidations that reset the cache */
		if (prot_cache == NULL)
			return tmp.is_protected ? toms_protected(relid) : NULL;
		pe = hash_search(prot_cache, &relid, HASH_ENTER, &found);
		pe->is_protected = tmp.is_protected;
		pe->info = tmp.info;
		pe->info.relid = relid;
	}
	return pe->is_protected ? &pe->info : NULL;
}

/* What entering function fn_oid means for the SECURITY DEFINER stack. */
static DefinerKind
definer_kind(Oid fn_oid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	DefinerKind kind = DEFINER_INHERIT;

	if (HeapTupleIsValid(tup))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		if (proc->prosecdef)
			kind = OidIsValid(toms_schema_oid()) && proc->pronamespace == toms_schema_oid() ?
				DEFINER_TOMS : DEFINER_FOREIGN;
		ReleaseSysCache(tup);
	}
	return kind;
}

static DefinerKind
definer_in_force(void)
{
	return definer_depth > 0 && definer_depth <= DEFINER_MAX_DEPTH ?
		(DefinerKind) definer_eff[definer_depth - 1] :
		definer_depth > DEFINER_MAX_DEPTH ? DEFINER_FOREIGN : DEFINER_NONE;
}

static void
tenant_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	if (event == FHET_START)
	{
		DefinerKind kind;

		/* the other hooks first: an error there leaves nothing pushed */
		if (prev_fmgr_hook)
			prev_fmgr_hook(event, flinfo, private);

		/* (*private belongs to whichever hook claims it, so no caching) */
		kind = definer_kind(flinfo->fn_oid);
		if (kind == DEFINER_INHERIT)
			kind = definer_in_force();
		if (definer_depth < DEFINER_MAX_DEPTH)
			definer_eff[definer_depth] = (uint8) kind;
		definer_depth++;
		return;
	}
	if (definer_depth > 0)
		definer_depth--;		/* FHET_END, FHET_ABORT */
	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, private);
}

/* Nothing is left running at the end of a top-level transaction. */
static void
tenant_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		definer_depth = 0;
}

/* A statement's memory is going: forget its entry. */
static void
tenant_stmt_gone(void *arg)
{
	TenantStmt **link;

	for (link = &tenant_stmts; *link; link = &(*link)->next)
		if (*link == arg)
		{
			*link = ((TenantStmt *) arg)->next;
			break;
		}
}

/*
 * A protected table reached, by a caller under the tenant filter, through
 * a view or SECURITY DEFINER function ("via") whose owner bypasses row
 * security: it would hand out every tenant's rows.
 */
static void
refuse_privileged_path(Oid relid, const char *via, const char *hint)
{
	toms_audit_denied(psprintf("protected table reached through a privileged %s", via),
					  NULL, relid, NULL);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("protected table \"%s\" is reached through a %s owned by a role that bypasses row security",
					get_rel_name(relid), via),
			 errhint("%s", hint)));
}

/*
 * Fail closed: a statement that touches a protected table under row
 * security needs a verified context, even where the policy would never be
 * evaluated (an empty table, a constant-false filter).  Also refused here:
 * a protected table reached through a view or SECURITY DEFINER function
 * whose owner bypasses row security, and a cursor WITH HOLD over one.
 */
static void
tenant_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	ListCell   *lc;
	Oid			filtered = InvalidOid;
	char		tenant[TOMS_MAX_TENANT_LEN + 1];

	if (queryDesc->plannedstmt && toms_extension_exists())
	{
		foreach(lc, queryDesc->plannedstmt->rtable)
		{
			RangeTblEntry *rte = lfirst(lc);

			if (rte->rtekind != RTE_RELATION || rte->relkind != RELKIND_RELATION)
				continue;
			if (toms_protected(rte->relid) == NULL)
				continue;
			if (check_enable_rls(rte->relid, InvalidOid, true) != RLS_ENABLED)
			{
				/*
				 * Outside row security as the owner of a SECURITY DEFINER
				 * function, called by a session that is subject to it
				 * (foreign-key checks and maintenance commands excepted).
				 */
				if (definer_in_force() == DEFINER_FOREIGN && !InNoForceRLSOperation() &&
					!InSecurityRestrictedOperation() &&
					check_enable_rls(rte->relid, GetSessionUserId(), true) == RLS_ENABLED)
					refuse_privileged_path(rte->relid, "SECURITY DEFINER function",
										   "Give the function an owner subject to row security.");
				continue;
			}

			/*
			 * The current user is subject to the filter, but the table is
			 * reached through a view whose owner is not (a superuser or
			 * BYPASSRLS role): the view would hand out every tenant's rows.
			 */
			if (OidIsValid(rte->checkAsUser) &&
				check_enable_rls(rte->relid, rte->checkAsUser, true) != RLS_ENABLED)
				refuse_privileged_path(rte->relid, "view",
									   "Give the view an owner subject to row security, or make it security_invoker.");
			filtered = rte->relid;
		}
		if (OidIsValid(filtered))
		{
			const TomsContext *ctx = toms_context(false);

			strlcpy(tenant, ctx->tenant, sizeof(tenant));

			/*
			 * A cursor WITH HOLD outlives its transaction and with it the
			 * (SET LOCAL) tenant context it was opened under; its rows are
			 * then read from a store no hook sees, by whoever holds the
			 * connection next.
			 */
			if (ActivePortal && (ActivePortal->cursorOptions & CURSOR_OPT_HOLD) &&
				!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
			{
				toms_audit_denied("cursor WITH HOLD on a protected table", tenant,
								  filtered, NULL);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("cursor \"%s\" cannot be declared WITH HOLD: it reads protected table \"%s\"",
								ActivePortal->name, get_rel_name(filtered)),
						 errdetail("A held cursor outlives its transaction and the tenant context it was opened under."),
						 errhint("Declare the cursor without WITH HOLD and read it inside the transaction.")));
			}
		}
	}

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if (OidIsValid(filtered) && queryDesc->estate && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);
		TenantStmt *ts = palloc(sizeof(TenantStmt));

		ts->qd = queryDesc;
		ts->version = context_version;
		strlcpy(ts->tenant, tenant, sizeof(ts->tenant));
		ts->relid = filtered;
		ts->cb.func = tenant_stmt_gone;
		ts->cb.arg = ts;
		MemoryContextRegisterResetCallback(queryDesc->estate->es_query_cxt, &ts->cb);
		ts->next = tenant_stmts;
		tenant_stmts = ts;
		MemoryContextSwitchTo(oldcxt);
	}
}

/*
 * A statement under the tenant filter is run again (a cursor fetch) after
 * the context changed: only under the tenant it started under.
 */
static void
tenant_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				   bool execute_once)
{
	TenantStmt *ts;

	for (ts = tenant_stmts; ts; ts = ts->next)
	{
		if (ts->qd != queryDesc)
			continue;
		if (ts->version != context_version)
		{
			const TomsContext *ctx = toms_context(false);

			if (strcmp(ctx->tenant, ts->tenant) != 0)
			{
				toms_audit_denied("cursor read under another tenant context", ctx->tenant,
								  ts->relid, NULL);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 ActivePortal && ActivePortal->name[0] ?
						 errmsg("cursor \"%s\" was opened under another tenant context",
								ActivePortal->name) :
						 errmsg("statement was started under another tenant context"),
						 errhint("Open the cursor again under the current context.")));
			}
			ts->version = context_version;
		}
		break;
	}

	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
}

/* ----------------------------------------------------------------
 * SQL-callable functions
 * ----------------------------------------------------------------
 */

Datum
toms_current_tenant(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(toms_context(false)->tenant));
}

Datum
toms_current_tenant_opt(PG_FUNCTION_ARGS)
{
	const TomsContext *ctx = toms_context(PG_GETARG_BOOL(0));

	if (ctx == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(ctx->tenant));
}

Datum
toms_current_actor(PG_FUNCTION_ARGS)
{
	const TomsContext *ctx = toms_context(true);

	if (ctx == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(ctx->actor));
}

static void
set_context(const char *value, bool is_local)
{
	(void) set_config_option("toms.context", value, PGC_USERSET, PGC_S_SESSION,
							 is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET,
							 true, 0, false);
}

/*
 * set_tenant / enter_tenant store the value and verify it at once; the
 * error aborts the transaction, which undoes the setting.
 */
Datum
toms_set_tenant(PG_FUNCTION_ARGS)
{
	char	   *tenant;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant id must not be null")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	toms_validate_tenant_id(tenant);
	set_context(tenant, PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1));
	(void) toms_context(false);
	PG_RETURN_VOID();
}

Datum
toms_enter_tenant(PG_FUNCTION_ARGS)
{
	char	   *token;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("token must not be null")));
	token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strncmp(token, "v4.public.", 10) != 0)
	{
		Denial		d = {"token malformed", "toms.enter_tenant() takes a PASETO v4.public token.", NULL};

		deny(&d);
	}
	set_context(token, PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1));
	(void) toms_context(false);
	PG_RETURN_VOID();
}

Datum
toms_clear_tenant(PG_FUNCTION_ARGS)
{
	set_context("", false);
	PG_RETURN_VOID();
}

Datum
toms_validate_tenant(PG_FUNCTION_ARGS)
{
	toms_validate_tenant_id(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

Datum
toms_audit_admin_sql(PG_FUNCTION_ARGS)
{
	toms_audit_admin(PG_ARGISNULL(0) ? "unknown" : text_to_cstring(PG_GETARG_TEXT_PP(0)),
					 PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
					 PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)));
	PG_RETURN_VOID();
}

/*
 * Statement trigger on toms' tenant tables: announce the change to every
 * backend's context cache.  Relcache invalidations are transactional: other
 * backends see them when this transaction commits, this one at once.
 */
Datum
toms_invalidate_trigger(PG_FUNCTION_ARGS)
{
	Oid			tenants = toms_relid("tenants");

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "toms_invalidate_trigger: not called by trigger manager");
	if (OidIsValid(tenants))
		CacheInvalidateRelcacheByRelid(tenants);
	return PointerGetDatum(NULL);
}

/* ----------------------------------------------------------------
 * protect() / unprotect()
 * ----------------------------------------------------------------
 */

static const char *
tenant_cast(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
			return "";
		case UUIDOID:
			return "::pg_catalog.uuid";
		case INT4OID:
			return "::pg_catalog.int4";
		case INT8OID:
			return "::pg_catalog.int8";
		default:
			return NULL;
	}
}

static AttrNumber
column_attnum(Oid relid, const char *col, const char *what)
{
	AttrNumber	attnum = get_attnum(relid, col);

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						col, get_rel_name(relid)),
				 errdetail("It was named as the %s.", what)));
	return attnum;
}

static bool
column_is_generated(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	Form_pg_attribute att;
	bool		result;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for attribute %d of relation %u", attnum, relid);
	att = (Form_pg_attribute) GETSTRUCT(tup);
	result = att->attidentity != '\0' || att->attgenerated != '\0';
	ReleaseSysCache(tup);
	return result;
}

static bool
has_permissive_policies(Oid relid)
{
	char	   *sql = psprintf("SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = %u AND polpermissive", relid);
	bool		found;

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	found = SPI_processed > 0;
	pfree(sql);
	return found;
}

Datum
toms_protect(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *tenant_col = PG_ARGISNULL(1) ? "tenant_id" : NameStr(*PG_GETARG_NAME(1));
	ArrayType  *sensitive = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	char	   *subject_col = PG_ARGISNULL(3) ? NULL : NameStr(*PG_GETARG_NAME(3));
	char	   *qualname;
	const char *cast;
	AttrNumber	attnum;
	Oid			typid;
	char		relkind;
	Datum	   *elems = NULL;
	int			nsens = 0;
	char	  **sens_names = NULL;
	int			i;
	StringInfoData sql;
	Relation	rel;

	rel = table_open(relid, ShareUpdateExclusiveLock);
	relkind = rel->rd_rel->relkind;
	if (relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Only plain tables can be protected; partitioned tables, views and foreign tables cannot.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect temporary table \"%s\"", RelationGetRelationName(rel))));
	if (rel->rd_rel->relhassubclass || has_superclass(relid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Tables in an inheritance hierarchy cannot be protected.")));
	if (RelationGetNamespace(rel) == toms_schema_oid())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot protect toms' own table \"%s\"", RelationGetRelationName(rel))));
	table_close(rel, NoLock);

	if (toms_protected(relid))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" is already protected", get_rel_name(relid))));

	attnum = column_attnum(relid, tenant_col, "tenant column");
	if (column_is_generated(relid, attnum))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant column \"%s\" cannot be an identity or generated column", tenant_col)));
	typid = get_atttype(relid, attnum);
	cast = tenant_cast(typid);
	if (cast == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("tenant column \"%s\" has unsupported type %s",
						tenant_col, format_type_be(typid)),
				 errhint("Supported tenant column types are text, varchar, uuid, integer and bigint.")));
	if (subject_col)
		(void) column_attnum(relid, subject_col, "subject column");
	if (sensitive)
	{
		deconstruct_array(sensitive, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR,
						  &elems, NULL, &nsens);
		sens_names = palloc(sizeof(char *) * (nsens + 1));
		for (i = 0; i < nsens; i++)
		{
			sens_names[i] = NameStr(*DatumGetName(elems[i]));
			if (strcmp(sens_names[i], tenant_col) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the tenant column cannot be sensitive")));
			(void) column_attnum(relid, sens_names[i], "sensitive column");
		}
	}

	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										  get_rel_name(relid));

	SPI_connect();
	if (has_permissive_policies(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" already has permissive policies", get_rel_name(relid)),
				 errdetail("Permissive policies would widen toms' tenant filter."),
				 errhint("Drop them, or make them restrictive, before protecting the table.")));
	toms_warn_policy_functions(relid);

	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY, "
					 "ALTER COLUMN %s SET DEFAULT (" TOMS_SCHEMA ".current_tenant())%s",
					 qualname, quote_identifier(tenant_col), cast);
	toms_run_ddl(sql.data);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE POLICY toms_tenant ON %s AS PERMISSIVE FOR ALL TO PUBLIC "
					 "USING (%s = (" TOMS_SCHEMA ".current_tenant())%s) "
					 "WITH CHECK (%s = (" TOMS_SCHEMA ".current_tenant())%s)",
					 qualname,
					 quote_identifier(tenant_col), cast,
					 quote_identifier(tenant_col), cast);
	toms_run_ddl(sql.data);

	{
		Oid			argtypes[4] = {OIDOID, NAMEOID, NAMEARRAYOID, NAMEOID};
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};

		values[0] = ObjectIdGetDatum(relid);
		values[1] = PG_GETARG_DATUM(1);
		if (sensitive)
			values[2] = PointerGetDatum(sensitive);
		else
			values[2] = PointerGetDatum(construct_empty_array(NAMEOID));
		if (subject_col)
			values[3] = PG_GETARG_DATUM(3);
		else
			nulls[3] = 'n';
		if (PG_ARGISNULL(1))
			values[1] = DirectFunctionCall1(namein, CStringGetDatum(tenant_col));
		if (SPI_execute_with_args("INSERT INTO " TOMS_SCHEMA ".protected_tables"
								  " (relid, tenant_column, sensitive, subject_column)"
								  " VALUES ($1, $2, $3, $4)",
								  4, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record protected table");
	}

	sealed_on_protect(relid, nsens, sens_names);
	lifecycle_on_protect(relid, subject_col);
	SPI_finish();

	CacheInvalidateRelcacheByRelid(relid);
	toms_audit_admin("protect", NULL, psprintf("table=%s tenant_column=%s", qualname, tenant_col));
	PG_RETURN_VOID();
}

Datum
toms_unprotect(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	const TomsProtected *prot = toms_protected(relid);
	char	   *qualname;
	char	   *tenant_col;
	StringInfoData sql;
	uint64		i;
	List	   *stmts = NIL;
	ListCell   *lc;

	if (prot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid))));
	tenant_col = get_attname(relid, prot->tenant_attnum, false);
	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										  get_rel_name(relid));

	SPI_connect();
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT format('DROP POLICY %%I ON %%s', polname, %s) FROM pg_catalog.pg_policy"
					 " WHERE polrelid = %u AND polname LIKE 'toms\\_%%'"
					 " UNION ALL "
					 "SELECT format('DROP TRIGGER %%I ON %%s', tgname, %s) FROM pg_catalog.pg_trigger"
					 " WHERE tgrelid = %u AND tgname LIKE 'toms\\_%%' AND NOT tgisinternal",
					 quote_literal_cstr(qualname), relid, quote_literal_cstr(qualname), relid);
	if (SPI_execute(sql.data, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	for (i = 0; i < SPI_processed; i++)
		stmts = lappend(stmts, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	foreach(lc, stmts)
		toms_run_ddl(lfirst(lc));

	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY, "
					 "ALTER COLUMN %s DROP DEFAULT", qualname, quote_identifier(tenant_col));
	toms_run_ddl(sql.data);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "DELETE FROM " TOMS_SCHEMA ".protected_tables WHERE relid = %u", relid);
	if (SPI_execute(sql.data, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget protected table");
	SPI_finish();

	CacheInvalidateRelcacheByRelid(relid);
	toms_audit_admin("unprotect", NULL, psprintf("table=%s", qualname));
	PG_RETURN_VOID();
}

void
tenant_init(void)
{
	DefineCustomStringVariable("toms.context",
							   gettext_noop("Tenant context: a tenant id or a PASETO v4.public token, verified where it is used."),
							   NULL,
							   &context_value,
							   "",
							   PGC_USERSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, context_assign_hook, NULL);

	CacheRegisterRelcacheCallback(tenant_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, tenant_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, tenant_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, ext_cache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(RELNAMENSP, ext_cache_callback, (Datum) 0);

	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = tenant_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = tenant_ExecutorRun;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = tenant_fmgr_hook;
	RegisterXactCallback(tenant_xact_callback, NULL);
}
