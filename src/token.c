/*-------------------------------------------------------------------------
 *
 * token.c
 *	  PASETO v4.public token verification (Ed25519, libsodium).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
token_init(void)
{
}
