/*-------------------------------------------------------------------------
 *
 * sealed.c
 *	  Sealed columns (docs/encryption.md): the toms.sealed type's input and
 *	  output, and sealing and opening values under the tenant's keys --
 *	  toms.seal(), toms.unseal(), toms.unseal_bytea(), toms.blind_index(),
 *	  toms.sealed_key_version(), toms.master_key_loaded() and toms._master_key_id().
 *
 *	  A value is XChaCha20-Poly1305 under the tenant's data key, with the
 *	  value's header and the tenant id as associated data, so that it opens
 *	  only for its tenant; the byte format is in sealed_format.h (pure C,
 *	  fuzzed), the keys come from sealed_keys.c.  sealed_admin.c and
 *	  sealed_reseal.c use the sealing and opening functions exported here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "sealed_format.h"
#include "toms.h"

/* SQLSTATEs of sealed values (documented in docs/encryption.md). */
#define ERRCODE_SEALED_TRUNCATED		MAKE_SQLSTATE('2','2','T','0','1')
#define ERRCODE_SEALED_TAMPERED			MAKE_SQLSTATE('2','2','T','0','2')
#define ERRCODE_SEALED_WRONG_TENANT		MAKE_SQLSTATE('2','8','T','0','1')

#define AD_MAX			(SEALED_AD_HEADER_LEN + TOMS_MAX_TENANT_LEN)

/* Where a malformed value came from: each has its own message. */
typedef enum FormatSource
{
	FROM_TEXT,					/* type input */
	FROM_BINARY,				/* binary receive */
	FROM_STORED					/* a stored value given to a function */
} FormatSource;

/* ---------------------------------------------------------------------
 * Sealing and opening
 * ---------------------------------------------------------------------
 */

static const char *
current_tenant(void)
{
	return toms_context(false)->tenant;
}

/*
 * errdetail() for a format error: the reasons of
 * toms_sealed_format_strerror(), as fixed (translatable) sentences.
 */
static int
errdetail_sealed_format(SealedFormatError err)
{
	switch (err)
	{
		case SEALED_OK:
			break;
		case SEALED_ERR_PREFIX:
			return errdetail("A sealed value starts with \"sealed:v1:\"; plaintext is never accepted.");
		case SEALED_ERR_VERSION:
			return errdetail("The sealed value has an unsupported format version.");
		case SEALED_ERR_CHAR:
			return errdetail("The sealed value contains a character that is not base64url.");
		case SEALED_ERR_ENCODING:
			return errdetail("The sealed value is not canonical base64url.");
		case SEALED_ERR_TRUNCATED:
			return errdetail("The sealed value is shorter than its header says.");
		case SEALED_ERR_TRAILING:
			return errdetail("The sealed value is longer than its header says.");
		case SEALED_ERR_TOO_LONG:
			return errdetail("The sealed value's length is over the limit.");
	}
	return errdetail("The sealed value is malformed.");
}

/*
 * Refuse a value that is not well-formed.  A truncated value says so
 * wherever it comes from (22T01).
 */
static void
raise_format_error(SealedFormatError err, FormatSource source)
{
	if (err == SEALED_ERR_TRUNCATED)
		ereport(ERROR,
				(errcode(ERRCODE_SEALED_TRUNCATED),
				 errmsg("sealed value is truncated"),
				 errdetail_sealed_format(err)));
	switch (source)
	{
		case FROM_TEXT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type sealed"),
					 errdetail_sealed_format(err)));
			break;
		case FROM_BINARY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid binary representation for type sealed"),
					 errdetail_sealed_format(err)));
			break;
		case FROM_STORED:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("sealed value is malformed"),
					 errdetail_sealed_format(err)));
			break;
	}
}

/*
 * Nonces come from a per-backend buffer of random bytes refilled 4 KB at a
 * time: getrandom() per value would cost more than the encryption of a
 * small value.  XChaCha20 nonces need to be unique, not secret (they are
 * stored in the clear), and 192 random bits make a collision negligible.
 * The buffer is filled in the backend that uses it, never inherited.
 */
#define NONCE_POOL_SIZE 4096
static unsigned char nonce_pool[NONCE_POOL_SIZE];
static size_t nonce_pool_used = NONCE_POOL_SIZE;
static int	nonce_pool_pid = 0;

