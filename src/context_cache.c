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
 *	  by one backend costs every other backend one lookup.
 *
 *	  An entry is keyed by a 128-bit keyed digest of the setting's value
 *	  (SipHash-2-4-128 under a random key drawn at server start that never
 *	  leaves shared memory), the value's length, the session user, the
 *	  database and toms.tenants' OID (a recreated extension finds nothing
 *	  old).  A hit is trusted without comparing the value: without the key,
 *	  a different value with the same digest cannot be found, nor its
 *	  digest observed.  The backend's own cache (context.c) is keyed by the
 *	  same digest, so a value is digested once per change of the setting.  The entry holds what context.c needs (tenant,
 *	  actor, key id, valid-until); contexts under a need-to-know grant are
 *	  not shared (their justification is per grant) and stay in the
 *	  backend's cache.
 *
 *	  Layout: a set-associative table.  The digest picks two buckets of
 *	  CACHE_WAYS entries each; a bucket's header, one cache line, holds a
 *	  tag per entry, so that a lookup in a table of 100,000s of entries
 *	  reads two to four lines of shared memory.  A store takes a way
 *	  holding the same key, else a free or dead way of the emptier bucket
 *	  (two choices keep the buckets evenly full: at 75 % of cache_size,
 *	  about 1 in 10,000 stores finds both full), else the first bucket's
 *	  next victim in turn: the table never fills up and needs no sweep.
 *
 *	  Invalidation: a generation counter in shared memory.  An entry counts
 *	  only while its generation is the current one, and a verification
 *	  stores its answer only under the generation it read before it looked
 *	  at any table or processed any invalidation.  The generation is bumped
 *	  by the transaction that changes what verification reads, when it
 *	  commits: once its commit is visible (XACT_EVENT_COMMIT), and again
 *	  once its invalidations are sent (the resource release after them).
 *	  Such a transaction is known by what it ran: a change of toms' tenant
 *	  tables (their trigger, catalog.c), role DDL, COPY or DML into
 *	  pg_authid or pg_auth_members, CREATE/ALTER EXTENSION.  A prepared
 *	  transaction is noted at PREPARE by its gid, with whether it changed
 *	  any of that, in shared memory; COMMIT PREPARED bumps if it did or if
 *	  its gid is unknown (prepared before a restart).  So a verification
 *	  that read the generation before the second bump may have seen the
 *	  old state, and its entry is dead; one that read it after sees the new
 *	  state, because it processes pending invalidations first
 *	  (context.c) and reads toms' tables under the latest snapshot.
 *	  Backends that process an invalidation do not bump on a primary: an
 *	  idle pooled connection that processes it minutes later would start
 *	  the cache over for every backend.  On a standby nobody commits, so
 *	  there every backend that processes one bumps, as does the first
 *	  lookup after a promotion.  An entry also never outlives its token's
 *	  exp.
 *
 *	  Concurrency: stores take one LWLock exclusively and announce their
 *	  change in the bucket's change count (odd while they write, as
 *	  pgstat's backend entries do).  A lookup takes no lock and writes no
 *	  shared memory: it copies the entry and keeps the copy only if the
 *	  bucket's count was even and unchanged around the copy; after a few
 *	  torn reads it reads under the lock, shared.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/twophase.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "executor/execdesc.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "toms.h"

/* tenant \0 actor \0 key_id \0 must fit, or the context is not shared */
#define SHARED_STRS 200

/* entries per bucket: a header of a change count and CACHE_WAYS tags is 64 bytes */
#define CACHE_WAYS 7

/* torn reads of a bucket before a lookup takes the lock */
#define OPTIMISTIC_TRIES 3

typedef struct SharedCtxKey
{
	TomsCtxDigest digest;		/* toms_context_digest() of the value */
	Oid			session_user;
	Oid			database;
	Oid			tenants;		/* toms.tenants' OID */
} SharedCtxKey;

