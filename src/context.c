/*-------------------------------------------------------------------------
 *
 * context.c
 *	  The tenant context: the toms.context setting, its verification, and
 *	  the functions that enter and leave a tenant.
 *
 *	  toms.context holds either a bare tenant id or a PASETO v4.public token.
 *	  It is never trusted because it was set: toms_context() verifies it
 *	  where it is used -- the session user's membership or live grant for a
 *	  bare id, the signature, expiry and toms_app membership for a token --
 *	  and caches the result per backend, keyed by the setting's value, and
 *	  for all backends in shared memory (context_cache.c).  The caches are
 *	  dropped whenever one of toms' tenant tables changes (their triggers
 *	  send relcache invalidations, which are transactional) or role
 *	  membership changes, and an entry never outlives its token's exp or its
 *	  grant's end.
 *
 *	  toms.context_scope = transaction (for roles behind a transaction-
 *	  pooling connection pool) refuses a context set for the session and
 *	  never uses one left from an earlier transaction.  Errors do not tell a
 *	  role that may not read toms.tenants whether a tenant exists.
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
#include "access/parallel.h"
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
#include "utils/guc_tables.h"
#include "utils/hsearch.h"
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

/* Longest toms.context value looked at (a token is a few hundred bytes). */
#define TOMS_MAX_CONTEXT_LEN 8192

/* Verified contexts remembered per backend before the cache starts over. */
#define CTX_CACHE_MAX 1024

/* toms.context: a tenant id or a token; verified where used */
static char *context_value = NULL;

/* toms.context_scope: may a context outlive its transaction? */
typedef enum ContextScope
{
	SCOPE_SESSION = 0,
	SCOPE_TRANSACTION
} ContextScope;

static const struct config_enum_entry scope_options[] = {
	{"session", SCOPE_SESSION, false},
	{"transaction", SCOPE_TRANSACTION, false},
	{NULL, 0, false}
};

static int	context_scope = SCOPE_SESSION;

/* toms.context's own GUC record, for its stack of saved values */
static struct config_generic *context_guc = NULL;

/* Bumped by the setting's assign hook: every change, SET, RESET, rollback. */
uint64		toms_context_version = 1;

/* Bumped by invalidation of toms' tenant tables or of role membership. */
static uint64 cache_generation = 1;

/*
 * Verified contexts, keyed by the setting's value's keyed digest, as in the
 * shared cache (context_cache.c: a hit is the same value).  Everything
 * lives in ctx_cxt; invalidation callbacks only bump cache_generation, and
 * the next toms_context() call starts the cache over, so a pointer handed
 * out stays valid until the next call.
 */
typedef struct CtxCacheEntry
{
	TomsCtxDigest key;			/* toms_context_digest() of the value */
	Oid			session_user;
	uint64		version;		/* toms_context_version when last confirmed */
	TomsContext ctx;
} CtxCacheEntry;

static MemoryContext ctx_cxt = NULL;
static HTAB *ctx_cache = NULL;
static uint64 ctx_cache_generation = 0;
static long ctx_cache_fills = 0;
static CtxCacheEntry *ctx_last = NULL;

/* toms.tenants, whose invalidation drops the cache (resolved before caching) */
static Oid	watched_tenants = InvalidOid;

/* ----------------------------------------------------------------
 * Helpers
 * ----------------------------------------------------------------
 */

/*
 * errmsg() with the fixed text of a tenant id problem (tenant_id.c), so
 * that every message stays a translatable literal.
 */
static int
errmsg_tenant_id(const char *why)
{
	if (strcmp(why, TOMS_TENANT_ID_EMPTY) == 0)
		return errmsg("tenant id must not be empty");
	if (strcmp(why, TOMS_TENANT_ID_TOO_LONG) == 0)
		return errmsg("tenant id is too long");
	if (strcmp(why, TOMS_TENANT_ID_CONTROL) == 0)
		return errmsg("tenant id must not contain control characters");
	return errmsg("tenant id must not start with \"v4.\"");
}