static void
next_nonce(unsigned char *nonce)
{
	if (nonce_pool_pid != MyProcPid ||
		nonce_pool_used + SEALED_NONCE_LEN > NONCE_POOL_SIZE)
	{
		randombytes_buf(nonce_pool, NONCE_POOL_SIZE);
		nonce_pool_used = 0;
		nonce_pool_pid = MyProcPid;
	}
	memcpy(nonce, nonce_pool + nonce_pool_used, SEALED_NONCE_LEN);
	nonce_pool_used += SEALED_NONCE_LEN;
}

static size_t
build_ad(unsigned char *ad, const unsigned char *header, const char *tenant)
{
	size_t		tlen = strlen(tenant);

	memcpy(ad, header, SEALED_AD_HEADER_LEN);
	memcpy(ad + SEALED_AD_HEADER_LEN, tenant, tlen);
	return SEALED_AD_HEADER_LEN + tlen;
}

/* Seal len bytes of data for the tenant, under its active data key. */
bytea *
toms_sealed_seal(const char *tenant, const char *data, size_t len)
{
	bytea	   *result;
	unsigned char *p;
	unsigned char ad[AD_MAX];
	size_t		adlen;
	const TomsTenantKey *key;

	toms_sealed_check_tenant(tenant);
	if (len > SEALED_MAX_PLAINTEXT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value is too long to be sealed"),
				 errdetail("The limit is %d bytes.", SEALED_MAX_PLAINTEXT)));
	result = palloc(VARHDRSZ + SEALED_MIN_LEN + len);
	SET_VARSIZE(result, VARHDRSZ + SEALED_MIN_LEN + len);
	p = (unsigned char *) VARDATA(result);

	key = toms_tenant_key(tenant, TOMS_KEY_DATA, 0, true, true);
	/* No catalog access from here on: the cached key is in use. */
	p[0] = SEALED_FORMAT_VERSION;
	sealed_put_u32(p + SEALED_OFF_KEYVER, (uint32_t) key->version);
	memcpy(p + SEALED_OFF_KEYID, key->id, SEALED_KEYID_LEN);
	sealed_put_u32(p + SEALED_OFF_PTLEN, (uint32_t) len);
	next_nonce(p + SEALED_OFF_NONCE);
	adlen = build_ad(ad, p, tenant);
	crypto_aead_xchacha20poly1305_ietf_encrypt(p + SEALED_HEADER_LEN, NULL,
											   (const unsigned char *) data, len,
											   ad, adlen, NULL,
											   p + SEALED_OFF_NONCE, key->key);
	return result;
}

/*
 * Open a (format-checked) sealed value for the tenant into out, which holds
 * the plaintext length (sealed_get_u32 at SEALED_OFF_PTLEN) bytes; out may
 * be NULL to only authenticate.
 */
TomsSealedOpen
toms_sealed_open(const char *tenant, const unsigned char *p, size_t len,
				 unsigned char *out)
{
	const TomsTenantKey *key;
	unsigned char ad[AD_MAX];
	size_t		adlen;
	uint32_t	version = sealed_get_u32(p + SEALED_OFF_KEYVER);
	unsigned char *buf = out;
	int			rc;

	toms_sealed_check_tenant(tenant);
	if (version == 0 || version > PG_INT32_MAX)
		return TOMS_OPEN_NO_KEY;
	key = toms_tenant_key(tenant, TOMS_KEY_DATA, (int32) version, false, true);
	if (key == NULL)
		return TOMS_OPEN_NO_KEY;
	/* No catalog access from here on: the cached key is in use. */
	if (sodium_memcmp(key->id, p + SEALED_OFF_KEYID, SEALED_KEYID_LEN) != 0)
		return TOMS_OPEN_WRONG_KEY;
	adlen = build_ad(ad, p, tenant);
	if (buf == NULL)
		buf = palloc(len - SEALED_MIN_LEN + 1);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(buf, NULL, NULL,
													p + SEALED_HEADER_LEN, len - SEALED_HEADER_LEN,
													ad, adlen, p + SEALED_OFF_NONCE,
													key->key);
	if (out == NULL)
	{
		sodium_memzero(buf, len - SEALED_MIN_LEN);
		pfree(buf);
	}
	return rc == 0 ? TOMS_OPEN_OK : TOMS_OPEN_TAMPERED;
}

