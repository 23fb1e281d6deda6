/*-------------------------------------------------------------------------
 *
 * assess.c
 *	  Self-assessment (measure 11a): the settings toms.assess() reads.
 *
 *	  The checks themselves are SQL (sql/install/70_assess.sql), one
 *	  function per control; they read the catalogs, the statistics views
 *	  and toms' own tables.  What only C can know lives here: the settings,
 *	  validated when they are set, and the list of tenant column names
 *	  parsed the way its check hook parses it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "toms.h"

PG_FUNCTION_INFO_V1(toms_tenant_column_names);

/*
 * toms.tenant_column_names: a list of column names, written like
 * search_path (comma-separated identifiers, double-quoted where needed).
 * GUC_LIST_INPUT only: PostgreSQL refuses GUC_LIST_QUOTE from extensions,
 * so a name that needs quotes is given inside one string literal
 * (SET toms.tenant_column_names = 'tenant_id, "OrgId"').
 */
static char *tenant_column_names = NULL;

/* toms.assess_period: look-back of the checks that read the audit trail. */
static int	assess_period = 7 * 24 * 3600;

/*
 * Refuse a value that is not a list of identifiers when it is set: later,
 * it would only make every assessment fail.  SplitIdentifierString needs no
 * catalog access, so this works outside a transaction (postmaster start).
 */
static bool
check_tenant_column_names(char **newval, void **extra, GucSource source)
{
	char	   *rawstring;
	List	   *names;
	bool		ok;

	rawstring = pstrdup(*newval);
	ok = SplitIdentifierString(rawstring, ',', &names);
	list_free(names);
	pfree(rawstring);
	if (!ok)
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	return true;
}

/*
 * toms._tenant_column_names() -> name[]: the setting's column names, as
 * they must match pg_attribute.attname (unquoted names folded to lower
 * case, like every identifier).
 */
Datum
toms_tenant_column_names(PG_FUNCTION_ARGS)
{
	char	   *rawstring;
	List	   *names;
	ListCell   *lc;
	Datum	   *elems;
	int			n = 0;

	/* the check hook let only a valid list in */
	rawstring = pstrdup(tenant_column_names ? tenant_column_names : "");
	if (!SplitIdentifierString(rawstring, ',', &names))
		elog(ERROR, "toms.tenant_column_names is not a list of identifiers");
	elems = palloc(sizeof(Datum) * Max(list_length(names), 1));
	foreach(lc, names)
	{
		Name		name = palloc0(NAMEDATALEN);

		namestrcpy(name, (const char *) lfirst(lc));
		elems[n++] = NameGetDatum(name);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

void
toms_assess_init(void)
{
	DefineCustomStringVariable("toms.tenant_column_names",
							   gettext_noop("Column names that mark a table as holding tenant data; toms.assess() reports such tables that are not protected."),
							   NULL,
							   &tenant_column_names,
							   "tenant_id",
							   PGC_SUSET,
							   GUC_LIST_INPUT,
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
