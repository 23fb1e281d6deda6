/*-------------------------------------------------------------------------
 *
 * account.c
 *	  Account security at login (measures 4a, 4b, 4d, 4e, 6a):
 *	  ClientAuthentication_hook for the TLS requirement, login audit and
 *	  lock-out after repeated failures; SQL functions to list and unlock
 *	  locked roles and to find stale roles.  The password policy is in
 *	  password.c, deactivation in sql/install/60_account.sql.
 *
 *	  Login state (failures, locks, last successful login) is one array of
 *	  toms.max_tracked_roles entries in shared memory, keyed by the role
 *	  name as the client sent it, so that a name that does not exist locks
 *	  just like one that does (no role enumeration).
 *
 *	  Persistence: the authentication hook runs before the backend has
 *	  connected to a database, and a failed login ends in FATAL, which
 *	  would roll back anything written to a table.  So locks and last-login
 *	  times are saved to the file toms_account.state in the data directory:
 *	  written whole to a temporary file, fsync'd and renamed (durable_rename)
 *	  whenever a lock is set or cleared, and at most hourly per role for
 *	  last-login times; read back when shared memory is created, so neither
 *	  a restart nor a crash unlocks a role.  Failure counts below the limit
 *	  are not saved.  The file is per server: a standby keeps its own.
 *
 *	  Break-glass: a lock-out must not lock the DBA out.  A locked role
 *	  that is a superuser or a member of toms_admin may still log in over
 *	  a Unix-domain socket (only someone on the database host can reach
 *	  it), once authenticated as pg_hba.conf requires; the lock stays for
 *	  network logins, and each such login is audited (reason "break-glass")
 *	  and raises an incident (docs/accounts.md, "Break-glass").
 *
 *	  Locking: lock_base + 0 (LoginLock) protects the array; lock_base + 1
 *	  (FileLock) serialises writers of the state file and is always taken
 *	  before LoginLock, never while holding it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/auth.h"
#include "libpq/hba.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "toms.h"

#define STATE_FILE		"toms_account.state"
#define STATE_TMP		"toms_account.state.tmp"
#define STATE_MAGIC		0x544f4d41	/* "TOMA" */
#define STATE_VERSION	1

/* Last-login times are saved at most this often per role. */
#define LOGIN_SAVE_INTERVAL_MS	(3600 * 1000)

typedef enum TlsVersion
{
	TOMS_TLS_1_0 = 1,
	TOMS_TLS_1_1,
	TOMS_TLS_1_2,
	TOMS_TLS_1_3
} TlsVersion;

static const struct config_enum_entry tls_version_options[] = {
	{"TLSv1", TOMS_TLS_1_0, false},
	{"TLSv1.1", TOMS_TLS_1_1, false},
	{"TLSv1.2", TOMS_TLS_1_2, false},
	{"TLSv1.3", TOMS_TLS_1_3, false},
	{NULL, 0, false}
};

/* settings */
static int	max_failed_logins = 5;
static int	lockout_window = 15 * 60;	/* seconds */
static int	lockout_duration = 15 * 60; /* seconds */
static int	auth_failure_delay = 0; /* milliseconds */
static int	max_tracked_roles = 1024;
static bool require_tls = false;
static int	min_tls_version = TOMS_TLS_1_2;
static bool require_tls_local = false;

typedef struct LoginEntry
{
	NameData	role;
	bool		used;
	int			nfail;			/* failures since first_fail */
	TimestampTz first_fail;
	TimestampTz last_fail;
	TimestampTz locked_at;
	TimestampTz locked_until;	/* 0: not locked */
	TimestampTz last_login;		/* last successful login, 0: none seen */
	TimestampTz saved_login;	/* last_login as last written to the file */
} LoginEntry;

typedef struct AccountShared
{
	int			nentries;
	LoginEntry	entries[FLEXIBLE_ARRAY_MEMBER];
} AccountShared;

/* What the state file holds per role. */
typedef struct SavedEntry
{
	NameData	role;
	TimestampTz locked_at;
	TimestampTz locked_until;
	TimestampTz last_login;
} SavedEntry;

typedef struct SavedHeader
{
	uint32		magic;
	uint32		version;
	uint32		count;
} SavedHeader;

static AccountShared *account = NULL;
static int	lock_base = -1;

#define LoginLock	toms_lwlock(lock_base)
#define FileLock	toms_lwlock(lock_base + 1)


static Size
account_shmem_size(void)
{
	return add_size(offsetof(AccountShared, entries),
					mul_size(max_tracked_roles, sizeof(LoginEntry)));
}

