/*-------------------------------------------------------------------------
 *
 * citus_protected.c
 *	  Core: the shards of a protected table are protected tables
 *	  (issue 15, docs/scaling.md).
 *
 *	  toms.protected_tables names tables by OID (regclass), which differ
 *	  between nodes, and a table protected before it is distributed does
 *	  not exist on the workers yet; so it stays per node, written on the
 *	  coordinator.  On the workers the protection is what Citus copies: the
 *	  catalog policy toms_tenant, which Citus creates on the shell table
 *	  and on every shard (create_distributed_table of a protected table,
 *	  CREATE POLICY propagated by protect() of a distributed one, shard
 *	  copies, moves and splits) in the same distributed transaction.  A
 *	  Citus table or shard that carries toms_tenant and is not registered
 *	  on this node is protected, with:
 *	    - the tenant column: the one column the policy depends on
 *	      (pg_depend, recorded by CREATE POLICY);
 *	    - the sensitive columns: the columns of type toms.sealed;
 *	    - no subject column (deletions run on the coordinator);
 *	    - per-statement read records unless the table also carries
 *	      toms' marker policy toms_reads_unaudited (below).
 *	  Removing the policy is what the guard refuses, on every node.
 *
 *	  The per-table read-audit switch (toms.protect(..., audit_reads),
 *	  toms.set_audit_reads()) is a column of toms.protected_tables, which
 *	  the workers do not share; on a node with Citus, toms also puts it
 *	  where Citus carries it to every shard, as the policy does: a table
 *	  whose reads are not audited carries the policy
 *	  toms_reads_unaudited (FOR SELECT, USING the tenant filter itself,
 *	  so that it changes nothing, restrictive or permissive).  Only toms
 *	  creates or drops it (guard.c refuses everyone else, superusers
 *	  included; citus_guard.c lets Citus copy it onto a new shard); its
 *	  absence means "audited", so losing it fails safe.
 *
 *	  Citus' catalog is read from its tables (pg_dist_partition,
 *	  pg_dist_shard), never through Citus' C functions.
 *
 *	  Depends on catalog.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_type.h"
#include "commands/policy.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "toms.h"

#define DIST_SHARD_LOGICALRELID 1
#define DIST_SHARD_SHARDID		2

/*
 * Does index "indexname" of pg_catalog find a row of "relname" with column
 * attnum = key?  The first column of both tables is logicalrelid.
 */
static bool
dist_catalog_has(const char *relname, const char *indexname, AttrNumber attnum,
				 Oid procedure, Datum key, Oid *logicalrelid)
{
	Oid			rel_oid = get_relname_relid(relname, PG_CATALOG_NAMESPACE);
	Oid			idx_oid = get_relname_relid(indexname, PG_CATALOG_NAMESPACE);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData skey;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(rel_oid) || !OidIsValid(idx_oid))
		return false;
	rel = table_open(rel_oid, AccessShareLock);
	ScanKeyInit(&skey, attnum, BTEqualStrategyNumber, procedure, key);
	scan = systable_beginscan(rel, idx_oid, true, NULL, 1, &skey);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;

		found = true;
		if (logicalrelid)
			*logicalrelid = DatumGetObjectId(heap_getattr(tup, DIST_SHARD_LOGICALRELID,
														  RelationGetDescr(rel), &isnull));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The Citus table relid belongs to: itself if it is a Citus table
 * (pg_dist_partition), its table if it is a shard ("<table>_<shardid>" in
 * the table's schema, listed in pg_dist_shard), else InvalidOid.
 */
/* Is Citus installed in this database (its catalog present)? */
bool
toms_citus_installed(void)
{
	return OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE));
}

Oid
toms_citus_table_of(Oid relid)
{
	char	   *relname;
	char	   *us;
	char	   *end;
	int64		shardid;
	Oid			logical = InvalidOid;

	if (!toms_citus_installed())
		return InvalidOid;
	if (dist_catalog_has("pg_dist_partition", "pg_dist_partition_logical_relid_index",
						 DIST_SHARD_LOGICALRELID, F_OIDEQ, ObjectIdGetDatum(relid), NULL))
		return relid;
	relname = get_rel_name(relid);
	if (relname == NULL || (us = strrchr(relname, '_')) == NULL || us[1] == '\0')
		return InvalidOid;
	errno = 0;
	shardid = strtoi64(us + 1, &end, 10);
	if (errno != 0 || *end != '\0' || shardid <= 0)
		return InvalidOid;
	if (!dist_catalog_has("pg_dist_shard", "pg_dist_shard_shardid_index",
						  DIST_SHARD_SHARDID, F_INT8EQ, Int64GetDatum(shardid), &logical) ||
		!OidIsValid(logical) ||
		get_rel_namespace(logical) != get_rel_namespace(relid))
		return InvalidOid;
	/* the shard's name is the table's name (Citus may shorten long ones) */
	{
		char	   *tname = get_rel_name(logical);

		if (tname == NULL || strncmp(tname, relname, us - relname) != 0)
			return InvalidOid;
	}
	return logical;
}

