/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Core: finding toms' own objects and reading its tables without SPI,
 *	  and the one place that registers cache-invalidation callbacks.
 *
 *	  PostgreSQL allows an extension few relcache callbacks (ten for the
 *	  whole server); toms registers one, here, and the parts that cache
 *	  something about relations register with toms_on_relcache(), in the
 *	  order they are set up.  Syscache callbacks likewise go through
 *	  CacheRegisterSyscacheCallback().
 *
 *	  The version check: a library newer than the SQL objects installed
 *	  in a database (toms.so of 0.2.0, CREATE EXTENSION ... VERSION '0.1.0'
 *	  or a package upgrade not followed by ALTER EXTENSION toms UPDATE)
 *	  keeps working where the older objects suffice; a session is told
 *	  once, by a WARNING, what to run, and where the library needs a
 *	  column the older tables lack it refuses with the same hint rather
 *	  than guess (docs/operations.md, "Upgrades").
 *
 *	  Depends on nothing else of toms.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "toms.h"

PG_FUNCTION_INFO_V1(toms_invalidate_trigger);

#define TOMS_MAX_CALLBACKS 8

/* Set while toms itself runs DDL through toms_run_ddl(). */
static bool ddl_in_progress = false;

static toms_relcache_cb relcache_cbs[TOMS_MAX_CALLBACKS];
static int	n_relcache_cbs = 0;

/* told when this transaction changes toms' tenant tables (the trigger) */
static toms_change_cb tenants_change_cb = NULL;

/*
 * toms' schema, and whether the extension is installed in this database:
 * asked by every statement, so the two syscache lookups are remembered
 * until pg_namespace or pg_class changes (the invalidation that would
 * refresh the syscache resets this too, so it is never stale).
 */
static bool ext_cache_valid = false;
static Oid	ext_nsp = InvalidOid;
static bool ext_installed = false;

/*
 * The installed version (pg_extension.extversion): remembered with the
 * above while it is the library's; while it is not, read again in every
 * transaction, so that another session's ALTER EXTENSION toms UPDATE is
 * seen at once.
 */
static char ext_version[NAMEDATALEN];
static bool ext_version_valid = false;
static LocalTransactionId ext_version_lxid = InvalidLocalTransactionId;
static bool version_warned = false;

/*
 * Citus (issue 15): the relation toms reads for each of its tables and
 * indexes (citus_catalog.c: the local shard of a reference table), by
 * name; forgotten with the rest of this cache.
 */
#define TOMS_MAX_LOCAL_RELS 32
typedef struct LocalRel
{
	char		name[NAMEDATALEN];
	Oid			own;			/* the table's or index's own OID */
	Oid			relid;
} LocalRel;
static LocalRel local_rels[TOMS_MAX_LOCAL_RELS];
static int	n_local_rels = 0;

static void
ext_cache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	ext_cache_valid = false;
	n_local_rels = 0;
	ext_version_valid = false;
}

static void
read_ext_version(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;

	ext_version[0] = '\0';
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("toms"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

		if (!isnull)
			text_to_cstring_buffer(DatumGetTextPP(d), ext_version, sizeof(ext_version));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	ext_version_valid = true;
	ext_version_lxid = MyProc ? MyProc->lxid : InvalidLocalTransactionId;
}

const char *
toms_sql_version(void)
{
	if (!IsTransactionState())
		return NULL;
	if (!ext_version_valid ||
		(strcmp(ext_version, TOMS_LIB_VERSION) != 0 &&
		 (MyProc == NULL || MyProc->lxid != ext_version_lxid)))
		read_ext_version();
	return ext_version[0] ? ext_version : NULL;
}

/* Installed and of the library's version (not installed: true). */
bool
toms_sql_version_current(void)
{
	const char *v = toms_sql_version();

	return v == NULL || strcmp(v, TOMS_LIB_VERSION) == 0;
}

/*
 * An older (or newer) version installed: say what to run, once a session,
 * to a client (not while CREATE or ALTER EXTENSION runs its script).
 * Called where a session uses what toms enforces, a protected table
 * (protected.c); a session that only reads toms' own tables is not told.
 */
void
toms_sql_version_warn(void)
{
	const char *v;

	if (version_warned || creating_extension || MyBackendType != B_BACKEND ||
		!ext_installed || toms_sql_version_current())
		return;
	v = toms_sql_version();
	version_warned = true;
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("extension \"toms\" is installed at version %s, its library is version %s",
					v, TOMS_LIB_VERSION),
			 errdetail("toms works with the older SQL objects where they suffice and refuses what needs the newer ones."),
			 errhint("Run ALTER EXTENSION toms UPDATE in this database.")));
}

