/*-------------------------------------------------------------------------
 *
 * guard_fk.c
 *	  Foreign keys and unique keys around the tenant filter.  PostgreSQL
 *	  checks and carries out referential constraints as the table owner
 *	  and outside row security, and checks uniqueness over every row, so:
 *
 *	  - a foreign key into a protected table comes only from a protected
 *	    table, with the two tenant columns paired in the key: the new row
 *	    is in the writer's tenant, so the referenced row must be too, and
 *	    a failed check tells nothing about another tenant;
 *	  - a foreign key from a protected table never changes its tenant
 *	    column (ON UPDATE CASCADE / SET NULL / SET DEFAULT, ON DELETE SET
 *	    NULL / SET DEFAULT onto it), and cascades (ON DELETE/UPDATE
 *	    CASCADE, SET NULL, SET DEFAULT) only along a paired key, which
 *	    keeps them inside one tenant -- and a cascading delete into a table
 *	    with a subject column only with the subject columns paired too,
 *	    so it never reaches a subject hidden by a pending deletion;
 *	  - TRUNCATE ... CASCADE never reaches a protected table through the
 *	    tables that reference the named ones;
 *	  - a unique index or exclusion constraint has the tenant column
 *	    among its keys (otherwise a write answers whether another tenant
 *	    holds a value), and an exclusion operator is leakproof.
 *
 *	  toms_admin (and superusers) may add such keys: they are the ones who
 *	  vet what runs over every tenant's rows.  Keys that existed before
 *	  toms.protect() are not looked at (docs/tenancy.md, "Known limits").
 *	  Called by guard.c (object-access and ProcessUtility hooks).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/heap.h"
#include "catalog/namespace.h"
#include "catalog/indexing.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "commands/tablecmds.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "toms.h"


/* The int2[] or oid[] column of a catalog tuple, as a palloc'd array. */
static int
array_column(HeapTuple tup, TupleDesc desc, AttrNumber col, Oid elemtype, Datum **elems)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, col, desc, &isnull);
	int			n = 0;

	*elems = NULL;
	if (isnull)
		return 0;
	if (elemtype == INT2OID)
		deconstruct_array(DatumGetArrayTypeP(d), INT2OID, 2, true, TYPALIGN_SHORT,
						  elems, NULL, &n);
	else
		deconstruct_array(DatumGetArrayTypeP(d), OIDOID, sizeof(Oid), true, TYPALIGN_INT,
						  elems, NULL, &n);
	return n;
}

static bool
has_attnum(Datum *attnums, int n, AttrNumber attnum)
{
	int			i;

	for (i = 0; i < n; i++)
		if (DatumGetInt16(attnums[i]) == attnum)
			return true;
	return false;
}

static bool
changes_rows(char action)
{
	return action == FKCONSTR_ACTION_CASCADE || action == FKCONSTR_ACTION_SETNULL ||
		action == FKCONSTR_ACTION_SETDEFAULT;
}

static int
hint_pair(void)
{
	return errhint("Protect the referencing table and pair the tenant columns, e.g. FOREIGN KEY (tenant_id, x) REFERENCES t (tenant_id, y).");
}

