/*-------------------------------------------------------------------------
 *
 * sealed.c
 *	  Sealed columns (issue 4; SPEC section 3): the toms.sealed type,
 *	  seal()/unseal(), blind indexes, per-tenant keys and their rotation,
 *	  re-sealing of old values, crypto-shredding and the enforcement of
 *	  protect(..., sensitive => ...).
 *
 *	  Per-tenant keys (a data key per version, and an index key) live only
 *	  wrapped under the master key (crypto.c) in toms.tenant_keys.  A
 *	  backend unwraps what it uses into a small cache in sodium_malloc()
 *	  memory; the cache is wiped when toms.tenant_keys changes (relcache
 *	  invalidation, sent by whoever changes it, and replayed locally when
 *	  the changing transaction aborts), and at exit.  Callers must use a
 *	  cached key before they do anything that could accept invalidations
 *	  (catalog access, lock acquisition).
 *
 *	  Reading and writing toms.tenant_keys happens with the table owner's
 *	  rights, under a safe search_path, in SPI; an application role needs
 *	  no privilege on it.  The byte format is in sealed_format.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "storage/sinval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "sealed_format.h"
#include "toms.h"

/* SQLSTATEs of sealed values (documented in docs/encryption.md). */
#define ERRCODE_SEALED_TRUNCATED		MAKE_SQLSTATE('2','2','T','0','1')
#define ERRCODE_SEALED_TAMPERED			MAKE_SQLSTATE('2','2','T','0','2')
#define ERRCODE_SEALED_WRONG_TENANT		MAKE_SQLSTATE('2','8','T','0','1')
#define ERRCODE_SEALED_KEY_DESTROYED	MAKE_SQLSTATE('2','8','T','0','2')

#define PURPOSE_DATA	'd'
#define PURPOSE_INDEX	'i'

#define KEY_SLOTS		64
#define AD_MAX			(SEALED_AD_HEADER_LEN + TOMS_MAX_TENANT_LEN)

typedef struct KeySlot
{
	bool		valid;
	bool		active;			/* the tenant's current key of this purpose */
	char		purpose;
	int32		version;
	uint64		last_used;
	unsigned char key_id[SEALED_KEYID_LEN];
	char		tenant[TOMS_MAX_TENANT_LEN + 1];
} KeySlot;

static KeySlot slots[KEY_SLOTS];
static unsigned char *slot_keys = NULL; /* KEY_SLOTS keys, sodium_malloc'd */
static uint64 slot_clock = 0;
static int	last_slot = -1;
static Oid	keys_relid = InvalidOid;
static bool callbacks_registered = false;

/* Server log: hide bound parameter values (they may be plaintext). */

/* Re-sealing. */
static int	reseal_batch_size = 500;
static int	reseal_naptime = 100;
static bool reseal_launch_at_commit = false;

/* Result of opening a sealed value. */
typedef enum OpenResult
{
	OPEN_OK,
	OPEN_NO_KEY,				/* the tenant has no key of that version */
	OPEN_WRONG_KEY,				/* key id differs: another tenant's or key's */
	OPEN_TAMPERED				/* right key, authentication failed */
} OpenResult;

PGDLLEXPORT void toms_reseal_worker_main(Datum main_arg);

/* ---------------------------------------------------------------------
 * Key cache
 * ---------------------------------------------------------------------
 */

static void
keycache_flush(void)
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
		keycache_flush();
}

static void
keycache_exit(int code, Datum arg)
{
	if (slot_keys != NULL)
	{
		keycache_flush();
		sodium_free(slot_keys);
		slot_keys = NULL;
	}
}

static void
sealed_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (reseal_launch_at_commit)
			{
				BackgroundWorker worker;
				BackgroundWorkerHandle *handle;

				reseal_launch_at_commit = false;
				toms_bgworker(&worker, "toms_reseal_worker_main", "toms reseal worker", MyDatabaseId,
							  BgWorkerStart_RecoveryFinished, 5);
				if (!RegisterDynamicBackgroundWorker(&worker, &handle))
					ereport(WARNING,
							(errmsg("toms could not start the reseal worker"),
							 errhint("Raise max_worker_processes, or run toms.reseal_start() later.")));
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			reseal_launch_at_commit = false;
			break;
		default:
			break;
	}
}

