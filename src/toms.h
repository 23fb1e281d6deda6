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
extern void tenant_init(void);

/* token.c */

/*
 * Verify a PASETO v4.public token against an Ed25519 public key (32
 * bytes).  On success returns true and sets *payload / *footer
 * (palloc'd, NUL-terminated).  On failure returns false and sets *why to a
 * static message; never raises for a malformed token.
 */
extern bool toms_paseto_v4_verify(const char *token, const unsigned char *pk,
								  const char *implicit, size_t implicit_len,
								  char **payload, size_t *payload_len,
								  char **footer, size_t *footer_len,
								  const char **why);
extern void token_init(void);

/* guard.c */
extern void guard_init(void);

/* audit.c */
extern void audit_init(void);

/* audit_worker.c */
extern void audit_worker_init(void);

/* sealed.c */
extern void sealed_init(void);

/* lifecycle.c */
extern void lifecycle_init(void);

/* lifecycle_worker.c */
extern void lifecycle_worker_init(void);

/* account.c */
extern void account_init(void);

/* assess.c */
extern void assess_init(void);

#endif							/* TOMS_H */
