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

bool
toms_token_verify(const char *token, TomsToken *out, const char **why)
{
	*why = "token malformed";
	return false;
}