void
toms_validate_tenant_id(const char *tenant)
{
	const char *why = toms_tenant_id_problem(tenant);

	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_tenant_id(why),
				 errdetail("A tenant id has 1 to %d bytes, no control characters, and does not start with \"v4.\".",
						   TOMS_MAX_TENANT_LEN)));
}

/*
 * Members, grants and trusted keys announce their changes as an
 * invalidation of toms.tenants (toms_invalidate_trigger, catalog.c).
 */
static void
context_relcache_cb(Oid relid)
{
	if (!OidIsValid(relid) || relid == watched_tenants)
	{
		cache_generation++;
		/* the table may have been dropped and recreated */
		watched_tenants = InvalidOid;
	}
}

static void
context_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	/* role membership or attributes changed */
	cache_generation++;
}

static void
context_assign_hook(const char *newval, void *extra)
{
	toms_context_version++;
}

static bool
tenant_status_cb(HeapTuple tup, TupleDesc desc, void *arg)
{
	*(char **) arg = toms_tuple_text(tup, desc, "status");
	return false;
}

/* NULL if the tenant does not exist. */
static char *
tenant_status(const char *tenant)
{
	char	   *status = NULL;

	toms_scan_by_text("tenants", "tenants_pkey", 1, tenant, tenant_status_cb, &status);
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
	Oid			role = DatumGetObjectId(toms_tuple_datum(tup, desc, "role", &isnull));

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

	(void) toms_tuple_datum(tup, desc, "revoked_at", &isnull);
	if (!isnull)
		return true;
	until = DatumGetTimestampTz(toms_tuple_datum(tup, desc, "valid_until", &isnull));
	if (isnull || until <= ac->now)
		return true;
	role = DatumGetObjectId(toms_tuple_datum(tup, desc, "role", &isnull));
	if (isnull || !has_privs_of_role(ac->member, role))
		return true;
	/* of several live grants, use the one that lasts longest */
	if (ac->grant_id == 0 || until > ac->valid_until)
	{
		ac->grant_id = DatumGetInt64(toms_tuple_datum(tup, desc, "id", &isnull));
		ac->justification = toms_tuple_text(tup, desc, "justification");
		ac->valid_until = until;
	}
	return true;
}

static Oid
toms_app_role(void)
{
	return get_role_oid("toms_app", true);
}

/* Why a context was refused. */
typedef enum DenialKind
{
	DENY_NO_CONTEXT = 0,
	DENY_TOKEN,					/* why: a TOMS_TOKEN_* reason */
	DENY_NOT_A_TOKEN,			/* enter_tenant() of something else */
	DENY_TENANT_ID,				/* why: a TOMS_TENANT_ID_* problem */
	DENY_NO_TOKENS,				/* role may not use tokens */
	DENY_NO_TENANT,
	DENY_INACTIVE,
	DENY_NOT_MEMBER,
	DENY_SESSION_SCOPE			/* toms.context_scope = transaction */
} DenialKind;

typedef struct Denial
{
	DenialKind	kind;
	const char *why;			/* DENY_TOKEN, DENY_TENANT_ID */
	const char *tenant;			/* if known */
	const char *role;			/* DENY_NO_TOKENS, DENY_NOT_MEMBER */
	bool		as_not_member;	/* raise DENY_NOT_MEMBER's error instead */
} Denial;

/* The audit record's action: the same words as the error. */
static const char *
denial_action(const Denial *d)
{
	switch (d->kind)
	{
		case DENY_NO_CONTEXT:
			return "no tenant context";
		case DENY_TOKEN:
		case DENY_TENANT_ID:
			return d->why;
		case DENY_NOT_A_TOKEN:
			return TOMS_TOKEN_MALFORMED;
		case DENY_NO_TOKENS:
			return psprintf("role \"%s\" may not use tenant tokens", d->role);
		case DENY_NO_TENANT:
			return psprintf("tenant \"%s\" does not exist", d->tenant);
		case DENY_INACTIVE:
			return psprintf("tenant \"%s\" is not active", d->tenant);
		case DENY_NOT_MEMBER:
			return psprintf("role \"%s\" is not a member of tenant \"%s\"", d->role, d->tenant);
		case DENY_SESSION_SCOPE:
			return "tenant context set for the session";
	}
	return "tenant context refused";
}

