/*-------------------------------------------------------------------------
 *
 * crypto.c
 *	  The master key and the wrapping of per-tenant keys under it: the
 *	  lowest layer of sealed columns (docs/encryption.md).  The sealed_*.c
 *	  files wrap and unwrap tenant keys with it; nothing here touches a
 *	  table.
 *
 *	  The master key comes from toms.master_key_file or, if that is empty,
 *	  from the standard output of toms.master_key_command.  Both settings
 *	  are PGC_POSTMASTER and the key is read once, in the postmaster while
 *	  the library is preloaded: a key command (which may call a KMS) then
 *	  runs once per server start rather than once per connection, the key
 *	  file may be made unreadable after start, and a broken key source is
 *	  reported once, at start, in the server log.  Backends inherit the key
 *	  by fork(); it lives in sodium_malloc() memory (guard pages, excluded
 *	  from core dumps), read-only, and each backend mlock()s it again on
 *	  first use because memory locks are not inherited.
 *
 *	  During a master key rotation toms.previous_master_key_file (or
 *	  _command) supplies the old key, so that keys still wrapped under it
 *	  can be opened until toms.rotate_master_key() has rewrapped them.
 *
 *	  Without a master key the server runs normally; only what needs a
 *	  tenant key fails, with the reason found at start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "toms.h"

/* How much of a key file or command output we look at. */
#define KEY_SOURCE_MAX 256

/* Why a master key is not loaded (worded in errdetail_key_problem()). */
typedef enum KeyProblem
{
	KEY_OK = 0,
	KEY_NOT_CONFIGURED,
	KEY_NO_SECURE_MEMORY,
	KEY_FILE_OPEN,
	KEY_FILE_NOT_REGULAR,
	KEY_FILE_MODE,
	KEY_FILE_OWNER,
	KEY_FILE_READ,
	KEY_FILE_TOO_LONG,
	KEY_COMMAND_START,
	KEY_COMMAND_FAILED,
	KEY_COMMAND_TOO_LONG,
	KEY_ENCODING
} KeyProblem;

typedef struct MasterKeys
{
	unsigned char current[TOMS_KEY_LEN];
	unsigned char current_id[TOMS_MASTER_ID_LEN];
	unsigned char previous[TOMS_KEY_LEN];
	unsigned char previous_id[TOMS_MASTER_ID_LEN];
	bool		have_current;
	bool		have_previous;
} MasterKeys;

static char *master_key_file = NULL;
static char *master_key_command = NULL;
static char *previous_master_key_file = NULL;
static char *previous_master_key_command = NULL;

static MasterKeys *master = NULL;	/* sodium_malloc'd, read-only */
static bool master_locked_here = false;
static KeyProblem master_problem = KEY_NOT_CONFIGURED;

/* errdetail() for a KeyProblem: each reason is a fixed sentence. */
static int
errdetail_key_problem(KeyProblem problem)
{
	switch (problem)
	{
		case KEY_OK:
			break;
		case KEY_NOT_CONFIGURED:
			return errdetail("toms.master_key_file and toms.master_key_command are both empty.");
		case KEY_NO_SECURE_MEMORY:
			return errdetail("Secure memory for the master key could not be allocated.");
		case KEY_FILE_OPEN:
			return errdetail("The master key file could not be opened.");
		case KEY_FILE_NOT_REGULAR:
			return errdetail("The master key file is not a regular file.");
		case KEY_FILE_MODE:
			return errdetail("The master key file is accessible by group or others; it must have mode 0600 or 0400.");
		case KEY_FILE_OWNER:
			return errdetail("The master key file must be owned by the server's user or by root.");
		case KEY_FILE_READ:
			return errdetail("The master key file could not be read.");
		case KEY_FILE_TOO_LONG:
			return errdetail("The master key file is too long.");
		case KEY_COMMAND_START:
			return errdetail("The master key command could not be started.");
		case KEY_COMMAND_FAILED:
			return errdetail("The master key command failed.");
		case KEY_COMMAND_TOO_LONG:
			return errdetail("The master key command's output is too long.");
		case KEY_ENCODING:
			return errdetail("The master key must be 32 bytes written as 64 hex digits or in base64.");
	}
	return 0;
}

static KeyProblem
read_key_file(const char *path, unsigned char *buf, size_t *len)
{
	int			fd;
	struct stat st;
	ssize_t		n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return KEY_FILE_OPEN;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		return KEY_FILE_NOT_REGULAR;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		close(fd);
		return KEY_FILE_MODE;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0)
	{
		close(fd);
		return KEY_FILE_OWNER;
	}
	n = read(fd, buf, KEY_SOURCE_MAX);
	close(fd);
	if (n < 0)
		return KEY_FILE_READ;
	if (n >= KEY_SOURCE_MAX)
		return KEY_FILE_TOO_LONG;
	*len = (size_t) n;
	return KEY_OK;
}