typedef struct SharedCtxEntry
{
	SharedCtxKey key;
	uint64		generation;		/* 0: free */
	TimestampTz valid_until;
	bool		from_token;
	uint8		actor_off;
	uint8		key_id_off;		/* 0: no key id */
	uint8		strs_len;		/* bytes of strs in use */
	char		strs[SHARED_STRS];
} SharedCtxEntry;

typedef struct SharedCtxBucket
{
	pg_atomic_uint32 changecount;	/* odd while a store writes the bucket */
	uint32		victim;			/* the way a full bucket gives up next */
	uint64		tags[CACHE_WAYS];	/* 0: free */
} SharedCtxBucket;

StaticAssertDecl(sizeof(SharedCtxBucket) == 64, "a bucket's header is one cache line");
StaticAssertDecl(sizeof(SharedCtxEntry) == 256, "an entry is four cache lines");

typedef struct SharedCtxHeader
{
	pg_atomic_uint64 generation;
	bool		standby_bumped; /* a standby's backend bumped: bump at promotion */
	uint8		hash_key[crypto_shorthash_siphashx24_KEYBYTES];
} SharedCtxHeader;

/* A prepared transaction: whether its commit must bump (under the lock). */
typedef struct PreparedMark
{
	bool		used;
	bool		changes;
	char		gid[GIDSIZE];
} PreparedMark;

/* toms.context_cache_size: entries in shared memory; 0 disables */
static int	cache_size = 65536;

static int	lock_index = -1;
static SharedCtxHeader *header = NULL;
static PreparedMark *marks = NULL;	/* max_prepared_xacts of them */
static SharedCtxBucket *buckets = NULL;
static SharedCtxEntry *entries = NULL;
static uint32 n_buckets = 0;

/* toms.tenants as this backend last resolved it (context.c tells) */
static Oid	known_tenants = InvalidOid;

/*
 * This transaction changed what verification reads: it neither uses nor
 * fills the shared cache until it ends, and bumps at commit unless it only
 * added (tenants, members, keys, roles, role memberships: no answer given
 * before can have become wrong, and only successful verifications are
 * kept).
 */
static bool xact_changed = false;
static bool bump_at_commit = false;
/* it committed: bump again once its invalidations are sent */
static bool bump_after_inval = false;
/* the gid of the PREPARE TRANSACTION being run */
static char preparing_gid[GIDSIZE];

/* Buckets for cache_size entries. */
static uint32
cache_buckets(void)
{
	return Max(1, (cache_size + CACHE_WAYS - 1) / CACHE_WAYS);
}

static Size
cache_shmem_size(void)
{
	Size		n = cache_buckets();

	/* the buckets start on a cache line, wherever the segment puts us */
	return add_size(add_size(add_size(MAXALIGN(sizeof(SharedCtxHeader)) + PG_CACHE_LINE_SIZE,
									  mul_size(max_prepared_xacts, sizeof(PreparedMark))),
							 mul_size(n, sizeof(SharedCtxBucket))),
					mul_size(mul_size(n, CACHE_WAYS), sizeof(SharedCtxEntry)));
}

static void
cache_shmem_startup(void)
{
	bool		found;
	uint32		n = cache_buckets();
	char	   *mem;

	mem = ShmemInitStruct("toms verified contexts", cache_shmem_size(), &found);
	header = (SharedCtxHeader *) mem;
	marks = (PreparedMark *) (mem + MAXALIGN(sizeof(SharedCtxHeader)));
	buckets = (SharedCtxBucket *) CACHELINEALIGN(marks + max_prepared_xacts);
	entries = (SharedCtxEntry *) (buckets + n);
	n_buckets = n;
	if (!found)
	{
		uint32		i;

		pg_atomic_init_u64(&header->generation, 1);
		header->standby_bumped = false;
		randombytes_buf(header->hash_key, sizeof(header->hash_key));
		memset(marks, 0, mul_size(max_prepared_xacts, sizeof(PreparedMark)));
		for (i = 0; i < n; i++)
		{
			pg_atomic_init_u32(&buckets[i].changecount, 0);
			buckets[i].victim = 0;
			memset(buckets[i].tags, 0, sizeof(buckets[i].tags));
		}
		memset(entries, 0, mul_size(mul_size(n, CACHE_WAYS), sizeof(SharedCtxEntry)));
	}
}

