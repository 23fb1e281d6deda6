/*-------------------------------------------------------------------------
 *
 * token.c
 *	  Tenant tokens: PASETO v4.public (Ed25519) tokens signed by the
 *	  application's identity service (measures 5a, 9a).  The database holds
 *	  only public keys (toms.trusted_keys), so nothing an SQL injection can
 *	  read lets it mint a token.
 *
 *	  paseto.c does the format and the signature (pure C); this file is the
 *	  PostgreSQL side: it finds the key (by the footer's "kid", or tries each
 *	  trusted key), checks the claims (tid, sub, exp required; nbf and iat
 *	  honoured) and provides the SQL functions toms.trust_key,
 *	  toms.distrust_key, toms.verify_token and toms.inspect_token.
 *
 *	  toms_token_verify() never raises for a bad token and never puts the
 *	  token or its signature into any message: it returns a static reason.
 *	  It reads toms.trusted_keys directly (no privilege check: the caller is
 *	  typically an application role that may not read the table), with the
 *	  latest snapshot so that a distrusted key stops working at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "parser/parse_relation.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "toms.h"

#define R_MALFORMED		TOMS_TOKEN_MALFORMED
#define R_UNKNOWN_KEY	TOMS_TOKEN_UNKNOWN_KEY
#define R_SIGNATURE		TOMS_TOKEN_SIGNATURE
#define R_EXPIRED		TOMS_TOKEN_EXPIRED
#define R_NOT_YET		TOMS_TOKEN_NOT_YET_VALID
#define R_CLAIMS		TOMS_TOKEN_CLAIMS

/* Clock skew tolerated between the identity service and the database. */
#define TOKEN_SKEW_USECS	(30 * USECS_PER_SEC)

/* Longest "sub" accepted (bytes). */
#define TOMS_MAX_SUBJECT_LEN 256

/* Deepest claims nesting handed to the (recursive) JSON parser. */
#define CLAIMS_MAX_DEPTH	16

PG_FUNCTION_INFO_V1(toms_trust_key);
PG_FUNCTION_INFO_V1(toms_distrust_key);
PG_FUNCTION_INFO_V1(toms_verify_token);
PG_FUNCTION_INFO_V1(toms_inspect_token);

/*
 * errmsg() with the fixed text of a refusal reason, so that every message
 * stays a translatable literal.
 */
int
toms_errmsg_token(const char *why)
{
	if (strcmp(why, R_UNKNOWN_KEY) == 0)
		return errmsg("unknown key");
	if (strcmp(why, R_SIGNATURE) == 0)
		return errmsg("token signature invalid");
	if (strcmp(why, R_EXPIRED) == 0)
		return errmsg("token expired");
	if (strcmp(why, R_NOT_YET) == 0)
		return errmsg("token not yet valid");
	if (strcmp(why, R_CLAIMS) == 0)
		return errmsg("token claims invalid");
	return errmsg("token malformed");
}

/* ---------------------------------------------------------------------
 * Trusted keys
 * ---------------------------------------------------------------------
 */
typedef struct TrustedKey
{
	char	   *key_id;
	unsigned char public_key[TOMS_PASETO_KEY_LEN];
} TrustedKey;

/*
 * The trusted keys, or only the one named key_id.  Read straight from the
 * heap: no privilege check, no SPI, usable from within any query.
 */