/*
 * Refuse a context: audit the attempt, then raise 42501 naming the problem.
 * The statement may carry a token (SET toms.context = '...',
 * enter_tenant('...')): it and the context stay out of the server log.
 */
static void
deny(const Denial *d)
{
	/* a refused tenant is claimed, not verified: it goes into the detail */
	toms_audit_denied_claim(denial_action(d), d->tenant, InvalidOid);

	/*
	 * A role that may not read toms.tenants is not told whether a tenant it
	 * is no member of exists: "does not exist", "is not active" and "is not
	 * a member" raise the same error (the audit record keeps the reason).
	 */
	switch (d->as_not_member ? DENY_NOT_MEMBER : d->kind)
	{
		case DENY_NO_CONTEXT:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("no tenant context"),
					 errhint("Call toms.set_tenant() or toms.enter_tenant(), or SET toms.context."),
					 errhidestmt(true), errhidecontext(true)));
			break;
		case DENY_TOKEN:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 toms_errmsg_token(d->why),
					 errhidestmt(true), errhidecontext(true)));
			break;
		case DENY_NOT_A_TOKEN:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("token malformed"),
					 errhint("toms.enter_tenant() takes a PASETO v4.public token."),
					 errhidestmt(true), errhidecontext(true)));
			break;
		case DENY_TENANT_ID:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg_tenant_id(d->why),
					 errhidestmt(true), errhidecontext(true)));
			break;
		case DENY_NO_TOKENS:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" may not use tenant tokens", d->role),
					 errhint("Grant toms_app to the application's login role."),
					 errhidestmt(true), errhidecontext(true)));
			break;
		case DENY_NO_TENANT:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("tenant \"%s\" does not exist", d->tenant),
					 errhidestmt(true), errhidecontext(true)));
			break;
		case DENY_INACTIVE:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("tenant \"%s\" is not active", d->tenant),
					 errhint("The tenant is being deleted or has been deleted."),
					 errhidestmt(true), errhidecontext(true)));
			break;
		case DENY_NOT_MEMBER:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" is not a member of tenant \"%s\"", d->role, d->tenant),
					 errhint("Ask a toms_admin for toms.add_member() or toms.grant_access()."),
					 errhidestmt(true), errhidecontext(true)));
			break;
		case DENY_SESSION_SCOPE:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("tenant context set for the session"),
					 errdetail("toms.context_scope is \"transaction\": a tenant context lasts only for the transaction that sets it."),
					 errhint("Inside a transaction, use toms.set_tenant(tenant, true), toms.enter_tenant(token, true) or SET LOCAL toms.context; RESET toms.context clears it."),
					 errhidestmt(true), errhidecontext(true)));
			break;
	}
	pg_unreachable();
}

/*
 * May the session user know which tenants exist?  Those who may read
 * toms.tenants: superusers, toms_admin and toms_auditor.
 */
static bool
may_know_tenants(Oid session_user)
{
	Oid			admin = get_role_oid("toms_admin", true);
	Oid			auditor = get_role_oid("toms_auditor", true);

	return superuser_arg(session_user) ||
		(OidIsValid(admin) && has_privs_of_role(session_user, admin)) ||
		(OidIsValid(auditor) && has_privs_of_role(session_user, auditor));
}

