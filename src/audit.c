/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  Access audit: executor and utility hooks turn every access to a protected table into audit records (issue 3).
 *
 *	  Placeholder: the capability lands with its issue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "toms.h"

void
audit_init(void)
{
}

void
toms_audit_admin(const char *action, const char *tenant, const char *detail)
{
}

void
toms_audit_denied(const char *reason, const char *tenant, Oid relid, const char *detail)
{
}

void
toms_audit_login(bool success, const char *role, const char *database,
				 const char *method, const char *reason)
{
}

void
toms_incident(const char *kind, const char *severity, const char *tenant, const char *detail)
{
}
