/*-------------------------------------------------------------------------
 *
 * sealed.c
 *	  The toms.sealed type, per-tenant keys and the master key (issue 4).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
sealed_init(void)
{
}

void
sealed_on_protect(Oid relid, int ncols, char **colnames)
{
	if (ncols > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sensitive columns are not supported yet")));
}