static bool
tenant_active(const char *tenant, Denial *d)
{
	char	   *status = tenant_status(tenant);

	d->tenant = tenant;
	if (status == NULL)
	{
		d->kind = DENY_NO_TENANT;
		return false;
	}
	if (strcmp(status, "active") != 0)
	{
		d->kind = DENY_INACTIVE;
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
		d->kind = DENY_TOKEN;
		d->why = TOMS_TOKEN_MALFORMED;
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
			d->kind = DENY_NO_TOKENS;
			d->role = GetUserNameFromId(session_user, false);
			return false;
		}

		memset(&tok, 0, sizeof(tok));
		if (!toms_token_verify(value, &tok, &why))
		{
			d->kind = DENY_TOKEN;
			d->why = why ? why : TOMS_TOKEN_MALFORMED;
			return false;
		}
		if (toms_tenant_id_problem(tok.tenant))
		{
			d->kind = DENY_TOKEN;
			d->why = TOMS_TOKEN_CLAIMS;
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

		bool		active;

		if ((d->why = toms_tenant_id_problem(value)) != NULL)
		{
			d->kind = DENY_TENANT_ID;
			return false;
		}
		active = tenant_active(value, d);

		/*
		 * Membership is looked up whether or not the tenant exists, so that
		 * a non-member learns nothing from the error (deny()) -- nor from
		 * the time it takes.
		 */
		memset(&ac, 0, sizeof(ac));
		ac.member = session_user;
		ac.now = now;
		toms_scan_by_text("members", "members_tenant_idx", 2, value, member_cb, &ac);
		if (!ac.is_member)
			toms_scan_by_text("grants", "grants_tenant_idx", 3, value, grant_cb, &ac);
		if (!ac.is_member && ac.grant_id == 0)
		{
			d->role = GetUserNameFromId(session_user, false);
			d->tenant = value;
			if (active)
				d->kind = DENY_NOT_MEMBER;
			else
				d->as_not_member = !may_know_tenants(session_user);
			return false;
		}
		if (!active)
			return false;
		if (!ac.is_member)
		{
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
	if (!OidIsValid(watched_tenants))
		watched_tenants = toms_relid("tenants");
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

		ctl.keysize = sizeof(TomsCtxDigest);
		ctl.entrysize = sizeof(CtxCacheEntry);
		ctl.hcxt = ctx_cxt;
		ctx_cache = hash_create("toms verified contexts", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	ctx_cache_generation = cache_generation;
	ctx_cache_fills = 0;
	ctx_last = NULL;
}

/*
 * Is toms.context's value one that outlives the transaction -- set at
 * session level in an earlier transaction (nothing saved in this one), or
 * by a session-level SET, set_config(..., false) in this one?  A value set
 * with SET LOCAL, set_config(..., true) or a function's SET clause is
 * undone when its transaction or function ends.  Only asked under
 * toms.context_scope = transaction, where such a value is never used: a
 * transaction-pooling connection pool then cannot hand it to the next
 * client.
 */
static bool
context_outlives_transaction(void)
{
	if (context_value == NULL || context_value[0] == '\0')
		return false;
	if (context_guc == NULL)
	{
		struct config_generic **vars = get_guc_variables();
		int			n = GetNumConfigOptions();
		int			i;

		for (i = 0; i < n; i++)
			if (strcmp(vars[i]->name, "toms.context") == 0)
				context_guc = vars[i];
		if (context_guc == NULL)
			return true;		/* cannot tell: fail closed */
	}
	return context_guc->stack == NULL || context_guc->stack->state == GUC_SET;
}

/*
 * Under toms.context_scope = transaction, refuse to set a context for the
 * session (set_tenant/enter_tenant with is_local => false, and the
 * statement SET toms.context, from guard.c); clearing it is always allowed.
 */
void
toms_context_check_scope(bool is_local, const char *value)
{
	Denial		scope = {DENY_SESSION_SCOPE, NULL, NULL, NULL, false};

	if (context_scope != SCOPE_TRANSACTION || is_local ||
		value == NULL || value[0] == '\0')
		return;
	deny(&scope);
}

const TomsContext *
toms_context(bool missing_ok)
{
	Oid			session_user = GetSessionUserId();
	TimestampTz now = GetCurrentStatementStartTimestamp();
	CtxCacheEntry *e;
	TomsContext ctx;
	Denial		denial;
	TomsCtxDigest key;
	uint64		generation;
	bool		found;

	/*
	 * A parallel worker gets the leader's settings as session-level values;
	 * the leader checked the scope at executor start.
	 */
	if (context_scope == SCOPE_TRANSACTION && !IsParallelWorker() &&
		context_outlives_transaction())
	{
		Denial		scope = {DENY_SESSION_SCOPE, NULL, NULL, NULL, false};

		if (missing_ok)
			return NULL;
		deny(&scope);
	}

	/* Fast path: the same setting as last time, nothing invalidated. */
	e = ctx_last;
	if (e && e->version == toms_context_version &&
		ctx_cache_generation == cache_generation &&
		entry_live(e, session_user, now))
		return &e->ctx;

	if (context_value == NULL || context_value[0] == '\0')
	{
		Denial		none = {DENY_NO_CONTEXT, NULL, NULL, NULL, false};

		if (missing_ok)
			return NULL;
		deny(&none);
	}

	ctx_cache_prepare();
	toms_context_digest(context_value, &key);
	e = hash_search(ctx_cache, &key, HASH_FIND, NULL);
	if (e && entry_live(e, session_user, now))
	{
		e->version = toms_context_version;
		ctx_last = e;
		return &e->ctx;
	}

	/* verified by another backend? (context_cache.c) */
	if (!toms_context_cache_get(&key, session_user, watched_tenants,
								now, &ctx, &generation))
	{
		/*
		 * Changes committed before the generation was read: their
		 * invalidations may still be pending here (context_cache.c).
		 */
		AcceptInvalidationMessages();
		if (!verify_context(context_value, session_user, &ctx, &denial))
		{
			if (missing_ok)
				return NULL;
			deny(&denial);
		}
		toms_context_cache_put(&key, session_user, watched_tenants,
							   now, &ctx, generation);
	}

	/* verification reads tables, which may have processed invalidations */
	ctx_cache_prepare();
	e = hash_search(ctx_cache, &key, HASH_ENTER, &found);
	e->session_user = session_user;
	e->version = toms_context_version;
	e->ctx = ctx;
	e->ctx.tenant = cache_strdup(ctx.tenant);
	e->ctx.actor = cache_strdup(ctx.actor);
	e->ctx.justification = cache_strdup(ctx.justification);
	e->ctx.key_id = cache_strdup(ctx.key_id);
	ctx_cache_fills++;
	ctx_last = e;
	return &e->ctx;
}

/* What entering function fn_oid means for the SECURITY DEFINER stack. */
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
	toms_context_check_scope(PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1), tenant);
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
		Denial		d = {DENY_NOT_A_TOKEN, NULL, NULL, NULL, false};

		deny(&d);
	}
	toms_context_check_scope(PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1), token);
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