static void
ext_cache_fill(void)
{
	ext_nsp = get_namespace_oid(TOMS_SCHEMA, true);
	ext_installed = OidIsValid(ext_nsp) &&
		OidIsValid(get_relname_relid("protected_tables", ext_nsp));
	ext_cache_valid = true;
}

/* A column the library needs is missing from one of toms' tables. */
static void
missing_column(TupleDesc desc, const char *colname)
{
	if (!toms_sql_version_current())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("toms table lacks column \"%s\" of version %s", colname, TOMS_LIB_VERSION),
				 errdetail("The SQL objects of toms in this database are of version %s.", toms_sql_version()),
				 errhint("Run ALTER EXTENSION toms UPDATE in this database.")));
	elog(ERROR, "toms table lacks column \"%s\"", colname);
}

Oid
toms_schema_oid(void)
{
	if (!ext_cache_valid)
		ext_cache_fill();
	return ext_nsp;
}

bool
toms_extension_exists(void)
{
	if (!IsTransactionState())
		return false;
	if (!ext_cache_valid)
		ext_cache_fill();
	return ext_installed;
}

Oid
toms_relid(const char *relname)
{
	Oid			nsp = toms_schema_oid();
	Oid			own;
	Oid			relid;
	int			i;

	if (!OidIsValid(nsp))
		return InvalidOid;
	for (i = 0; i < n_local_rels; i++)
		if (strcmp(local_rels[i].name, relname) == 0)
			return local_rels[i].relid;
	own = get_relname_relid(relname, nsp);
	relid = toms_citus_local_relid(nsp, relname, own);
	/* the lookups may have processed invalidations that reset the cache */
	if (OidIsValid(relid) && ext_cache_valid && n_local_rels < TOMS_MAX_LOCAL_RELS &&
		strlen(relname) < NAMEDATALEN)
	{
		strlcpy(local_rels[n_local_rels].name, relname, NAMEDATALEN);
		local_rels[n_local_rels].own = own;
		local_rels[n_local_rels++].relid = relid;
	}
	return relid;
}


/*
 * The snapshot for reading toms' own tables: the latest committed state, so
 * a revoked membership or distrusted key stops working at once.  A parallel
 * worker cannot take a new snapshot; it uses the leader's.  The caller
 * unregisters it.
 */
Snapshot
toms_lookup_snapshot(void)
{
	if (IsInParallelMode())
		return RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	return RegisterSnapshot(GetLatestSnapshot());
}

/*
 * Scan one of toms' tables with an equality key on a text column, through
 * the named index.  No SPI: this runs inside policy evaluation, and must
 * neither recurse into the executor hooks nor depend on the caller's
 * privileges on toms' tables.
 */
void
toms_scan_by_text(const char *relname, const char *indexname, AttrNumber attnum,
				  const char *value, toms_row_cb cb, void *arg)
{
	Oid			relid = toms_relid(relname);
	Oid			indexid = toms_relid(indexname);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Snapshot	snap;

	if ((!OidIsValid(relid) || !OidIsValid(indexid)) && OidIsValid(toms_schema_oid()) &&
		OidIsValid(get_relname_relid(relname, toms_schema_oid())))
		toms_citus_no_copy(relname);	/* Citus: the rows are not on this node */
	if (!OidIsValid(relid) || !OidIsValid(indexid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"toms\" is not installed in this database")));

	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, attnum, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(value));
	snap = toms_lookup_snapshot();
	scan = systable_beginscan(rel, indexid, true, snap, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		if (!cb(tup, RelationGetDescr(rel), arg))
			break;
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
}

