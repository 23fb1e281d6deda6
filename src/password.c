/*-------------------------------------------------------------------------
 *
 * password.c
 *	  Password policy for CREATE/ALTER ROLE ... PASSWORD (measures 4a, 4c).
 *
 *	  check_password_hook refuses a new password that is too short, has too
 *	  few character classes, contains the role name, is (a disguise of) a
 *	  common password, or was one of the role's recent passwords; it also
 *	  requires VALID UNTIL within toms.password_max_age, refuses MD5 always
 *	  and SCRAM verifiers unless toms.password_allow_prehashed is on.
 *
 *	  The common list (data/toms_common_passwords.txt, installed into the
 *	  extension share directory) is loaded once per backend into a hash
 *	  table, on the first password check.
 *
 *	  The history is kept in toms.password_history, in the database where
 *	  the role's password is changed, as libsodium crypto_pwhash (Argon2id)
 *	  strings only.  The hook runs inside the CREATE/ALTER ROLE transaction,
 *	  so the history row commits or rolls back with the password change, is
 *	  WAL-logged (reaches standbys) and survives restarts.
 *
 *	  No message raised here contains the password; what PostgreSQL itself
 *	  prints (the statement text) is redacted by redact.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <sodium.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/user.h"
#include "executor/spi.h"
#include "libpq/crypt.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/syscache.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "toms.h"

/* Longest entry of the common list we keep (the shipped list: 20). */
#define COMMON_MAX_LEN 63

/* settings */
static int	password_min_length = 12;
static int	password_classes = 3;
static int	password_history = 5;
static int	password_max_age = 90 * 24 * 3600;	/* seconds */
static bool password_allow_prehashed = false;
static char *password_common_file = NULL;


static HTAB *common_passwords = NULL;
static char *common_loaded_from = NULL;

typedef struct CommonEntry
{
	char		word[COMMON_MAX_LEN + 1];
} CommonEntry;

/*
 * Refuse with 22023 and without the statement text.  The detail never
 * names the password.
 */
#define REFUSE(msg, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg(msg), errhidestmt(true), ##__VA_ARGS__))

static void
load_common_passwords(void)
{
	char		path[MAXPGPATH];
	char		line[1024];
	FILE	   *f;
	HASHCTL		ctl;
	HTAB	   *h;

	if (password_common_file && password_common_file[0] != '\0')
		strlcpy(path, password_common_file, sizeof(path));
	else
	{
		char		share[MAXPGPATH];

		get_share_path(my_exec_path, share);
		snprintf(path, sizeof(path), "%s/extension/toms_common_passwords.txt", share);
	}

	/* Loaded once per backend; again only if the setting names another file. */
	if (common_passwords && strcmp(common_loaded_from, path) == 0)
		return;
	if (common_passwords)
	{
		hash_destroy(common_passwords);
		common_passwords = NULL;
		pfree(common_loaded_from);
	}

	f = AllocateFile(path, "r");
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open common password list \"%s\": %m", path),
				 errhint("Install toms completely, or set toms.password_common_file."),
				 errhidestmt(true)));

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = COMMON_MAX_LEN + 1;
	ctl.entrysize = sizeof(CommonEntry);
	ctl.hcxt = TopMemoryContext;
	h = hash_create("toms common passwords", 32768, &ctl,
					HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	while (fgets(line, sizeof(line), f) != NULL)
	{
		size_t		len = strcspn(line, "\r\n");
		char		key[COMMON_MAX_LEN + 1];
		size_t		i;

		if (len == 0 || len > COMMON_MAX_LEN || line[0] == '#')
			continue;
		for (i = 0; i < len; i++)
			key[i] = pg_ascii_tolower((unsigned char) line[i]);
		key[len] = '\0';
		(void) hash_search(h, key, HASH_ENTER, NULL);
	}
	FreeFile(f);
	common_passwords = h;
	common_loaded_from = MemoryContextStrdup(TopMemoryContext, path);
}

static bool
is_common(const char *s)
{
	char		key[COMMON_MAX_LEN + 1];

	if (s[0] == '\0' || strlen(s) > COMMON_MAX_LEN)
		return false;
	memset(key, 0, sizeof(key));
	strlcpy(key, s, sizeof(key));
	return hash_search(common_passwords, key, HASH_FIND, NULL) != NULL;
}

/* Undo the usual look-alike substitutions; one_as is what '1' becomes. */
static void
desubstitute(char *s, char one_as)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '@':
			case '4':
				*s = 'a';
				break;
			case '0':
				*s = 'o';
				break;
			case '1':
			case '!':
			case '|':
				*s = one_as;
				break;
			case '3':
				*s = 'e';
				break;
			case '$':
			case '5':
				*s = 's';
				break;
			case '7':
			case '+':
				*s = 't';
				break;
			default:
				break;
		}
	}
}

