/*-------------------------------------------------------------------------
 *
 * audit_worker.c
 *	  Background worker that drains the shared audit queue and hash-chains the trail (issue 3).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
audit_worker_init(void)
{
}
