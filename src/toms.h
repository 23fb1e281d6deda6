/*-------------------------------------------------------------------------
 *
 * toms.h
 *	  Prototypes shared between the parts of toms, grouped by the file
 *	  that defines them (as contrib/sepgsql does), the files in the order
 *	  of their layers (docs/architecture.md): a file uses only what is
 *	  declared above its own section.  Hooks are installed by hooks.c
 *	  alone; _PG_init in toms.c calls each part's *_init() in turn.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOMS_H
#define TOMS_H

#include "access/attnum.h"
#include "access/htup.h"
#include "access/tupdesc.h"
#include "catalog/objectaccess.h"
#include "executor/execdesc.h"
#include "fmgr.h"
#include "libpq/crypt.h"
#include "tcop/cmdtag.h"
#include "utils/elog.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "postmaster/bgworker.h"
#include "storage/lwlock.h"
#include "utils/snapshot.h"

/* Name of the extension's schema; it is not relocatable. */
#define TOMS_SCHEMA "toms"

/*
 * Advisory locks that keep toms' workers apart: the audit chain's one
 * writer per database (transaction lock on the two int4 keys) and the
 * lifecycle worker of a database (session lock on hashtext of the name).
 * DROP EXTENSION toms takes both (guard.c).
 */
#define TOMS_CHAIN_LOCK_KEY1 7415
#define TOMS_CHAIN_LOCK_KEY2 1
#define TOMS_CHAIN_LOCK_SQL CppAsString2(TOMS_CHAIN_LOCK_KEY1) ", " CppAsString2(TOMS_CHAIN_LOCK_KEY2)
#define TOMS_LIFECYCLE_LOCK_SQL "pg_catalog.hashtext('toms lifecycle worker')"

/* Longest tenant id accepted anywhere (bytes). */
#define TOMS_MAX_TENANT_LEN 128

/* ---- layer 0: pure C ---- */

/* tenant_id.c: pure C, fuzzed.  What is wrong with a tenant id, or NULL. */
extern const char *toms_tenant_id_problem(const char *tenant);
#define TOMS_TENANT_ID_EMPTY	"tenant id must not be empty"
#define TOMS_TENANT_ID_TOO_LONG	"tenant id is too long"
#define TOMS_TENANT_ID_CONTROL	"tenant id must not contain control characters"
#define TOMS_TENANT_ID_V4		"tenant id must not start with \"v4.\""
/* The canonical spelling of an int/uuid look-alike id (into canon), or NULL. */
extern const char *toms_tenant_id_lookalike(const char *tenant, char *canon);

/* The reasons a token is refused (paseto.c, token.c); also audit actions. */
#define TOMS_TOKEN_MALFORMED		"token malformed"
#define TOMS_TOKEN_UNKNOWN_KEY		"unknown key"
#define TOMS_TOKEN_SIGNATURE		"token signature invalid"
#define TOMS_TOKEN_EXPIRED			"token expired"
#define TOMS_TOKEN_NOT_YET_VALID	"token not yet valid"
#define TOMS_TOKEN_CLAIMS			"token claims invalid"

/* Longest token toms_token_verify() looks at (bytes). */
#define TOMS_TOKEN_MAX_LEN 8192

/* paseto.c: pure C (libc + libsodium, no backend calls), fuzzable alone. */

/* A parsed v4.public token; every pointer points into the caller's buffer. */
typedef struct TomsPaseto
{
	const unsigned char *payload;	/* m: the claims, not yet trusted */
	size_t		payload_len;
	const unsigned char *sig;	/* 64-byte Ed25519 signature */
	const unsigned char *footer;	/* decoded footer (may be empty) */
	size_t		footer_len;
} TomsPaseto;

#define TOMS_PASETO_KEY_LEN 32
#define TOMS_PASETO_MAX_KID 128