/* Refuse a stored value (a function's argument) that is not well-formed. */
void
toms_sealed_check_stored(const unsigned char *p, size_t len)
{
	SealedFormatError err = toms_sealed_check_binary(p, len);

	if (err != SEALED_OK)
		raise_format_error(err, FROM_STORED);
}

/* Raise the error of a value that did not open; column may be NULL. */
void
toms_sealed_raise_open_error(TomsSealedOpen r, const char *column)
{
	switch (r)
	{
		case TOMS_OPEN_OK:
			break;
		case TOMS_OPEN_NO_KEY:
		case TOMS_OPEN_WRONG_KEY:
			if (column)
				ereport(ERROR,
						(errcode(ERRCODE_SEALED_WRONG_TENANT),
						 errmsg("value for column \"%s\" is not sealed for the row's tenant", column),
						 errdetail("It was sealed under another tenant's key, or under a key version this tenant does not have.")));
			ereport(ERROR,
					(errcode(ERRCODE_SEALED_WRONG_TENANT),
					 errmsg("sealed value does not belong to this tenant"),
					 errdetail("It was sealed under another tenant's key, or under a key version this tenant does not have.")));
			break;
		case TOMS_OPEN_TAMPERED:
			if (column)
				ereport(ERROR,
						(errcode(ERRCODE_SEALED_TAMPERED),
						 errmsg("value for column \"%s\" failed authentication", column),
						 errdetail("The ciphertext, its header, or the tenant it is bound to was altered.")));
			ereport(ERROR,
					(errcode(ERRCODE_SEALED_TAMPERED),
					 errmsg("sealed value failed authentication"),
					 errdetail("The ciphertext, its header, or the tenant it is bound to was altered.")));
			break;
	}
}

/*
 * Open for the tenant into a palloc'd buffer (NUL-terminated), which the
 * caller wipes with sodium_memzero() when done.
 */
char *
toms_sealed_unseal(const char *tenant, bytea *v, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(v);
	size_t		len = VARSIZE_ANY_EXHDR(v);
	char	   *out;
	TomsSealedOpen r;

	toms_sealed_check_stored(p, len);
	*outlen = len - SEALED_MIN_LEN;
	out = palloc(*outlen + 1);
	r = toms_sealed_open(tenant, p, len, (unsigned char *) out);
	if (r != TOMS_OPEN_OK)
	{
		sodium_memzero(out, *outlen);
		toms_sealed_raise_open_error(r, NULL);
	}
	out[*outlen] = '\0';
	return out;
}

/* ---------------------------------------------------------------------
 * The type
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(toms_sealed_in);
PG_FUNCTION_INFO_V1(toms_sealed_out);
PG_FUNCTION_INFO_V1(toms_sealed_recv);
PG_FUNCTION_INFO_V1(toms_sealed_send);

/* The input is never echoed: it may be plaintext typed by mistake. */
Datum
toms_sealed_in(PG_FUNCTION_ARGS)
{
	char	   *text = PG_GETARG_CSTRING(0);
	size_t		textlen = strlen(text);
	bytea	   *result;
	size_t		binlen;
	SealedFormatError err;

	result = palloc(VARHDRSZ + toms_sealed_unarmour_maxlen(textlen));
	err = toms_sealed_unarmour(text, textlen, (uint8_t *) VARDATA(result), &binlen);
	if (err != SEALED_OK)
		raise_format_error(err, FROM_TEXT);
	SET_VARSIZE(result, VARHDRSZ + binlen);
	PG_RETURN_BYTEA_P(result);
}

Datum
toms_sealed_out(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(v);
	char	   *out = palloc(toms_sealed_armour_len(len) + 1);

	toms_sealed_armour((const uint8_t *) VARDATA_ANY(v), len, out);
	PG_RETURN_CSTRING(out);
}

Datum
toms_sealed_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			len = buf->len - buf->cursor;
	bytea	   *result;
	SealedFormatError err;

	err = toms_sealed_check_binary((const uint8_t *) buf->data + buf->cursor, (size_t) len);
	if (err != SEALED_OK)
		raise_format_error(err, FROM_BINARY);
	result = palloc(VARHDRSZ + len);
	SET_VARSIZE(result, VARHDRSZ + len);
	pq_copymsgbytes(buf, VARDATA(result), len);
	PG_RETURN_BYTEA_P(result);
}