static List *
load_trusted_keys(const char *key_id)
{
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	AttrNumber	att_id;
	AttrNumber	att_key;
	Snapshot	snap;
	TableScanDesc scan;
	TupleTableSlot *slot;
	List	   *keys = NIL;

	if (!IsTransactionState())
		return NIL;
	nsp = get_namespace_oid(TOMS_SCHEMA, true);
	if (!OidIsValid(nsp))
		return NIL;
	relid = toms_relid("trusted_keys");
	if (!OidIsValid(relid))
		return NIL;

	rel = table_open(relid, AccessShareLock);
	att_id = attnameAttNum(rel, "key_id", false);
	att_key = attnameAttNum(rel, "public_key", false);
	if (att_id <= 0 || att_key <= 0 ||
		TupleDescAttr(RelationGetDescr(rel), att_id - 1)->atttypid != TEXTOID ||
		TupleDescAttr(RelationGetDescr(rel), att_key - 1)->atttypid != BYTEAOID)
		elog(ERROR, "toms.trusted_keys has an unexpected definition");

	snap = toms_lookup_snapshot();

	scan = table_beginscan(rel, snap, 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;
		char	   *id;
		bytea	   *pk;
		TrustedKey *k;

		d = slot_getattr(slot, att_id, &isnull);
		if (isnull)
			continue;
		id = TextDatumGetCString(d);
		if (key_id != NULL && strcmp(id, key_id) != 0)
		{
			pfree(id);
			continue;
		}
		d = slot_getattr(slot, att_key, &isnull);
		if (isnull)
			continue;
		pk = DatumGetByteaPP(d);
		if (VARSIZE_ANY_EXHDR(pk) != TOMS_PASETO_KEY_LEN)
			continue;
		k = palloc(sizeof(TrustedKey));
		k->key_id = id;
		memcpy(k->public_key, VARDATA_ANY(pk), TOMS_PASETO_KEY_LEN);
		keys = lappend(keys, k);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return keys;
}

/* ---------------------------------------------------------------------
 * Claims
 * ---------------------------------------------------------------------
 */

/*
 * RFC 3339 date-time, strictly: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|
 * -HH:MM), 'T' and 'Z' in either case.  Fractions beyond microseconds are
 * truncated; leap seconds are refused.  Never raises.
 */
static bool
parse_rfc3339(const char *s, TimestampTz *out)
{
	int			y,
				mo,
				d,
				h,
				mi,
				sec;
	int64		usec = 0;
	int64		offset = 0;
	int64		days;
	const char *p;
	int			i;

#define DIGITS2(q) (isdigit((unsigned char) (q)[0]) && isdigit((unsigned char) (q)[1]))
#define VAL2(q) (((q)[0] - '0') * 10 + ((q)[1] - '0'))

	if (strlen(s) < 20)
		return false;
	for (i = 0; i < 4; i++)
		if (!isdigit((unsigned char) s[i]))
			return false;
	if (s[4] != '-' || !DIGITS2(s + 5) || s[7] != '-' || !DIGITS2(s + 8) ||
		(s[10] != 'T' && s[10] != 't') || !DIGITS2(s + 11) || s[13] != ':' ||
		!DIGITS2(s + 14) || s[16] != ':' || !DIGITS2(s + 17))
		return false;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + VAL2(s + 2);
	mo = VAL2(s + 5);
	d = VAL2(s + 8);
	h = VAL2(s + 11);
	mi = VAL2(s + 14);
	sec = VAL2(s + 17);
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > day_tab[isleap(y)][mo - 1] ||
		h > 23 || mi > 59 || sec > 59)
		return false;

	p = s + 19;
	if (*p == '.')
	{
		int64		scale = 100000;

		p++;
		if (!isdigit((unsigned char) *p))
			return false;
		for (i = 0; isdigit((unsigned char) *p); i++, p++)
		{
			if (i >= 9)
				return false;
			if (scale > 0)
			{
				usec += (*p - '0') * scale;
				scale /= 10;
			}
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-')
	{
		int			oh,
					om;

		if (!DIGITS2(p + 1) || p[3] != ':' || !DIGITS2(p + 4))
			return false;
		oh = VAL2(p + 1);
		om = VAL2(p + 4);
		if (oh > 23 || om > 59)
			return false;
		offset = ((int64) oh * 60 + om) * 60 * USECS_PER_SEC;
		if (*p == '-')
			offset = -offset;
		p += 6;
	}
	else
		return false;
	if (*p != '\0')
		return false;

#undef DIGITS2
#undef VAL2

	days = date2j(y, mo, d) - POSTGRES_EPOCH_JDATE;
	*out = days * USECS_PER_DAY +
		(((int64) h * 60 + mi) * 60 + sec) * USECS_PER_SEC + usec - offset;
	return true;
}

enum
{
	CLAIM_TID,
	CLAIM_SUB,
	CLAIM_EXP,
	CLAIM_NBF,
	CLAIM_IAT,
	NCLAIMS
};

static const char *const claim_names[NCLAIMS] = {"tid", "sub", "exp", "nbf", "iat"};

typedef struct ClaimsState
{
	int			depth;			/* current nesting, 1 = the claims object */
	int			field;			/* claim whose value comes next, or -1 */
	bool		bad;			/* a claim of ours is malformed */
	bool		top_is_object;
	char	   *value[NCLAIMS];
} ClaimsState;

static void
claims_object_start(void *arg)
{
	ClaimsState *st = arg;

	if (st->depth == 0)
		st->top_is_object = true;
	else if (st->depth == 1 && st->field >= 0)
		st->bad = true;			/* a claim of ours must be a string */
	st->depth++;
}

static void
claims_nest_end(void *arg)
{
	ClaimsState *st = arg;

	st->depth--;
	if (st->depth == 1)
		st->field = -1;
}

static void
claims_array_start(void *arg)
{
	ClaimsState *st = arg;

	if (st->depth == 1 && st->field >= 0)
		st->bad = true;
	st->depth++;
}

static void
claims_field_start(void *arg, char *fname, bool isnull)
{
	ClaimsState *st = arg;
	int			i;

	if (st->depth != 1)
		return;
	st->field = -1;
	for (i = 0; i < NCLAIMS; i++)
	{
		if (strcmp(fname, claim_names[i]) == 0)
		{
			if (st->value[i] != NULL)
				st->bad = true; /* duplicate claim: ambiguous, refuse */
			st->field = i;
		}
	}
}

static void
claims_scalar(void *arg, char *token, JsonTokenType tokentype)
{
	ClaimsState *st = arg;

	if (st->depth != 1 || st->field < 0)
		return;
	if (tokentype != JSON_TOKEN_STRING)
		st->bad = true;
	else if (st->value[st->field] == NULL)
		st->value[st->field] = token;
	st->field = -1;
}

/* Non-empty, bounded, no control characters, representable in the database. */
static bool
claim_text_ok(const char *s, size_t maxlen)
{
	size_t		len = strlen(s);
	size_t		i;
	bool		ascii = true;

	if (len == 0 || len > maxlen)
		return false;
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7F)
			return false;
		if (c >= 0x80)
			ascii = false;
	}
	return ascii || GetDatabaseEncoding() == PG_UTF8;
}