/*
 * Each returns NULL on success, else one of the static reasons listed for
 * toms_token_verify() above.
 *
 * toms_paseto_parse: strict syntax of "v4.public.<b64url(m || sig)>" with
 * an optional ".<b64url(footer)>" (unpadded base64url, canonical trailing
 * bits, len <= TOMS_TOKEN_MAX_LEN); buf must hold bufsize >= len bytes.
 * toms_paseto_verify: Ed25519 over PAE("v4.public.", m, footer, implicit).
 * toms_paseto_footer_kid: "kid" of a JSON-object footer, copied NUL-
 * terminated into kid[TOMS_PASETO_MAX_KID + 1]; *has_kid false when the
 * footer is empty, not JSON, or has no "kid".
 * toms_json_check: is json[0..len) one well-formed JSON value nested no
 * deeper than max_depth (so that a recursive parser is safe on it)?
 */
extern const char *toms_paseto_parse(const char *token, size_t len,
									 unsigned char *buf, size_t bufsize,
									 TomsPaseto *out);
extern const char *toms_paseto_verify(const TomsPaseto *tok,
									  const unsigned char *public_key,
									  const unsigned char *implicit,
									  size_t implicit_len);
extern const char *toms_paseto_footer_kid(const unsigned char *footer, size_t len,
										  char *kid, bool *has_kid);
extern bool toms_json_check(const unsigned char *json, size_t len, int max_depth);

/* ---- layer 1: core ---- */

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
extern void toms_shmem_request(void);
extern void toms_shmem_startup(void);

/* databases.c: for the launchers (connected to no database) and workers */
typedef struct TomsDatabase
{
	Oid			oid;
	NameData	name;
} TomsDatabase;

extern List *toms_databases(bool connectable_only);
extern void toms_bgworker(BackgroundWorker *bgw, const char *function, const char *type,
						  Oid dboid, BgWorkerStartTime start, int restart);

/* catalog.c: toms' objects, its tables read without SPI, invalidation */
extern Oid	toms_schema_oid(void);
extern bool toms_extension_exists(void);
extern Oid	toms_relid(const char *relname);
/* the latest committed state of toms' tables; the caller unregisters it */
extern Snapshot toms_lookup_snapshot(void);
/* scan toms' table relname through indexname for text column attnum = value */
typedef bool (*toms_row_cb) (HeapTuple tup, TupleDesc desc, void *arg);
extern void toms_scan_by_text(const char *relname, const char *indexname, AttrNumber attnum,
							  const char *value, toms_row_cb cb, void *arg);
extern char *toms_tuple_text(HeapTuple tup, TupleDesc desc, const char *colname);
/*
 * The version of toms' SQL objects in this database (NULL: not installed)
 * and whether it is the one this library is built for (TOMS_LIB_VERSION);
 * a session told once by a WARNING what to run when it is not.
 */
extern const char *toms_sql_version(void);
extern bool toms_sql_version_current(void);
extern void toms_sql_version_warn(void);
extern Datum toms_tuple_datum(HeapTuple tup, TupleDesc desc, const char *colname, bool *isnull);
/*
 * Run one DDL statement through SPI on toms' own behalf: the guard lets it
 * pass (protect, unprotect, and what they delegate to other parts).
 * The caller must be inside SPI_connect().
 */
extern void toms_run_ddl(const char *sql);
extern bool toms_ddl_in_progress(void);
/* the one relcache callback of toms calls these; relid InvalidOid: all */
typedef void (*toms_relcache_cb) (Oid relid);
extern void toms_on_relcache(toms_relcache_cb cb);
/* cb(added_only) when a transaction changes toms' tenant tables (their trigger) */
typedef void (*toms_change_cb) (bool added_only);
extern void toms_on_tenants_change(toms_change_cb cb);
extern void toms_catalog_init(void);

/* citus_catalog.c: toms' tables on a Citus node (issue 15) */
/* relid of toms' table/index relname, or of its local reference-table shard */
extern Oid	toms_citus_local_relid(Oid nsp, const char *relname, Oid relid);
extern void toms_citus_no_copy(const char *relname) pg_attribute_noreturn();

/* protected.c: the protected-table cache */

