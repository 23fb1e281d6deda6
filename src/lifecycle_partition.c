/*-------------------------------------------------------------------------
 *
 * lifecycle_partition.c
 *	  Retention on a time-partitioned table (docs/deletion.md,
 *	  "Partitioned tables"): a partition whose bounds say that every row it
 *	  can hold has expired is dropped whole, instead of being emptied row by
 *	  row.
 *
 *	  toms._retention_expired_partitions() (SQL) finds such partitions;
 *	  toms._retention_drop_expired() (SQL) calls
 *	  toms._retention_drop_partition() below for each, in a subtransaction
 *	  of its own, from the lifecycle worker (lifecycle_worker.c).  The DROP
 *	  goes through toms_run_ddl(), the one way past the guard, which
 *	  refuses DROP TABLE of a protected table to everyone else; the rows it
 *	  held are counted, the rule's counter moves on, and the drop is an
 *	  audit record of its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "toms.h"

PG_FUNCTION_INFO_V1(toms_retention_drop_partition);

/*
 * toms._retention_drop_partition(rule, part) -> rows: drop partition part
 * of retention rule rule's table, with its own partitions; their rows in
 * toms.protected_tables go with them.
 */
Datum
toms_retention_drop_partition(PG_FUNCTION_ARGS)
{
	Oid			rule = PG_GETARG_OID(0);
	Oid			part = PG_GETARG_OID(1);
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2];
	char	   *qualname;
	char	   *rulename;
	int64		rows;
	bool		isnull;
	StringInfoData detail;

	if (!get_rel_relispartition(part) || !OidIsValid(get_rel_namespace(part)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation with OID %u is not a partition", part)));
	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(part)),
										  get_rel_name(part));
	rulename = quote_qualified_identifier(get_namespace_name(get_rel_namespace(rule)),
										  get_rel_name(rule));
	values[0] = ObjectIdGetDatum(rule);
	values[1] = ObjectIdGetDatum(part);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_partition_ancestors($2) a"
							  " WHERE a.relid = $1::pg_catalog.regclass AND a.relid <> $2::pg_catalog.regclass",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a partition of \"%s\"", qualname, rulename)));

	if (SPI_execute(psprintf("SELECT pg_catalog.count(*) FROM %s", qualname), true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not count the rows of %s", qualname);
	rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	if (SPI_execute_with_args("DELETE FROM " TOMS_SCHEMA ".protected_tables"
							  " WHERE relid::pg_catalog.oid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree($2) t)",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget the protected partitions of %s", qualname);
	toms_run_ddl(psprintf("DROP TABLE %s", qualname));

	if (SPI_execute_with_args(psprintf("UPDATE " TOMS_SCHEMA ".retention"
									   " SET rows_purged = rows_purged + " INT64_FORMAT ", last_run_at = pg_catalog.now()"
									   " WHERE relid = $1::pg_catalog.regclass", rows),
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not count the rows of a dropped partition");
	SPI_finish();

	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"table\": ");
	escape_json(&detail, rulename);
	appendStringInfoString(&detail, ", \"partition\": ");
	escape_json(&detail, qualname);
	appendStringInfo(&detail, ", \"rows_deleted\": " INT64_FORMAT "}", rows);
	toms_audit_admin("retention_partition_dropped", NULL, detail.data);
	PG_RETURN_INT64(rows);
}
