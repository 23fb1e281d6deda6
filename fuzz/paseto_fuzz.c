/*-------------------------------------------------------------------------
 *
 * paseto_fuzz.c
 *	  libFuzzer driver for src/paseto.c, built outside PostgreSQL (paseto.c
 *	  uses libc and libsodium only).  Beyond "no crash, no sanitizer
 *	  report", it checks strictness: every token the parser accepts is the
 *	  one canonical encoding of its parts (re-encoding gives the input back
 *	  byte for byte).  The JSON checks are held to properties computed
 *	  another way: toms_json_check accepts a text exactly down to its
 *	  nesting depth counted from its brackets (never deeper than it was
 *	  given), and toms_paseto_footer_kid reads a kid only from a footer
 *	  toms_json_check finds well-formed, and refuses a well-formed object
 *	  only for its "kid".
 *
 *	  Run by test/suites.d/token_paseto.sh.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "toms.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the depth token.c allows in claims, and FOOTER_MAX_DEPTH of paseto.c */
#define JSON_DEPTH		16
#define FOOTER_DEPTH	8

/* The public key of the official 4-S-* vectors. */
static const unsigned char vector_pk[32] = {
	0x1e, 0xb9, 0xdb, 0xbb, 0xbc, 0x04, 0x7c, 0x03, 0xfd, 0x70, 0x60, 0x4e,
	0x00, 0x71, 0xf0, 0x98, 0x7e, 0x16, 0xb2, 0x8b, 0x75, 0x72, 0x25, 0xc1,
	0x1f, 0x00, 0x41, 0x5d, 0x0e, 0x20, 0x63, 0x2f
};

static void
check_canonical(const char *token, size_t len, const TomsPaseto *t)
{
	size_t		bodylen = t->payload_len + 64;
	size_t		cap = len + 16;
	char	   *enc = malloc(cap * 2 + 32);
	unsigned char *body = malloc(bodylen);
	size_t		n;

	if (enc == NULL || body == NULL)
		abort();
	memcpy(body, t->payload, t->payload_len);
	memcpy(body + t->payload_len, t->sig, 64);
	memcpy(enc, "v4.public.", 10);
	sodium_bin2base64(enc + 10, cap, body, bodylen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	n = strlen(enc);
	if (t->footer_len > 0)
	{
		enc[n++] = '.';
		sodium_bin2base64(enc + n, cap, t->footer, t->footer_len,
						  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		n = strlen(enc);
	}
	if (n != len || memcmp(enc, token, len) != 0)
		abort();				/* accepted a non-canonical token */
	free(enc);
	free(body);
}

/*
 * Nesting depth of a well-formed JSON text, counted without a parser: the
 * brackets outside strings.  Meaningful only for a text toms_json_check
 * accepted.
 */
static int
bracket_depth(const unsigned char *p, size_t len)
{
	int			depth = 0;
	int			max = 0;
	bool		in_string = false;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (in_string)
		{
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in_string = false;
		}
		else if (p[i] == '"')
			in_string = true;
		else if ((p[i] == '{' || p[i] == '[') && ++depth > max)
			max = depth;
		else if (p[i] == '}' || p[i] == ']')
			depth--;
	}
	return max;
}

/* Does p[0..len) start, after JSON white space, with '{'? */
static bool
is_object(const unsigned char *p, size_t len)
{
	size_t		i = 0;

	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i < len && p[i] == '{';
}

/* Could p[0..len) name a "kid" member (literally or through an escape)? */
static bool
may_name_kid(const unsigned char *p, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		if (p[i] == '\\' || (i + 3 <= len && memcmp(p + i, "kid", 3) == 0))
			return true;
	return false;
}

static void
check_json(const unsigned char *json, size_t len)
{
	char		kid[TOMS_PASETO_MAX_KID + 1];
	bool		has_kid;
	const char *r;

	/*
	 * The depth limit: a text accepted at JSON_DEPTH is accepted at exactly
	 * its own depth and refused one level below; one refused at JSON_DEPTH
	 * but accepted a level deeper is exactly that deep.
	 */
	if (toms_json_check(json, len, JSON_DEPTH))
	{
		int			d = bracket_depth(json, len);

		if (d > JSON_DEPTH || !toms_json_check(json, len, d) ||
			(d > 0 && toms_json_check(json, len, d - 1)))
			abort();
	}
	else if (toms_json_check(json, len, JSON_DEPTH + 1) &&
			 bracket_depth(json, len) != JSON_DEPTH + 1)
		abort();

	/* The footer's kid: read only from well-formed JSON ... */
	r = toms_paseto_footer_kid(json, len, kid, &has_kid);
	if (r == NULL && has_kid && (strlen(kid) == 0 || strlen(kid) > TOMS_PASETO_MAX_KID))
		abort();
	if ((r == NULL || strcmp(r, TOMS_TOKEN_UNKNOWN_KEY) == 0) && is_object(json, len) &&
		!toms_json_check(json, len, FOOTER_DEPTH))
		abort();
	if (r == NULL && has_kid && !(is_object(json, len) && may_name_kid(json, len)))
		abort();
	/* ... and a well-formed object is refused only for its "kid" */
	if (r != NULL && strcmp(r, TOMS_TOKEN_MALFORMED) == 0 && is_object(json, len) &&
		toms_json_check(json, len, FOOTER_DEPTH) && !may_name_kid(json, len))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exact-size copies, so that ASan sees any overread */
	char	   *token = malloc(size ? size : 1);
	unsigned char *buf = malloc(size ? size : 1);
	TomsPaseto	t;

	if (token == NULL || buf == NULL || sodium_init() < 0)
		abort();
	memcpy(token, data, size);

	check_json((const unsigned char *) token, size);

	if (toms_paseto_parse(token, size, buf, size, &t) == NULL)
	{
		check_canonical(token, size, &t);
		check_json(t.footer, t.footer_len);
		(void) toms_paseto_verify(&t, vector_pk, NULL, 0);
		(void) toms_paseto_verify(&t, vector_pk, (const unsigned char *) token, size);
	}
	free(token);
	free(buf);
	return 0;
}
