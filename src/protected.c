/*-------------------------------------------------------------------------
 *
 * protected.c
 *	  Core: which tables are under toms.protect(), and how (the tenant,
 *	  subject and sealed columns), cached per backend.
 *
 *	  Asked by every statement that touches a table, so the answer --
 *	  negative ones included -- is kept in a hash table in its own memory
 *	  context.  A relcache invalidation of a table drops its entry (and the
 *	  memory it holds); one of toms.protected_tables (protect, unprotect),
 *	  or of everything, resets the whole context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "toms.h"

/* relid -> TomsProtected (or a negative entry) */
typedef struct ProtEntry
{
	Oid			relid;			/* hash key */
	bool		is_protected;
	TomsProtected info;
} ProtEntry;

static MemoryContext prot_cxt = NULL;
static Oid	last_protected = InvalidOid;
static HTAB *prot_cache = NULL;

/* toms' own tables, never protected (resolved lazily) */
static Oid	watched_protected = InvalidOid;
static Oid	watched_tenants = InvalidOid;

static void
protected_relcache_cb(Oid relid)
{
	ProtEntry  *pe;

	if (!OidIsValid(relid) || relid == watched_protected || relid == watched_tenants)
	{
		if (prot_cxt)
			MemoryContextReset(prot_cxt);
		prot_cache = NULL;
		/* the tables may have been dropped and recreated */
		watched_protected = InvalidOid;
		watched_tenants = InvalidOid;
		return;
	}
	if (prot_cache &&
		(pe = hash_search(prot_cache, &relid, HASH_FIND, NULL)) != NULL)
	{
		if (pe->info.sensitive)
			pfree(pe->info.sensitive);
		hash_search(prot_cache, &relid, HASH_REMOVE, NULL);
	}
}

static bool
protected_row_cb(HeapTuple tup, TupleDesc desc, void *arg)
{
	ProtEntry  *pe = arg;
	bool		isnull;
	char	   *col;
	Datum		d;

	pe->is_protected = true;
	/* audit_reads: since 0.2.0 (true in 0.1.0's table, which lacks it) */
	pe->info.audit_reads = true;
	if (SPI_fnumber(desc, "audit_reads") > 0)
	{
		d = toms_tuple_datum(tup, desc, "audit_reads", &isnull);
		pe->info.audit_reads = isnull || DatumGetBool(d);
	}
	col = NameStr(*DatumGetName(toms_tuple_datum(tup, desc, "tenant_column", &isnull)));
	pe->info.tenant_attnum = get_attnum(pe->relid, col);
	pe->info.tenant_type = get_atttype(pe->relid, pe->info.tenant_attnum);
	d = toms_tuple_datum(tup, desc, "subject_column", &isnull);
	pe->info.subject_attnum = isnull ? InvalidAttrNumber :
		get_attnum(pe->relid, NameStr(*DatumGetName(d)));
	d = toms_tuple_datum(tup, desc, "sensitive", &isnull);
	if (!isnull)
	{
		ArrayType  *arr = DatumGetArrayTypeP(d);
		Datum	   *elems;
		int			n,
					i;

		deconstruct_array(arr, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR,
						  &elems, NULL, &n);
		if (n > 0)
		{
			pe->info.sensitive = MemoryContextAlloc(prot_cxt, sizeof(AttrNumber) * n);
			for (i = 0; i < n; i++)
				pe->info.sensitive[i] =
					get_attnum(pe->relid, NameStr(*DatumGetName(elems[i])));
			pe->info.nsensitive = n;
		}
	}
	return false;
}

const TomsProtected *
toms_protected(Oid relid)
{
	ProtEntry  *pe;
	bool		found;

	if (!OidIsValid(relid) || !toms_extension_exists())
		return NULL;
	if (!OidIsValid(watched_protected))
		watched_protected = toms_relid("protected_tables");
	if (!OidIsValid(watched_tenants))
		watched_tenants = toms_relid("tenants");
	if (relid == watched_protected || relid == watched_tenants)
		return NULL;

	if (prot_cache == NULL)
	{
		HASHCTL		ctl;

		if (prot_cxt == NULL)
			prot_cxt = AllocSetContextCreate(CacheMemoryContext, "toms protected tables",
											 ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ProtEntry);
		ctl.hcxt = prot_cxt;
		prot_cache = hash_create("toms protected tables", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	pe = hash_search(prot_cache, &relid, HASH_FIND, NULL);
	if (pe && pe->is_protected)
		toms_sql_version_warn();	/* older SQL objects: say what to run */
	if (pe)
	{
		if (pe->is_protected)
			last_protected = relid;
		return pe->is_protected ? &pe->info : NULL;
	}

	{
		ProtEntry	tmp;
		Oid			tbl = toms_relid("protected_tables");
		Oid			idx = toms_relid("protected_tables_pkey");
		Relation	rel;
		SysScanDesc scan;
		ScanKeyData key;
		HeapTuple	tup;
		Snapshot	snap;

		memset(&tmp, 0, sizeof(tmp));
		tmp.relid = relid;
		if (!OidIsValid(tbl) || !OidIsValid(idx))
			return NULL;
		rel = table_open(tbl, AccessShareLock);
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
		snap = toms_lookup_snapshot();
		scan = systable_beginscan(rel, idx, true, snap, 1, &key);
		if (HeapTupleIsValid(tup = systable_getnext(scan)))
			protected_row_cb(tup, RelationGetDescr(rel), &tmp);
		systable_endscan(scan);
		UnregisterSnapshot(snap);
		table_close(rel, AccessShareLock);
		/*
		 * Citus (issue 15): a shard of a protected table, on a worker.
		 * Every node audits what it executes: a shard's reads are recorded
		 * on its worker unless the table carries toms' marker policy of
		 * set_audit_reads(tbl, false), which Citus copies to every shard
		 * (citus_protected.c).
		 */
		if (!tmp.is_protected && prot_cache != NULL)
			tmp.is_protected = toms_citus_protected(relid, &tmp.info, prot_cxt);

		/* the scan may have processed invalidations that reset the cache */
		if (prot_cache == NULL)
			return tmp.is_protected ? toms_protected(relid) : NULL;
		pe = hash_search(prot_cache, &relid, HASH_ENTER, &found);
		pe->is_protected = tmp.is_protected;
		pe->info = tmp.info;
		pe->info.relid = relid;
	}
	if (pe->is_protected)
	{
		toms_sql_version_warn();
		last_protected = relid;
	}
	return pe->is_protected ? &pe->info : NULL;
}

/* The table toms_protected() last found protected (the guard's denials). */
Oid
toms_protected_last(void)
{
	return last_protected;
}

void
toms_protected_init(void)
{
	toms_on_relcache(protected_relcache_cb);
}