static void
bump(void)
{
	if (header)
		pg_atomic_fetch_add_u64(&header->generation, 1);
}

/* On a standby, whoever processes an invalidation bumps (see above). */
static void
standby_bump(void)
{
	if (header && RecoveryInProgress())
	{
		header->standby_bumped = true;
		bump();
	}
}

static void
cache_relcache_cb(Oid relid)
{
	if (!OidIsValid(relid) || relid == known_tenants)
		standby_bump();
}

static void
cache_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	/* role membership or attributes changed */
	standby_bump();
}

/*
 * Note a change of this transaction (added_only: see xact_changed); also
 * told by the trigger of toms' tenant tables (catalog.c).
 */
static void
note_change(bool added_only)
{
	xact_changed = true;
	if (!added_only)
		bump_at_commit = true;
}

/* The mark of gid, or else a free one if want_free; NULL.  Lock held. */
static PreparedMark *
find_mark(const char *gid, bool want_free)
{
	PreparedMark *free_mark = NULL;
	int			i;

	for (i = 0; i < max_prepared_xacts; i++)
	{
		if (marks[i].used && strcmp(marks[i].gid, gid) == 0)
			return &marks[i];
		if (!marks[i].used && free_mark == NULL)
			free_mark = &marks[i];
	}
	return want_free ? free_mark : NULL;
}

/*
 * PREPARE TRANSACTION: note whether the commit must bump.  No free mark
 * (cannot happen: one per possible prepared transaction) leaves it
 * unknown, which bumps.
 */
static void
mark_prepared(void)
{
	PreparedMark *m;

	if (header == NULL || max_prepared_xacts == 0 || preparing_gid[0] == '\0')
		return;
	LWLockAcquire(toms_lwlock(lock_index), LW_EXCLUSIVE);
	if ((m = find_mark(preparing_gid, true)) != NULL)
	{
		m->used = true;
		m->changes = bump_at_commit;
		strlcpy(m->gid, preparing_gid, GIDSIZE);
	}
	LWLockRelease(toms_lwlock(lock_index));
}

/*
 * COMMIT PREPARED or ROLLBACK PREPARED of gid has run (or failed: then a
 * commit bumps anyway, and a retry finds no mark and bumps again).
 */
void
toms_context_cache_prepared_done(const char *gid, bool commit)
{
	PreparedMark *m;
	bool		changes = true;

	if (header == NULL || gid == NULL)
		return;
	LWLockAcquire(toms_lwlock(lock_index), LW_EXCLUSIVE);
	if ((m = find_mark(gid, false)) != NULL)
	{
		changes = m->changes;
		m->used = false;
	}
	LWLockRelease(toms_lwlock(lock_index));
	if (commit && changes)
		bump();
}

/*
 * ProcessUtility (hooks.c), before the statement runs: does it change what
 * verification reads?  Marking a statement that then fails costs at most
 * one bump too many.
 */
void
toms_context_cache_utility(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_CreateRoleStmt:
			note_change(true);
			break;
		case T_GrantRoleStmt:
			note_change(((GrantRoleStmt *) parsetree)->is_grant);
			break;
		case T_AlterRoleStmt:
		case T_DropRoleStmt:
		case T_CreateExtensionStmt:
		case T_AlterExtensionStmt:
			note_change(false);
			break;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_ROLE)
				note_change(false);
			break;
		case T_CopyStmt:
			{
				CopyStmt   *stmt = (CopyStmt *) parsetree;

				/* by name: a catalog cannot be shadowed for a superuser's COPY */
				if (stmt->is_from && stmt->relation &&
					(strcmp(stmt->relation->relname, "pg_authid") == 0 ||
					 strcmp(stmt->relation->relname, "pg_auth_members") == 0))
					note_change(false);
				break;
			}
		case T_TransactionStmt:
			{
				TransactionStmt *stmt = (TransactionStmt *) parsetree;

				if (stmt->kind == TRANS_STMT_PREPARE)
					strlcpy(preparing_gid, stmt->gid, GIDSIZE);
				break;
			}
		default:
			break;
	}
}