static KeyProblem
read_key_command(const char *command, unsigned char *buf, size_t *len)
{
	FILE	   *fp;
	size_t		n = 0;
	size_t		r;
	int			status;

	fflush(NULL);
	fp = popen(command, "r");
	if (fp == NULL)
		return KEY_COMMAND_START;
	while ((r = fread(buf + n, 1, KEY_SOURCE_MAX - n, fp)) > 0)
	{
		n += r;
		if (n >= KEY_SOURCE_MAX)
		{
			/* Drain the rest so that the command does not block. */
			unsigned char sink[64];

			while (fread(sink, 1, sizeof(sink), fp) > 0)
				;
			sodium_memzero(sink, sizeof(sink));
			break;
		}
	}
	status = pclose(fp);
	if (status != 0)
		return KEY_COMMAND_FAILED;
	if (n >= KEY_SOURCE_MAX)
		return KEY_COMMAND_TOO_LONG;
	*len = n;
	return KEY_OK;
}

/* 32 bytes as 64 hex digits or base64 (standard or url, padded or not). */
static KeyProblem
decode_key(const unsigned char *raw, size_t len, unsigned char *key)
{
	const char *s = (const char *) raw;
	size_t		bin_len = 0;
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING
	};
	int			i;

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' ||
					   s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
	{
		s++;
		len--;
	}
	if (len == 2 * TOMS_KEY_LEN &&
		sodium_hex2bin(key, TOMS_KEY_LEN, s, len, NULL, &bin_len, NULL) == 0 &&
		bin_len == TOMS_KEY_LEN)
		return KEY_OK;
	for (i = 0; i < lengthof(variants); i++)
	{
		const char *end = NULL;

		if (sodium_base642bin(key, TOMS_KEY_LEN, s, len, NULL, &bin_len, &end,
							  variants[i]) == 0 &&
			bin_len == TOMS_KEY_LEN && end == s + len)
			return KEY_OK;
	}
	sodium_memzero(key, TOMS_KEY_LEN);
	return KEY_ENCODING;
}

static KeyProblem
load_key(const char *file, const char *command, unsigned char *key,
		 unsigned char *id)
{
	unsigned char *buf;
	size_t		len = 0;
	KeyProblem	why;

	buf = sodium_malloc(KEY_SOURCE_MAX);
	if (buf == NULL)
		return KEY_NO_SECURE_MEMORY;
	if (file != NULL && file[0] != '\0')
		why = read_key_file(file, buf, &len);
	else
		why = read_key_command(command, buf, &len);
	if (why == KEY_OK)
		why = decode_key(buf, len, key);
	sodium_free(buf);			/* zeroes */
	if (why == KEY_OK)
		crypto_generichash(id, TOMS_MASTER_ID_LEN,
						   (const unsigned char *) "toms master key id", 18,
						   key, TOMS_KEY_LEN);
	return why;
}

static bool
configured(const char *file, const char *command)
{
	return (file != NULL && file[0] != '\0') ||
		(command != NULL && command[0] != '\0');
}

static void
load_master_keys(void)
{
	KeyProblem	why;

	master = sodium_malloc(sizeof(MasterKeys));
	if (master == NULL)
	{
		master_problem = KEY_NO_SECURE_MEMORY;
		ereport(WARNING, (errmsg("toms: master key not loaded"),
						  errdetail_key_problem(master_problem)));
		return;
	}
	memset(master, 0, sizeof(MasterKeys));

	if (configured(master_key_file, master_key_command))
	{
		why = load_key(master_key_file, master_key_command,
					   master->current, master->current_id);
		if (why == KEY_OK)
			master->have_current = true;
		else
		{
			master_problem = why;
			ereport(WARNING,
					(errmsg("toms: master key not loaded, sealed columns are unavailable"),
					 errdetail_key_problem(why)));
		}
	}
	if (configured(previous_master_key_file, previous_master_key_command))
	{
		why = load_key(previous_master_key_file, previous_master_key_command,
					   master->previous, master->previous_id);
		if (why == KEY_OK)
			master->have_previous = true;
		else
			ereport(WARNING,
					(errmsg("toms: previous master key not loaded"),
					 errdetail_key_problem(why)));
	}
	if (master->have_current && master->have_previous &&
		sodium_memcmp(master->current_id, master->previous_id, TOMS_MASTER_ID_LEN) == 0)
		ereport(WARNING,
				(errmsg("toms: the previous master key is the same as the current one")));
	sodium_mprotect_readonly(master);
}

/*
 * Settings and the master keys.  Runs in the postmaster, after _PG_init
 * (toms.c) has initialised libsodium.
 */