/* Strip leading and trailing digits and punctuation, in place. */
static void
strip_decoration(char *s)
{
	size_t		len = strlen(s);
	size_t		start = 0;

	while (len > 0 && (isdigit((unsigned char) s[len - 1]) || ispunct((unsigned char) s[len - 1]) ||
					   s[len - 1] == ' '))
		len--;
	while (start < len && (isdigit((unsigned char) s[start]) || ispunct((unsigned char) s[start]) ||
						   s[start] == ' '))
		start++;
	memmove(s, s + start, len - start);
	s[len - start] = '\0';
}

/*
 * Is the (lower-cased) password a common password, or one in disguise:
 * decorated with digits/punctuation, or with look-alike substitutions?
 */
static bool
common_or_disguised(const char *lower)
{
	size_t		len = strlen(lower);
	char	   *forms[2];
	char	   *work = palloc(len + 1);
	bool		found = false;
	int			i;

	load_common_passwords();

	forms[0] = pstrdup(lower);
	forms[1] = pstrdup(lower);
	strip_decoration(forms[1]);

	for (i = 0; i < 2 && !found; i++)
	{
		const char	one_as[2] = {'l', 'i'};
		int			j;

		if (is_common(forms[i]))
			found = true;
		for (j = 0; j < 2 && !found; j++)
		{
			strlcpy(work, forms[i], len + 1);
			desubstitute(work, one_as[j]);
			if (is_common(work))
				found = true;
			strip_decoration(work);
			if (!found && is_common(work))
				found = true;
		}
	}

	explicit_bzero(work, len + 1);
	explicit_bzero(forms[0], len + 1);
	explicit_bzero(forms[1], len + 1);
	pfree(work);
	pfree(forms[0]);
	pfree(forms[1]);
	return found;
}