/*
 * Parse and check the verified payload's claims with PostgreSQL's JSON
 * parser.  Returns NULL or a reason; never raises.
 */
static const char *
check_claims(const unsigned char *payload, size_t len, TomsToken *out)
{
	ClaimsState st;
	JsonSemAction sem;
	JsonLexContext *lex;
	char	   *json;
	TimestampTz exp,
				nbf,
				iat,
				now;

	/* UTF-8 without NUL, and shallow enough for a recursive parser */
	if (len == 0 || !pg_verify_mbstr(PG_UTF8, (const char *) payload, (int) len, true) ||
		!toms_json_check(payload, len, CLAIMS_MAX_DEPTH))
		return R_CLAIMS;

	json = palloc(len + 1);
	memcpy(json, payload, len);
	json[len] = '\0';

	memset(&st, 0, sizeof(st));
	st.field = -1;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = claims_object_start;
	sem.object_end = claims_nest_end;
	sem.array_start = claims_array_start;
	sem.array_end = claims_nest_end;
	sem.object_field_start = claims_field_start;
	sem.scalar = claims_scalar;

	lex = makeJsonLexContextCstringLen(json, (int) len, PG_UTF8, true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS || !st.top_is_object || st.bad)
		return R_CLAIMS;

	if (st.value[CLAIM_TID] == NULL || st.value[CLAIM_SUB] == NULL ||
		st.value[CLAIM_EXP] == NULL ||
		!claim_text_ok(st.value[CLAIM_TID], TOMS_MAX_TENANT_LEN) ||
		!claim_text_ok(st.value[CLAIM_SUB], TOMS_MAX_SUBJECT_LEN) ||
		!parse_rfc3339(st.value[CLAIM_EXP], &exp) ||
		(st.value[CLAIM_NBF] != NULL && !parse_rfc3339(st.value[CLAIM_NBF], &nbf)) ||
		(st.value[CLAIM_IAT] != NULL && !parse_rfc3339(st.value[CLAIM_IAT], &iat)))
		return R_CLAIMS;

	now = GetCurrentTimestamp();
	if (exp <= now)
		return R_EXPIRED;
	if (st.value[CLAIM_NBF] != NULL && nbf > now + TOKEN_SKEW_USECS)
		return R_NOT_YET;
	/* issued in the future: the issuer's clock or the token is wrong */
	if (st.value[CLAIM_IAT] != NULL && iat > now + TOKEN_SKEW_USECS)
		return R_CLAIMS;

	out->tenant = pstrdup(st.value[CLAIM_TID]);
	out->subject = pstrdup(st.value[CLAIM_SUB]);
	out->expires = exp;
	return NULL;
}

/* ---------------------------------------------------------------------
 * Verification
 * ---------------------------------------------------------------------
 */