/* ExecutorStart (hooks.c): DML on pg_authid or pg_auth_members (superuser) */
void
toms_context_cache_executor_start(const QueryDesc *queryDesc)
{
	PlannedStmt *ps = queryDesc->plannedstmt;
	ListCell   *lc;

	if (ps == NULL || (ps->commandType == CMD_SELECT && !ps->hasModifyingCTE))
		return;
	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_RELATION &&
			(rte->relid == AuthIdRelationId || rte->relid == AuthMemRelationId) &&
			(rte->requiredPerms & (ACL_INSERT | ACL_UPDATE | ACL_DELETE)) != 0)
			note_change(false);
	}
}

static void
cache_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			mark_prepared();
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* the change is visible now: what was verified before is dead */
			if (bump_at_commit)
				bump();
			bump_after_inval = bump_at_commit;
			break;
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			bump_after_inval = false;
			break;
		default:
			return;
	}
	/* the transaction has ended here */
	xact_changed = false;
	bump_at_commit = false;
	preparing_gid[0] = '\0';
}

/*
 * After the commit's invalidations are sent (AtEOXact_Inval comes after
 * the commit callbacks): a backend that read the generation before this
 * may not have processed them yet when it verified.
 */
static void
cache_release_cb(ResourceReleasePhase phase, bool isCommit, bool isTopLevel, void *arg)
{
	if (phase == RESOURCE_RELEASE_AFTER_LOCKS && isTopLevel && bump_after_inval)
	{
		bump_after_inval = false;
		bump();
	}
}

/* the digest's key when there is no shared cache: this backend's own */
static uint8 local_hash_key[crypto_shorthash_siphashx24_KEYBYTES];
static bool local_hash_key_set = false;

/*
 * The digest of a toms.context value, which keys the verified contexts
 * here and in the backend's own cache (context.c).
 */
void
toms_context_digest(const char *value, TomsCtxDigest *digest)
{
	size_t		len = strlen(value);
	const uint8 *key = local_hash_key;

	if (header != NULL)
		key = header->hash_key;
	else if (!local_hash_key_set)
	{
		randombytes_buf(local_hash_key, sizeof(local_hash_key));
		local_hash_key_set = true;
	}
	memset(digest, 0, sizeof(*digest));
	crypto_shorthash_siphashx24(digest->bytes, (const unsigned char *) value, len, key);
	digest->len = (uint32) len;
}

/*
 * The key of a value's digest, and where it may live: bucket b[0] or b[1]
 * (the less full of two at the store, so that the table fills evenly),
 * under *tag (never 0) in the bucket's header.
 */
static void
make_key(SharedCtxKey *key, const TomsCtxDigest *digest, Oid session_user, Oid tenants,
		 SharedCtxBucket *b[2], uint64 *tag)
{
	uint64		h[2];

	memset(key, 0, sizeof(*key));
	key->digest = *digest;
	key->session_user = session_user;
	key->database = MyDatabaseId;
	key->tenants = tenants;
	memcpy(h, digest->bytes, sizeof(h));
	*tag = h[1] ? h[1] : 1;
	b[0] = &buckets[(uint32) h[0] % n_buckets];
	b[1] = &buckets[(uint32) (h[0] >> 32) % n_buckets];
}

/* The first of bucket b's CACHE_WAYS entries. */
static inline SharedCtxEntry *
bucket_entries(const SharedCtxBucket *b)
{
	return &entries[(b - buckets) * CACHE_WAYS];
}

