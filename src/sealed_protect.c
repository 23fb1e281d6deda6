/*-------------------------------------------------------------------------
 *
 * sealed_protect.c
 *	  Enforcement of protect(..., sensitive => ...) (docs/encryption.md):
 *	  at protect time, the sensitive columns must be of type toms.sealed
 *	  and get the toms_sealed_check trigger; on every insert or update the
 *	  trigger refuses a value that does not open under a key of the row's
 *	  tenant (another tenant's ciphertext, a tampered value), and audits
 *	  the refusal.
 *
 *	  protect.c calls toms_sealed_on_protect() inside its SPI connection;
 *	  the trigger opens values with sealed.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "toms.h"

PG_FUNCTION_INFO_V1(toms_sealed_check);

static Oid
sealed_typoid(void)
{
	Oid			nsp = get_namespace_oid(TOMS_SCHEMA, false);

	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
						   CStringGetDatum("sealed"), ObjectIdGetDatum(nsp));
}

void
toms_sealed_on_protect(Oid relid, int ncols, char **colnames)
{
	Oid			typoid = sealed_typoid();
	StringInfoData args;
	char	   *relname;
	int			i;

	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	initStringInfo(&args);
	for (i = 0; i < ncols; i++)
	{
		AttrNumber	attnum = get_attnum(relid, colnames[i]);

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							colnames[i], get_rel_name(relid))));
		if (getBaseType(get_atttype(relid, attnum)) != typoid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("sensitive column \"%s\" must be of type toms.sealed", colnames[i]),
					 errhint("Declare it as toms.sealed and store toms.seal(value).")));
		appendStringInfo(&args, "%s%s", i ? ", " : "", quote_literal_cstr(colnames[i]));
	}
	if (OidIsValid(get_trigger_oid(relid, "toms_sealed_check", true)))
		toms_run_ddl(psprintf("DROP TRIGGER toms_sealed_check ON %s", relname));
	if (ncols > 0)
		toms_run_ddl(psprintf("CREATE TRIGGER toms_sealed_check BEFORE INSERT OR UPDATE ON %s "
							  "FOR EACH ROW EXECUTE FUNCTION toms._sealed_check(%s)",
							  relname, args.data));
}

/*
 * BEFORE INSERT OR UPDATE, FOR EACH ROW, arguments: the sensitive columns.
 * Every new or changed value must open under a key of the row's tenant;
 * anything else (another tenant's ciphertext, a tampered value) is refused.
 */
Datum
toms_sealed_check(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	newtup;
	HeapTuple	oldtup = NULL;
	const TomsProtected *prot;
	char	   *tenant;
	bool		isnull;
	Datum		d;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("toms._sealed_check() must be a BEFORE ROW trigger")));
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		newtup = td->tg_newtuple;
		oldtup = td->tg_trigtuple;
	}
	else if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		newtup = td->tg_trigtuple;
	else
		return PointerGetDatum(td->tg_trigtuple);

	prot = toms_protected(RelationGetRelid(rel));
	if (prot == NULL)
		return PointerGetDatum(newtup);

	d = heap_getattr(newtup, prot->tenant_attnum, desc, &isnull);
	if (isnull)
		tenant = pstrdup(toms_context(false)->tenant);
	else
	{
		Oid			outfn;
		bool		varlena;

		getTypeOutputInfo(TupleDescAttr(desc, prot->tenant_attnum - 1)->atttypid, &outfn, &varlena);
		tenant = OidOutputFunctionCall(outfn, d);
	}

	for (i = 0; i < td->tg_trigger->tgnargs; i++)
	{
		const char *col = td->tg_trigger->tgargs[i];
		int			attnum = SPI_fnumber(desc, col);
		Datum		v;
		bytea	   *b;
		TomsSealedOpen r;

		if (attnum <= 0)
			continue;
		v = heap_getattr(newtup, attnum, desc, &isnull);
		if (isnull)
			continue;
		if (oldtup != NULL)
		{
			bool		oldnull;
			Datum		ov = heap_getattr(oldtup, attnum, desc, &oldnull);

			if (!oldnull && datumIsEqual(ov, v, false, -1))
				continue;
		}
		b = DatumGetByteaPP(v);
		toms_sealed_check_stored((const unsigned char *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
		r = toms_sealed_open(tenant, (const unsigned char *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), NULL);
		if (r != TOMS_OPEN_OK)
		{
			toms_audit_denied(r == TOMS_OPEN_TAMPERED ? "tampered sealed value" : "cross-tenant sealed value",
							  tenant, RelationGetRelid(rel), col);
			toms_sealed_raise_open_error(r, col);
		}
	}
	return PointerGetDatum(newtup);
}
