/*-------------------------------------------------------------------------
 *
 * tenant_id.c
 *	  The rules for a tenant id, in pure C (libc only, no backend call), so
 *	  that they can be fuzzed on their own (fuzz/tenant_id_fuzz.c).
 *	  context.c applies them to every id that is created, entered, or named
 *	  in a token.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

/*
 * What is wrong with a tenant id, or NULL.  A tenant id has 1 to
 * TOMS_MAX_TENANT_LEN bytes, no control characters, and does not start
 * with "v4." (toms.context reads such a value as a token).
 */
const char *
toms_tenant_id_problem(const char *tenant)
{
	const unsigned char *p;
	size_t		len = strlen(tenant);

	if (len == 0)
		return TOMS_TENANT_ID_EMPTY;
	if (len > TOMS_MAX_TENANT_LEN)
		return TOMS_TENANT_ID_TOO_LONG;
	for (p = (const unsigned char *) tenant; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return TOMS_TENANT_ID_CONTROL;
	if (strncmp(tenant, "v4.", 3) == 0)
		return TOMS_TENANT_ID_V4;
	return NULL;
}
