/*-------------------------------------------------------------------------
 *
 * databases.c
 *	  The databases toms' launchers serve.
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
