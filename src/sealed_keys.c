/*-------------------------------------------------------------------------
 *
 * sealed_keys.c
 *	  Per-tenant keys of sealed columns (docs/encryption.md): the table
 *	  toms.tenant_keys, where each key lives only wrapped under the master
 *	  key (crypto.c), and the per-backend cache of unwrapped keys.
 *
 *	  A tenant has a data key per version (values are sealed under the
 *	  active one) and an index key (blind indexes).  A backend unwraps what
 *	  it uses into a small cache in sodium_malloc() memory; the cache is
 *	  wiped when toms.tenant_keys changes (relcache invalidation, sent by
 *	  whoever changes it, and replayed locally when the changing
 *	  transaction aborts), when an eviction reuses a slot, and at exit.  A
 *	  key returned by toms_tenant_key() must be used before the caller does
 *	  anything that could accept invalidations (catalog access, lock
 *	  acquisition, another toms_tenant_key()).
 *
 *	  toms.tenant_keys is read and written with the table owner's rights,
 *	  under a safe search_path, in SPI (toms_tenant_keys_open/close); an
 *	  application role needs no privilege on it.  sealed.c, sealed_admin.c
 *	  and sealed_reseal.c build on this file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "sealed_format.h"
#include "toms.h"

/* SQLSTATE of a shredded tenant's keys (documented in docs/encryption.md). */
#define ERRCODE_SEALED_KEY_DESTROYED	MAKE_SQLSTATE('2','8','T','0','2')

#define KEY_SLOTS		64

StaticAssertDecl(TOMS_KEY_ID_LEN == SEALED_KEYID_LEN,
				 "a key id is what a sealed value stores");

typedef struct KeySlot
{
	TomsTenantKey k;			/* what toms_tenant_key() hands out */
	bool		valid;
	bool		active;			/* the tenant's current key of this purpose */
	char		purpose;
	uint64		last_used;
	char		tenant[TOMS_MAX_TENANT_LEN + 1];
} KeySlot;

static KeySlot slots[KEY_SLOTS];
static unsigned char *slot_keys = NULL; /* KEY_SLOTS keys, sodium_malloc'd */
static uint64 slot_clock = 0;
static int	last_slot = -1;
static Oid	keys_relid = InvalidOid;
static bool callbacks_registered = false;

/* ---------------------------------------------------------------------
 * The cache
 * ---------------------------------------------------------------------
 */

void
toms_tenant_keys_forget(void)
{
	int			i;

	if (slot_keys != NULL)
		sodium_memzero(slot_keys, (size_t) KEY_SLOTS * TOMS_KEY_LEN);
	for (i = 0; i < KEY_SLOTS; i++)
		slots[i].valid = false;
	last_slot = -1;
}

static void
keycache_relcache_cb(Oid relid)
{
	if (relid == InvalidOid || relid == keys_relid)
		toms_tenant_keys_forget();
}

static void
keycache_exit(int code, Datum arg)
{
	if (slot_keys != NULL)
	{
		toms_tenant_keys_forget();
		sodium_free(slot_keys);
		slot_keys = NULL;
	}
}

static void
keycache_setup(void)
{
	if (slot_keys == NULL)
	{
		int			i;

		slot_keys = sodium_malloc((size_t) KEY_SLOTS * TOMS_KEY_LEN);
		if (slot_keys == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not allocate secure memory for tenant keys")));
		sodium_memzero(slot_keys, (size_t) KEY_SLOTS * TOMS_KEY_LEN);
		for (i = 0; i < KEY_SLOTS; i++)
			slots[i].k.key = slot_keys + (size_t) i * TOMS_KEY_LEN;
		toms_tenant_keys_forget();
		on_proc_exit(keycache_exit, (Datum) 0);
	}
	if (!callbacks_registered)
	{
		toms_on_relcache(keycache_relcache_cb);
		callbacks_registered = true;
	}
}

/* The writable key of a slot (the cache is the only writer). */
static inline unsigned char *
slot_key(int i)
{
	return slot_keys + (size_t) i * TOMS_KEY_LEN;
}

static bool
slot_matches(const KeySlot *s, const char *tenant, char purpose, int32 version)
{
	return s->valid && s->purpose == purpose &&
		(version == 0 ? s->active : s->k.version == version) &&
		strcmp(s->tenant, tenant) == 0;
}

/* version 0: the active key of that purpose. */
static int
keycache_find(const char *tenant, char purpose, int32 version)
{
	int			i;

	if (last_slot >= 0 && slot_matches(&slots[last_slot], tenant, purpose, version))
	{
		slots[last_slot].last_used = ++slot_clock;
		return last_slot;
	}
	for (i = 0; i < KEY_SLOTS; i++)
	{
		if (slot_matches(&slots[i], tenant, purpose, version))
		{
			slots[i].last_used = ++slot_clock;
			last_slot = i;
			return i;
		}
	}
	return -1;
}

static int
keycache_victim(void)
{
	int			i;
	int			best = 0;

	for (i = 0; i < KEY_SLOTS; i++)
	{
		if (!slots[i].valid)
			return i;
		if (slots[i].last_used < slots[best].last_used)
			best = i;
	}
	sodium_memzero(slot_key(best), TOMS_KEY_LEN);
	slots[best].valid = false;
	return best;
}

/* ---------------------------------------------------------------------
 * Access to toms.tenant_keys with the table owner's rights
 * ---------------------------------------------------------------------
 */

static Oid
lookup_keys_relid(void)
{
	Oid			relid = toms_relid("tenant_keys");

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"toms\" is not installed in this database")));
	keys_relid = relid;
	return relid;
}

