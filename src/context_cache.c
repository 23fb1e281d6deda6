/*-------------------------------------------------------------------------
 *
 * context_cache.c
 *	  Verified tenant contexts shared by every backend of the cluster.
 *
 *	  context.c verifies toms.context where it is used and remembers the
 *	  answer per backend; a connection pool serves tenants at random, and a
 *	  fresh or recycled server connection would verify every tenant id and
 *	  every token (an Ed25519 signature) again.  This cache remembers each
 *	  successful verification in shared memory, so that a context verified
 *	  by one backend costs every other backend one hash lookup.
 *
 *	  An entry is keyed by the BLAKE2b-256 digest of the setting's value (a
 *	  collision is infeasible, so a hit is the same value), the session
 *	  user, the database and toms.tenants' OID (a recreated extension finds
 *	  nothing old).  It holds what context.c needs (tenant, actor, key id,
 *	  valid-until); contexts under a need-to-know grant are not shared
 *	  (their justification is per grant) and stay in the backend's cache.
 *
 *	  Invalidation: a generation counter in shared memory.  An entry counts
 *	  only while its generation is the current one, and a verification
 *	  stores its answer only under the generation it read before it looked
 *	  at any table.  The generation is bumped
 *	    - by a transaction that changed toms' tenant tables (their triggers
 *	      send a relcache invalidation of toms.tenants) or roles, right
 *	      after its commit became visible (XACT_EVENT_COMMIT), and
 *	    - by every backend that processes such an invalidation.
 *	  So a verification that read the generation before the bump may have
 *	  seen the old state, and its entry is dead; one that read it after
 *	  sees the new state.  An entry also never outlives its token's exp.
 *
 *	  Locking: one LWLock; lookups take it shared, stores exclusive.  When
 *	  the table is full, a store first removes dead entries; if it is still
 *	  full the answer is simply not shared.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "toms.h"

/* tenant \0 actor \0 key_id \0 must fit, or the context is not shared */
#define SHARED_STRS 176

typedef struct SharedCtxKey
{
	uint8		digest[crypto_generichash_BYTES];
	Oid			session_user;
	Oid			database;
	Oid			tenants;		/* toms.tenants' OID */
} SharedCtxKey;

typedef struct SharedCtxEntry
{
	SharedCtxKey key;
	uint64		generation;
	TimestampTz valid_until;
	bool		from_token;
	uint8		actor_off;
	uint8		key_id_off;		/* 0: no key id */
	char		strs[SHARED_STRS];
} SharedCtxEntry;

typedef struct SharedCtxHeader
{
	pg_atomic_uint64 generation;
} SharedCtxHeader;

/* toms.context_cache_size: entries in shared memory; 0 disables */
static int	cache_size = 65536;

static int	lock_index = -1;
static SharedCtxHeader *header = NULL;
static HTAB *table = NULL;

/* toms.tenants as this backend last resolved it (context.c tells) */
static Oid	known_tenants = InvalidOid;

/* in this transaction: invalidations seen that may concern contexts */
static Oid	pending_rels[8];
static int	n_pending_rels = 0;
static bool pending_all = false;	/* a relcache reset, or too many */
static bool pending_roles = false;

static Size
cache_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(SharedCtxHeader)),
					hash_estimate_size(cache_size, sizeof(SharedCtxEntry)));
}

static void
cache_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	header = ShmemInitStruct("toms verified contexts", sizeof(SharedCtxHeader), &found);
	if (!found)
		pg_atomic_init_u64(&header->generation, 1);
	info.keysize = sizeof(SharedCtxKey);
	info.entrysize = sizeof(SharedCtxEntry);
	table = ShmemInitHash("toms verified context table", cache_size, cache_size,
						  &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

static void
bump(void)
{
	if (header)
		pg_atomic_fetch_add_u64(&header->generation, 1);
}

static void
cache_relcache_cb(Oid relid)
{
	int			i;

	/* another backend's committed change of toms' tenant tables */
	if (!OidIsValid(relid) || relid == known_tenants)
		bump();
	/* maybe this transaction's own: decided at pre-commit */
	if (!OidIsValid(relid) || pending_all)
	{
		pending_all = true;
		return;
	}
	for (i = 0; i < n_pending_rels; i++)
		if (pending_rels[i] == relid)
			return;
	if (n_pending_rels < lengthof(pending_rels))
		pending_rels[n_pending_rels++] = relid;
	else
		pending_all = true;
}

static void
cache_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	/* role membership or attributes changed */
	bump();
	pending_roles = true;
}

static void
cache_xact_cb(XactEvent event, void *arg)
{
	static bool bump_at_commit = false;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (header && TransactionIdIsValid(GetTopTransactionIdIfAny()) &&
				(pending_roles || pending_all || n_pending_rels > 0))
			{
				Oid			tenants = toms_relid("tenants");
				int			i;

				bump_at_commit = pending_roles || pending_all;
				for (i = 0; i < n_pending_rels && !bump_at_commit; i++)
					bump_at_commit = (pending_rels[i] == tenants ||
									  pending_rels[i] == known_tenants);
			}
			/* a prepared transaction commits elsewhere: bump now too */
			if (event == XACT_EVENT_PRE_PREPARE && bump_at_commit)
				bump();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			/* the change is visible now: what was verified before is dead */
			if (bump_at_commit)
				bump();
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			bump_at_commit = false;
			n_pending_rels = 0;
			pending_all = false;
			pending_roles = false;
			break;
	}
}