/*
 * The way of bucket b holding key, or -1; copies that entry into *copy, up
 * to the end of its strings (the rest of strs is not read).
 */
static int
find_way(SharedCtxBucket *b, const SharedCtxKey *key, uint64 tag, SharedCtxEntry *copy)
{
	SharedCtxEntry *first = bucket_entries(b);
	int			w;

	for (w = 0; w < CACHE_WAYS; w++)
		if (b->tags[w] == tag && memcmp(&first[w].key, key, sizeof(*key)) == 0)
		{
			uint8		len = Min(first[w].strs_len, SHARED_STRS);

			memcpy(copy, &first[w], offsetof(SharedCtxEntry, strs) + len);
			return w;
		}
	return -1;
}

/*
 * find_way() without the lock: a copy made while no store wrote the
 * bucket.  False if the bucket kept changing (then ask under the lock).
 */
static bool
find_way_unlocked(SharedCtxBucket *b, const SharedCtxKey *key, uint64 tag,
				  SharedCtxEntry *copy, int *way)
{
	int			tries;

	for (tries = 0; tries < OPTIMISTIC_TRIES; tries++)
	{
		uint32		before = pg_atomic_read_u32(&b->changecount);

		if (before & 1)
			continue;
		pg_read_barrier();
		*way = find_way(b, key, tag, copy);
		pg_read_barrier();
		if (pg_atomic_read_u32(&b->changecount) == before)
			return true;
	}
	return false;
}

/*
 * The shared answer for the value of digest, if there is a live one: fills
 * *ctx (strings in the current memory context) and returns true.
 * Otherwise returns false and sets *generation, under which a verification
 * started now may store its answer (toms_context_cache_put).
 */
bool
toms_context_cache_get(const TomsCtxDigest *digest, Oid session_user, Oid tenants,
					   TimestampTz now, TomsContext *ctx, uint64 *generation)
{
	SharedCtxKey key;
	SharedCtxEntry e;
	SharedCtxBucket *b[2];
	uint64		tag;
	int			way = -1;
	int			i;

	known_tenants = tenants;
	*generation = 0;
	/*
	 * A transaction that changed what verification reads sees its own
	 * changes, which others do not (and may never): it neither takes nor
	 * gives shared answers (generation 0: toms_context_cache_put ignores).
	 */
	if (header == NULL || !OidIsValid(tenants) || xact_changed)
		return false;
	/* promoted: what the standby's backends stored is of the old timeline */
	if (unlikely(header->standby_bumped) && !RecoveryInProgress())
	{
		header->standby_bumped = false;
		bump();
	}
	*generation = pg_atomic_read_u64(&header->generation);
	make_key(&key, digest, session_user, tenants, b, &tag);
	for (i = 0; i < 2 && way < 0; i++)
	{
		if (!find_way_unlocked(b[i], &key, tag, &e, &way))
		{
			LWLockAcquire(toms_lwlock(lock_index), LW_SHARED);
			way = find_way(b[i], &key, tag, &e);
			LWLockRelease(toms_lwlock(lock_index));
		}
	}
	if (way < 0 || e.generation != *generation || now >= e.valid_until)
		return false;
	memset(ctx, 0, sizeof(*ctx));
	ctx->tenant = pstrdup(e.strs);
	ctx->actor = pstrdup(e.strs + e.actor_off);
	ctx->key_id = e.key_id_off ? pstrdup(e.strs + e.key_id_off) : NULL;
	ctx->from_token = e.from_token;
	ctx->valid_until = e.valid_until;
	return true;
}

/* Ways of bucket b that a store may take (exclusive lock held): free or dead. */
static int
usable_ways(SharedCtxBucket *b, uint64 generation, TimestampTz now, int *first_usable)
{
	SharedCtxEntry *first = bucket_entries(b);
	int			n = 0;
	int			w;

	*first_usable = -1;
	for (w = 0; w < CACHE_WAYS; w++)
		if (b->tags[w] == 0 || first[w].generation != generation ||
			first[w].valid_until <= now)
		{
			if (n++ == 0)
				*first_usable = w;
		}
	return n;
}

