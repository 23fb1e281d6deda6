/*-------------------------------------------------------------------------
 *
 * citus_catalog.c
 *	  Core: where toms' own tables keep their rows on a Citus node
 *	  (issue 15, docs/scaling.md).
 *
 *	  On a Citus cluster toms.citus_setup() makes toms' administrative
 *	  tables (tenants, members, grants, trusted keys, tenant keys, ...)
 *	  reference tables: every administrative act is then one distributed
 *	  transaction (two-phase commit) writing the same rows on every node,
 *	  and citus_add_node() / replicate_reference_tables() copy them to a
 *	  new node.  A reference table's rows live in its one shard,
 *	  "<table>_<shardid>", which every node with a placement holds; the
 *	  table itself (the "shell") stays empty.  toms reads its tables
 *	  without SPI (catalog.c, protected.c, token.c), so on such a node it
 *	  must read the local shard: toms_citus_local_relid() maps a table or
 *	  index of toms' schema to the local shard's one.
 *
 *	  Citus' catalog is read from its tables (pg_dist_shard), not through
 *	  Citus' C functions, so toms does not link against Citus and works
 *	  unchanged where Citus is absent (there is no pg_dist_shard).
 *
 *	  Depends on nothing else of toms.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "toms.h"

/* pg_dist_shard (Citus): logicalrelid regclass, shardid int8, ... */
#define DIST_SHARD_LOGICALRELID 1
#define DIST_SHARD_SHARDID		2

/*
 * The shard id of Citus table "relid" if it has exactly one shard (a
 * reference table), 0 if it is not a Citus table or Citus is not installed.
 */
static int64
reference_shard_id(Oid relid)
{
	Oid			dist_shard = get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE);
	Oid			dist_shard_idx = get_relname_relid("pg_dist_shard_logical_relid_index",
												   PG_CATALOG_NAMESPACE);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	int64		shardid = 0;
	int			n = 0;

	if (!OidIsValid(dist_shard) || !OidIsValid(dist_shard_idx))
		return 0;
	rel = table_open(dist_shard, AccessShareLock);
	ScanKeyInit(&key, DIST_SHARD_LOGICALRELID, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, dist_shard_idx, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, DIST_SHARD_SHARDID, RelationGetDescr(rel), &isnull);

		if (!isnull)
			shardid = DatumGetInt64(d);
		n++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (n > 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a table of toms is distributed over several shards"),
				 errdetail("toms' tables may only be Citus reference tables (toms.citus_setup())."),
				 errhint("Undistribute the table with undistribute_table() and run toms.citus_setup().")));
	return shardid;
}

/* pg_dist_placement (Citus): placementid, shardid, shardstate, shardlength, groupid */
#define DIST_PLACEMENT_SHARDID	2
#define DIST_PLACEMENT_GROUPID	5
/* pg_dist_local_group (Citus): groupid, one row */
#define DIST_LOCAL_GROUPID		1

/*
 * Does this node's group hold a placement of shard "shardid" in Citus'
 * metadata?  A node re-activated (citus_activate_node) still has the shard
 * it held before it was disabled, but the administrative acts made
 * meanwhile skipped it: Citus drops the placement from the metadata on
 * activation, and the stale shard must not be read until Citus has copied
 * the table again (docs/scaling.md).
 */
static bool
local_placement(int64 shardid)
{
	Oid			placement = get_relname_relid("pg_dist_placement", PG_CATALOG_NAMESPACE);
	Oid			placement_idx = get_relname_relid("pg_dist_placement_shardid_index",
												  PG_CATALOG_NAMESPACE);
	Oid			local_group = get_relname_relid("pg_dist_local_group", PG_CATALOG_NAMESPACE);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		isnull;
	int32		groupid = -1;
	bool		found = false;

	if (!OidIsValid(placement) || !OidIsValid(placement_idx) || !OidIsValid(local_group))
		return false;
	rel = table_open(local_group, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum		d = heap_getattr(tup, DIST_LOCAL_GROUPID, RelationGetDescr(rel), &isnull);

		if (!isnull)
			groupid = DatumGetInt32(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (groupid < 0)
		return false;

	rel = table_open(placement, AccessShareLock);
	ScanKeyInit(&key, DIST_PLACEMENT_SHARDID, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(shardid));
	scan = systable_beginscan(rel, placement_idx, true, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum		d = heap_getattr(tup, DIST_PLACEMENT_GROUPID, RelationGetDescr(rel), &isnull);

		found = !isnull && DatumGetInt32(d) == groupid;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The relation toms reads for its table or index "relname" in schema
 * "nsp", whose own OID is "relid": relid itself, or, when its table is a
 * Citus reference table, the same-named relation of the local shard.  A
 * reference table without a placement on this node gives InvalidOid: its
 * rows are not here (a node being added has the metadata before its
 * copy), and reading the empty shell would make every tenant unknown; or
 * they are stale (a node re-activated keeps its old shard, which Citus no
 * longer counts as a placement).
 * The callers fail closed: no tenant, no trusted key, and
 * toms_scan_by_text() raises toms_citus_no_copy().
 */
Oid
toms_citus_local_relid(Oid nsp, const char *relname, Oid relid)
{
	Oid			table = relid;
	int64		shardid;
	char		shardname[NAMEDATALEN * 2];

	if (!OidIsValid(relid))
		return relid;
	if (get_rel_relkind(relid) == RELKIND_INDEX)
		table = IndexGetRelation(relid, false);
	shardid = reference_shard_id(table);
	if (shardid == 0)
		return relid;
	snprintf(shardname, sizeof(shardname), "%s_" INT64_FORMAT, relname, shardid);
	if (strlen(shardname) >= NAMEDATALEN)
		elog(ERROR, "toms: shard name of \"%s\" is too long", relname);
	if (!local_placement(shardid))
		return InvalidOid;
	return get_relname_relid(shardname, nsp);
}

/* The error for toms' table "relname" that has no copy on this node. */
void
toms_citus_no_copy(const char *relname)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("toms' administrative tables have no copy on this node"),
			 errdetail("toms.%s is a Citus reference table without a placement on this node.",
					   relname),
			 errhint("The coordinator's lifecycle worker copies them to a node added or re-activated; see its log, or run SELECT toms.citus_setup() there.")));
}
