/*-------------------------------------------------------------------------
 *
 * toms.c
 *	  Module entry point.  toms installs hooks and background workers, so it
 *	  must be loaded through shared_preload_libraries; everything it does is
 *	  set up here, one part at a time, in this order.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "toms.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("toms must be loaded via shared_preload_libraries"),
				 errhint("Add toms to the shared_preload_libraries configuration variable in postgresql.conf and restart the server.")));

	/* Nothing of ours may run while pg_upgrade moves the catalogs. */
	if (IsBinaryUpgrade)
		return;

	/* libsodium is initialised here only; every part relies on it. */
	if (sodium_init() < 0)
		ereport(FATAL,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialise libsodium")));

	toms_catalog_init();		/* the one relcache callback */
	toms_protected_init();		/* protected-table cache */
	toms_context_init();		/* toms.context, verified-context cache */
	toms_tenant_exec_init();	/* SECURITY DEFINER stack reset */
	toms_audit_init();			/* audit settings, shared queue */
	toms_audit_worker_init();	/* background worker: drains, chains */
	toms_crypto_init();			/* master key */
	toms_reseal_init();			/* sealed columns: reseal worker settings */
	toms_lifecycle_init();		/* deletion and retention settings */
	toms_lifecycle_worker_init();	/* background worker: stage 2, retention */
	toms_account_init();		/* password and lock-out settings */
	toms_assess_init();			/* self-assessment settings */
	toms_redact_init();			/* what the server log must not show */
	toms_guard_init();			/* toms.allow_catalog_edits, guard's xact reset */
	toms_citus_convert_init();	/* Citus conversions: xact reset */

	toms_hooks_install();		/* every hook, in the order hooks.c shows */

	MarkGUCPrefixReserved("toms");
}
