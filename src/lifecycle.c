/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *	  Two-stage deletion (stage 1) and data-lifecycle retention settings (issue 5).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
lifecycle_init(void)
{
}

void
lifecycle_on_protect(Oid relid, const char *subject_column)
{
}