/* --- the array -------------------------------------------------------- */

static LoginEntry *
find_entry(const char *role)
{
	int			i;

	for (i = 0; i < account->nentries; i++)
	{
		LoginEntry *e = &account->entries[i];

		if (e->used && strncmp(NameStr(e->role), role, NAMEDATALEN) == 0)
			return e;
	}
	return NULL;
}

static bool
entry_locked(const LoginEntry *e, TimestampTz now)
{
	return e->locked_until != 0 && e->locked_until > now;
}

/*
 * Find or make the entry for role; LoginLock held exclusively.  When the
 * array is full, reuse the least recently active unlocked entry.  Only a
 * failure (evict_locks) may take the oldest lock when every entry is
 * locked (a flood of made-up names), with a warning; a success then goes
 * unrecorded rather than lift anyone's lock.
 */
static LoginEntry *
get_entry(const char *role, TimestampTz now, bool evict_locks)
{
	LoginEntry *e = find_entry(role);
	LoginEntry *victim = NULL;
	TimestampTz victim_age = 0;
	bool		victim_locked = true;
	int			i;

	if (e)
		return e;

	for (i = 0; i < account->nentries; i++)
	{
		LoginEntry *c = &account->entries[i];
		TimestampTz age;
		bool		locked;

		if (!c->used)
		{
			victim = c;
			break;
		}
		locked = entry_locked(c, now);
		age = locked ? c->locked_at : Max(c->last_fail, c->last_login);
		if (victim == NULL || (victim_locked && !locked) ||
			(victim_locked == locked && age < victim_age))
		{
			victim = c;
			victim_age = age;
			victim_locked = locked;
		}
	}
	if (victim == NULL || (victim->used && victim_locked && !evict_locks))
		return NULL;
	if (victim->used && victim_locked)
		ereport(WARNING,
				(errmsg("toms login state is full of locked roles; the lock of role \"%s\" is dropped",
						NameStr(victim->role)),
				 errhint("Raise toms.max_tracked_roles.")));
	memset(victim, 0, sizeof(LoginEntry));
	namestrcpy(&victim->role, role);
	victim->used = true;
	return victim;
}

/* --- the state file --------------------------------------------------- */

/*
 * Write the locks and last-login times to the state file, atomically.
 * Problems are logged, not raised: a login must not fail because of them.
 */
static void
save_state(void)
{
	SavedEntry *buf;
	SavedHeader hdr;
	pg_crc32c	crc;
	TimestampTz now = GetCurrentTimestamp();
	int			n = 0;
	int			fd;
	int			i;
	Size		len;
	bool		ok = true;

	LWLockAcquire(FileLock, LW_EXCLUSIVE);
	LWLockAcquire(LoginLock, LW_EXCLUSIVE);
	buf = palloc(sizeof(SavedEntry) * Max(account->nentries, 1));
	for (i = 0; i < account->nentries; i++)
	{
		LoginEntry *e = &account->entries[i];

		if (!e->used || (!entry_locked(e, now) && e->last_login == 0))
			continue;
		memset(&buf[n], 0, sizeof(SavedEntry));
		buf[n].role = e->role;
		if (entry_locked(e, now))
		{
			buf[n].locked_at = e->locked_at;
			buf[n].locked_until = e->locked_until;
		}
		buf[n].last_login = e->last_login;
		e->saved_login = e->last_login;
		n++;
	}
	LWLockRelease(LoginLock);

	hdr.magic = STATE_MAGIC;
	hdr.version = STATE_VERSION;
	hdr.count = n;
	len = sizeof(SavedEntry) * n;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &hdr, sizeof(hdr));
	COMP_CRC32C(crc, buf, len);
	FIN_CRC32C(crc);

	fd = OpenTransientFile(STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ok = false;
	else
	{
		if (write(fd, &hdr, sizeof(hdr)) != sizeof(hdr) ||
			(len > 0 && write(fd, buf, len) != (ssize_t) len) ||
			write(fd, &crc, sizeof(crc)) != sizeof(crc) ||
			pg_fsync(fd) != 0)
			ok = false;
		if (CloseTransientFile(fd) != 0)
			ok = false;
	}
	if (!ok)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write toms login state file \"%s\": %m", STATE_TMP)));
	else
		(void) durable_rename(STATE_TMP, STATE_FILE, LOG);
	LWLockRelease(FileLock);
	pfree(buf);
}

