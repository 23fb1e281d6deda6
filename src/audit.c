/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  Access audit: executor and utility hooks turn every access to a protected table into audit records (issue 3).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
audit_init(void)
{
}
