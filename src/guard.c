/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  ProcessUtility guard that keeps toms' policies from being weakened.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
guard_init(void)
{
}
