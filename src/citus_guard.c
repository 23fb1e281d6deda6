/*-------------------------------------------------------------------------
 *
 * citus_guard.c
 *	  The guard and Citus' own shard operations (issue 15,
 *	  docs/scaling.md).
 *
 *	  On a worker, the shards of a protected table are protected tables
 *	  (citus_protected.c): nobody, the table owner and the worker's
 *	  superuser included, may drop their policy, stop forcing row security
 *	  or drop them.  Citus itself must: it drops the source shard after a
 *	  move or split, and forwards to the shards the DDL of toms.protect()
 *	  and toms.unprotect() that the coordinator's guard already let pass.
 *	  Citus opens those sessions with an application_name of its own
 *	  ("citus_internal gpid=...", "citus_rebalancer gpid=..."), as the user
 *	  who acted on the coordinator (or the superuser, for its background
 *	  clean-up).  A session passes the guard's table checks when it has
 *	  such a name AND is a superuser or toms_admin -- the roles that may
 *	  already unprotect; as the table owner (Citus creates a moved shard as
 *	  its owner), only the copy of toms' sealed-column check trigger
 *	  and that of the read-audit marker the table carries pass.
 *	  Sessions of run_command_on_workers() ("citus_run_command") do not
 *	  pass: they run a user's text.
 *
 *	  A worker superuser who forges Citus' application_name passes; a
 *	  superuser can also change the server's configuration, which toms
 *	  cannot prevent either (docs/scaling.md, "Known limits").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_policy.h"
#include "commands/policy.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_clause.h"
#include "parser/parse_collate.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "toms.h"

/* application_name prefixes of Citus' own connections (connection_management.h) */
static const char *const citus_prefixes[] = {
	"citus_internal gpid=",
	"citus_rebalancer gpid=",
};

/* Did Citus open this session (by its application_name)? */
static bool
citus_session(void)
{
	const char *app = application_name;
	int			i;

	if (app == NULL || app[0] == '\0')
		return false;
	for (i = 0; i < lengthof(citus_prefixes); i++)
		if (strncmp(app, citus_prefixes[i], strlen(citus_prefixes[i])) == 0)
			return true;
	return false;
}

/* Is this session one Citus opened for an operation toms lets pass? */
bool
toms_citus_forwarded(void)
{
	Oid			admin;

	if (!citus_session())
		return false;
	if (superuser())
		return true;
	admin = get_role_oid("toms_admin", true);
	return OidIsValid(admin) && has_privs_of_role(GetUserId(), admin);
}

/*
 * Set while the utility statement being run is Citus' copy of the
 * read-audit marker onto a shard (marker_copy): the guard's checks of the
 * policy it creates (its expression calls toms.current_tenant(), which is
 * not leakproof) let it pass.  Every utility statement resets it first.
 */
static bool copying_marker = false;

bool
toms_citus_copying_marker(Oid classId)
{
	return copying_marker && classId == PolicyRelationId && citus_session();
}

/*
 * The USING expression of policy polname on relid, as stored, or NULL.
 */
static char *
policy_qual(Oid relid, const char *polname)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *qual = NULL;

	ScanKeyInit(&key[0], Anum_pg_policy_polrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&key[1], Anum_pg_policy_polname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(polname));
	scan = systable_beginscan(rel, PolicyPolrelidPolnameIndexId, true, NULL, 2, key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_policy_polqual, RelationGetDescr(rel), &isnull);

		if (!isnull)
			qual = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return qual;
}

/*
 * The copy of toms' read-audit marker (citus_protected.c) onto a shard, as
 * Citus makes it: FOR SELECT, TO PUBLIC, USING the shard's own tenant
 * filter (Citus re-creates every policy as permissive; the marker filters
 * the same either way) -- and only onto a shard whose table (its shell on
 * this node, which the guard keeps as toms set it) carries the marker too.
 */
static bool
marker_copy(CreatePolicyStmt *stmt)
{
	Oid			relid;
	Oid			table;
	char	   *filter;
	Relation	rel;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	Node	   *qual;
	bool		same;

	if (stmt->policy_name == NULL || strcmp(stmt->policy_name, TOMS_UNAUDITED_POLICY) != 0 ||
		stmt->with_check != NULL || stmt->qual == NULL ||
		stmt->cmd_name == NULL || strcmp(stmt->cmd_name, "select") != 0 ||
		list_length(stmt->roles) != 1 ||
		((RoleSpec *) linitial(stmt->roles))->roletype != ROLESPEC_PUBLIC)
		return false;
	relid = RangeVarGetRelid(stmt->table, AccessShareLock, true);
	table = OidIsValid(relid) ? toms_citus_table_of(relid) : InvalidOid;
	if (!OidIsValid(table) || table == relid ||
		!OidIsValid(get_relation_policy_oid(table, TOMS_UNAUDITED_POLICY, true)) ||
		(filter = policy_qual(relid, "toms_tenant")) == NULL)
		return false;

	/* the expression as CREATE POLICY will store it, against the filter's */
	rel = table_open(relid, AccessShareLock);
	pstate = make_parsestate(NULL);
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, NULL, false, false);
	addNSItemToQuery(pstate, nsitem, false, true, true);
	qual = transformWhereClause(pstate, copyObject(stmt->qual), EXPR_KIND_POLICY, "POLICY");
	assign_expr_collations(pstate, qual);
	same = equal(qual, stringToNode(filter));
	free_parsestate(pstate);
	table_close(rel, AccessShareLock);
	return same;
}

