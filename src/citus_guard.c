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
 *	  already unprotect.  Sessions of run_command_on_workers()
 *	  ("citus_run_command") do not pass: they run a user's text.
 *
 *	  A worker superuser who forges Citus' application_name passes; a
 *	  superuser can also change the server's configuration, which toms
 *	  cannot prevent either (docs/scaling.md, "Known limits").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"

#include "toms.h"

/* application_name prefixes of Citus' own connections (connection_management.h) */
static const char *const citus_prefixes[] = {
	"citus_internal gpid=",
	"citus_rebalancer gpid=",
};

/* Is this session one Citus opened for an operation toms lets pass? */
bool
toms_citus_forwarded(void)
{
	const char *app = application_name;
	Oid			admin;
	int			i;
	bool		citus = false;

	if (app == NULL || app[0] == '\0')
		return false;
	for (i = 0; i < lengthof(citus_prefixes); i++)
		if (strncmp(app, citus_prefixes[i], strlen(citus_prefixes[i])) == 0)
			citus = true;
	if (!citus)
		return false;
	if (superuser())
		return true;
	admin = get_role_oid("toms_admin", true);
	return OidIsValid(admin) && has_privs_of_role(GetUserId(), admin);
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