void
toms_crypto_init(void)
{
	DefineCustomStringVariable("toms.master_key_file",
							   gettext_noop("File holding the master key (32 bytes, hex or base64; mode 0600)."),
							   NULL, &master_key_file, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("toms.master_key_command",
							   gettext_noop("Command whose output is the master key, used when toms.master_key_file is empty."),
							   NULL, &master_key_command, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("toms.previous_master_key_file",
							   gettext_noop("File holding the previous master key during a master key rotation."),
							   NULL, &previous_master_key_file, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("toms.previous_master_key_command",
							   gettext_noop("Command whose output is the previous master key during a rotation."),
							   NULL, &previous_master_key_command, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);

	load_master_keys();
}

/* Re-lock the inherited pages in this process (locks are not inherited). */
static void
lock_here(void)
{
	if (!master_locked_here && master != NULL)
	{
		(void) sodium_mlock(master, sizeof(MasterKeys));
		master_locked_here = true;
	}
}

bool
toms_master_key_loaded(void)
{
	return master != NULL && master->have_current;
}

void
toms_require_master_key(void)
{
	if (!toms_master_key_loaded())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("toms master key is not loaded"),
				 errdetail_key_problem(master_problem),
				 errhint("Set toms.master_key_file or toms.master_key_command and restart the server.")));
	lock_here();
}

/* Associated data of a wrapped key: what it is the key of. */
static size_t
wrap_ad(unsigned char *ad, const char *tenant, char purpose, int32 version)
{
	size_t		tlen = strlen(tenant);
	size_t		n = 0;

	Assert(tlen <= TOMS_MAX_TENANT_LEN);
	memcpy(ad, "toms tenant key v1", 18);
	n += 18;
	ad[n++] = 0;
	memcpy(ad + n, tenant, tlen);
	n += tlen;
	ad[n++] = 0;
	ad[n++] = (unsigned char) purpose;
	ad[n++] = (unsigned char) (version >> 24);
	ad[n++] = (unsigned char) (version >> 16);
	ad[n++] = (unsigned char) (version >> 8);
	ad[n++] = (unsigned char) version;
	return n;
}

#define WRAP_AD_MAX (18 + 1 + TOMS_MAX_TENANT_LEN + 1 + 1 + 4)

void
toms_key_wrap(const unsigned char *key, const char *tenant, char purpose,
			  int32 version, unsigned char *wrapped, unsigned char *master_id)
{
	unsigned char ad[WRAP_AD_MAX];
	size_t		adlen;

	toms_require_master_key();
	adlen = wrap_ad(ad, tenant, purpose, version);
	randombytes_buf(wrapped, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
											   NULL, key, TOMS_KEY_LEN, ad, adlen, NULL,
											   wrapped, master->current);
	memcpy(master_id, master->current_id, TOMS_MASTER_ID_LEN);
}

bool
toms_key_unwrap(const unsigned char *wrapped, size_t wrapped_len,
				const unsigned char *master_id, const char *tenant,
				char purpose, int32 version, unsigned char *key)
{
	unsigned char ad[WRAP_AD_MAX];
	size_t		adlen;
	const unsigned char *mk;
	unsigned long long klen;

	toms_require_master_key();
	if (sodium_memcmp(master_id, master->current_id, TOMS_MASTER_ID_LEN) == 0)
		mk = master->current;
	else if (master->have_previous &&
			 sodium_memcmp(master_id, master->previous_id, TOMS_MASTER_ID_LEN) == 0)
		mk = master->previous;
	else
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant key is wrapped under a master key that is not loaded"),
				 errhint("During a master key rotation set toms.previous_master_key_file (or _command) to the old key, restart, and run toms.rotate_master_key().")));
	if (wrapped_len != TOMS_WRAPPED_LEN)
		return false;
	adlen = wrap_ad(ad, tenant, purpose, version);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, &klen, NULL,
												   wrapped + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
												   wrapped_len - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
												   ad, adlen, wrapped, mk) != 0 ||
		klen != TOMS_KEY_LEN)
	{
		sodium_memzero(key, TOMS_KEY_LEN);
		return false;
	}
	return true;
}

/*
 * The current master key's id (8 bytes, a keyed hash of the key, the value
 * toms.tenant_keys.master_key_id records): false if no key is loaded.
 * Lets a Citus coordinator compare its key with its workers' (issue 15).
 */
bool
toms_master_key_id(unsigned char *id)
{
	if (!toms_master_key_loaded())
		return false;
	memcpy(id, master->current_id, TOMS_MASTER_ID_LEN);
	return true;
}

/* Is this the current master key's id (false: previous or unknown)? */
bool
toms_master_id_is_current(const unsigned char *master_id)
{
	toms_require_master_key();
	return sodium_memcmp(master_id, master->current_id, TOMS_MASTER_ID_LEN) == 0;
}
