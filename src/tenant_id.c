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

/*
 * A tenant id is compared with an int4/int8 or uuid tenant column through a
 * cast, and PostgreSQL's input functions accept many spellings of one value
 * ("042", "+42", " 42" are all 42; a uuid may be upper case, in braces, or
 * without hyphens).  Two such spellings would be two tenants reading the
 * same rows, so create_tenant() takes only the canonical spelling: the one
 * the column type prints.  These functions write the canonical spelling of
 * an id that a cast would read as a number or a uuid into canon (at least
 * TOMS_MAX_TENANT_LEN + 1 bytes) and return true; they return false for an
 * id no such cast accepts.  The rules are those of PostgreSQL 15's int8in
 * and uuid_in, restated here.
 */
static bool
canonical_int(const char *id, char *canon)
{
	const char *p = id;
	const char *digits;
	bool		neg = false;
	size_t		n;

	while (*p == ' ')
		p++;
	if (*p == '+' || *p == '-')
		neg = (*p++ == '-');
	if (*p < '0' || *p > '9')
		return false;
	while (*p == '0' && p[1] >= '0' && p[1] <= '9')
		p++;
	digits = p;
	while (*p >= '0' && *p <= '9')
		p++;
	n = p - digits;
	while (*p == ' ')
		p++;
	if (*p != '\0' || n > 19)
		return false;
	if (n == 1 && digits[0] == '0')
		neg = false;
	if (neg)
		*canon++ = '-';
	memcpy(canon, digits, n);
	canon[n] = '\0';
	return true;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
canonical_uuid(const char *id, char *canon)
{
	static const char hex[] = "0123456789abcdef";
	const char *p = id;
	bool		braces = (*p == '{');
	int			i;

	if (braces)
		p++;
	for (i = 0; i < 16; i++)
	{
		if (hexval(p[0]) < 0 || hexval(p[1]) < 0)
			return false;
		*canon++ = hex[hexval(p[0])];
		*canon++ = hex[hexval(p[1])];
		p += 2;
		if (i == 3 || i == 5 || i == 7 || i == 9)
			*canon++ = '-';
		/* uuid_in takes a hyphen after any group of four digits */
		if (*p == '-' && i % 2 == 1 && i < 15)
			p++;
	}
	if (braces && *p++ != '}')
		return false;
	*canon = '\0';
	return *p == '\0';
}

/*
 * The canonical spelling of tenant if it is a look-alike (a cast to int or
 * uuid reads it as a value whose canonical spelling differs), else NULL.
 * canon has room for TOMS_MAX_TENANT_LEN + 1 bytes.
 */
const char *
toms_tenant_id_lookalike(const char *tenant, char *canon)
{
	if (strlen(tenant) > TOMS_MAX_TENANT_LEN)
		return NULL;
	if ((canonical_int(tenant, canon) || canonical_uuid(tenant, canon)) &&
		strcmp(canon, tenant) != 0)
		return canon;
	return NULL;
}