static char *
ascii_lower(const char *s)
{
	char	   *r = pstrdup(s);
	char	   *p;

	for (p = r; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	return r;
}

static void
reverse_in_place(char *s)
{
	size_t		len = strlen(s);
	size_t		i;

	for (i = 0; i < len / 2; i++)
	{
		char		c = s[i];

		s[i] = s[len - 1 - i];
		s[len - 1 - i] = c;
	}
}

static int
count_classes(const char *pw)
{
	bool		lower = false,
				upper = false,
				digit = false,
				other = false;
	const unsigned char *p;

	for (p = (const unsigned char *) pw; *p; p++)
	{
		if (*p >= 'a' && *p <= 'z')
			lower = true;
		else if (*p >= 'A' && *p <= 'Z')
			upper = true;
		else if (*p >= '0' && *p <= '9')
			digit = true;
		else
			other = true;
	}
	return (int) lower + (int) upper + (int) digit + (int) other;
}

/* Is toms installed in this database (so toms.password_history exists)? */
static bool
history_table_available(void)
{
	return IsTransactionState() &&
		OidIsValid(get_extension_oid("toms", true)) &&
		OidIsValid(get_namespace_oid(TOMS_SCHEMA, true));
}

/*
 * Refuse a password the role used recently, then remember this one.
 * Runs as the bootstrap superuser with a safe search_path (a role may
 * change its own password but cannot read the history), inside the
 * caller's transaction.
 */
static void
check_and_record_history(const char *username, const char *pw)
{
	Oid			save_userid;
	int			save_sec;
	int			save_nestlevel;
	Oid			argtypes[2] = {NAMEOID, INT4OID};
	Datum		args[2];
	char		hash[crypto_pwhash_STRBYTES];
	bool		reused = false;
	uint64		i;

	if (password_history <= 0 || !history_table_available())
		return;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");

		args[0] = CStringGetDatum(username);
		args[1] = Int32GetDatum(password_history);
		if (SPI_execute_with_args("SELECT hash FROM " TOMS_SCHEMA ".password_history"
								  " WHERE role OPERATOR(pg_catalog.=) $1"
								  " ORDER BY id DESC LIMIT $2",
								  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the password history");

		for (i = 0; i < SPI_processed && !reused; i++)
		{
			char	   *stored = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

			if (stored && strlen(stored) < crypto_pwhash_STRBYTES &&
				crypto_pwhash_str_verify(stored, pw, strlen(pw)) == 0)
				reused = true;
		}
		if (reused)
			REFUSE("password was used recently",
				   errdetail("A role may not reuse any of its last %d passwords.", password_history));

		if (crypto_pwhash_str(hash, pw, strlen(pw),
							  crypto_pwhash_OPSLIMIT_INTERACTIVE,
							  crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not hash the password for the password history"),
					 errhidestmt(true)));

		{
			Oid			instypes[2] = {NAMEOID, TEXTOID};
			Datum		insargs[2];

			insargs[0] = CStringGetDatum(username);
			insargs[1] = CStringGetTextDatum(hash);
			if (SPI_execute_with_args("INSERT INTO " TOMS_SCHEMA ".password_history (role, hash)"
									  " VALUES ($1, $2)",
									  2, instypes, insargs, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not record the password history");
		}

		/* Keep only what the rule needs. */
		if (SPI_execute_with_args("DELETE FROM " TOMS_SCHEMA ".password_history"
								  " WHERE role OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.<) ANY ("
								  "  SELECT min(id) FROM (SELECT id FROM " TOMS_SCHEMA ".password_history"
								  "   WHERE role OPERATOR(pg_catalog.=) $1 ORDER BY id DESC LIMIT $2) k)",
								  2, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not trim the password history");

		SPI_finish();
	}
	PG_FINALLY();
	{
		sodium_memzero(hash, sizeof(hash));
		AtEOXact_GUC(false, save_nestlevel);
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/* Regular change (4c): an expiry date, not too far ahead. */
static void
check_valid_until(Datum validuntil_time, bool validuntil_null)
{
	TimestampTz limit;

	if (password_max_age <= 0)
		return;
	limit = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										(int64) password_max_age * 1000);
	if (validuntil_null)
		REFUSE("password must have an expiry date",
			   errdetail("toms.password_max_age requires VALID UNTIL at most %d days ahead.",
						 password_max_age / 86400),
			   errhint("Add VALID UNTIL to the statement."));
	if (DatumGetTimestampTz(validuntil_time) > limit)
		REFUSE("password expiry date is too far in the future",
			   errdetail("VALID UNTIL may be at most %d days ahead (toms.password_max_age).",
						 password_max_age / 86400));
}

/* check_password_hook (hooks.c, after the other libraries' hooks). */
void
toms_check_password(const char *username, const char *shadow_pass,
					PasswordType password_type, Datum validuntil_time,
					bool validuntil_null)
{
	char	   *lower;
	char	   *lname;
	int			nclasses;

	/* Hashes: complexity cannot be checked; MD5 is broken. */
	if (password_type == PASSWORD_TYPE_MD5)
		REFUSE("MD5 password hashes are not accepted",
			   errhint("Send the password in plain text over a TLS connection, or as a SCRAM-SHA-256 verifier if toms.password_allow_prehashed is on."));
	if (password_type == PASSWORD_TYPE_PLAINTEXT && Password_encryption == PASSWORD_TYPE_MD5)
		REFUSE("passwords may not be stored as MD5",
			   errhint("Set password_encryption to scram-sha-256."));
	if (password_type != PASSWORD_TYPE_PLAINTEXT && !password_allow_prehashed)
		REFUSE("pre-hashed passwords are not accepted",
			   errdetail("The complexity of a hashed password cannot be checked."),
			   errhint("Send the password in plain text over a TLS connection, or ask an administrator to set toms.password_allow_prehashed."));

	check_valid_until(validuntil_time, validuntil_null);

	if (password_type != PASSWORD_TYPE_PLAINTEXT)
		return;

	if (pg_mbstrlen(shadow_pass) < password_min_length)
		REFUSE("password is too short",
			   errdetail("A password must have at least %d characters.", password_min_length));

	nclasses = count_classes(shadow_pass);
	if (nclasses < password_classes)
		REFUSE("password has too few kinds of characters",
			   errdetail("A password must contain at least %d of: lower-case letters, upper-case letters, digits, other characters.",
						 password_classes));

	lower = ascii_lower(shadow_pass);
	lname = ascii_lower(username);
	if (strlen(lname) >= 3)
	{
		bool		bad = strstr(lower, lname) != NULL || strstr(lname, lower) != NULL;

		reverse_in_place(lname);
		bad = bad || strstr(lower, lname) != NULL;
		if (bad)
		{
			explicit_bzero(lower, strlen(lower));
			REFUSE("password must not contain the role name",
				   errdetail("Neither may contain the other, forwards or backwards, ignoring case."));
		}
	}

	if (common_or_disguised(lower))
	{
		explicit_bzero(lower, strlen(lower));
		REFUSE("password is too common",
			   errdetail("It is, or is derived from, an entry of the list of common passwords."));
	}
	explicit_bzero(lower, strlen(lower));
	pfree(lower);
	pfree(lname);

	check_and_record_history(username, shadow_pass);
}

/* --- ALTER ROLE without a password ------------------------------------ */

/* Is the role recorded in toms.deactivated_roles of this database? */
static bool
role_deactivated(Oid roleid)
{
	Oid			save_userid;
	int			save_sec;
	volatile bool found = false;

	if (!history_table_available())
		return false;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		args[1];

		args[0] = ObjectIdGetDatum(roleid);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("SELECT 1 FROM " TOMS_SCHEMA ".deactivated_roles"
								  " WHERE role::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
								  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read toms.deactivated_roles");
		found = SPI_processed > 0;
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	return found;
}

/*
 * The password hook sees VALID UNTIL only together with a new password.
 * Here: ALTER ROLE ... VALID UNTIL alone may not push the expiry of a
 * password past toms.password_max_age, and ALTER ROLE ... LOGIN may not
 * undo toms.deactivate_role() (toms.reactivate_role() removes the record
 * first).
 */
static void
check_alter_role(AlterRoleStmt *stmt)
{
	DefElem    *validuntil = NULL;
	bool		has_password = false;
	bool		login = false;
	ListCell   *lc;
	Oid			roleid;

	foreach(lc, stmt->options)
	{
		DefElem    *d = lfirst_node(DefElem, lc);

		if (strcmp(d->defname, "validUntil") == 0)
			validuntil = d;
		else if (strcmp(d->defname, "password") == 0)
			has_password = true;
		else if (strcmp(d->defname, "canlogin") == 0)
			login = defGetBoolean(d);
	}
	if (!login && (validuntil == NULL || has_password))
		return;

	roleid = get_rolespec_oid(stmt->role, true);
	if (!OidIsValid(roleid))
		return;					/* AlterRole reports it */

	if (login && role_deactivated(roleid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("role \"%s\" is deactivated", get_rolespec_name(stmt->role)),
				 errhint("Use toms.reactivate_role() with a reason.")));

	if (validuntil && !has_password)
	{
		HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
		bool		nopw = true;

		if (HeapTupleIsValid(tup))
		{
			(void) SysCacheGetAttr(AUTHOID, tup, Anum_pg_authid_rolpassword, &nopw);
			ReleaseSysCache(tup);
		}
		if (!nopw)
		{
			bool		isnull = validuntil->arg == NULL;
			Datum		d = (Datum) 0;

			if (!isnull)
				d = DirectFunctionCall3(timestamptz_in, CStringGetDatum(strVal(validuntil->arg)),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
			check_valid_until(d, isnull);
		}
	}
}

/* ALTER ROLE ... RENAME TO: the history follows the role. */
static void
rename_history(const char *oldname, const char *newname)
{
	Oid			save_userid;
	int			save_sec;
	Oid			argtypes[2] = {NAMEOID, NAMEOID};
	Datum		args[2];

	if (!history_table_available())
		return;
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		args[0] = CStringGetDatum(oldname);
		args[1] = CStringGetDatum(newname);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("UPDATE " TOMS_SCHEMA ".password_history SET role = $2"
								  " WHERE role OPERATOR(pg_catalog.=) $1",
								  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not rename the password history");
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/* ProcessUtility (hooks.c), before the statement runs. */
void
toms_password_utility_before(Node *parsetree)
{
	if (IsA(parsetree, AlterRoleStmt))
		check_alter_role((AlterRoleStmt *) parsetree);
}

/* ProcessUtility (hooks.c), after the statement ran: the history follows a renamed role. */
void
toms_password_utility_after(Node *parsetree)
{
	if (IsA(parsetree, RenameStmt) &&
		((RenameStmt *) parsetree)->renameType == OBJECT_ROLE)
	{
		RenameStmt *r = (RenameStmt *) parsetree;

		rename_history(r->subname, r->newname);
	}
}

/* --- set-up ----------------------------------------------------------- */

void
toms_password_init(void)
{
	DefineCustomIntVariable("toms.password_min_length",
							gettext_noop("Minimum length of a new password, in characters."),
							NULL, &password_min_length, 12, 1, 1000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.password_classes",
							gettext_noop("How many of the four character classes a new password needs."),
							gettext_noop("Classes: lower-case, upper-case, digits, other characters."),
							&password_classes, 3, 0, 4,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.password_history",
							gettext_noop("How many previous passwords of a role may not be reused."),
							NULL, &password_history, 5, 0, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("toms.password_max_age",
							gettext_noop("How far ahead VALID UNTIL of a new password may be; 0 does not require it."),
							NULL, &password_max_age, 90 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("toms.password_allow_prehashed",
							 gettext_noop("Accept SCRAM-SHA-256 verifiers instead of plain-text passwords."),
							 NULL, &password_allow_prehashed, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("toms.password_common_file",
							   gettext_noop("File of common passwords to refuse; empty means the list shipped with toms."),
							   NULL, &password_common_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
}