/* The one column of relid that policy polid depends on, or 0 (none, several). */
static AttrNumber
policy_column(Oid polid, Oid relid)
{
	Relation	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	AttrNumber	attnum = InvalidAttrNumber;
	int			n = 0;

	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(PolicyRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(polid));
	scan = systable_beginscan(rel, DependDependerIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend d = (Form_pg_depend) GETSTRUCT(tup);

		/* USING and WITH CHECK each record the column */
		if (d->refclassid == RelationRelationId && d->refobjid == relid && d->refobjsubid > 0 &&
			d->refobjsubid != attnum)
		{
			attnum = d->refobjsubid;
			n++;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return n == 1 ? attnum : InvalidAttrNumber;
}

/*
 * Is relid, not registered in toms.protected_tables on this node, a Citus
 * table or shard carrying toms' policy?  If so, fill info (sensitive
 * columns allocated in cxt) and return true.
 */
bool
toms_citus_protected(Oid relid, TomsProtected *info, MemoryContext cxt)
{
	Oid			polid;
	Oid			sealed;
	int			natts;
	int			i;

	if (!OidIsValid(toms_citus_table_of(relid)))
		return false;
	polid = get_relation_policy_oid(relid, "toms_tenant", true);
	if (!OidIsValid(polid))
		return false;
	info->relid = relid;
	info->tenant_attnum = policy_column(polid, relid);
	if (info->tenant_attnum == InvalidAttrNumber)
		return false;
	info->tenant_type = get_atttype(relid, info->tenant_attnum);
	info->subject_attnum = InvalidAttrNumber;
	info->audit_reads = !OidIsValid(get_relation_policy_oid(relid, TOMS_UNAUDITED_POLICY, true));
	info->nsensitive = 0;
	info->sensitive = NULL;
	sealed = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("sealed"),
							 ObjectIdGetDatum(toms_schema_oid()));
	if (!OidIsValid(sealed))
		return true;
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (!HeapTupleIsValid(tup))
			return false;
		natts = ((Form_pg_class) GETSTRUCT(tup))->relnatts;
		ReleaseSysCache(tup);
	}
	for (i = 1; i <= natts; i++)
	{
		Oid			typ = get_atttype(relid, i);

		if (OidIsValid(typ) && getBaseType(typ) == sealed)
		{
			if (info->sensitive == NULL)
				info->sensitive = MemoryContextAlloc(cxt, sizeof(AttrNumber) * natts);
			info->sensitive[info->nsensitive++] = i;
		}
	}
	return true;
}

/*
 * protect() and set_audit_reads() of relid, inside SPI: on a node with
 * Citus, keep the marker policy in step with toms.protected_tables, so
 * that Citus copies it to the shards (now, or when the table is
 * distributed later).  Citus forwards the CREATE or DROP POLICY of a
 * distributed table to its shards in the same distributed transaction.
 *
 * The marker filters exactly what toms_tenant filters: restrictive here,
 * but Citus re-creates every policy on a new shard as permissive (its
 * deparser drops AS RESTRICTIVE), and the tenant filter ANDed or ORed with
 * itself is the tenant filter -- where USING (true) would, as a permissive
 * copy, open every row.
 */
void
toms_citus_audit_reads(Oid relid, bool on)
{
	bool		marked;
	char	   *qualname;
	Datum		arg = ObjectIdGetDatum(relid);
	Oid			argtype = OIDOID;
	char	   *filter;

	if (!toms_citus_installed())
		return;
	marked = OidIsValid(get_relation_policy_oid(relid, TOMS_UNAUDITED_POLICY, true));
	if (marked == !on)
		return;
	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										  get_rel_name(relid));
	if (on)
	{
		toms_run_ddl(psprintf("DROP POLICY " TOMS_UNAUDITED_POLICY " ON %s", qualname));
		return;
	}
	/* toms' functions run with search_path = pg_catalog: qualified names */
	if (SPI_execute_with_args("SELECT pg_catalog.pg_get_expr(polqual, polrelid) FROM pg_catalog.pg_policy"
							  " WHERE polrelid = $1 AND polname = 'toms_tenant'",
							  1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1 ||
		(filter = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)) == NULL)
		elog(ERROR, "policy \"toms_tenant\" of table \"%s\" not found", get_rel_name(relid));
	toms_run_ddl(psprintf("CREATE POLICY " TOMS_UNAUDITED_POLICY " ON %s AS RESTRICTIVE"
						  " FOR SELECT TO PUBLIC USING (%s)", qualname, filter));
}