/* Share a verified context, unless something was invalidated meanwhile. */
void
toms_context_cache_put(const TomsCtxDigest *digest, Oid session_user, Oid tenants,
					   TimestampTz now, const TomsContext *ctx, uint64 generation)
{
	SharedCtxKey key;
	SharedCtxEntry *e;
	SharedCtxEntry copy;
	SharedCtxBucket *b[2];
	SharedCtxBucket *bucket;
	uint64		tag;
	size_t		lt,
				la,
				lk;
	int			w = -1;
	int			i;

	/* in parallel mode toms' tables were read under an older snapshot */
	if (header == NULL || generation == 0 || !OidIsValid(tenants) || IsInParallelMode() ||
		ctx->grant_id != 0 || ctx->justification != NULL ||
		ctx->tenant == NULL || ctx->actor == NULL)
		return;
	lt = strlen(ctx->tenant) + 1;
	la = strlen(ctx->actor) + 1;
	lk = ctx->key_id ? strlen(ctx->key_id) + 1 : 0;
	if (lt + la + lk > SHARED_STRS)
		return;
	make_key(&key, digest, session_user, tenants, b, &tag);
	LWLockAcquire(toms_lwlock(lock_index), LW_EXCLUSIVE);
	if (pg_atomic_read_u64(&header->generation) != generation)
	{
		LWLockRelease(toms_lwlock(lock_index));
		return;
	}
	/* the same key, else a free or dead way of the emptier bucket, else a victim */
	bucket = b[0];
	for (i = 0; i < 2 && w < 0; i++)
		if ((w = find_way(b[i], &key, tag, &copy)) >= 0)
			bucket = b[i];
	if (w < 0)
	{
		int			w0,
					w1;

		if (usable_ways(b[1], generation, now, &w1) > usable_ways(b[0], generation, now, &w0))
		{
			bucket = b[1];
			w = w1;
		}
		else
			w = w0;
		if (w < 0)
			w = bucket->victim++ % CACHE_WAYS;
	}
	e = &bucket_entries(bucket)[w];

	pg_atomic_fetch_add_u32(&bucket->changecount, 1);	/* odd: lookups retry */
	pg_write_barrier();
	e->key = key;
	e->generation = generation;
	e->valid_until = ctx->valid_until;
	e->from_token = ctx->from_token;
	memcpy(e->strs, ctx->tenant, lt);
	e->actor_off = (uint8) lt;
	memcpy(e->strs + lt, ctx->actor, la);
	e->key_id_off = lk ? (uint8) (lt + la) : 0;
	if (lk)
		memcpy(e->strs + lt + la, ctx->key_id, lk);
	e->strs_len = (uint8) (lt + la + lk);
	bucket->tags[w] = tag;
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&bucket->changecount, 1);	/* even again */
	LWLockRelease(toms_lwlock(lock_index));
}

/* From toms_context_init(), while the library is preloaded. */
void
toms_context_cache_init(void)
{
	DefineCustomIntVariable("toms.context_cache_size",
							gettext_noop("Verified tenant contexts kept in shared memory for all backends (0 disables)."),
							gettext_noop("One entry per login role and tenant id or token in use; about 270 bytes each."),
							&cache_size, 65536, 0, INT_MAX / 1024, PGC_POSTMASTER,
							0, NULL, NULL, NULL);
	if (cache_size > 0)
		lock_index = toms_shmem_register(cache_shmem_size(), 1, cache_shmem_startup);
	toms_on_relcache(cache_relcache_cb);
	toms_on_tenants_change(note_change);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, cache_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, cache_syscache_cb, (Datum) 0);
	RegisterXactCallback(cache_xact_cb, NULL);
	RegisterResourceReleaseCallback(cache_release_cb, NULL);
}