static void
keycache_setup(void)
{
	if (slot_keys == NULL)
	{
		slot_keys = sodium_malloc((size_t) KEY_SLOTS * TOMS_KEY_LEN);
		if (slot_keys == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not allocate secure memory for tenant keys")));
		sodium_memzero(slot_keys, (size_t) KEY_SLOTS * TOMS_KEY_LEN);
		keycache_flush();
		on_proc_exit(keycache_exit, (Datum) 0);
	}
	if (!callbacks_registered)
	{
		toms_on_relcache(keycache_relcache_cb);
		callbacks_registered = true;
	}
}

static inline unsigned char *
slot_key(int i)
{
	return slot_keys + (size_t) i * TOMS_KEY_LEN;
}

/* version 0: the active key of that purpose. */
static int
keycache_find(const char *tenant, char purpose, int32 version)
{
	int			i;

	if (last_slot >= 0)
	{
		KeySlot    *s = &slots[last_slot];

		if (s->valid && s->purpose == purpose &&
			(version == 0 ? s->active : s->version == version) &&
			strcmp(s->tenant, tenant) == 0)
		{
			s->last_used = ++slot_clock;
			return last_slot;
		}
	}
	for (i = 0; i < KEY_SLOTS; i++)
	{
		KeySlot    *s = &slots[i];

		if (s->valid && s->purpose == purpose &&
			(version == 0 ? s->active : s->version == version) &&
			strcmp(s->tenant, tenant) == 0)
		{
			s->last_used = ++slot_clock;
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

typedef struct KeysAccess
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} KeysAccess;

static Oid
lookup_keys_relid(void)
{
	Oid			nsp = get_namespace_oid(TOMS_SCHEMA, true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("tenant_keys", nsp) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"toms\" is not installed in this database")));
	keys_relid = relid;
	return relid;
}

static void
keys_access_begin(KeysAccess *ka)
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
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
keys_access_end(KeysAccess *ka)
{
	SPI_finish();
	AtEOXact_GUC(true, ka->save_nestlevel);
	SetUserIdAndSecContext(ka->save_userid, ka->save_sec_context);
}

/* Other backends (at commit) and this one (at abort) must forget keys. */
static void
keys_changed(void)
{
	CacheInvalidateRelcacheByRelid(keys_relid);
}

static const char *
purpose_name(char purpose)
{
	return purpose == PURPOSE_DATA ? "data" : "index";
}

static void
compute_key_id(const unsigned char *key, unsigned char *id)
{
	crypto_generichash(id, SEALED_KEYID_LEN, (const unsigned char *) "toms key id", 11,
					   key, TOMS_KEY_LEN);
}

static void
check_tenant(const char *tenant)
{
	size_t		len = strlen(tenant);

	if (len == 0 || len > TOMS_MAX_TENANT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tenant id")));
}

static void
raise_destroyed(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_SEALED_KEY_DESTROYED),
			 errmsg("the tenant's keys have been destroyed"),
			 errdetail("The keys were destroyed by crypto-shredding; values sealed under them can never be opened again.")));
}

/* Insert a new wrapped key (in keys_access); returns false on conflict. */
static bool
insert_key(const char *tenant, char purpose, int32 version)
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
	keys_changed();
	return SPI_processed == 1;
}

/*
 * Load a key into the cache (cache miss).  version 0: the active key,
 * created if missing and create is set.  Returns the slot, or -1 if the
 * tenant has no such key.  A destroyed key raises 28T02 if raise_destroyed
 * is set, else returns -1.
 */
static int
keycache_load(const char *tenant, char purpose, int32 version, bool create,
			  bool destroyed_raises)
{
	KeysAccess	ka;
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

	check_tenant(tenant);
	toms_require_master_key();
	keycache_setup();
	keys_access_begin(&ka);

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
		(void) insert_key(tenant, purpose, 1);
	}
	keys_access_end(&ka);

	if (destroyed)
	{
		if (destroyed_raises)
			raise_destroyed();
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
	slots[slot].version = found_version;
	slots[slot].last_used = ++slot_clock;
	strlcpy(slots[slot].tenant, tenant, sizeof(slots[slot].tenant));
	compute_key_id(slot_key(slot), slots[slot].key_id);
	last_slot = slot;
	return slot;
}

static int
get_key(const char *tenant, char purpose, int32 version, bool create,
		bool destroyed_raises)
{
	int			slot;

	toms_require_master_key();
	/*
	 * A key destroyed or rotated by another session must not stay usable
	 * here until this backend happens to open a relation: take pending
	 * invalidations now (cheap when there are none).
	 */
	AcceptInvalidationMessages();
	if (slot_keys != NULL)
	{
		slot = keycache_find(tenant, purpose, version);
		if (slot >= 0)
			return slot;
	}
	return keycache_load(tenant, purpose, version, create, destroyed_raises);
}

/* ---------------------------------------------------------------------
 * Sealing and opening
 * ---------------------------------------------------------------------
 */

static const char *
current_tenant(void)
{
	return toms_context(false)->tenant;
}

/*
 * Nonces come from a per-backend buffer of random bytes refilled 4 KB at a
 * time: getrandom() per value would cost more than the encryption of a
 * small value.  XChaCha20 nonces need to be unique, not secret (they are
 * stored in the clear), and 192 random bits make a collision negligible.
 * The buffer is filled in the backend that uses it, never inherited.
 */
#define NONCE_POOL_SIZE 4096
static unsigned char nonce_pool[NONCE_POOL_SIZE];
static size_t nonce_pool_used = NONCE_POOL_SIZE;
static int	nonce_pool_pid = 0;

static void
next_nonce(unsigned char *nonce)
{
	if (nonce_pool_pid != MyProcPid ||
		nonce_pool_used + SEALED_NONCE_LEN > NONCE_POOL_SIZE)
	{
		randombytes_buf(nonce_pool, NONCE_POOL_SIZE);
		nonce_pool_used = 0;
		nonce_pool_pid = MyProcPid;
	}
	memcpy(nonce, nonce_pool + nonce_pool_used, SEALED_NONCE_LEN);
	nonce_pool_used += SEALED_NONCE_LEN;
}