char *
toms_tuple_text(HeapTuple tup, TupleDesc desc, const char *colname)
{
	int			attnum = SPI_fnumber(desc, colname);
	bool		isnull;
	Datum		d;

	if (attnum <= 0)
		missing_column(desc, colname);
	d = heap_getattr(tup, attnum, desc, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

Datum
toms_tuple_datum(HeapTuple tup, TupleDesc desc, const char *colname, bool *isnull)
{
	int			attnum = SPI_fnumber(desc, colname);

	if (attnum <= 0)
		missing_column(desc, colname);
	return heap_getattr(tup, attnum, desc, isnull);
}


/*
 * Statement trigger on toms' tenant tables: announce the change to every
 * backend's context cache.  Relcache invalidations are transactional: other
 * backends see them when this transaction commits, this one at once.
 */
Datum
toms_invalidate_trigger(PG_FUNCTION_ARGS)
{
	Oid			tenants = toms_relid("tenants");

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "toms_invalidate_trigger: not called by trigger manager");
	if (OidIsValid(tenants))
		CacheInvalidateRelcacheByRelid(tenants);
	if (tenants_change_cb)
		tenants_change_cb(TRIGGER_FIRED_BY_INSERT(((TriggerData *) fcinfo->context)->tg_event));
	return PointerGetDatum(NULL);
}

/*
 * cb(added_only) whenever a transaction changes toms' tenant tables (one
 * listener); added_only: the statement only inserted rows.
 */
void
toms_on_tenants_change(toms_change_cb cb)
{
	tenants_change_cb = cb;
}


/* ----------------------------------------------------------------
 * DDL on toms' own behalf
 * ----------------------------------------------------------------
 */

/*
 * Run one DDL statement through SPI on toms' own behalf (protect,
 * unprotect and what they delegate): guard.c lets it pass.  The caller
 * must be inside SPI_connect().
 */
void
toms_run_ddl(const char *sql)
{
	bool		save = ddl_in_progress;

	ddl_in_progress = true;
	PG_TRY();
	{
		int			rc = SPI_execute(sql, false, 0);

		if (rc < 0)
			elog(ERROR, "toms could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	}
	PG_FINALLY();
	{
		ddl_in_progress = save;
	}
	PG_END_TRY();
}

/* Is toms running DDL of its own (toms_run_ddl)? */
bool
toms_ddl_in_progress(void)
{
	return ddl_in_progress;
}

/* ----------------------------------------------------------------
 * Invalidation registry
 * ----------------------------------------------------------------
 */
static void
catalog_relcache_callback(Datum arg, Oid relid)
{
	int			i;

	/*
	 * Citus invalidates a table's relcache when its shards or placements
	 * change (a node re-activated loses its placement): the local shard is
	 * then looked up again.
	 */
	for (i = 0; i < n_local_rels; i++)
		if (!OidIsValid(relid) || local_rels[i].own == relid)
		{
			n_local_rels = 0;
			break;
		}

	for (i = 0; i < n_relcache_cbs; i++)
		relcache_cbs[i] (relid);
}

/* cb(relid) on every relcache invalidation; InvalidOid means all relations. */
void
toms_on_relcache(toms_relcache_cb cb)
{
	if (n_relcache_cbs >= TOMS_MAX_CALLBACKS)
		elog(ERROR, "too many toms relcache callbacks");
	relcache_cbs[n_relcache_cbs++] = cb;
}

void
toms_catalog_init(void)
{
	CacheRegisterRelcacheCallback(catalog_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, ext_cache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(RELNAMENSP, ext_cache_callback, (Datum) 0);
}
