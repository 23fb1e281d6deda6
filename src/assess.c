/*-------------------------------------------------------------------------
 *
 * assess.c
 *	  Self-assessment (measure 11a): the settings toms.assess() reads.
 *
 *	  The checks themselves are SQL (sql/install/70_assess.sql): they read
 *	  the catalogs, the statistics views and toms' own tables, and look up
 *	  by name whether the other parts' objects exist, so a check whose part
 *	  is not installed reports "n/a" and starts working when it is.  What
 *	  only C can know lives here: the settings, validated when they are set.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "toms.h"

/* toms.tenant_column_names: a text[] literal of column names. */
static char *tenant_column_names = NULL;

/* toms.assess_period: look-back of the checks that read the audit trail. */
static int	assess_period = 7 * 24 * 3600;

/*
 * Accept only a one-dimensional array literal of non-empty, non-null
 * column names that fit in a name; anything else would make every
 * assessment fail later, so refuse it when it is set.
 */
static bool
check_tenant_column_names(char **newval, void **extra, GucSource source)
{
	const char *s = *newval;
	const char *p;
	bool		in_quotes = false;
	int			n = 0;
	int			len = 0;
	bool		quoted_elem = false;

	if (s == NULL)
		return false;
	while (*s == ' ')
		s++;
	if (*s != '{')
	{
		GUC_check_errdetail("The value must be an array literal of column names, such as '{tenant_id,org_id}'.");
		return false;
	}

	/*
	 * A small scanner rather than array_in(): a check hook may run outside
	 * a transaction (postmaster start), where catalog lookups are not
	 * allowed.
	 */
	for (p = s + 1; *p; p++)
	{
		if (in_quotes)
		{
			if (*p == '\\' && p[1])
			{
				p++;
				len++;
			}
			else if (*p == '"')
				in_quotes = false;
			else
				len++;
			continue;
		}
		if (*p == '"')
		{
			in_quotes = true;
			quoted_elem = true;
		}
		else if (*p == ',' || *p == '}')
		{
			if (len == 0 && !quoted_elem && *p == '}' && n == 0)
				break;			/* '{}' */
			if (len == 0)
			{
				GUC_check_errdetail("Column names must not be empty.");
				return false;
			}
			if (len >= NAMEDATALEN)
			{
				GUC_check_errdetail("Column names must be shorter than %d bytes.", NAMEDATALEN);
				return false;
			}
			n++;
			len = 0;
			quoted_elem = false;
			if (*p == '}')
				break;
		}
		else if (*p == '{')
		{
			GUC_check_errdetail("The value must be a one-dimensional array.");
			return false;
		}
		else if (*p != ' ')
			len++;
	}
	if (*p != '}' || in_quotes)
	{
		GUC_check_errdetail("The array literal is not terminated.");
		return false;
	}
	for (p++; *p; p++)
	{
		if (*p != ' ')
		{
			GUC_check_errdetail("Nothing may follow the array literal.");
			return false;
		}
	}
	return true;
}

void
assess_init(void)
{
	DefineCustomStringVariable("toms.tenant_column_names",
							   gettext_noop("Column names that mark a table as holding tenant data; toms.assess() reports such tables that are not protected."),
							   NULL,
							   &tenant_column_names,
							   "{tenant_id}",
							   PGC_SUSET,
							   0,
							   check_tenant_column_names, NULL, NULL);

	DefineCustomIntVariable("toms.assess_period",
							gettext_noop("How far back toms.assess() looks in the audit trail and incidents."),
							NULL,
							&assess_period,
							7 * 24 * 3600,
							3600,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}