static void
check_foreign_key(HeapTuple tup, TupleDesc desc)
{
	Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
	const TomsProtected *child = toms_protected(con->conrelid);
	const TomsProtected *parent = toms_protected(con->confrelid);
	AttrNumber	child_tenant;
	Datum	   *conkey,
			   *confkey,
			   *setcols;
	int			nkey,
				nfkey,
				nset,
				i;
	bool		paired = false;

	if (child == NULL && parent == NULL)
		return;
	if (child == NULL)
		TOMS_REFUSE(errmsg("cannot create a foreign key into protected table \"%s\" from table \"%s\", which is not protected",
						   get_rel_name(con->confrelid), get_rel_name(con->conrelid)),
					hint_pair());
	child_tenant = child->tenant_attnum;
	nkey = array_column(tup, desc, Anum_pg_constraint_conkey, INT2OID, &conkey);
	nfkey = array_column(tup, desc, Anum_pg_constraint_confkey, INT2OID, &confkey);
	for (i = 0; parent != NULL && i < nkey && i < nfkey; i++)
		if (DatumGetInt16(conkey[i]) == child_tenant &&
			DatumGetInt16(confkey[i]) == parent->tenant_attnum)
			paired = true;
	if (parent != NULL && !paired)
		TOMS_REFUSE(errmsg("cannot create a foreign key from \"%s\" into protected table \"%s\" without pairing the tenant columns",
						   get_rel_name(con->conrelid), get_rel_name(con->confrelid)),
					hint_pair());

	/* the referencing side is protected from here on */
	if (has_attnum(conkey, nkey, child_tenant))
	{
		bool		setnull_tenant = false;

		if (con->confdeltype == FKCONSTR_ACTION_SETNULL ||
			con->confdeltype == FKCONSTR_ACTION_SETDEFAULT)
		{
			nset = array_column(tup, desc, Anum_pg_constraint_confdelsetcols, INT2OID, &setcols);
			setnull_tenant = nset == 0 || has_attnum(setcols, nset, child_tenant);
		}
		if (changes_rows(con->confupdtype) || setnull_tenant)
			TOMS_REFUSE(errmsg("cannot create a foreign key whose action changes the tenant column of protected table \"%s\"",
							   get_rel_name(con->conrelid)),
						errhint("A referential action runs outside row security and would move rows to another tenant: use NO ACTION or RESTRICT for the tenant column."));
	}
	/*
	 * A subject hidden by stage 1 of its deletion (the restrictive policy
	 * toms_subject) is still there for a cascade, which runs outside row
	 * security: one tenant's visible parent row would take a hidden
	 * subject's child rows with it, before the grace period ends.
	 */
	if (paired && changes_rows(con->confdeltype) && child->subject_attnum != InvalidAttrNumber)
	{
		bool		subject_paired = false;

		for (i = 0; i < nkey && i < nfkey; i++)
			if (DatumGetInt16(conkey[i]) == child->subject_attnum &&
				parent->subject_attnum != InvalidAttrNumber &&
				DatumGetInt16(confkey[i]) == parent->subject_attnum)
				subject_paired = true;
		if (!subject_paired)
			TOMS_REFUSE(errmsg("cannot create a foreign key with a cascading delete into protected table \"%s\" without pairing the subject columns",
							   get_rel_name(con->conrelid)),
						errhint("A cascade ignores the subjects hidden by a pending deletion: pair the subject columns too, or use NO ACTION or RESTRICT."));
	}
	if (!paired && (changes_rows(con->confdeltype) || changes_rows(con->confupdtype)))
		TOMS_REFUSE(errmsg("cannot create a foreign key with a cascading action from protected table \"%s\" into \"%s\"",
						   get_rel_name(con->conrelid), get_rel_name(con->confrelid)),
					errhint("Without paired tenant columns, deleting or updating one referenced row would change every tenant's rows that reference it: use NO ACTION or RESTRICT."));
}

static void
check_exclusion(HeapTuple tup, TupleDesc desc)
{
	Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
	Datum	   *ops;
	int			n = array_column(tup, desc, Anum_pg_constraint_conexclop, OIDOID, &ops);
	int			i;

	if (toms_protected(con->conrelid) == NULL)
		return;
	for (i = 0; i < n; i++)
		if (!get_func_leakproof(get_opcode(DatumGetObjectId(ops[i]))))
			TOMS_REFUSE(errmsg("cannot add an exclusion constraint with an operator that is not leakproof on protected table \"%s\"",
							   get_rel_name(con->conrelid)),
						errhint("The operator compares rows of every tenant: only toms_admin may do this."));
}

/*
 * A CHECK constraint added validated is checked at once against every row
 * of the table (or of the columns of its domain): whether it can be added
 * answers a yes/no question about other tenants' values, whatever it
 * calls.  NOT VALID constraints check only the rows written from then on,
 * each by its writer.  Inherited ones (a new partition's) are not added
 * by anyone.
 */
