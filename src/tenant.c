/*-------------------------------------------------------------------------
 *
 * tenant.c
 *	  Tenant separation: toms.context, current_tenant(), protect().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
tenant_init(void)
{
}

#include "fmgr.h"

PG_FUNCTION_INFO_V1(toms_current_tenant);

Datum
toms_current_tenant(PG_FUNCTION_ARGS)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("no tenant context")));
	PG_RETURN_NULL();
}
