/*-------------------------------------------------------------------------
 *
 * tenant_id_fuzz.c
 *	  libFuzzer target for the tenant id rules (src/tenant_id.c), which
 *	  every id entered through toms.set_tenant(), SET toms.context or a
 *	  token's "tid" claim passes.  Beyond "no crash, no sanitizer report",
 *	  it checks the verdict against an independent statement of the rules:
 *	  accepted exactly when 1..TOMS_MAX_TENANT_LEN bytes, no byte below
 *	  0x20 nor 0x7f, and no "v4." prefix (such a toms.context value is read
 *	  as a token, so an id like that would be ambiguous).
 *
 *	  Run by test/suites.d/fuzz.sh.
 *
 * FUZZ_SOURCES: src/tenant_id.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
oracle_ok(const uint8_t *s, size_t len)
{
	size_t		i;

	if (len < 1 || len > TOMS_MAX_TENANT_LEN)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return !(len >= 3 && s[0] == 'v' && s[1] == '4' && s[2] == '.');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a C string as the backend has it: up to the first NUL, exact size */
	size_t		len = strnlen((const char *) data, size);
	char	   *s = malloc(len + 1);
	const char *why;

	if (s == NULL)
		abort();
	memcpy(s, data, len);
	s[len] = '\0';
	why = toms_tenant_id_problem(s);
	if ((why == NULL) != oracle_ok((const uint8_t *) s, len))
		abort();				/* verdict differs from the stated rules */
	if (why != NULL && strlen(why) == 0)
		abort();
	{
		/* a look-alike's canonical spelling differs and is canonical itself */
		char		canon[TOMS_MAX_TENANT_LEN + 1];
		char		again[TOMS_MAX_TENANT_LEN + 1];
		const char *c = toms_tenant_id_lookalike(s, canon);

		if (c != NULL && (strcmp(c, s) == 0 || toms_tenant_id_lookalike(c, again) != NULL))
			abort();
	}
	free(s);
	return 0;
}
