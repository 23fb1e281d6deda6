/*-------------------------------------------------------------------------
 *
 * sealed_admin.c
 *	  Administration of the keys of sealed columns (docs/encryption.md):
 *	  toms.rotate_tenant_key(), toms.destroy_tenant_keys() (crypto-
 *	  shredding, also called by the deletion capability), toms.rotate_
 *	  master_key(), and the trigger that makes every backend forget cached
 *	  keys when toms.tenant_keys changes.
 *
 *	  Each function works on toms.tenant_keys through sealed_keys.c, under
 *	  a SHARE ROW EXCLUSIVE lock so that two administrators (or a key
 *	  created on first use) cannot interleave, and is audited.  A rotation
 *	  may start the reseal worker (sealed_reseal.c) at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/rel.h"

#include "toms.h"

PG_FUNCTION_INFO_V1(toms_rotate_tenant_key);
PG_FUNCTION_INFO_V1(toms_destroy_tenant_keys_sql);
PG_FUNCTION_INFO_V1(toms_rotate_master_key);
PG_FUNCTION_INFO_V1(toms_tenant_keys_changed);

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
	TomsKeysAccess ka;
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	int32		old_version = 0;
	int32		new_version;
	bool		isnull;
	char		detail[128];

	toms_sealed_check_tenant(tenant);
	toms_require_master_key();
	toms_tenant_keys_open(&ka);
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
		toms_sealed_raise_destroyed();
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
	if (!toms_tenant_key_create(tenant, TOMS_KEY_DATA, new_version))
		elog(ERROR, "could not store the new tenant key");
	if (old_version > 0)
	{
		values[1] = Int32GetDatum(new_version);
		if (SPI_execute_with_args("INSERT INTO toms.key_rotations (tenant, to_version) VALUES ($1, $2)",
								  2, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record the key rotation");
		if (start_worker)
			toms_reseal_launch_at_commit();
	}
	toms_tenant_keys_close(&ka);
	toms_tenant_keys_forget();

	snprintf(detail, sizeof(detail), "{\"purpose\": \"data\", \"version\": %d}", new_version);
	toms_audit_admin("rotate_tenant_key", tenant, detail);
	PG_RETURN_INT32(new_version);
}

int64
toms_destroy_tenant_keys(const char *tenant)
{
	TomsKeysAccess ka;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int64		n;
	char		detail[128];

	toms_sealed_check_tenant(tenant);
	toms_tenant_keys_open(&ka);
	lock_keys();
	values[0] = CStringGetTextDatum(tenant);
	if (SPI_execute_with_args("UPDATE toms.tenant_keys SET status = 'destroyed', wrapped = NULL, "
							  "master_key_id = NULL, destroyed_at = now() "
							  "WHERE tenant = $1 AND status <> 'destroyed'",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not destroy tenant keys");
	n = (int64) SPI_processed;
	toms_tenant_keys_invalidate();
	toms_tenant_keys_close(&ka);
	toms_tenant_keys_forget();

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
 * key (it must be wrapped under the previous one, which must be loaded);
 * key is secure scratch memory for one unwrapped key at a time.
 */
static int64
rewrap_tenant_keys(unsigned char *key)
{
	int64		n = 0;
	uint64		i;
	uint64		nrows;
	SPITupleTable *tt;

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
		char		p = purpose[0] == 'd' ? TOMS_KEY_DATA : TOMS_KEY_INDEX;
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
	return n;
}

/*
 * On Citus, toms.tenant_keys is a reference table and the rewrap below
 * writes every node's copy: toms._citus_master_key_check() (90_citus.sql)
 * refuses on a worker, and on the coordinator unless every worker has
 * the coordinator's master key loaded -- a node without it could open
 * none of the rewrapped keys.  Database objects older than the function
 * (before ALTER EXTENSION toms UPDATE) have no Citus setup to check.
 */
static void
check_citus_nodes(void)
{
	bool		isnull;

	if (SPI_execute("SELECT pg_catalog.to_regprocedure('toms._citus_master_key_check()') IS NOT NULL",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look up toms._citus_master_key_check()");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return;
	if (SPI_execute("SELECT toms._citus_master_key_check()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not check the master key of the Citus nodes");
}

Datum
toms_rotate_master_key(PG_FUNCTION_ARGS)
{
	TomsKeysAccess ka;
	volatile int64 n = 0;
	unsigned char *key;
	char		detail[128];

	toms_require_master_key();
	toms_tenant_keys_open(&ka);
	check_citus_nodes();
	lock_keys();
	key = sodium_malloc(TOMS_KEY_LEN);
	if (key == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("could not allocate secure memory for a tenant key")));
	/* the key's secure memory is freed (and wiped) on error too */
	PG_TRY();
	{
		n = rewrap_tenant_keys(key);
	}
	PG_FINALLY();
	{
		sodium_free(key);
	}
	PG_END_TRY();
	toms_tenant_keys_invalidate();
	toms_tenant_keys_close(&ka);
	toms_tenant_keys_forget();

	snprintf(detail, sizeof(detail), "{\"keys_rewrapped\": " INT64_FORMAT "}", n);
	toms_audit_admin("rotate_master_key", NULL, detail);
	PG_RETURN_INT64(n);
}

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
				 errmsg("toms._tenant_keys_changed() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	return PointerGetDatum(NULL);
}