/* Description of a table under toms.protect(). */
typedef struct TomsProtected
{
	Oid			relid;
	AttrNumber	tenant_attnum;
	Oid			tenant_type;
	AttrNumber	subject_attnum; /* InvalidAttrNumber if none */
	int			nsensitive;
	AttrNumber *sensitive;		/* attnums of sealed columns */
	bool		audit_reads;	/* per-statement read records (SPEC 2) */
} TomsProtected;

/* NULL if relid is not protected.  Valid until the next invalidation. */
extern const TomsProtected *toms_protected(Oid relid);
/* the table toms_protected() last found protected (for the guard's denials) */
extern Oid	toms_protected_last(void);
extern void toms_protected_init(void);

/* citus_protected.c: shards of protected tables on Citus nodes (issue 15) */
/* is Citus installed in this database? */
extern bool toms_citus_installed(void);
/* the Citus table relid is or is a shard of; InvalidOid if none */
extern Oid	toms_citus_table_of(Oid relid);
extern bool toms_citus_protected(Oid relid, TomsProtected *info, MemoryContext cxt);
/* the marker policy of a table whose reads are not audited, on Citus */
#define TOMS_UNAUDITED_POLICY "toms_reads_unaudited"
extern void toms_citus_audit_reads(Oid relid, bool on);
/* citus_guard.c: a session Citus opened for its own shard operations */
extern bool toms_citus_forwarded(void);
extern bool toms_citus_forwarded_stmt(Node *parsetree);
extern bool toms_citus_copying_marker(Oid classId);
/* run toms' DDL on this node only (no Citus propagation); inside SPI */
extern void toms_citus_local_ddl(const char *sql);
/* let toms' read of its reference tables nest in a pushed-down query */
extern void toms_citus_allow_nested(void);

/* redact.c: secrets out of the server log and the audited statement text */
extern char *toms_redact_secrets(const char *s);
extern void toms_redact_log(ErrorData *edata);
extern void toms_redact_init(void);

/* ---- layer 2: audit emit ---- */

/* audit_emit.c: the audit API (docs/audit.md) */

/*
 * Audit records raised by other parts.  Each call is cheap and never loses
 * the record, even when the current transaction then aborts (denials) or
 * there is none (logins).  Strings may be NULL.  detail is a JSON object
 * (key=value pairs and other text are converted: docs/audit.md); it must
 * never contain a secret.  tenant is a verified tenant context only;
 * toms_audit_denied_claim records a refused, claimed tenant in the detail.
 * relid: the table the act or denial is about (InvalidOid: none, or for a
 * denial, the protected table of the statement running).
 */
extern void toms_audit_admin(const char *action, const char *tenant, const char *detail);
extern void toms_audit_admin_rel(const char *action, const char *tenant, Oid relid,
								 const char *detail);
extern void toms_audit_denied(const char *reason, const char *tenant, Oid relid, const char *detail);
extern void toms_audit_denied_claim(const char *reason, const char *claimed, Oid relid);
/* the table a denial raised until the next call is about (InvalidOid: none) */
extern void toms_audit_denial_relation(Oid relid);
/* inside the ereport of a guard refusal: record it as a denial (TOMS_REFUSE) */
extern int	toms_audit_refused(void);
extern void toms_audit_login(bool success, const char *role, const char *database,
							 const char *method, const char *reason);
/* Suspicious event: toms.incidents (deduplicated) + NOTIFY toms_incident. */
extern void toms_incident(const char *kind, const char *severity, const char *tenant, const char *detail);

/* ---- layer 3: tenant context ---- */

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

/* errmsg() with the fixed text of a TOMS_TOKEN_* reason, for ereport(). */
extern int	toms_errmsg_token(const char *why);

/* context.c: the tenant context (toms.context, verified where used) */

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
/* bumped by every change of toms.context (SET, RESET, rollback) */
extern uint64 toms_context_version;
/* context_cache.c: verified contexts shared by all backends */
typedef struct TomsCtxDigest
{
	uint8		bytes[16];		/* keyed SipHash-2-4-128 of the value */
	uint32		len;			/* the value's length */
} TomsCtxDigest;
extern void toms_context_digest(const char *value, TomsCtxDigest *digest);
extern bool toms_context_cache_get(const TomsCtxDigest *digest, Oid session_user, Oid tenants,
								   TimestampTz now, TomsContext *ctx, uint64 *generation);