/* Read the state file into freshly zeroed shared memory (at startup). */
static void
load_state(void)
{
	FILE	   *f;
	SavedHeader hdr;
	SavedEntry	se;
	pg_crc32c	crc,
				stored;
	TimestampTz now = GetCurrentTimestamp();
	SavedEntry *all;
	uint32		i;
	int			n = 0;

	f = AllocateFile(STATE_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read toms login state file \"%s\": %m", STATE_FILE)));
		return;
	}
	if (fread(&hdr, sizeof(hdr), 1, f) != 1 || hdr.magic != STATE_MAGIC ||
		hdr.version != STATE_VERSION || hdr.count > 10 * 1000 * 1000)
		goto corrupt;
	all = palloc(sizeof(SavedEntry) * Max(hdr.count, 1));
	if (hdr.count > 0 && fread(all, sizeof(SavedEntry), hdr.count, f) != hdr.count)
		goto corrupt;
	if (fread(&stored, sizeof(stored), 1, f) != 1)
		goto corrupt;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &hdr, sizeof(hdr));
	COMP_CRC32C(crc, all, sizeof(SavedEntry) * hdr.count);
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(crc, stored))
		goto corrupt;
	FreeFile(f);

	for (i = 0; i < hdr.count && n < account->nentries; i++)
	{
		LoginEntry *e = &account->entries[n];

		se = all[i];
		se.role.data[NAMEDATALEN - 1] = '\0';
		if (se.locked_until <= now && se.last_login == 0)
			continue;
		e->used = true;
		e->role = se.role;
		if (se.locked_until > now)
		{
			e->locked_at = se.locked_at;
			e->locked_until = se.locked_until;
		}
		e->last_login = e->saved_login = se.last_login;
		n++;
	}
	pfree(all);
	if (n < hdr.count)
		ereport(LOG,
				(errmsg("toms login state: %d of %u saved roles restored", n, hdr.count)));
	return;

corrupt:
	FreeFile(f);
	ereport(WARNING,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("toms login state file \"%s\" is corrupt and was ignored", STATE_FILE),
			 errdetail("Locked roles are unlocked and last-login times are lost.")));
}

static void
account_shmem_startup(void)
{
	bool		found;

	account = ShmemInitStruct("toms account", account_shmem_size(), &found);
	if (!found)
	{
		memset(account, 0, account_shmem_size());
		account->nentries = max_tracked_roles;
		load_state();
	}
}

/* --- the authentication hook ------------------------------------------ */

static int
tls_version_of(Port *port)
{
#ifdef USE_SSL
	const char *v;

	if (!port->ssl_in_use)
		return 0;
	v = be_tls_get_version(port);
	if (v == NULL)
		return 0;
	if (strcmp(v, "TLSv1.3") == 0)
		return TOMS_TLS_1_3;
	if (strcmp(v, "TLSv1.2") == 0)
		return TOMS_TLS_1_2;
	if (strcmp(v, "TLSv1.1") == 0)
		return TOMS_TLS_1_1;
	if (strcmp(v, "TLSv1") == 0)
		return TOMS_TLS_1_0;
#endif
	return 0;
}

static const char *
tls_version_name(int v)
{
	const struct config_enum_entry *o;

	for (o = tls_version_options; o->name; o++)
		if (o->val == v)
			return o->name;
	return "?";
}

/* Refuse a login for its transport: audited first, then FATAL with a fixed message. */
#define REFUSE_TLS(port, method, why, ...) \
	do { \
		toms_audit_login(false, (port)->user_name, (port)->database_name, (method), (why)); \
		ereport(FATAL, \
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION), \
				 __VA_ARGS__, \
				 errhint("Connect with sslmode=require (or stronger)."))); \
	} while (0)

static void
check_tls(Port *port, const char *method)
{
	int			v;

	if (!require_tls)
		return;
	if (port->raddr.addr.ss_family == AF_UNIX)
	{
		if (require_tls_local)
			REFUSE_TLS(port, method, "TLS is required",
					   errmsg("connection refused: TLS is required"),
					   errdetail("Unix-domain socket connections cannot use TLS and toms.require_tls_local is on."));
		return;
	}
	v = tls_version_of(port);
	if (v == 0)
		REFUSE_TLS(port, method, "TLS is required",
				   errmsg("connection refused: TLS is required"),
				   errdetail("toms.require_tls is on and this connection does not use TLS."));
	if (v < min_tls_version)
		REFUSE_TLS(port, method, "TLS version too old",
				   errmsg("connection refused: TLS version too old"),
				   errdetail("This connection uses %s; toms.min_tls_version is %s.",
							 tls_version_name(v), tls_version_name(min_tls_version)));
}