static size_t
build_ad(unsigned char *ad, const unsigned char *header, const char *tenant)
{
	size_t		tlen = strlen(tenant);

	memcpy(ad, header, SEALED_AD_HEADER_LEN);
	memcpy(ad + SEALED_AD_HEADER_LEN, tenant, tlen);
	return SEALED_AD_HEADER_LEN + tlen;
}

static bytea *
seal_bytes(const char *tenant, const char *data, size_t len)
{
	bytea	   *result;
	unsigned char *p;
	unsigned char ad[AD_MAX];
	size_t		adlen;
	int			slot;

	check_tenant(tenant);
	if (len > SEALED_MAX_PLAINTEXT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value is too long to be sealed"),
				 errdetail("The limit is %d bytes.", SEALED_MAX_PLAINTEXT)));
	result = palloc(VARHDRSZ + SEALED_MIN_LEN + len);
	SET_VARSIZE(result, VARHDRSZ + SEALED_MIN_LEN + len);
	p = (unsigned char *) VARDATA(result);

	slot = get_key(tenant, PURPOSE_DATA, 0, true, true);
	/* No catalog access from here on: the cached key is in use. */
	p[0] = SEALED_FORMAT_VERSION;
	sealed_put_u32(p + SEALED_OFF_KEYVER, (uint32_t) slots[slot].version);
	memcpy(p + SEALED_OFF_KEYID, slots[slot].key_id, SEALED_KEYID_LEN);
	sealed_put_u32(p + SEALED_OFF_PTLEN, (uint32_t) len);
	next_nonce(p + SEALED_OFF_NONCE);
	adlen = build_ad(ad, p, tenant);
	crypto_aead_xchacha20poly1305_ietf_encrypt(p + SEALED_HEADER_LEN, NULL,
											   (const unsigned char *) data, len,
											   ad, adlen, NULL,
											   p + SEALED_OFF_NONCE, slot_key(slot));
	return result;
}

/*
 * Open a (format-checked) sealed value for the tenant into out, which holds
 * the plaintext length (sealed_get_u32 at SEALED_OFF_PTLEN) bytes; out may
 * be NULL to only authenticate.
 */
static OpenResult
open_bytes(const char *tenant, const unsigned char *p, size_t len,
		   unsigned char *out)
{
	int			slot;
	unsigned char ad[AD_MAX];
	size_t		adlen;
	uint32_t	version = sealed_get_u32(p + SEALED_OFF_KEYVER);
	unsigned char *buf = out;
	int			rc;

	check_tenant(tenant);
	if (version == 0 || version > PG_INT32_MAX)
		return OPEN_NO_KEY;
	slot = get_key(tenant, PURPOSE_DATA, (int32) version, false, true);
	if (slot < 0)
		return OPEN_NO_KEY;
	if (sodium_memcmp(slots[slot].key_id, p + SEALED_OFF_KEYID, SEALED_KEYID_LEN) != 0)
		return OPEN_WRONG_KEY;
	adlen = build_ad(ad, p, tenant);
	if (buf == NULL)
		buf = palloc(len - SEALED_MIN_LEN + 1);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(buf, NULL, NULL,
													p + SEALED_HEADER_LEN, len - SEALED_HEADER_LEN,
													ad, adlen, p + SEALED_OFF_NONCE,
													slot_key(slot));
	if (out == NULL)
	{
		sodium_memzero(buf, len - SEALED_MIN_LEN);
		pfree(buf);
	}
	return rc == 0 ? OPEN_OK : OPEN_TAMPERED;
}

static void
check_stored(const unsigned char *p, size_t len)
{
	SealedFormatError err = toms_sealed_check_binary(p, len);

	if (err != SEALED_OK)
		ereport(ERROR,
				(errcode(err == SEALED_ERR_TRUNCATED ? ERRCODE_SEALED_TRUNCATED : ERRCODE_DATA_CORRUPTED),
				 errmsg(err == SEALED_ERR_TRUNCATED ? "sealed value is truncated" : "sealed value is malformed"),
				 errdetail("%s", toms_sealed_format_strerror(err))));
}

static void
raise_open_error(OpenResult r, const char *column)
{
	switch (r)
	{
		case OPEN_OK:
			break;
		case OPEN_NO_KEY:
		case OPEN_WRONG_KEY:
			if (column)
				ereport(ERROR,
						(errcode(ERRCODE_SEALED_WRONG_TENANT),
						 errmsg("value for column \"%s\" is not sealed for the row's tenant", column),
						 errdetail("It was sealed under another tenant's key, or under a key version this tenant does not have.")));
			ereport(ERROR,
					(errcode(ERRCODE_SEALED_WRONG_TENANT),
					 errmsg("sealed value does not belong to this tenant"),
					 errdetail("It was sealed under another tenant's key, or under a key version this tenant does not have.")));
			break;
		case OPEN_TAMPERED:
			if (column)
				ereport(ERROR,
						(errcode(ERRCODE_SEALED_TAMPERED),
						 errmsg("value for column \"%s\" failed authentication", column),
						 errdetail("The ciphertext, its header, or the tenant it is bound to was altered.")));
			ereport(ERROR,
					(errcode(ERRCODE_SEALED_TAMPERED),
					 errmsg("sealed value failed authentication"),
					 errdetail("The ciphertext, its header, or the tenant it is bound to was altered.")));
			break;
	}
}

