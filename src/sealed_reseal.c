/*-------------------------------------------------------------------------
 *
 * sealed_reseal.c
 *	  Re-sealing (docs/encryption.md): after toms.rotate_tenant_key(),
 *	  values sealed under a retired data key get the tenant's active key.
 *	  toms.reseal_step() does one batch in the caller's transaction; the
 *	  reseal worker (one per rotation, in the rotating database, started at
 *	  commit by toms.reseal_start() or a rotation) runs batches until
 *	  nothing is left.  The SQL a batch runs calls toms._reseal() and
 *	  toms._active_key_version(), defined here too.
 *
 *	  The state to resume from is the data itself (the key version in each
 *	  value), so a crash loses at most the batch in flight and a restarted
 *	  worker simply carries on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
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
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "sealed_format.h"
#include "toms.h"

PG_FUNCTION_INFO_V1(toms_active_key_version);
PG_FUNCTION_INFO_V1(toms_reseal_value);
PG_FUNCTION_INFO_V1(toms_reseal_step);
PG_FUNCTION_INFO_V1(toms_reseal_start);

PGDLLEXPORT void toms_reseal_worker_main(Datum main_arg);

static int	reseal_batch_size = 500;
static int	reseal_naptime = 100;
static bool reseal_launch_at_commit = false;

/* Start the reseal worker for this database when this transaction commits. */
void
toms_reseal_launch_at_commit(void)
{
	reseal_launch_at_commit = true;
}

static void
reseal_xact_cb(XactEvent event, void *arg)
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

/* Active data key version of a tenant; 0 if none (never raises). */
Datum
toms_active_key_version(PG_FUNCTION_ARGS)
{
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const TomsTenantKey *key;

	if (strlen(tenant) == 0 || strlen(tenant) > TOMS_MAX_TENANT_LEN)
		PG_RETURN_INT32(0);
	key = toms_tenant_key(tenant, TOMS_KEY_DATA, 0, false, false);
	PG_RETURN_INT32(key == NULL ? 0 : key->version);
}

/* Re-seal a value of the tenant under its active data key. */
Datum
toms_reseal_value(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(v);
	const TomsTenantKey *key;
	size_t		len;
	char	   *plain;
	bytea	   *result;

	toms_sealed_check_stored(p, VARSIZE_ANY_EXHDR(v));
	key = toms_tenant_key(tenant, TOMS_KEY_DATA, 0, false, true);
	if (key != NULL && sealed_get_u32(p + SEALED_OFF_KEYVER) == (uint32_t) key->version)
		PG_RETURN_BYTEA_P(v);
	plain = toms_sealed_unseal(tenant, v, &len);
	result = toms_sealed_seal(tenant, plain, len);
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

Datum
toms_reseal_start(PG_FUNCTION_ARGS)
{
	toms_reseal_launch_at_commit();
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

/* Settings of the reseal worker, and its start at commit. */
void
toms_reseal_init(void)
{
	DefineCustomIntVariable("toms.reseal_batch_size",
							gettext_noop("Rows the reseal worker rewrites per transaction."),
							NULL, &reseal_batch_size, 500, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.reseal_naptime",
							gettext_noop("Pause of the reseal worker between batches."),
							NULL, &reseal_naptime, 100, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	RegisterXactCallback(reseal_xact_cb, NULL);
}