void
toms_tenant_keys_open(TomsKeysAccess *ka)
{
	Oid			relid = lookup_keys_relid();
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&ka->save_userid, &ka->save_sec_context);
	SetUserIdAndSecContext(owner, ka->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	ka->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	toms_citus_allow_nested();	/* Citus (issue 15): citus_guard.c */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
toms_tenant_keys_close(TomsKeysAccess *ka)
{
	SPI_finish();
	AtEOXact_GUC(true, ka->save_nestlevel);
	SetUserIdAndSecContext(ka->save_userid, ka->save_sec_context);
}

/* Other backends (at commit) and this one (at abort) must forget keys. */
void
toms_tenant_keys_invalidate(void)
{
	CacheInvalidateRelcacheByRelid(keys_relid);
}

static const char *
purpose_name(char purpose)
{
	return purpose == TOMS_KEY_DATA ? "data" : "index";
}

static void
compute_key_id(const unsigned char *key, unsigned char *id)
{
	crypto_generichash(id, TOMS_KEY_ID_LEN, (const unsigned char *) "toms key id", 11,
					   key, TOMS_KEY_LEN);
}

void
toms_sealed_check_tenant(const char *tenant)
{
	size_t		len = strlen(tenant);

	if (len == 0 || len > TOMS_MAX_TENANT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tenant id")));
}

void
toms_sealed_raise_destroyed(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_SEALED_KEY_DESTROYED),
			 errmsg("the tenant's keys have been destroyed"),
			 errdetail("The keys were destroyed by crypto-shredding; values sealed under them can never be opened again.")));
}

/*
 * Store a new random key, wrapped (between toms_tenant_keys_open and
 * _close).  Returns false if the tenant already has that key.  The clear
 * key exists only in secure memory, and only until it is wrapped.
 */
bool
toms_tenant_key_create(const char *tenant, char purpose, int32 version)
{
	unsigned char *key;
	unsigned char wrapped[TOMS_WRAPPED_LEN];
	unsigned char master_id[TOMS_MASTER_ID_LEN];
	bytea	   *wb = palloc(VARHDRSZ + TOMS_WRAPPED_LEN);
	bytea	   *mb = palloc(VARHDRSZ + TOMS_MASTER_ID_LEN);
	Oid			argtypes[5] = {TEXTOID, TEXTOID, INT4OID, BYTEAOID, BYTEAOID};
	Datum		values[5];
	int			ret;

	key = sodium_malloc(TOMS_KEY_LEN);
	if (key == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("could not allocate secure memory for a tenant key")));
	randombytes_buf(key, TOMS_KEY_LEN);
	toms_key_wrap(key, tenant, purpose, version, wrapped, master_id);
	sodium_free(key);

	SET_VARSIZE(wb, VARHDRSZ + TOMS_WRAPPED_LEN);
	memcpy(VARDATA(wb), wrapped, TOMS_WRAPPED_LEN);
	SET_VARSIZE(mb, VARHDRSZ + TOMS_MASTER_ID_LEN);
	memcpy(VARDATA(mb), master_id, TOMS_MASTER_ID_LEN);
	values[0] = CStringGetTextDatum(tenant);
	values[1] = CStringGetTextDatum(purpose_name(purpose));
	values[2] = Int32GetDatum(version);
	values[3] = PointerGetDatum(wb);
	values[4] = PointerGetDatum(mb);
	ret = SPI_execute_with_args("INSERT INTO toms.tenant_keys "
								"(tenant, purpose, version, wrapped, master_key_id, status) "
								"VALUES ($1, $2, $3, $4, $5, 'active') ON CONFLICT DO NOTHING",
								5, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not store tenant key: %d", ret);
	toms_tenant_keys_invalidate();
	return SPI_processed == 1;
}

