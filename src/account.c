/*-------------------------------------------------------------------------
 *
 * account.c
 *	  Account security: password policy, login audit and lock-out, TLS requirement (issue 6).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
account_init(void)
{
}