/*
 * For create_tenant(): the rules of every id, and the canonical spelling
 * of an id that an int or uuid tenant column would read as a value.
 */
Datum
toms_validate_tenant(PG_FUNCTION_ARGS)
{
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		canon[TOMS_MAX_TENANT_LEN + 1];

	toms_validate_tenant_id(tenant);
	if (toms_tenant_id_lookalike(tenant, canon))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant id \"%s\" is not canonical", tenant),
				 errdetail("An int or uuid tenant column reads it as \"%s\", so two tenants could read the same rows.",
						   canon),
				 errhint("Create the tenant as \"%s\", or use an id that is no number or uuid.", canon)));
	PG_RETURN_VOID();
}

void
toms_context_init(void)
{
	DefineCustomStringVariable("toms.context",
							   gettext_noop("Tenant context: a tenant id or a PASETO v4.public token, verified where it is used."),
							   NULL,
							   &context_value,
							   "",
							   PGC_USERSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, context_assign_hook, NULL);

	DefineCustomEnumVariable("toms.context_scope",
							 gettext_noop("Whether a tenant context may be set for the session or only for a transaction."),
							 gettext_noop("Set to transaction for roles that connect through a transaction-pooling connection pool."),
							 &context_scope,
							 SCOPE_SESSION,
							 scope_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	toms_context_cache_init();
	toms_on_relcache(context_relcache_cb);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, context_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, context_syscache_cb, (Datum) 0);
}
