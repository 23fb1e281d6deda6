/*-------------------------------------------------------------------------
 *
 * paseto_fuzz.c
 *	  libFuzzer driver for src/paseto.c, built outside PostgreSQL (paseto.c
 *	  uses libc and libsodium only).  Beyond "no crash, no sanitizer
 *	  report", it checks strictness: every token the parser accepts is the
 *	  one canonical encoding of its parts (re-encoding gives the input back
 *	  byte for byte), and a payload toms_json_check accepts stays within the
 *	  depth it was given.
 *
 *	  Run by test/suites.d/token_paseto.sh.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "toms.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exact-size copies, so that ASan sees any overread */
	char	   *token = malloc(size ? size : 1);
	unsigned char *buf = malloc(size ? size : 1);
	TomsPaseto	t;
	char		kid[TOMS_PASETO_MAX_KID + 1];
	bool		has_kid;

	if (token == NULL || buf == NULL || sodium_init() < 0)
		abort();
	memcpy(token, data, size);

	(void) toms_json_check((const unsigned char *) token, size, 16);
	if (toms_paseto_footer_kid((const unsigned char *) token, size, kid, &has_kid) == NULL &&
		has_kid && (strlen(kid) == 0 || strlen(kid) > TOMS_PASETO_MAX_KID))
		abort();

	if (toms_paseto_parse(token, size, buf, size, &t) == NULL)
	{
		check_canonical(token, size, &t);
		(void) toms_paseto_footer_kid(t.footer, t.footer_len, kid, &has_kid);
		(void) toms_paseto_verify(&t, vector_pk, NULL, 0);
		(void) toms_paseto_verify(&t, vector_pk, (const unsigned char *) token, size);
	}
	free(token);
	free(buf);
	return 0;
}
