/*-------------------------------------------------------------------------
 *
 * databases.c
 *	  What toms' background workers share: the databases the launchers
 *	  serve, and the description of a worker.
 *
 *	  Read by a heap scan of pg_database, as PostgreSQL's own launchers
 *	  do: a launcher is connected to no database, and an index scan (such
 *	  as get_database_oid()'s) can need pg_class while the shared relcache
 *	  init file is being rebuilt after a restart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "toms.h"

/*
 * Every database (connectable_only: the connectable, non-template ones),
 * as a List of TomsDatabase, palloc'd in the caller's memory context.
 * Runs its own transaction: call it outside one.
 */
List *
toms_databases(bool connectable_only)
{
	List	   *dbs = NIL;
	MemoryContext cxt = CurrentMemoryContext;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;
		TomsDatabase *db;

		if (connectable_only && (!d->datallowconn || d->datistemplate))
			continue;
		old = MemoryContextSwitchTo(cxt);
		db = palloc(sizeof(TomsDatabase));
		db->oid = d->oid;
		namestrcpy(&db->name, NameStr(d->datname));
		dbs = lappend(dbs, db);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/*
 * Describe one of toms' workers: shared memory and a database connection,
 * entry point function of this library, its type, and -- for a worker of
 * one database (dboid valid, passed as its argument) -- a name that says
 * which.  Callers that want to hear of its start and exit set
 * bgw_notify_pid.
 */
void
toms_bgworker(BackgroundWorker *bgw, const char *function, const char *type, Oid dboid,
			  BgWorkerStartTime start, int restart)
{
	memset(bgw, 0, sizeof(*bgw));
	bgw->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw->bgw_start_time = start;
	bgw->bgw_restart_time = restart;
	snprintf(bgw->bgw_library_name, BGW_MAXLEN, "toms");
	snprintf(bgw->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(bgw->bgw_type, BGW_MAXLEN, "%s", type);
	if (OidIsValid(dboid))
		snprintf(bgw->bgw_name, BGW_MAXLEN, "%s for database %u", type, dboid);
	else
		snprintf(bgw->bgw_name, BGW_MAXLEN, "%s", type);
	bgw->bgw_main_arg = ObjectIdGetDatum(dboid);
}