static void
make_key(SharedCtxKey *key, const char *value, Oid session_user, Oid tenants)
{
	memset(key, 0, sizeof(*key));
	crypto_generichash(key->digest, sizeof(key->digest),
					   (const unsigned char *) value, strlen(value), NULL, 0);
	key->session_user = session_user;
	key->database = MyDatabaseId;
	key->tenants = tenants;
}

/*
 * The shared answer for value, if there is a live one: fills *ctx (strings
 * in the current memory context) and returns true.  Otherwise returns
 * false and sets *generation, under which a verification started now may
 * store its answer (toms_context_cache_put).
 */
bool
toms_context_cache_get(const char *value, Oid session_user, Oid tenants,
					   TimestampTz now, TomsContext *ctx, uint64 *generation)
{
	SharedCtxKey key;
	SharedCtxEntry *e;
	bool		hit = false;

	known_tenants = tenants;
	*generation = 0;
	if (table == NULL || !OidIsValid(tenants))
		return false;
	*generation = pg_atomic_read_u64(&header->generation);
	make_key(&key, value, session_user, tenants);
	LWLockAcquire(toms_lwlock(lock_index), LW_SHARED);
	e = hash_search(table, &key, HASH_FIND, NULL);
	if (e && e->generation == *generation && now < e->valid_until)
	{
		memset(ctx, 0, sizeof(*ctx));
		ctx->tenant = pstrdup(e->strs);
		ctx->actor = pstrdup(e->strs + e->actor_off);
		ctx->key_id = e->key_id_off ? pstrdup(e->strs + e->key_id_off) : NULL;
		ctx->from_token = e->from_token;
		ctx->valid_until = e->valid_until;
		hit = true;
	}
	LWLockRelease(toms_lwlock(lock_index));
	return hit;
}

/* Remove dead entries (exclusive lock held). */
static void
sweep(uint64 generation, TimestampTz now)
{
	HASH_SEQ_STATUS status;
	SharedCtxEntry *e;

	hash_seq_init(&status, table);
	while ((e = hash_seq_search(&status)) != NULL)
		if (e->generation != generation || e->valid_until <= now)
			(void) hash_search(table, &e->key, HASH_REMOVE, NULL);
}

/* Share a verified context, unless something was invalidated meanwhile. */
void
toms_context_cache_put(const char *value, Oid session_user, Oid tenants,
					   TimestampTz now, const TomsContext *ctx, uint64 generation)
{
	SharedCtxKey key;
	SharedCtxEntry *e;
	size_t		lt,
				la,
				lk;
	bool		found;

	if (table == NULL || generation == 0 || !OidIsValid(tenants) ||
		ctx->grant_id != 0 || ctx->justification != NULL ||
		ctx->tenant == NULL || ctx->actor == NULL)
		return;
	lt = strlen(ctx->tenant) + 1;
	la = strlen(ctx->actor) + 1;
	lk = ctx->key_id ? strlen(ctx->key_id) + 1 : 0;
	if (lt + la + lk > SHARED_STRS)
		return;
	make_key(&key, value, session_user, tenants);
	LWLockAcquire(toms_lwlock(lock_index), LW_EXCLUSIVE);
	if (pg_atomic_read_u64(&header->generation) == generation)
	{
		e = hash_search(table, &key, HASH_ENTER_NULL, &found);
		if (e == NULL)
		{
			sweep(generation, now);
			e = hash_search(table, &key, HASH_ENTER_NULL, &found);
		}
		if (e != NULL)
		{
			e->generation = generation;
			e->valid_until = ctx->valid_until;
			e->from_token = ctx->from_token;
			memcpy(e->strs, ctx->tenant, lt);
			e->actor_off = (uint8) lt;
			memcpy(e->strs + lt, ctx->actor, la);
			e->key_id_off = lk ? (uint8) (lt + la) : 0;
			if (lk)
				memcpy(e->strs + lt + la, ctx->key_id, lk);
		}
	}
	LWLockRelease(toms_lwlock(lock_index));
}

/* From toms_context_init(), while the library is preloaded. */
void
toms_context_cache_init(void)
{
	DefineCustomIntVariable("toms.context_cache_size",
							gettext_noop("Verified tenant contexts kept in shared memory for all backends (0 disables)."),
							gettext_noop("One entry per login role and tenant id or token in use; about 300 bytes each."),
							&cache_size, 65536, 0, INT_MAX / 1024, PGC_POSTMASTER,
							0, NULL, NULL, NULL);
	if (cache_size > 0)
		lock_index = toms_shmem_register(cache_shmem_size(), 1, cache_shmem_startup);
	toms_on_relcache(cache_relcache_cb);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, cache_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, cache_syscache_cb, (Datum) 0);
	RegisterXactCallback(cache_xact_cb, NULL);
}