extern void toms_context_cache_put(const TomsCtxDigest *digest, Oid session_user, Oid tenants,
								   TimestampTz now, const TomsContext *ctx, uint64 generation);
extern void toms_context_cache_init(void);
/* what may change what verification reads: the transaction bumps at commit */
extern void toms_context_cache_utility(Node *parsetree);
extern void toms_context_cache_executor_start(const QueryDesc *queryDesc);
extern void toms_context_cache_prepared_done(const char *gid, bool commit);

extern void toms_context_check_scope(bool is_local, const char *value);
extern void toms_validate_tenant_id(const char *tenant);
extern void toms_context_init(void);

/* ---- layer 4: features ---- */

/* guard.c: ProcessUtility and object_access checks, called by hooks.c */
extern void toms_guard_utility_before(PlannedStmt *pstmt);
extern void toms_guard_utility_after(void);
extern void toms_guard_utility_failed(void);
extern void toms_guard_executor_start(QueryDesc *queryDesc);
extern void toms_guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
									 int subId, void *arg);

/*
 * guard_partition.c: partitions of protected tables (called by hooks.c
 * around a utility statement, and by guard.c for dropped triggers).
 */
typedef struct TomsPartitionWork
{
	Oid			parent;			/* gained partitions: protect them after */
	Oid			detached;		/* left its protected parent */
} TomsPartitionWork;
extern TomsPartitionWork toms_guard_partition_before(PlannedStmt *pstmt);
extern void toms_guard_partition_after(TomsPartitionWork work);
extern bool toms_guard_partition_clone(Oid trigid);

/* protect.c: a partition protected as its protected parent (in SPI) */
extern void toms_protect_partition(Oid child, Oid parent);

/*
 * guard_expr.c: what DDL evaluates over a protected table's rows; called
 * by guard.c (the checks) and protect.c (the warning).
 *
 * TOMS_REFUSE is the guard's refusal (42501): msg and hint are the
 * errmsg(...) and errhint(...) calls, so that each message is one fixed,
 * translatable string.  Every refusal is recorded as a denial, with its
 * message, while the error is built (toms_audit_refused, after msg).
 */
#define TOMS_REFUSE(msg, hint) \
	ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), msg, hint, toms_audit_refused()))
/* The same, where the caller recorded the denial itself (toms_audit_denied). */
#define TOMS_REFUSE_RECORDED(msg, hint) \
	ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), msg, hint))
extern bool toms_guard_is_admin(void);
extern bool toms_guard_policy_info(Oid policyid, Oid *relid, char **name);
extern bool toms_guard_trigger_info(Oid trigid, Oid *relid, char **name);
extern void toms_guard_check_created(Oid classId, Oid objectId, int subId);
extern void toms_guard_check_function_change(Oid funcid);
extern void toms_guard_check_retype(Oid relid, const char *relname, const char *colname,
									const ColumnDef *def);
extern void toms_guard_check_validate(Oid relid, const char *conname);
extern void toms_guard_check_alter_domain(const AlterDomainStmt *stmt);
extern void toms_warn_policy_functions(Oid relid);
extern bool toms_guard_domain_guarded(Oid typid);

/* guard_fk.c: foreign and unique keys around the filter (issue 16) */
extern void toms_guard_check_constraint_keys(Oid conoid);
extern void toms_guard_check_unique_index(Oid indexid);
extern void toms_guard_check_truncate(const TruncateStmt *stmt);

/* guard_self.c: toms' own functions and tables (issue 16) */
extern bool toms_guard_needs_fmgr(Oid fn_oid);
extern void toms_guard_fmgr(FmgrHookEventType event, FmgrInfo *flinfo);
extern void toms_guard_self_function(ObjectAccessType access, Oid funcid);
extern void toms_guard_self_utility(Node *parsetree);
extern void toms_guard_self_executor(QueryDesc *queryDesc);
extern void toms_guard_self_dropping(bool on);
extern void toms_guard_audit_ddl(Node *parsetree);
extern void toms_guard_record_fingerprints(void);
extern void toms_guard_verify_functions(void);
extern void toms_guard_init(void);