Datum
toms_sealed_send(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbytes(&buf, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---------------------------------------------------------------------
 * seal, unseal, blind_index
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(toms_seal_text);
PG_FUNCTION_INFO_V1(toms_seal_bytea);
PG_FUNCTION_INFO_V1(toms_unseal_text);
PG_FUNCTION_INFO_V1(toms_unseal_bytea);
PG_FUNCTION_INFO_V1(toms_blind_index);
PG_FUNCTION_INFO_V1(toms_sealed_key_version);
PG_FUNCTION_INFO_V1(toms_sealed_master_key_loaded);
PG_FUNCTION_INFO_V1(toms_sealed_master_key_id);

Datum
toms_seal_text(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *tenant = current_tenant();

	PG_RETURN_BYTEA_P(toms_sealed_seal(tenant, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
toms_seal_bytea(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	const char *tenant = current_tenant();

	PG_RETURN_BYTEA_P(toms_sealed_seal(tenant, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)));
}

Datum
toms_unseal_text(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	const char *tenant = current_tenant();
	size_t		len;
	char	   *plain = toms_sealed_unseal(tenant, v, &len);
	text	   *result;

	/* A value sealed from bytea may not be text in this encoding. */
	if (!pg_verifymbstr(plain, (int) len, true) || memchr(plain, '\0', len) != NULL)
	{
		sodium_memzero(plain, len);
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("sealed value is not valid text in the database encoding"),
				 errhint("Use toms.unseal_bytea() for values sealed from bytea.")));
	}
	result = cstring_to_text_with_len(plain, (int) len);
	sodium_memzero(plain, len);
	pfree(plain);
	PG_RETURN_TEXT_P(result);
}

Datum
toms_unseal_bytea(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	const char *tenant = current_tenant();
	size_t		len;
	char	   *plain = toms_sealed_unseal(tenant, v, &len);
	bytea	   *result = palloc(VARHDRSZ + len);

	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), plain, len);
	sodium_memzero(plain, len);
	pfree(plain);
	PG_RETURN_BYTEA_P(result);
}

/*
 * Keyed BLAKE2b-256 of (purpose, value) under the tenant's index key: equal
 * values of one tenant and purpose give equal results.
 */
Datum
toms_blind_index(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	text	   *purpose = PG_GETARG_TEXT_PP(1);
	const char *tenant = current_tenant();
	crypto_generichash_state st;
	unsigned char lenbuf[4];
	bytea	   *result = palloc(VARHDRSZ + 32);
	const TomsTenantKey *key;

	SET_VARSIZE(result, VARHDRSZ + 32);
	key = toms_tenant_key(tenant, TOMS_KEY_INDEX, 0, true, true);
	crypto_generichash_init(&st, key->key, TOMS_KEY_LEN, 32);
	crypto_generichash_update(&st, (const unsigned char *) "toms blind index v1", 20);
	sealed_put_u32(lenbuf, (uint32_t) VARSIZE_ANY_EXHDR(purpose));
	crypto_generichash_update(&st, lenbuf, 4);
	crypto_generichash_update(&st, (const unsigned char *) VARDATA_ANY(purpose),
							  VARSIZE_ANY_EXHDR(purpose));
	crypto_generichash_update(&st, (const unsigned char *) VARDATA_ANY(value),
							  VARSIZE_ANY_EXHDR(value));
	crypto_generichash_final(&st, (unsigned char *) VARDATA(result), 32);
	sodium_memzero(&st, sizeof(st));
	PG_RETURN_BYTEA_P(result);
}

/* The data key version a value was sealed under (no key needed). */
Datum
toms_sealed_key_version(PG_FUNCTION_ARGS)
{
	bytea	   *v = PG_GETARG_BYTEA_PP(0);
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(v);

	toms_sealed_check_stored(p, VARSIZE_ANY_EXHDR(v));
	PG_RETURN_INT32((int32) sealed_get_u32(p + SEALED_OFF_KEYVER));
}

Datum
toms_sealed_master_key_loaded(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(toms_master_key_loaded());
}

/* toms._master_key_id(): the loaded master key's id, NULL without one. */
Datum
toms_sealed_master_key_id(PG_FUNCTION_ARGS)
{
	bytea	   *b = palloc(VARHDRSZ + TOMS_MASTER_ID_LEN);

	if (!toms_master_key_id((unsigned char *) VARDATA(b)))
		PG_RETURN_NULL();
	SET_VARSIZE(b, VARHDRSZ + TOMS_MASTER_ID_LEN);
	PG_RETURN_BYTEA_P(b);
}