bool
toms_token_verify(const char *token, TomsToken *out, const char **why)
{
	size_t		len;
	unsigned char *buf;
	TomsPaseto	tok;
	char		kid[TOMS_PASETO_MAX_KID + 1];
	bool		has_kid;
	const char *r;
	List	   *keys;
	ListCell   *lc;
	TrustedKey *signer = NULL;

	memset(out, 0, sizeof(*out));
	*why = R_MALFORMED;
	if (token == NULL)
		return false;
	len = strnlen(token, TOMS_TOKEN_MAX_LEN + 1);
	if (len > TOMS_TOKEN_MAX_LEN)
		return false;

	buf = palloc(len + 1);
	r = toms_paseto_parse(token, len, buf, len + 1, &tok);
	if (r == NULL)
		r = toms_paseto_footer_kid(tok.footer, tok.footer_len, kid, &has_kid);
	if (r != NULL)
	{
		*why = r;
		pfree(buf);
		return false;
	}

	keys = load_trusted_keys(has_kid ? kid : NULL);
	if (keys == NIL)
	{
		*why = R_UNKNOWN_KEY;
		pfree(buf);
		return false;
	}
	foreach(lc, keys)
	{
		TrustedKey *k = lfirst(lc);

		if (toms_paseto_verify(&tok, k->public_key, NULL, 0) == NULL)
		{
			signer = k;
			break;
		}
	}
	if (signer == NULL)
	{
		*why = R_SIGNATURE;
		pfree(buf);
		return false;
	}

	r = check_claims(tok.payload, tok.payload_len, out);
	pfree(buf);
	if (r != NULL)
	{
		memset(out, 0, sizeof(*out));
		*why = r;
		return false;
	}
	out->key_id = pstrdup(signer->key_id);
	*why = NULL;
	return true;
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/* key_id: 1..128 characters from a conservative alphabet (PASERK ids fit). */
static void
check_key_id(const char *key_id)
{
	size_t		len = strlen(key_id);
	size_t		i;

	if (len == 0 || len > TOMS_PASETO_MAX_KID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key_id must be 1 to %d characters long", TOMS_PASETO_MAX_KID)));
	for (i = 0; i < len; i++)
	{
		char		c = key_id[i];

		if (!(isalnum((unsigned char) c) && (unsigned char) c < 0x80) &&
			strchr("._:~+/=-", c) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key_id contains an invalid character"),
					 errdetail("A key_id consists of ASCII letters, digits and the characters . _ : ~ + / = -.")));
	}
}

/* A short public fingerprint of a key for audit records. */
static char *
key_fingerprint(const unsigned char *pk)
{
	unsigned char h[8];
	char		hex[sizeof(h) * 2 + 1];

	crypto_generichash(h, sizeof(h), pk, TOMS_PASETO_KEY_LEN, NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	return pstrdup(hex);
}

static char *
key_audit_detail(const char *key_id, const unsigned char *pk)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfoString(&d, "{\"key_id\": ");
	escape_json(&d, key_id);
	if (pk != NULL)
		appendStringInfo(&d, ", \"fingerprint\": \"%s\"", key_fingerprint(pk));
	appendStringInfoChar(&d, '}');
	return d.data;
}

/*
 * toms.trust_key(key_id text, public_key bytea) -> void
 * SECURITY DEFINER (toms_admin): accept tokens signed by this Ed25519 key.
 */
Datum
toms_trust_key(PG_FUNCTION_ARGS)
{
	char	   *key_id;
	bytea	   *pk;
	const unsigned char *pkb;
	Oid			argtypes[2] = {TEXTOID, BYTEAOID};
	Datum		values[2];
	int			rc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key_id must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("public key must not be null")));
	key_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	pk = PG_GETARG_BYTEA_PP(1);
	check_key_id(key_id);
	if (VARSIZE_ANY_EXHDR(pk) != TOMS_PASETO_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("public key must be %d bytes, not %d",
						TOMS_PASETO_KEY_LEN, (int) VARSIZE_ANY_EXHDR(pk)),
				 errhint("Pass the raw 32-byte Ed25519 public key, not PEM or base64.")));
	pkb = (const unsigned char *) VARDATA_ANY(pk);
	if (crypto_core_ed25519_is_valid_point(pkb) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("public key is not a valid Ed25519 public key")));

	values[0] = CStringGetTextDatum(key_id);
	values[1] = PointerGetDatum(pk);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args("SELECT public_key FROM " TOMS_SCHEMA ".trusted_keys WHERE key_id = $1 FOR UPDATE",
							   1, argtypes, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look up trusted key: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
	{
		bool		isnull;
		bytea	   *old = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull));

		if (isnull || VARSIZE_ANY_EXHDR(old) != TOMS_PASETO_KEY_LEN ||
			memcmp(VARDATA_ANY(old), pkb, TOMS_PASETO_KEY_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("key \"%s\" is already trusted with a different public key", key_id),
					 errhint("Use a new key_id for a new key, or call toms.distrust_key() first.")));
		/* same key under the same id: nothing to do */
		SPI_finish();
		PG_RETURN_VOID();
	}
	rc = SPI_execute_with_args("INSERT INTO " TOMS_SCHEMA ".trusted_keys (key_id, public_key) VALUES ($1, $2)",
							   2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not insert trusted key: %s", SPI_result_code_string(rc));
	SPI_finish();

	toms_audit_admin("trust_key", NULL, key_audit_detail(key_id, pkb));
	PG_RETURN_VOID();
}