/*
 * Load a key into the cache (cache miss).  version 0: the active key,
 * created if missing and create is set.  Returns the slot, or -1 if the
 * tenant has no such key.  A destroyed key raises 28T02 if
 * destroyed_raises is set, else returns -1.
 */
static int
keycache_load(const char *tenant, char purpose, int32 version, bool create,
			  bool destroyed_raises)
{
	TomsKeysAccess ka;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, INT4OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			ret;
	int			slot = -1;
	int			attempt;
	bool		destroyed = false;
	int32		found_version = 0;
	unsigned char wrapped[TOMS_WRAPPED_LEN];
	size_t		wrapped_len = 0;
	unsigned char master_id[TOMS_MASTER_ID_LEN];
	bool		active = false;

	toms_sealed_check_tenant(tenant);
	toms_require_master_key();
	keycache_setup();
	toms_tenant_keys_open(&ka);

	values[0] = CStringGetTextDatum(tenant);
	values[1] = CStringGetTextDatum(purpose_name(purpose));
	values[2] = Int32GetDatum(version);
	if (version == 0)
		nulls[2] = 'n';

	for (attempt = 0; attempt < 2; attempt++)
	{
		ret = SPI_execute_with_args("SELECT version, wrapped, master_key_id, status "
									"FROM toms.tenant_keys WHERE tenant = $1 AND purpose = $2 "
									"AND CASE WHEN $3 IS NULL THEN status = 'active' ELSE version = $3 END",
									3, argtypes, values, nulls, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read tenant keys: %d", ret);
		if (SPI_processed == 1)
		{
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			char	   *status = SPI_getvalue(tup, desc, 4);

			found_version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
			if (strcmp(status, "destroyed") == 0)
				destroyed = true;
			else
			{
				bytea	   *w = DatumGetByteaPP(SPI_getbinval(tup, desc, 2, &isnull));
				bytea	   *m = DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull));

				wrapped_len = VARSIZE_ANY_EXHDR(w);
				if (wrapped_len > TOMS_WRAPPED_LEN)
					wrapped_len = TOMS_WRAPPED_LEN + 1;
				else
					memcpy(wrapped, VARDATA_ANY(w), wrapped_len);
				if (VARSIZE_ANY_EXHDR(m) != TOMS_MASTER_ID_LEN)
					memset(master_id, 0, TOMS_MASTER_ID_LEN);
				else
					memcpy(master_id, VARDATA_ANY(m), TOMS_MASTER_ID_LEN);
				active = strcmp(status, "active") == 0;
			}
			break;
		}
		if (version != 0 || !create || attempt > 0)
			break;

		/* No active key: refuse for a shredded tenant, else create one. */
		ret = SPI_execute_with_args("SELECT 1 FROM toms.tenant_keys WHERE tenant = $1 "
									"AND status = 'destroyed'",
									1, argtypes, values, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read tenant keys: %d", ret);
		if (SPI_processed > 0)
		{
			destroyed = true;
			break;
		}
		(void) toms_tenant_key_create(tenant, purpose, 1);
	}
	toms_tenant_keys_close(&ka);

	if (destroyed)
	{
		if (destroyed_raises)
			toms_sealed_raise_destroyed();
		return -1;
	}
	if (found_version == 0)
	{
		if (version == 0 && create)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not create the tenant's key concurrently with another session"),
					 errhint("Retry the transaction.")));
		return -1;
	}

	slot = keycache_victim();
	if (!toms_key_unwrap(wrapped, wrapped_len, master_id, tenant, purpose,
						 found_version, slot_key(slot)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a wrapped key in toms.tenant_keys does not open under the master key"),
				 errdetail("The wrapped key, its tenant, purpose or version was altered, or the master key is not the one it was wrapped under.")));
	sodium_memzero(wrapped, sizeof(wrapped));
	slots[slot].valid = true;
	slots[slot].active = active;
	slots[slot].purpose = purpose;
	slots[slot].k.version = found_version;
	slots[slot].last_used = ++slot_clock;
	strlcpy(slots[slot].tenant, tenant, sizeof(slots[slot].tenant));
	compute_key_id(slot_key(slot), slots[slot].k.id);
	last_slot = slot;
	return slot;
}

const TomsTenantKey *
toms_tenant_key(const char *tenant, char purpose, int32 version, bool create,
				bool destroyed_raises)
{
	int			slot = -1;

	toms_require_master_key();

	/*
	 * A key destroyed or rotated by another session must not stay usable
	 * here until this backend happens to open a relation: take pending
	 * invalidations now (cheap when there are none).
	 */
	AcceptInvalidationMessages();
	if (slot_keys != NULL)
		slot = keycache_find(tenant, purpose, version);
	if (slot < 0)
		slot = keycache_load(tenant, purpose, version, create, destroyed_raises);
	return slot < 0 ? NULL : &slots[slot].k;
}
