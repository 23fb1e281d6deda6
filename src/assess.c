/*-------------------------------------------------------------------------
 *
 * assess.c
 *	  Self-assessment: toms.assess() (issue 7).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
assess_init(void)
{
}