/*
 * toms.distrust_key(key_id text) -> void
 * SECURITY DEFINER (toms_admin): tokens signed by this key stop verifying.
 */
Datum
toms_distrust_key(PG_FUNCTION_ARGS)
{
	char	   *key_id;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int			rc;
	uint64		n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key_id must not be null")));
	key_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_key_id(key_id);

	values[0] = CStringGetTextDatum(key_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args("DELETE FROM " TOMS_SCHEMA ".trusted_keys WHERE key_id = $1",
							   1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not delete trusted key: %s", SPI_result_code_string(rc));
	n = SPI_processed;
	SPI_finish();
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("key \"%s\" is not trusted", key_id)));

	toms_audit_admin("distrust_key", NULL, key_audit_detail(key_id, NULL));
	PG_RETURN_VOID();
}

/*
 * toms.verify_token(token text, public_key bytea, implicit_assertion text
 * DEFAULT '') -> text
 *
 * Administrator's diagnostic (and what the official vectors are checked
 * against): the payload of a v4.public token signed by public_key.  Checks
 * format and signature only, not claims or trusted keys.
 */
Datum
toms_verify_token(PG_FUNCTION_ARGS)
{
	text	   *token = PG_GETARG_TEXT_PP(0);
	bytea	   *pk = PG_GETARG_BYTEA_PP(1);
	text	   *implicit = PG_GETARG_TEXT_PP(2);
	size_t		len = VARSIZE_ANY_EXHDR(token);
	unsigned char *buf;
	TomsPaseto	tok;
	const char *r;

	if (VARSIZE_ANY_EXHDR(pk) != TOMS_PASETO_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("public key must be %d bytes, not %d",
						TOMS_PASETO_KEY_LEN, (int) VARSIZE_ANY_EXHDR(pk)),
				 errhidestmt(true), errhidecontext(true)));

	/*
	 * The statement text may hold the token (a bearer credential): keep it
	 * and the context out of the server log for these errors.
	 */
	buf = palloc(len + 1);
	r = toms_paseto_parse(VARDATA_ANY(token), len, buf, len + 1, &tok);
	if (r != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 toms_errmsg_token(r),
				 errdetail("A v4.public token is \"v4.public.\", unpadded base64url of payload and 64-byte signature, and optionally \".\" and a base64url footer, at most %d bytes.",
						   TOMS_TOKEN_MAX_LEN),
				 errhidestmt(true), errhidecontext(true)));
	r = toms_paseto_verify(&tok, (const unsigned char *) VARDATA_ANY(pk),
						   (const unsigned char *) VARDATA_ANY(implicit),
						   VARSIZE_ANY_EXHDR(implicit));
	if (r != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 toms_errmsg_token(r),
				 errhidestmt(true), errhidecontext(true)));
	if (!pg_verify_mbstr(GetDatabaseEncoding(), (const char *) tok.payload,
						 (int) tok.payload_len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("token payload is not valid text in the database encoding"),
				 errhidestmt(true), errhidecontext(true)));
	PG_RETURN_TEXT_P(cstring_to_text_with_len((const char *) tok.payload, (int) tok.payload_len));
}

/*
 * toms.inspect_token(token text, OUT valid bool, OUT reason text,
 * OUT tenant text, OUT subject text, OUT key_id text, OUT expires
 * timestamptz)
 *
 * Administrator's diagnostic: what toms_token_verify() makes of a token
 * against the trusted keys, as enter_tenant would see it.
 */
Datum
toms_inspect_token(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false, false, true, true, true, true};
	TomsToken	t;
	const char *why;
	char	   *token;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	values[0] = BoolGetDatum(toms_token_verify(token, &t, &why));
	values[1] = why ? CStringGetTextDatum(why) : (Datum) 0;
	nulls[1] = (why == NULL);
	if (DatumGetBool(values[0]))
	{
		values[2] = CStringGetTextDatum(t.tenant);
		values[3] = CStringGetTextDatum(t.subject);
		values[4] = CStringGetTextDatum(t.key_id);
		values[5] = TimestampTzGetDatum(t.expires);
		nulls[2] = nulls[3] = nulls[4] = nulls[5] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
