/*-------------------------------------------------------------------------
 *
 * toms_test.c
 *	  TEST-ONLY extension: Ed25519 key pairs and PASETO v4.public minting,
 *	  so that toms' suites can feed its verifier real tokens.  This code is
 *	  written from the PASETO specification independently of toms'
 *	  verifier (src/paseto.c), so a shared mistake is unlikely; the suites
 *	  check that it reproduces the official test vectors byte for byte.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(toms_test_keypair);
PG_FUNCTION_INFO_V1(toms_test_mint);

static const char header[] = "v4.public.";

static void
ensure_sodium(void)
{
	if (sodium_init() < 0)
		elog(ERROR, "could not initialise libsodium");
}

/* LE64(n) with the most significant bit cleared, as PAE defines it. */
static void
le64(unsigned char *out, uint64 n)
{
	int			i;

	n &= UINT64CONST(0x7FFFFFFFFFFFFFFF);
	for (i = 0; i < 8; i++)
	{
		out[i] = (unsigned char) (n & 0xFF);
		n >>= 8;
	}
}

static void
pae_piece(StringInfo buf, const char *p, size_t len)
{
	unsigned char n[8];

	le64(n, len);
	appendBinaryStringInfo(buf, (const char *) n, 8);
	appendBinaryStringInfo(buf, p, len);
}

Datum
toms_test_keypair(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	bytea	   *pkb;
	bytea	   *skb;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	ensure_sodium();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (PG_ARGISNULL(0))
		crypto_sign_keypair(pk, sk);
	else
	{
		bytea	   *seed = PG_GETARG_BYTEA_PP(0);

		if (VARSIZE_ANY_EXHDR(seed) != crypto_sign_SEEDBYTES)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("seed must be %d bytes", crypto_sign_SEEDBYTES)));
		crypto_sign_seed_keypair(pk, sk, (const unsigned char *) VARDATA_ANY(seed));
	}

	pkb = palloc(VARHDRSZ + sizeof(pk));
	SET_VARSIZE(pkb, VARHDRSZ + sizeof(pk));
	memcpy(VARDATA(pkb), pk, sizeof(pk));
	skb = palloc(VARHDRSZ + sizeof(sk));
	SET_VARSIZE(skb, VARHDRSZ + sizeof(sk));
	memcpy(VARDATA(skb), sk, sizeof(sk));
	sodium_memzero(sk, sizeof(sk));

	values[0] = PointerGetDatum(pkb);
	values[1] = PointerGetDatum(skb);
	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* Unpadded base64url (RFC 4648 section 5), as PASETO requires. */
static void
append_b64url(StringInfo out, const unsigned char *p, size_t len)
{
	size_t		enclen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char	   *enc = palloc(enclen);

	sodium_bin2base64(enc, enclen, p, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	appendStringInfoString(out, enc);
	pfree(enc);
}

Datum
toms_test_mint(PG_FUNCTION_ARGS)
{
	bytea	   *skb = PG_GETARG_BYTEA_PP(0);
	text	   *payload = PG_GETARG_TEXT_PP(1);
	text	   *footer = PG_GETARG_TEXT_PP(2);
	text	   *implicit = PG_GETARG_TEXT_PP(3);
	const char *m = VARDATA_ANY(payload);
	size_t		mlen = VARSIZE_ANY_EXHDR(payload);
	const char *f = VARDATA_ANY(footer);
	size_t		flen = VARSIZE_ANY_EXHDR(footer);
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char sig[crypto_sign_BYTES];
	unsigned char n[8];
	StringInfoData pae;
	StringInfoData body;
	StringInfoData tok;

	ensure_sodium();
	if (VARSIZE_ANY_EXHDR(skb) == crypto_sign_SECRETKEYBYTES)
		memcpy(sk, VARDATA_ANY(skb), sizeof(sk));
	else if (VARSIZE_ANY_EXHDR(skb) == crypto_sign_SEEDBYTES)
	{
		unsigned char pk[crypto_sign_PUBLICKEYBYTES];

		crypto_sign_seed_keypair(pk, sk, (const unsigned char *) VARDATA_ANY(skb));
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret key must be %d bytes (or a %d-byte seed)",
						crypto_sign_SECRETKEYBYTES, crypto_sign_SEEDBYTES)));

	/* PAE(h, m, f, i): LE64(4) then each piece as LE64(len) || piece. */
	initStringInfo(&pae);
	le64(n, 4);
	appendBinaryStringInfo(&pae, (const char *) n, 8);
	pae_piece(&pae, header, strlen(header));
	pae_piece(&pae, m, mlen);
	pae_piece(&pae, f, flen);
	pae_piece(&pae, VARDATA_ANY(implicit), VARSIZE_ANY_EXHDR(implicit));

	crypto_sign_detached(sig, NULL, (const unsigned char *) pae.data, pae.len, sk);
	sodium_memzero(sk, sizeof(sk));

	initStringInfo(&body);
	appendBinaryStringInfo(&body, m, mlen);
	appendBinaryStringInfo(&body, (const char *) sig, sizeof(sig));

	initStringInfo(&tok);
	appendStringInfoString(&tok, header);
	append_b64url(&tok, (const unsigned char *) body.data, body.len);
	if (flen > 0)
	{
		appendStringInfoChar(&tok, '.');
		append_b64url(&tok, (const unsigned char *) f, flen);
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(tok.data, tok.len));
}