/* Open for the tenant into a palloc'd buffer (NUL-terminated). */
static char *
unseal_bytes(const char *tenant, bytea *v, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(v);
	size_t		len = VARSIZE_ANY_EXHDR(v);
	char	   *out;
	OpenResult	r;

	check_stored(p, len);
	*outlen = len - SEALED_MIN_LEN;
	out = palloc(*outlen + 1);
	r = open_bytes(tenant, p, len, (unsigned char *) out);
	if (r != OPEN_OK)
	{
		sodium_memzero(out, *outlen);
		raise_open_error(r, NULL);
	}
	out[*outlen] = '\0';
	return out;
}

/* ---------------------------------------------------------------------
 * The type
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(toms_sealed_in);
PG_FUNCTION_INFO_V1(toms_sealed_out);
PG_FUNCTION_INFO_V1(toms_sealed_recv);
PG_FUNCTION_INFO_V1(toms_sealed_send);

/* The input is never echoed: it may be plaintext typed by mistake. */
Datum
toms_sealed_in(PG_FUNCTION_ARGS)
{
	char	   *text = PG_GETARG_CSTRING(0);
	size_t		textlen = strlen(text);
	bytea	   *result;
	size_t		binlen;
	SealedFormatError err;

	result = palloc(VARHDRSZ + toms_sealed_unarmour_maxlen(textlen));
	err = toms_sealed_unarmour(text, textlen, (uint8_t *) VARDATA(result), &binlen);
	if (err != SEALED_OK)
		ereport(ERROR,
				(errcode(err == SEALED_ERR_TRUNCATED ? ERRCODE_SEALED_TRUNCATED : ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg(err == SEALED_ERR_TRUNCATED ? "sealed value is truncated" : "invalid input syntax for type sealed"),
				 errdetail("%s", toms_sealed_format_strerror(err))));
	SET_VARSIZE(result, VARHDRSZ + binlen);
	PG_RETURN_BYTEA_P(result);
}

Datum
toms_sealed_out(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(v);
	char	   *out = palloc(toms_sealed_armour_len(len) + 1);

	toms_sealed_armour((const uint8_t *) VARDATA_ANY(v), len, out);
	PG_RETURN_CSTRING(out);
}

Datum
toms_sealed_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			len = buf->len - buf->cursor;
	bytea	   *result;
	SealedFormatError err;

	err = toms_sealed_check_binary((const uint8_t *) buf->data + buf->cursor, (size_t) len);
	if (err != SEALED_OK)
		ereport(ERROR,
				(errcode(err == SEALED_ERR_TRUNCATED ? ERRCODE_SEALED_TRUNCATED : ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg(err == SEALED_ERR_TRUNCATED ? "sealed value is truncated" : "invalid binary representation for type sealed"),
				 errdetail("%s", toms_sealed_format_strerror(err))));
	result = palloc(VARHDRSZ + len);
	SET_VARSIZE(result, VARHDRSZ + len);
	pq_copymsgbytes(buf, VARDATA(result), len);
	PG_RETURN_BYTEA_P(result);
}

Datum
toms_sealed_send(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbytes(&buf, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---------------------------------------------------------------------
 * seal, unseal, blind_index
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(toms_seal_text);
PG_FUNCTION_INFO_V1(toms_seal_bytea);
PG_FUNCTION_INFO_V1(toms_unseal_text);
PG_FUNCTION_INFO_V1(toms_unseal_bytea);
PG_FUNCTION_INFO_V1(toms_blind_index);
PG_FUNCTION_INFO_V1(toms_sealed_key_version);
PG_FUNCTION_INFO_V1(toms_sealed_master_key_loaded);

Datum
toms_seal_text(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *tenant = current_tenant();

	PG_RETURN_BYTEA_P(seal_bytes(tenant, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
toms_seal_bytea(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	const char *tenant = current_tenant();

	PG_RETURN_BYTEA_P(seal_bytes(tenant, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)));
}

Datum
toms_unseal_text(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	const char *tenant = current_tenant();
	size_t		len;
	char	   *plain = unseal_bytes(tenant, v, &len);
	text	   *result;

	/* A value sealed from bytea may not be text in this encoding. */
	if (!pg_verifymbstr(plain, (int) len, true) || memchr(plain, '\0', len) != NULL)
	{
		sodium_memzero(plain, len);
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("sealed value is not valid text in the database encoding"),
				 errhint("Use toms.unseal_bytea() for values sealed from bytea.")));
	}
	result = cstring_to_text_with_len(plain, (int) len);
	sodium_memzero(plain, len);
	pfree(plain);
	PG_RETURN_TEXT_P(result);
}

Datum
toms_unseal_bytea(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	const char *tenant = current_tenant();
	size_t		len;
	char	   *plain = unseal_bytes(tenant, v, &len);
	bytea	   *result = palloc(VARHDRSZ + len);

	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), plain, len);
	sodium_memzero(plain, len);
	pfree(plain);
	PG_RETURN_BYTEA_P(result);
}

/*
 * Keyed BLAKE2b-256 of (purpose, value) under the tenant's index key: equal
 * values of one tenant and purpose give equal results.
 */
Datum
toms_blind_index(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	text	   *purpose = PG_GETARG_TEXT_PP(1);
	const char *tenant = current_tenant();
	crypto_generichash_state st;
	unsigned char lenbuf[4];
	bytea	   *result = palloc(VARHDRSZ + 32);
	int			slot;

	SET_VARSIZE(result, VARHDRSZ + 32);
	slot = get_key(tenant, PURPOSE_INDEX, 0, true, true);
	crypto_generichash_init(&st, slot_key(slot), TOMS_KEY_LEN, 32);
	crypto_generichash_update(&st, (const unsigned char *) "toms blind index v1", 20);
	sealed_put_u32(lenbuf, (uint32_t) VARSIZE_ANY_EXHDR(purpose));
	crypto_generichash_update(&st, lenbuf, 4);
	crypto_generichash_update(&st, (const unsigned char *) VARDATA_ANY(purpose),
							  VARSIZE_ANY_EXHDR(purpose));
	crypto_generichash_update(&st, (const unsigned char *) VARDATA_ANY(value),
							  VARSIZE_ANY_EXHDR(value));
	crypto_generichash_final(&st, (unsigned char *) VARDATA(result), 32);
	sodium_memzero(&st, sizeof(st));
	PG_RETURN_BYTEA_P(result);
}

/* The data key version a value was sealed under (no key needed). */
Datum
toms_sealed_key_version(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(v);

	check_stored(p, VARSIZE_ANY_EXHDR(v));
	PG_RETURN_INT32((int32) sealed_get_u32(p + SEALED_OFF_KEYVER));
}

Datum
toms_sealed_master_key_loaded(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(toms_master_key_loaded());
}

/* ---------------------------------------------------------------------
 * Key administration
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(toms_rotate_tenant_key);
PG_FUNCTION_INFO_V1(toms_destroy_tenant_keys_sql);
PG_FUNCTION_INFO_V1(toms_rotate_master_key);
PG_FUNCTION_INFO_V1(toms_reseal_value);
PG_FUNCTION_INFO_V1(toms_active_key_version);
PG_FUNCTION_INFO_V1(toms_reseal_step);
PG_FUNCTION_INFO_V1(toms_reseal_start);

static void
lock_keys(void)
{
	if (SPI_execute("LOCK TABLE toms.tenant_keys IN SHARE ROW EXCLUSIVE MODE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not lock toms.tenant_keys");
}

Datum
toms_rotate_tenant_key(PG_FUNCTION_ARGS)
{
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		start_worker = PG_GETARG_BOOL(1);
	KeysAccess	ka;
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	int32		old_version = 0;
	int32		new_version;
	bool		isnull;
	char		detail[128];

	check_tenant(tenant);
	toms_require_master_key();
	keys_access_begin(&ka);
	lock_keys();
	values[0] = CStringGetTextDatum(tenant);
	if (SPI_execute_with_args("SELECT 1 FROM toms.tenants WHERE tenant = $1",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read toms.tenants");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", tenant)));
	if (SPI_execute_with_args("SELECT 1 FROM toms.tenant_keys WHERE tenant = $1 AND status = 'destroyed'",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read tenant keys");
	if (SPI_processed > 0)
		raise_destroyed();
	if (SPI_execute_with_args("SELECT max(version) FILTER (WHERE status = 'active'), "
							  "coalesce(max(version), 0) + 1 "
							  "FROM toms.tenant_keys WHERE tenant = $1 AND purpose = 'data'",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read tenant keys");
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			old_version = DatumGetInt32(d);
		new_version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	if (SPI_execute_with_args("UPDATE toms.tenant_keys SET status = 'retired', retired_at = now() "
							  "WHERE tenant = $1 AND purpose = 'data' AND status = 'active'",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not retire tenant key");
	if (!insert_key(tenant, PURPOSE_DATA, new_version))
		elog(ERROR, "could not store the new tenant key");
	if (old_version > 0)
	{
		values[1] = Int32GetDatum(new_version);
		if (SPI_execute_with_args("INSERT INTO toms.key_rotations (tenant, to_version) VALUES ($1, $2)",
								  2, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record the key rotation");
		if (start_worker)
			reseal_launch_at_commit = true;
	}
	keys_access_end(&ka);
	keycache_flush();

	snprintf(detail, sizeof(detail), "{\"purpose\": \"data\", \"version\": %d}", new_version);
	toms_audit_admin("rotate_tenant_key", tenant, detail);
	PG_RETURN_INT32(new_version);
}

int64
toms_destroy_tenant_keys(const char *tenant)
{
	KeysAccess	ka;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int64		n;
	char		detail[128];

	check_tenant(tenant);
	keys_access_begin(&ka);
	lock_keys();
	values[0] = CStringGetTextDatum(tenant);
	if (SPI_execute_with_args("UPDATE toms.tenant_keys SET status = 'destroyed', wrapped = NULL, "
							  "master_key_id = NULL, destroyed_at = now() "
							  "WHERE tenant = $1 AND status <> 'destroyed'",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not destroy tenant keys");
	n = (int64) SPI_processed;
	keys_changed();
	keys_access_end(&ka);
	keycache_flush();

	snprintf(detail, sizeof(detail), "{\"keys_destroyed\": " INT64_FORMAT "}", n);
	toms_audit_admin("destroy_tenant_keys", tenant, detail);
	return n;
}

Datum
toms_destroy_tenant_keys_sql(PG_FUNCTION_ARGS)
{
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_INT64(toms_destroy_tenant_keys(tenant));
}

/*
 * Rewrap every live tenant key that is not wrapped under the current master
 * key (it must be wrapped under the previous one, which must be loaded).
 */
Datum
toms_rotate_master_key(PG_FUNCTION_ARGS)
{
	KeysAccess	ka;
	int64		n = 0;
	uint64		i;
	uint64		nrows;
	SPITupleTable *tt;
	unsigned char *key;
	char		detail[128];

	toms_require_master_key();
	key = sodium_malloc(TOMS_KEY_LEN);
	if (key == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("could not allocate secure memory for a tenant key")));
	keys_access_begin(&ka);
	lock_keys();
	if (SPI_execute("SELECT tenant, purpose, version, wrapped, master_key_id "
					"FROM toms.tenant_keys WHERE status <> 'destroyed' ORDER BY 1, 2, 3",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read tenant keys");
	tt = SPI_tuptable;
	nrows = SPI_processed;
	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tup = tt->vals[i];
		bool		isnull;
		char	   *tenant = SPI_getvalue(tup, tt->tupdesc, 1);
		char	   *purpose = SPI_getvalue(tup, tt->tupdesc, 2);
		int32		version = DatumGetInt32(SPI_getbinval(tup, tt->tupdesc, 3, &isnull));
		bytea	   *w = DatumGetByteaPP(SPI_getbinval(tup, tt->tupdesc, 4, &isnull));
		bytea	   *m = DatumGetByteaPP(SPI_getbinval(tup, tt->tupdesc, 5, &isnull));
		char		p = purpose[0] == 'd' ? PURPOSE_DATA : PURPOSE_INDEX;
		unsigned char wrapped[TOMS_WRAPPED_LEN];
		unsigned char master_id[TOMS_MASTER_ID_LEN];
		bytea	   *wb;
		bytea	   *mb;
		Oid			argtypes[5] = {BYTEAOID, BYTEAOID, TEXTOID, TEXTOID, INT4OID};
		Datum		values[5];

		if (VARSIZE_ANY_EXHDR(m) != TOMS_MASTER_ID_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a tenant key in toms.tenant_keys has no valid master key id")));
		if (toms_master_id_is_current((const unsigned char *) VARDATA_ANY(m)))
			continue;
		if (!toms_key_unwrap((const unsigned char *) VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w),
							 (const unsigned char *) VARDATA_ANY(m), tenant, p, version, key))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a wrapped key in toms.tenant_keys does not open under the previous master key")));
		toms_key_wrap(key, tenant, p, version, wrapped, master_id);
		sodium_memzero(key, TOMS_KEY_LEN);
		wb = palloc(VARHDRSZ + TOMS_WRAPPED_LEN);
		SET_VARSIZE(wb, VARHDRSZ + TOMS_WRAPPED_LEN);
		memcpy(VARDATA(wb), wrapped, TOMS_WRAPPED_LEN);
		mb = palloc(VARHDRSZ + TOMS_MASTER_ID_LEN);
		SET_VARSIZE(mb, VARHDRSZ + TOMS_MASTER_ID_LEN);
		memcpy(VARDATA(mb), master_id, TOMS_MASTER_ID_LEN);
		values[0] = PointerGetDatum(wb);
		values[1] = PointerGetDatum(mb);
		values[2] = CStringGetTextDatum(tenant);
		values[3] = CStringGetTextDatum(purpose);
		values[4] = Int32GetDatum(version);
		if (SPI_execute_with_args("UPDATE toms.tenant_keys SET wrapped = $1, master_key_id = $2 "
								  "WHERE tenant = $3 AND purpose = $4 AND version = $5",
								  5, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not rewrap tenant key");
		n++;
	}
	sodium_free(key);
	keys_changed();
	keys_access_end(&ka);
	keycache_flush();

	snprintf(detail, sizeof(detail), "{\"keys_rewrapped\": " INT64_FORMAT "}", n);
	toms_audit_admin("rotate_master_key", NULL, detail);
	PG_RETURN_INT64(n);
}

/* Active data key version of a tenant; 0 if none (never raises). */
Datum
toms_active_key_version(PG_FUNCTION_ARGS)
{
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			slot;

	if (strlen(tenant) == 0 || strlen(tenant) > TOMS_MAX_TENANT_LEN)
		PG_RETURN_INT32(0);
	slot = get_key(tenant, PURPOSE_DATA, 0, false, false);
	PG_RETURN_INT32(slot < 0 ? 0 : slots[slot].version);
}

/* Re-seal a value of the tenant under its active data key. */
Datum
toms_reseal_value(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(v);
	int			slot;
	size_t		len;
	char	   *plain;
	bytea	   *result;

	check_stored(p, VARSIZE_ANY_EXHDR(v));
	slot = get_key(tenant, PURPOSE_DATA, 0, false, true);
	if (slot >= 0 && sealed_get_u32(p + SEALED_OFF_KEYVER) == (uint32_t) slots[slot].version)
		PG_RETURN_BYTEA_P(v);
	plain = unseal_bytes(tenant, v, &len);
	result = seal_bytes(tenant, plain, len);
	sodium_memzero(plain, len);
	pfree(plain);
	PG_RETURN_BYTEA_P(result);
}

/*
 * One batch of re-sealing: values of protected tables' sensitive columns
 * sealed under a retired key of their row's tenant get the active key.
 * Returns how many rows were rewritten; 0 means nothing is left.  Must run
 * outside row security (superuser, BYPASSRLS, or the reseal worker).
 */
static int64
reseal_step_internal(int batch)
{
	int64		total = 0;
	uint64		i;
	uint64		ntables;
	SPITupleTable *tables;
	int			save_nestlevel;

	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT relid::oid, tenant_column, sensitive FROM toms.protected_tables "
					"WHERE cardinality(sensitive) > 0 ORDER BY 1", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read toms.protected_tables");
	tables = SPI_tuptable;
	ntables = SPI_processed;
	for (i = 0; i < ntables && total < batch; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(tables->vals[i], tables->tupdesc, 1, &isnull));
		char	   *tcol = SPI_getvalue(tables->vals[i], tables->tupdesc, 2);
		ArrayType  *arr = DatumGetArrayTypeP(SPI_getbinval(tables->vals[i], tables->tupdesc, 3, &isnull));
		Datum	   *cols;
		int			ncols;
		int			c;
		char	   *relname;
		char	   *tenant_expr;
		StringInfoData sets;
		StringInfoData conds;
		StringInfoData q;
		uint64		j;
		SPITupleTable *done;
		uint64		ndone;

		if (get_rel_name(relid) == NULL)
			continue;			/* dropped concurrently */
		relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											 get_rel_name(relid));
		tenant_expr = psprintf("t.%s::text", quote_identifier(tcol));
		deconstruct_array(arr, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &cols, NULL, &ncols);
		initStringInfo(&sets);
		initStringInfo(&conds);
		for (c = 0; c < ncols; c++)
		{
			const char *col = quote_identifier(NameStr(*DatumGetName(cols[c])));

			appendStringInfo(&sets, "%s%s = toms._reseal(t.%s, %s)", c ? ", " : "", col, col, tenant_expr);
			appendStringInfo(&conds, "%stoms.sealed_key_version(t.%s) < toms._active_key_version(%s)",
							 c ? " OR " : "", col, tenant_expr);
		}
		initStringInfo(&q);
		appendStringInfo(&q,
						 "WITH todo AS (SELECT t.ctid AS tid FROM %s t WHERE %s LIMIT " INT64_FORMAT " FOR UPDATE SKIP LOCKED), "
						 "done AS (UPDATE %s t SET %s FROM todo WHERE t.ctid = todo.tid RETURNING %s AS tenant) "
						 "SELECT tenant, count(*) FROM done GROUP BY 1",
						 relname, conds.data, (int64) batch - total,
						 relname, sets.data, tenant_expr);
		if (SPI_execute(q.data, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not re-seal values of %s", relname);
		done = SPI_tuptable;
		ndone = SPI_processed;
		for (j = 0; j < ndone; j++)
		{
			SPITupleTable *tt = done;
			Oid			argtypes[2] = {TEXTOID, INT8OID};
			Datum		values[2];
			int64		cnt = DatumGetInt64(SPI_getbinval(tt->vals[j], tt->tupdesc, 2, &isnull));

			values[0] = SPI_getbinval(tt->vals[j], tt->tupdesc, 1, &isnull);
			values[1] = Int64GetDatum(cnt);
			total += cnt;
			if (SPI_execute_with_args("UPDATE toms.key_rotations SET resealed = resealed + $2 "
									  "WHERE tenant = $1 AND finished_at IS NULL",
									  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not record re-sealing progress");
		}
	}
	if (total == 0)
	{
		if (SPI_execute("UPDATE toms.key_rotations SET finished_at = now() WHERE finished_at IS NULL",
						false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record re-sealing progress");
	}
	SPI_finish();
	AtEOXact_GUC(true, save_nestlevel);
	return total;
}

Datum
toms_reseal_step(PG_FUNCTION_ARGS)
{
	int32		batch = PG_GETARG_INT32(0);

	if (batch <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size must be positive")));
	if (!superuser() && !has_bypassrls_privilege(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to re-seal values"),
				 errdetail("Re-sealing reads every tenant's rows; it needs a superuser or a BYPASSRLS role.")));
	PG_RETURN_INT64(reseal_step_internal(batch));
}

/* Start the reseal worker for this database when this transaction commits. */
Datum
toms_reseal_start(PG_FUNCTION_ARGS)
{
	reseal_launch_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * The reseal worker: one per rotation, in the rotating database, as the
 * bootstrap superuser.  One committed transaction per batch; a crash loses
 * at most the batch in flight, and the state to resume from is the data
 * itself (the key versions in the values).  Exits when nothing is left.
 */
void
toms_reseal_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("toms reseal worker");

	for (;;)
	{
		int64		n;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "toms: re-sealing values");
		if (!OidIsValid(get_extension_oid("toms", true)))
			n = 0;
		else
			n = reseal_step_internal(reseal_batch_size);
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (n == 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 reseal_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	proc_exit(0);
}

PG_FUNCTION_INFO_V1(toms_tenant_keys_changed);

/*
 * AFTER ... FOR EACH STATEMENT on toms.tenant_keys: whoever changes the
 * table (toms' functions, a superuser's DML, pg_restore) makes every
 * backend drop its cached keys when the change commits, and this backend
 * when it aborts.
 */
Datum
toms_tenant_keys_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("toms.tenant_keys_changed() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * protect(..., sensitive => ...) and its trigger
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(toms_sealed_check);

static Oid
sealed_typoid(void)
{
	Oid			nsp = get_namespace_oid(TOMS_SCHEMA, false);

	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
						   CStringGetDatum("sealed"), ObjectIdGetDatum(nsp));
}

void
sealed_on_protect(Oid relid, int ncols, char **colnames)
{
	Oid			typoid = sealed_typoid();
	StringInfoData args;
	char	   *relname;
	int			i;

	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	initStringInfo(&args);
	for (i = 0; i < ncols; i++)
	{
		AttrNumber	attnum = get_attnum(relid, colnames[i]);

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							colnames[i], get_rel_name(relid))));
		if (getBaseType(get_atttype(relid, attnum)) != typoid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("sensitive column \"%s\" must be of type toms.sealed", colnames[i]),
					 errhint("Declare it as toms.sealed and store toms.seal(value).")));
		appendStringInfo(&args, "%s%s", i ? ", " : "", quote_literal_cstr(colnames[i]));
	}
	if (OidIsValid(get_trigger_oid(relid, "toms_sealed_check", true)))
		toms_run_ddl(psprintf("DROP TRIGGER toms_sealed_check ON %s", relname));
	if (ncols > 0)
		toms_run_ddl(psprintf("CREATE TRIGGER toms_sealed_check BEFORE INSERT OR UPDATE ON %s "
							  "FOR EACH ROW EXECUTE FUNCTION toms.sealed_check(%s)",
							  relname, args.data));
}

/*
 * BEFORE INSERT OR UPDATE, FOR EACH ROW, arguments: the sensitive columns.
 * Every new or changed value must open under a key of the row's tenant;
 * anything else (another tenant's ciphertext, a tampered value) is refused.
 */
Datum
toms_sealed_check(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	newtup;
	HeapTuple	oldtup = NULL;
	const TomsProtected *prot;
	char	   *tenant;
	bool		isnull;
	Datum		d;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("toms.sealed_check() must be a BEFORE ROW trigger")));
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		newtup = td->tg_newtuple;
		oldtup = td->tg_trigtuple;
	}
	else if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		newtup = td->tg_trigtuple;
	else
		return PointerGetDatum(td->tg_trigtuple);

	prot = toms_protected(RelationGetRelid(rel));
	if (prot == NULL)
		return PointerGetDatum(newtup);

	d = heap_getattr(newtup, prot->tenant_attnum, desc, &isnull);
	if (isnull)
		tenant = pstrdup(current_tenant());
	else
	{
		Oid			outfn;
		bool		varlena;

		getTypeOutputInfo(TupleDescAttr(desc, prot->tenant_attnum - 1)->atttypid, &outfn, &varlena);
		tenant = OidOutputFunctionCall(outfn, d);
	}

	for (i = 0; i < td->tg_trigger->tgnargs; i++)
	{
		const char *col = td->tg_trigger->tgargs[i];
		int			attnum = SPI_fnumber(desc, col);
		Datum		v;
		bytea	   *b;
		OpenResult	r;

		if (attnum <= 0)
			continue;
		v = heap_getattr(newtup, attnum, desc, &isnull);
		if (isnull)
			continue;
		if (oldtup != NULL)
		{
			bool		oldnull;
			Datum		ov = heap_getattr(oldtup, attnum, desc, &oldnull);

			if (!oldnull && datumIsEqual(ov, v, false, -1))
				continue;
		}
		b = DatumGetByteaPP(v);
		check_stored((const unsigned char *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
		r = open_bytes(tenant, (const unsigned char *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), NULL);
		if (r != OPEN_OK)
		{
			toms_audit_denied(r == OPEN_TAMPERED ? "tampered sealed value" : "cross-tenant sealed value",
							  tenant, RelationGetRelid(rel), col);
			raise_open_error(r, col);
		}
	}
	return PointerGetDatum(newtup);
}

void
sealed_init(void)
{
	toms_crypto_init();

	DefineCustomIntVariable("toms.reseal_batch_size",
							gettext_noop("Rows the reseal worker rewrites per transaction."),
							NULL, &reseal_batch_size, 500, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.reseal_naptime",
							gettext_noop("Pause of the reseal worker between batches."),
							NULL, &reseal_naptime, 100, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	RegisterXactCallback(sealed_xact_cb, NULL);
}
