/*-------------------------------------------------------------------------
 *
 * toms.h
 *	  Prototypes shared between the parts of toms, grouped by the file
 *	  that defines them (as contrib/sepgsql does).  Each part owns its
 *	  hooks, settings and SQL-callable functions; _PG_init in toms.c calls
 *	  each part's *_init() in turn.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOMS_H
#define TOMS_H

#include "postgres.h"
#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "storage/lwlock.h"

/* Name of the extension's schema; it is not relocatable. */
#define TOMS_SCHEMA "toms"

/* Longest tenant id accepted anywhere (bytes). */
#define TOMS_MAX_TENANT_LEN 128

/* shmem.c */

/*
 * Parts that need shared memory register during _PG_init; the request and
 * startup hooks sum the sizes and call each part's startup callback under
 * AddinShmemInitLock.  Each part gets its own LWLocks, numbered from the
 * base index returned here, in the single tranche "toms".
 */
typedef void (*toms_shmem_startup_cb) (void);
extern int	toms_shmem_register(Size size, int nlocks, toms_shmem_startup_cb startup);
extern LWLock *toms_lwlock(int index);
extern void shmem_init(void);

/* tenant.c */

/*
 * The verified tenant context of this backend.  Valid until the next call
 * of toms_context(); callers copy what they keep.
 */
typedef struct TomsContext
{
	const char *tenant;			/* tenant id */
	const char *actor;			/* token "sub", or the session user's name */
	int64		grant_id;		/* need-to-know grant used, 0 if none */
	const char *justification;	/* that grant's justification, or NULL */
	bool		from_token;		/* entered with a PASETO token */
	const char *key_id;			/* the token's key, when from_token */
	TimestampTz valid_until;	/* token exp / grant end; DT_NOEND if none */
} TomsContext;

/*
 * Verify toms.context for the session user.  With missing_ok, returns NULL
 * when there is no context or it does not verify; otherwise raises the
 * 42501 error that names the problem.
 */
extern const TomsContext *toms_context(bool missing_ok);

/* Description of a table under toms.protect(). */
typedef struct TomsProtected
{
	Oid			relid;
	AttrNumber	tenant_attnum;
	Oid			tenant_type;
	AttrNumber	subject_attnum; /* InvalidAttrNumber if none */
	int			nsensitive;
	AttrNumber *sensitive;		/* attnums of sealed columns */
} TomsProtected;

/* NULL if relid is not protected.  Cached per backend, kept current by
 * relcache invalidation. */
extern const TomsProtected *toms_protected(Oid relid);
extern bool toms_extension_exists(void);
extern Oid	toms_schema_oid(void);
extern void toms_validate_tenant_id(const char *tenant);

/* tenant_id.c: pure C, fuzzed.  What is wrong with a tenant id, or NULL. */
extern const char *toms_tenant_id_problem(const char *tenant);

/*
 * Run one DDL statement through SPI on toms' own behalf: the guard lets it
 * pass (protect, unprotect, and what they delegate to other parts).
 * The caller must be inside SPI_connect().
 */
extern void toms_run_ddl(const char *sql);
extern bool toms_guard_bypassed(void);
extern void tenant_init(void);

/* token.c */

/* Claims of a verified tenant token (palloc'd in the caller's context). */
typedef struct TomsToken
{
	char	   *tenant;			/* "tid" */
	char	   *subject;		/* "sub": the end-user, recorded as actor */
	char	   *key_id;			/* key that signed it */
	TimestampTz expires;		/* "exp" */
} TomsToken;

/*
 * Verify a PASETO v4.public token against toms.trusted_keys and check its
 * claims (tid, sub, exp required; nbf, iat honoured).  Returns false and
 * sets *why to one of "token malformed", "unknown key", "token signature
 * invalid", "token expired", "token not yet valid", "token claims invalid"
 * (static strings); never raises for a bad token.
 */
extern bool toms_token_verify(const char *token, TomsToken *out, const char **why);
extern void token_init(void);

/* guard.c */
extern void guard_init(void);

/* audit.c */

/*
 * Audit records raised by other parts.  Each call is cheap and never loses
 * the record, even when the current transaction then aborts (denials) or
 * there is none (logins).  Strings may be NULL.  detail is free text or
 * JSON; it must never contain a secret.
 */
extern void toms_audit_admin(const char *action, const char *tenant, const char *detail);
extern void toms_audit_denied(const char *reason, const char *tenant, Oid relid, const char *detail);
extern void toms_audit_login(bool success, const char *role, const char *database,
							 const char *method, const char *reason);
/* Suspicious event: toms.incidents (deduplicated) + NOTIFY toms_incident. */
extern void toms_incident(const char *kind, const char *severity, const char *tenant, const char *detail);
extern void audit_init(void);

/* audit_worker.c */
extern void audit_worker_init(void);

/* sealed.c */

/* protect(..., sensitive => ...): enforce those columns (called in SPI). */
extern void sealed_on_protect(Oid relid, int ncols, char **colnames);
extern void sealed_init(void);

/* lifecycle.c */

/* protect(..., subject_column => ...): subject-level deletion (in SPI). */
extern void lifecycle_on_protect(Oid relid, const char *subject_column);
extern void lifecycle_init(void);

/* lifecycle_worker.c */
extern void lifecycle_worker_init(void);

/* account.c */
extern void account_init(void);

/* assess.c */
extern void assess_init(void);

#endif							/* TOMS_H */
