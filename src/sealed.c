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