/* citus_convert.c: Citus replacing a protected table (issue 15) */
extern bool toms_citus_needs_fmgr(Oid fn_oid);
extern void toms_citus_fmgr(FmgrHookEventType event, FmgrInfo *flinfo);
extern bool toms_citus_replacing(Oid relid);
extern bool toms_citus_replaced(Oid relid);
extern void toms_citus_convert_stmt(Node *parsetree);
extern void toms_citus_convert_init(void);

/* tenant_exec.c: the filter at execution time, called by hooks.c */
extern Oid	toms_tenant_executor_check(QueryDesc *queryDesc, int eflags, char *tenant);
extern void toms_tenant_executor_started(QueryDesc *queryDesc, int eflags, Oid filtered,
										 const char *tenant);
extern void toms_tenant_executor_run(const QueryDesc *queryDesc);
extern void toms_tenant_fmgr(FmgrHookEventType event, FmgrInfo *flinfo);
extern bool toms_tenant_check_perms(List *rangeTable, bool ereport_on_violation);
extern void toms_tenant_exec_init(void);

/* audit_capture.c: executor and ProcessUtility capture, called by hooks.c */
extern void toms_audit_executor_start(QueryDesc *queryDesc, int eflags);
extern void *toms_audit_nest_enter(QueryDesc *queryDesc);
extern void toms_audit_nest_leave(void *saved);
extern void toms_audit_executor_end(QueryDesc *queryDesc);
extern void *toms_audit_utility_begin(PlannedStmt *pstmt);
extern void toms_audit_utility_failed(void *arg);
extern void toms_audit_utility_end(void *arg, QueryCompletion *qc);
/* the audit part's settings, shared queue and callbacks */
extern void toms_audit_init(void);

/* audit_worker.c */
extern void toms_audit_worker_init(void);

/* crypto.c (master key; part of the sealed capability) */

#define TOMS_KEY_LEN		32	/* master, data and index keys */
#define TOMS_MASTER_ID_LEN	8	/* BLAKE2b check value of a master key */
#define TOMS_WRAPPED_LEN	(24 + TOMS_KEY_LEN + 16)	/* nonce, key, tag */

/* settings and the master keys, in the postmaster (libsodium initialised) */
extern void toms_crypto_init(void);
extern bool toms_master_key_loaded(void);
/* Raise 55000 "toms master key is not loaded" (with the reason) if so. */
extern void toms_require_master_key(void);
extern bool toms_master_id_is_current(const unsigned char *master_id);
extern bool toms_master_key_id(unsigned char *id);
/* Wrap a tenant key under the current master key (AD: tenant, purpose, version). */
extern void toms_key_wrap(const unsigned char *key, const char *tenant, char purpose,
						  int32 version, unsigned char *wrapped, unsigned char *master_id);
/* False if the wrapped key does not open; raises if its master key is absent. */
extern bool toms_key_unwrap(const unsigned char *wrapped, size_t wrapped_len,
							const unsigned char *master_id, const char *tenant,
							char purpose, int32 version, unsigned char *key);

/* sealed_keys.c: per-tenant keys, wrapped in toms.tenant_keys, and a cache */

#define TOMS_KEY_DATA		'd'	/* purposes of a tenant key */
#define TOMS_KEY_INDEX		'i'
#define TOMS_KEY_ID_LEN		8	/* check value stored in each sealed value */

/*
 * A tenant key in the backend's cache.  The key lives in secure memory
 * and stays valid only until the next toms_tenant_key() or anything that
 * could accept invalidations (catalog access, lock acquisition).
 */
typedef struct TomsTenantKey
{
	int32		version;
	unsigned char id[TOMS_KEY_ID_LEN];
	const unsigned char *key;	/* TOMS_KEY_LEN bytes */
} TomsTenantKey;

/*
 * The tenant's key of that purpose and version; version 0: the active one,
 * created if missing when create is set.  NULL if there is none.  A
 * shredded tenant's key raises 28T02 if destroyed_raises, else is NULL.
 */