static void
check_validated(Form_pg_constraint con)
{
	if (!con->convalidated || !con->conislocal)
		return;
	if (OidIsValid(con->conrelid) && toms_protected(con->conrelid) != NULL)
		TOMS_REFUSE(errmsg("cannot add a validated constraint to protected table \"%s\"",
						   get_rel_name(con->conrelid)),
					errhint("Whether it holds for every row tells about other tenants' rows: add it NOT VALID (toms_admin may validate it)."));
	if (OidIsValid(con->contypid) && toms_guard_domain_guarded(con->contypid))
		TOMS_REFUSE(errmsg("cannot add a validated constraint to domain \"%s\", which a protected table uses",
						   format_type_be(con->contypid)),
					errhint("Whether it holds for every row tells about other tenants' rows: add it NOT VALID (toms_admin may validate it)."));
}

/*
 * A constraint just created (object-access hook; its row is read with
 * SnapshotSelf, the command counter has not moved): foreign keys and
 * exclusion constraints.  The caller lets toms_admin pass.
 */
void
toms_guard_check_constraint_keys(Oid conoid)
{
	Relation	rel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key, Anum_pg_constraint_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(conoid));
	scan = systable_beginscan(rel, ConstraintOidIndexId, true, SnapshotSelf, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		char		contype = ((Form_pg_constraint) GETSTRUCT(tup))->contype;

		if (contype == CONSTRAINT_FOREIGN)
			check_foreign_key(tup, RelationGetDescr(rel));
		else if (contype == CONSTRAINT_EXCLUSION)
			check_exclusion(tup, RelationGetDescr(rel));
		else if (contype == CONSTRAINT_CHECK)
			check_validated((Form_pg_constraint) GETSTRUCT(tup));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * An index just created: a unique or exclusion index on a protected table
 * has the tenant column among its key columns.  The caller lets toms_admin
 * pass.
 */
void
toms_guard_check_unique_index(Oid indexid)
{
	Relation	rel = table_open(IndexRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key, Anum_pg_index_indexrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(indexid));
	scan = systable_beginscan(rel, IndexRelidIndexId, true, SnapshotSelf, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_index idx = (Form_pg_index) GETSTRUCT(tup);
		const TomsProtected *prot = toms_protected(idx->indrelid);
		bool		found = false;
		int			i;

		for (i = 0; prot != NULL && i < idx->indnkeyatts; i++)
			if (idx->indkey.values[i] == prot->tenant_attnum)
				found = true;
		if (prot != NULL && (idx->indisunique || idx->indisexclusion) && !found)
			TOMS_REFUSE(errmsg("cannot create a unique index or exclusion constraint without the tenant column on protected table \"%s\"",
							   get_rel_name(idx->indrelid)),
						errhint("Uniqueness over every tenant's rows tells a writer whether another tenant holds a value: make the tenant column a key column."));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* Add the tables with foreign keys into relids, and theirs, ... */
static List *
referencing_closure(List *relids)
{
	List	   *all = list_copy(relids);
	List	   *more = relids;

	while (more != NIL)
	{
		List	   *found = heap_truncate_find_FKs(more);
		ListCell   *lc;

		more = NIL;
		foreach(lc, found)
			if (!list_member_oid(all, lfirst_oid(lc)))
			{
				all = lappend_oid(all, lfirst_oid(lc));
				more = lappend_oid(more, lfirst_oid(lc));
			}
	}
	return all;
}

/*
 * TRUNCATE ... CASCADE also empties every table that references a named
 * one: refused (by anyone) when a protected table is among them.
 */
void
toms_guard_check_truncate(const TruncateStmt *stmt)
{
	List	   *relids = NIL;
	ListCell   *lc;

	if (stmt->behavior != DROP_CASCADE)
		return;
	foreach(lc, stmt->relations)
	{
		Oid			relid = RangeVarGetRelid((RangeVar *) lfirst(lc), NoLock, true);

		if (OidIsValid(relid))
			relids = lappend_oid(relids, relid);
	}
	foreach(lc, referencing_closure(relids))
	{
		Oid			relid = lfirst_oid(lc);

		if (toms_protected(relid) != NULL)
		{
			toms_audit_denied("truncate of protected table", NULL, relid, NULL);
			TOMS_REFUSE_RECORDED(errmsg("cannot truncate protected table \"%s\" through TRUNCATE ... CASCADE",
							   get_rel_name(relid)),
						errhint("TRUNCATE bypasses row level security; use toms.request_deletion() to delete a tenant's data."));
		}
	}
}