/* Does relid carry a permissive policy other than toms' own? */
static bool
other_permissive_policy(Oid relid)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_pg_policy_polrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, PolicyPolrelidPolnameIndexId, true, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_policy pol = (Form_pg_policy) GETSTRUCT(tup);

		found = pol->polpermissive && strcmp(NameStr(pol->polname), "toms_tenant") != 0 &&
			strcmp(NameStr(pol->polname), TOMS_UNAUDITED_POLICY) != 0;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * A policy created on a table or shard that carries toms' tenant filter,
 * on a node with Citus, in every session, Citus' own included.  Citus
 * copies a table's policies onto every new shard (distribution, moves,
 * splits, the rebalancer, its shell tables) from its catalog, without AS
 * RESTRICTIVE: a restrictive policy -- the owner's own, which the guard
 * allows because it can only narrow the filter -- would arrive permissive,
 * and a permissive USING (true) opens every tenant's rows.  So: toms' read-audit marker is
 * created restrictive, as toms makes it; any other permissive policy onto
 * a table or shard with the filter is refused, whichever of the two Citus
 * creates first (docs/scaling.md, "Known limits").
 */
static void
shard_policy_copy(CreatePolicyStmt *stmt)
{
	Oid			relid;
	Oid			table;

	/* only where Citus is installed (one node: guard.c's own checks) */
	if (stmt->policy_name == NULL || !toms_citus_installed())
		return;
	if (strcmp(stmt->policy_name, TOMS_UNAUDITED_POLICY) == 0)
	{
		stmt->permissive = false;
		return;
	}
	relid = RangeVarGetRelid(stmt->table, NoLock, true);
	if (!OidIsValid(relid))
		return;
	if (strcmp(stmt->policy_name, "toms_tenant") == 0)
	{
		if (other_permissive_policy(relid))
			TOMS_REFUSE(errmsg("cannot create policy \"toms_tenant\" on table \"%s\" with a permissive policy of its own",
							   stmt->table->relname),
						errhint("A permissive policy widens the tenant filter; drop it first."));
		return;
	}
	if (!stmt->permissive)
		return;
	table = toms_citus_table_of(relid);
	if (OidIsValid(get_relation_policy_oid(relid, "toms_tenant", true)) ||
		(OidIsValid(table) && OidIsValid(get_relation_policy_oid(table, "toms_tenant", true))))
		TOMS_REFUSE(errmsg("cannot create a permissive policy on protected table \"%s\"",
						   stmt->table->relname),
					errhint("A permissive policy widens the tenant filter; on Citus, a restrictive policy is copied to new shards as a permissive one."));
}

/*
 * The same for one utility statement: also, in a session Citus opened as
 * the table owner (it creates a moved or split shard as its owner), the
 * copy of toms' own sealed-column check trigger, which adds a check and
 * takes none away, and the copy of the read-audit marker the table
 * carries.
 */
bool
toms_citus_forwarded_stmt(Node *parsetree)
{
	CreateTrigStmt *stmt;

	copying_marker = false;
	if (parsetree != NULL && IsA(parsetree, CreatePolicyStmt))
		shard_policy_copy((CreatePolicyStmt *) parsetree);
	if (!citus_session())
		return false;
	if (toms_citus_forwarded())
		return true;
	if (parsetree != NULL && IsA(parsetree, CreatePolicyStmt))
		return copying_marker = marker_copy((CreatePolicyStmt *) parsetree);
	if (parsetree == NULL || !IsA(parsetree, CreateTrigStmt))
		return false;
	stmt = (CreateTrigStmt *) parsetree;
	return stmt->trigname != NULL && strncmp(stmt->trigname, "toms_sealed_check", 17) == 0 &&
		list_length(stmt->funcname) == 2 &&
		strcmp(strVal(linitial(stmt->funcname)), TOMS_SCHEMA) == 0 &&
		strcmp(strVal(lsecond(stmt->funcname)), "_sealed_check") == 0;
}

/*
 * Run one DDL statement of toms on this node only: Citus does not forward
 * it to the workers.  protect() and unprotect() set and drop the tenant
 * column's default this way on a Citus table, because Citus refuses to
 * change the distribution column; the default is evaluated where Citus
 * plans an INSERT, on the coordinator, which routes the row by it.
 */
void
toms_citus_local_ddl(const char *sql)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("citus.enable_ddl_propagation", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	toms_run_ddl(sql);
	AtEOXact_GUC(true, nest);
}

/*
 * Inside toms' own access to toms.tenant_keys (sealed_keys.c, within its
 * GUC nest level): on a Citus node the table is a reference table, and
 * toms.unseal() in a query Citus pushed down to a shard reads it with a
 * nested query, which Citus refuses unless told.  The read is local (every
 * node holds the table's copy) and returns nothing but wrapped keys.
 */
void
toms_citus_allow_nested(void)
{
	if (GetConfigOption("citus.allow_nested_distributed_execution", true, false) != NULL)
		(void) set_config_option("citus.allow_nested_distributed_execution", "on", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}