extern const TomsTenantKey *toms_tenant_key(const char *tenant, char purpose, int32 version,
											bool create, bool destroyed_raises);
/* Wipe this backend's cache; make every backend wipe it (at commit). */
extern void toms_tenant_keys_forget(void);
extern void toms_tenant_keys_invalidate(void);

/* Working on toms.tenant_keys: as its owner, safe search_path, in SPI. */
typedef struct TomsKeysAccess
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} TomsKeysAccess;
extern void toms_tenant_keys_open(TomsKeysAccess *ka);
extern void toms_tenant_keys_close(TomsKeysAccess *ka);
/* In toms_tenant_keys_open(): a new random key; false if it exists. */
extern bool toms_tenant_key_create(const char *tenant, char purpose, int32 version);
/* Raise 22023 "invalid tenant id" for an empty or too long one. */
extern void toms_sealed_check_tenant(const char *tenant);
/* Raise 28T02 "the tenant's keys have been destroyed". */
extern void toms_sealed_raise_destroyed(void);

/* sealed.c: the toms.sealed type, sealing and opening values */

typedef enum TomsSealedOpen
{
	TOMS_OPEN_OK,
	TOMS_OPEN_NO_KEY,			/* the tenant has no key of that version */
	TOMS_OPEN_WRONG_KEY,		/* key id differs: another tenant's or key's */
	TOMS_OPEN_TAMPERED			/* right key, authentication failed */
} TomsSealedOpen;

extern bytea *toms_sealed_seal(const char *tenant, const char *data, size_t len);
/* palloc'd plaintext, NUL-terminated; the caller wipes it */
extern char *toms_sealed_unseal(const char *tenant, bytea *v, size_t *outlen);
/* out: NULL to authenticate only */
extern TomsSealedOpen toms_sealed_open(const char *tenant, const unsigned char *p, size_t len,
									   unsigned char *out);
/* Raise 22T01 or XX001 for a value that is not well-formed. */
extern void toms_sealed_check_stored(const unsigned char *p, size_t len);
/* Raise 28T01 or 22T02 for a value that did not open; column may be NULL. */
extern void toms_sealed_raise_open_error(TomsSealedOpen r, const char *column);

/* sealed_admin.c: key rotation and crypto-shredding */

/*
 * Crypto-shredding for the deletion capability: wipe every wrapped key of
 * the tenant (audited).  Returns the number of keys destroyed.  Runs with
 * toms' own privileges; the caller checks its caller's.
 */
extern int64 toms_destroy_tenant_keys(const char *tenant);

/* sealed_reseal.c: re-sealing after a rotation, and its worker */
extern void toms_reseal_launch_at_commit(void);
extern void toms_reseal_init(void);

/* sealed_protect.c: protect(..., sensitive => ...) and its trigger */
extern void toms_sealed_on_protect(Oid relid, int ncols, char **colnames);

/* lifecycle.c */

/* protect(..., subject_column => ...): subject-level deletion (in SPI). */
extern void toms_lifecycle_on_protect(Oid relid, const char *subject_column);
extern void toms_lifecycle_init(void);

/* lifecycle_worker.c */
extern void toms_lifecycle_worker_init(void);

/* account.c */
struct Port;
extern void toms_account_init(void);
extern void toms_account_client_auth(struct Port *port, int status);

/* password.c (part of account security; set up by toms_account_init) */
extern void toms_password_init(void);
extern void toms_check_password(const char *username, const char *shadow_pass,
								PasswordType password_type, Datum validuntil_time,
								bool validuntil_null);
extern void toms_password_utility_before(Node *parsetree);
extern void toms_password_utility_after(Node *parsetree);

/* assess.c */

/*
 * Settings toms.tenant_column_names (list of identifiers, PGC_SUSET) and
 * toms.assess_period (seconds, PGC_SUSET); the checks are SQL, in
 * sql/install/70_assess.sql.
 */
extern void toms_assess_init(void);

/* ---- layer 5: hooks ---- */

/* hooks.c: the only file that installs PostgreSQL hooks */
extern void toms_hooks_install(void);

#endif							/* TOMS_H */