static void
failure_delay(void)
{
	if (auth_failure_delay > 0)
		pg_usleep(1000L * auth_failure_delay);
}

static char *
lock_detail(const char *role, int nfail, TimestampTz until)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"role\": ");
	escape_json(&s, role);
	appendStringInfo(&s, ", \"failures\": %d, \"locked_until\": ", nfail);
	escape_json(&s, timestamptz_to_str(until));
	appendStringInfoChar(&s, '}');
	return s.data;
}

/*
 * Break-glass: may this locked role log in anyway?  Over a Unix-domain
 * socket, a superuser or a member of toms_admin.  The shared catalogs are
 * readable here (pg_hba.conf's role checks read them too).
 */
static bool
break_glass(Port *port, const char *role)
{
	Oid			roleid;
	Oid			admin;

	if (port->raddr.addr.ss_family != AF_UNIX || !IsTransactionState())
		return false;
	roleid = get_role_oid(role, true);
	if (!OidIsValid(roleid))
		return false;
	if (superuser_arg(roleid))
		return true;
	admin = get_role_oid("toms_admin", true);
	return OidIsValid(admin) && is_member_of_role(roleid, admin);
}

/* ClientAuthentication_hook (hooks.c, after the other libraries' hooks). */
void
toms_account_client_auth(Port *port, int status)
{
	const char *role = port->user_name;
	const char *method = port->hba ? hba_authname(port->hba->auth_method) : NULL;
	TimestampTz now;
	LoginEntry *e;
	bool		locked = false;
	bool		just_locked = false;
	bool		save = false;
	int			nfail = 0;
	TimestampTz until = 0;

	/* The client hung up at the password prompt: not an attempt. */
	if (status == STATUS_EOF || role == NULL || account == NULL)
		return;

	/* A refused connection tells nothing about the password. */
	check_tls(port, method);

	now = GetCurrentTimestamp();
	if (max_failed_logins > 0 || status == STATUS_OK)
	{
		LWLockAcquire(LoginLock, LW_EXCLUSIVE);
		e = get_entry(role, now, status != STATUS_OK);
		if (e && max_failed_logins > 0 && entry_locked(e, now))
			locked = true;
		else if (e && status != STATUS_OK)
		{
			if (e->nfail == 0 ||
				e->first_fail < TimestampTzPlusMilliseconds(now, -1000L * lockout_window))
			{
				e->nfail = 0;
				e->first_fail = now;
			}
			e->nfail++;
			e->last_fail = now;
			nfail = e->nfail;
			if (e->nfail >= max_failed_logins)
			{
				e->locked_at = now;
				e->locked_until = TimestampTzPlusMilliseconds(now, 1000L * lockout_duration);
				e->nfail = 0;
				until = e->locked_until;
				just_locked = true;
			}
		}
		else if (e)
		{
			e->nfail = 0;
			e->locked_until = 0;
			e->last_login = now;
			save = e->saved_login == 0 ||
				e->saved_login < TimestampTzPlusMilliseconds(now, -LOGIN_SAVE_INTERVAL_MS);
		}
		LWLockRelease(LoginLock);
	}

	if (locked && status == STATUS_OK && break_glass(port, role))
	{
		StringInfoData d;

		/* the lock stays for network logins; toms.unlock_role() lifts it */
		ereport(LOG,
				(errmsg("toms: locked role \"%s\" logged in over a local socket (break-glass)", role)));
		toms_audit_login(true, role, port->database_name, method, "break-glass: locked role, local socket");
		initStringInfo(&d);
		appendStringInfoString(&d, "{\"role\": ");
		escape_json(&d, role);
		appendStringInfoChar(&d, '}');
		toms_incident("break_glass_login", "high", NULL, d.data);
		return;
	}
	if (locked)
	{
		toms_audit_login(false, role, port->database_name, method, "role locked");
		failure_delay();
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PASSWORD),
				 errmsg("role \"%s\" is locked after too many failed login attempts", role),
				 errhint("Try again later, or ask an administrator to run toms.unlock_role().")));
	}

	if (status != STATUS_OK)
	{
		toms_audit_login(false, role, port->database_name, method, "authentication failed");
		if (just_locked)
		{
			save_state();
			ereport(LOG,
					(errmsg("toms: role \"%s\" locked until %s after %d failed login attempts",
							role, timestamptz_to_str(until), nfail)));
			toms_incident("lockout", "high", NULL, lock_detail(role, nfail, until));
		}
		failure_delay();
		return;					/* PostgreSQL reports the failure */
	}

	if (save)
		save_state();
	toms_audit_login(true, role, port->database_name, method, NULL);
}

