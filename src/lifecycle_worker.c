/*-------------------------------------------------------------------------
 *
 * lifecycle_worker.c
 *	  Background worker for deletion stage 2 and retention (issue 5).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
lifecycle_worker_init(void)
{
}