/* --- SQL-callable ----------------------------------------------------- */

PG_FUNCTION_INFO_V1(toms_login_state);
PG_FUNCTION_INFO_V1(toms_unlock_role);

static Datum
ts_or_null(TimestampTz t, bool *isnull)
{
	*isnull = (t == 0);
	return TimestampTzGetDatum(t);
}

/*
 * toms.login_state(): every tracked role with its failure count, lock and
 * last successful login.
 */
Datum
toms_login_state(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoginEntry *copy;
	int			n = 0;
	int			i;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (account == NULL)
		PG_RETURN_VOID();

	LWLockAcquire(LoginLock, LW_SHARED);
	copy = palloc(sizeof(LoginEntry) * account->nentries);
	for (i = 0; i < account->nentries; i++)
		if (account->entries[i].used)
			copy[n++] = account->entries[i];
	LWLockRelease(LoginLock);

	for (i = 0; i < n; i++)
	{
		LoginEntry *e = &copy[i];
		Datum		values[6];
		bool		nulls[6];
		bool		locked = entry_locked(e, now);
		bool		in_window = e->nfail > 0 &&
			e->first_fail >= TimestampTzPlusMilliseconds(now, -1000L * lockout_window);

		values[0] = NameGetDatum(&e->role);
		nulls[0] = false;
		values[1] = Int32GetDatum(in_window ? e->nfail : 0);
		nulls[1] = false;
		values[2] = ts_or_null(e->last_fail, &nulls[2]);
		values[3] = ts_or_null(locked ? e->locked_at : 0, &nulls[3]);
		values[4] = ts_or_null(locked ? e->locked_until : 0, &nulls[4]);
		values[5] = ts_or_null(e->last_login, &nulls[5]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* toms._unlock_role(role name) -> bool: was it locked? */
Datum
toms_unlock_role(PG_FUNCTION_ARGS)
{
	Name		role = PG_GETARG_NAME(0);
	LoginEntry *e;
	bool		was_locked = false;
	TimestampTz now = GetCurrentTimestamp();
	StringInfoData d;

	if (account == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("toms is not loaded through shared_preload_libraries")));

	LWLockAcquire(LoginLock, LW_EXCLUSIVE);
	e = find_entry(NameStr(*role));
	if (e)
	{
		was_locked = entry_locked(e, now);
		e->locked_until = 0;
		e->locked_at = 0;
		e->nfail = 0;
	}
	LWLockRelease(LoginLock);

	if (was_locked)
		save_state();

	initStringInfo(&d);
	appendStringInfoString(&d, "{\"role\": ");
	escape_json(&d, NameStr(*role));
	appendStringInfo(&d, ", \"was_locked\": %s}", was_locked ? "true" : "false");
	toms_audit_admin("unlock_role", NULL, d.data);
	PG_RETURN_BOOL(was_locked);
}

/* --- set-up ----------------------------------------------------------- */

void
toms_account_init(void)
{
	toms_password_init();

	DefineCustomIntVariable("toms.max_failed_logins",
							gettext_noop("Failed logins within toms.lockout_window that lock a role; 0 disables the lock-out."),
							NULL, &max_failed_logins, 5, 0, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.lockout_window",
							gettext_noop("Period in which failed logins are counted towards a lock-out."),
							NULL, &lockout_window, 15 * 60, 1, 365 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.lockout_duration",
							gettext_noop("How long a role stays locked after too many failed logins."),
							NULL, &lockout_duration, 15 * 60, 1, 365 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.auth_failure_delay",
							gettext_noop("Pause before reporting a failed or refused login."),
							NULL, &auth_failure_delay, 0, 0, 10000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.max_tracked_roles",
							gettext_noop("Role names whose login state (failures, locks, last login) is kept."),
							NULL, &max_tracked_roles, 1024, 16, 1000000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("toms.require_tls",
							 gettext_noop("Refuse TCP connections that do not use TLS."),
							 NULL, &require_tls, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("toms.min_tls_version",
							 gettext_noop("Oldest TLS version accepted when toms.require_tls is on."),
							 NULL, &min_tls_version, TOMS_TLS_1_2, tls_version_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("toms.require_tls_local",
							 gettext_noop("With toms.require_tls, also refuse Unix-domain socket connections."),
							 NULL, &require_tls_local, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

	lock_base = toms_shmem_register(account_shmem_size(), 2, account_shmem_startup);
}
