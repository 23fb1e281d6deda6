/*-------------------------------------------------------------------------
 *
 * paseto.c
 *	  PASETO v4.public (Ed25519) token parsing and signature verification,
 *	  per the PASETO specification (version 4, "public" purpose).
 *
 *	  This file is deliberately pure C: it uses libc and libsodium only and
 *	  makes no PostgreSQL backend call (no palloc, no ereport), so it can be
 *	  compiled and fuzzed on its own.  token.c is the PostgreSQL glue: key
 *	  lookup, claims, SQL functions.  Everything here fails closed and
 *	  returns one of the static reasons documented in toms.h.
 *
 *	  Strictness: the header must be exactly "v4.public."; base64url is
 *	  unpadded, from the URL-safe alphabet only, with zero trailing bits (so
 *	  every token has exactly one encoding); a footer part, when present,
 *	  must not be empty; tokens are bounded by TOMS_TOKEN_MAX_LEN.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "base64url.h"
#include "toms.h"

#define R_MALFORMED		TOMS_TOKEN_MALFORMED
#define R_SIGNATURE		TOMS_TOKEN_SIGNATURE
#define R_UNKNOWN_KEY	TOMS_TOKEN_UNKNOWN_KEY

static const char header[] = "v4.public.";

#define HEADER_LEN		(sizeof(header) - 1)
#define SIG_LEN			64

/* Longest implicit assertion accepted (it is supplied by the caller). */
#define MAX_IMPLICIT	(1024 * 1024)

/* Deepest nesting the footer scanner follows. */
#define FOOTER_MAX_DEPTH 8

const char *
toms_paseto_parse(const char *token, size_t len, unsigned char *buf,
				  size_t bufsize, TomsPaseto *out)
{
	const char *body;
	const char *dot;
	size_t		bodylen;
	size_t		footlen = 0;
	size_t		declen;

	memset(out, 0, sizeof(*out));
	if (token == NULL || len > TOMS_TOKEN_MAX_LEN || bufsize < len)
		return R_MALFORMED;
	if (len <= HEADER_LEN || memcmp(token, header, HEADER_LEN) != 0)
		return R_MALFORMED;

	body = token + HEADER_LEN;
	dot = memchr(body, '.', len - HEADER_LEN);
	bodylen = dot ? (size_t) (dot - body) : len - HEADER_LEN;
	if (dot)
	{
		footlen = len - HEADER_LEN - bodylen - 1;
		/* "v4.public.<body>." and a third dot are not PASETO */
		if (footlen == 0 || memchr(dot + 1, '.', footlen) != NULL)
			return R_MALFORMED;
	}

	/* m || sig, then the footer, both into buf (each shrinks by 3/4) */
	if (b64url_decode(body, bodylen, buf, &declen) != B64URL_OK || declen < SIG_LEN)
		return R_MALFORMED;
	out->payload = buf;
	out->payload_len = declen - SIG_LEN;
	out->sig = buf + out->payload_len;

	out->footer = buf + declen;
	out->footer_len = 0;
	if (dot && b64url_decode(dot + 1, footlen, buf + declen, &out->footer_len) != B64URL_OK)
	{
		memset(out, 0, sizeof(*out));
		return R_MALFORMED;
	}
	return NULL;
}

/* LE64(n) with the top bit cleared, as PAE defines it. */
static unsigned char *
put_le64(unsigned char *p, uint64_t n)
{
	int			i;

	n &= UINT64_C(0x7FFFFFFFFFFFFFFF);
	for (i = 0; i < 8; i++)
	{
		p[i] = (unsigned char) (n & 0xFF);
		n >>= 8;
	}
	return p + 8;
}

static unsigned char *
put_piece(unsigned char *p, const unsigned char *piece, size_t len)
{
	p = put_le64(p, (uint64_t) len);
	if (len > 0)
		memcpy(p, piece, len);
	return p + len;
}

const char *
toms_paseto_verify(const TomsPaseto *tok, const unsigned char *public_key,
				   const unsigned char *implicit, size_t implicit_len)
{
	unsigned char *pae;
	unsigned char *p;
	size_t		paelen;
	int			rc;

	if (tok == NULL || tok->sig == NULL || public_key == NULL)
		return R_MALFORMED;
	if (implicit_len > MAX_IMPLICIT ||
		tok->payload_len > TOMS_TOKEN_MAX_LEN || tok->footer_len > TOMS_TOKEN_MAX_LEN)
		return R_MALFORMED;

	/* PAE(h, m, f, i) = LE64(4) || each piece as LE64(len(piece)) || piece */
	paelen = 8 + (8 + HEADER_LEN) + (8 + tok->payload_len) +
		(8 + tok->footer_len) + (8 + implicit_len);
	pae = malloc(paelen);
	if (pae == NULL)
		return R_SIGNATURE;		/* fail closed */
	p = put_le64(pae, 4);
	p = put_piece(p, (const unsigned char *) header, HEADER_LEN);
	p = put_piece(p, tok->payload, tok->payload_len);
	p = put_piece(p, tok->footer, tok->footer_len);
	p = put_piece(p, implicit, implicit_len);
	if ((size_t) (p - pae) != paelen)
	{
		free(pae);
		return R_SIGNATURE;		/* cannot happen; fail closed */
	}

	rc = crypto_sign_verify_detached(tok->sig, pae, paelen, public_key);
	free(pae);
	return rc == 0 ? NULL : R_SIGNATURE;
}

/*
 * A small strict JSON scanner (RFC 8259): enough to find the footer's
 * "kid" and to bound nesting before a recursive parser sees a payload.
 */
typedef struct JsonScan
{
	const unsigned char *p;
	const unsigned char *end;
	int			depth;
	int			max_depth;
} JsonScan;

static bool scan_value(JsonScan *s);

static void
skip_ws(JsonScan *s)
{
	while (s->p < s->end &&
		   (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
hex4(const unsigned char *p)
{
	int			v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		unsigned char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * Scan a string at s->p (which must be '"').  When out is not NULL, the
 * decoded UTF-8 is stored there NUL-terminated if it fits in outsize - 1
 * bytes; *outlen gets the decoded length (which may exceed outsize).
 * \u0000 and lone surrogates are refused, as PostgreSQL refuses them.
 */
static bool
scan_string(JsonScan *s, char *out, size_t outsize, size_t *outlen)
{
	size_t		n = 0;

	if (s->p >= s->end || *s->p != '"')
		return false;
	s->p++;
	while (s->p < s->end && *s->p != '"')
	{
		unsigned char c = *s->p;
		unsigned char u[4];
		int			ulen = 1;
		int			i;

		if (c < 0x20)
			return false;
		if (c != '\\')
		{
			u[0] = c;
			s->p++;
		}
		else
		{
			if (s->end - s->p < 2)
				return false;
			c = s->p[1];
			s->p += 2;
			switch (c)
			{
				case '"':
				case '\\':
				case '/':
					u[0] = c;
					break;
				case 'b':
					u[0] = '\b';
					break;
				case 'f':
					u[0] = '\f';
					break;
				case 'n':
					u[0] = '\n';
					break;
				case 'r':
					u[0] = '\r';
					break;
				case 't':
					u[0] = '\t';
					break;
				case 'u':
					{
						long		cp;

						if (s->end - s->p < 4 || (cp = hex4(s->p)) < 0)
							return false;
						s->p += 4;
						if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
							return false;
						if (cp >= 0xD800 && cp <= 0xDBFF)
						{
							long		lo;

							if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
								(lo = hex4(s->p + 2)) < 0xDC00 || lo > 0xDFFF)
								return false;
							s->p += 6;
							cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						}
						if (cp < 0x80)
							u[0] = (unsigned char) cp;
						else if (cp < 0x800)
						{
							u[0] = (unsigned char) (0xC0 | (cp >> 6));
							u[1] = (unsigned char) (0x80 | (cp & 0x3F));
							ulen = 2;
						}
						else if (cp < 0x10000)
						{
							u[0] = (unsigned char) (0xE0 | (cp >> 12));
							u[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
							u[2] = (unsigned char) (0x80 | (cp & 0x3F));
							ulen = 3;
						}
						else
						{
							u[0] = (unsigned char) (0xF0 | (cp >> 18));
							u[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
							u[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
							u[3] = (unsigned char) (0x80 | (cp & 0x3F));
							ulen = 4;
						}
						break;
					}
				default:
					return false;
			}
		}
		for (i = 0; i < ulen; i++, n++)
			if (out != NULL && n + 1 < outsize)
				out[n] = (char) u[i];
	}
	if (s->p >= s->end)
		return false;
	s->p++;						/* closing quote */
	if (out != NULL && outsize > 0)
		out[n < outsize ? n : 0] = '\0';	/* empty when it did not fit */
	if (outlen != NULL)
		*outlen = n;
	return true;
}

static bool
scan_digits(JsonScan *s)
{
	const unsigned char *start = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > start;
}

static bool
scan_number(JsonScan *s)
{
	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (!scan_digits(s))
		return false;
	if (s->p < s->end && *s->p == '.')
	{
		s->p++;
		if (!scan_digits(s))
			return false;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
	{
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (!scan_digits(s))
			return false;
	}
	return true;
}

static bool
scan_literal(JsonScan *s, const char *lit)
{
	size_t		n = strlen(lit);

	if ((size_t) (s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		return false;
	s->p += n;
	return true;
}

/* Scan '{' or '[' ... up to and including the closing bracket. */
static bool
scan_container(JsonScan *s)
{
	unsigned char close = (*s->p == '{') ? '}' : ']';
	bool		first = true;

	if (++s->depth > s->max_depth)
		return false;
	s->p++;
	for (;;)
	{
		skip_ws(s);
		if (s->p >= s->end)
			return false;
		if (*s->p == close && first)
			break;
		if (!first)
		{
			if (*s->p != ',')
				break;
			s->p++;
			skip_ws(s);
		}
		if (close == '}')
		{
			if (!scan_string(s, NULL, 0, NULL))
				return false;
			skip_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return false;
			s->p++;
			skip_ws(s);
		}
		if (!scan_value(s))
			return false;
		first = false;
	}
	if (s->p >= s->end || *s->p != close)
		return false;
	s->p++;
	s->depth--;
	return true;
}

static bool
scan_value(JsonScan *s)
{
	if (s->p >= s->end)
		return false;
	switch (*s->p)
	{
		case '{':
		case '[':
			return scan_container(s);
		case '"':
			return scan_string(s, NULL, 0, NULL);
		case 't':
			return scan_literal(s, "true");
		case 'f':
			return scan_literal(s, "false");
		case 'n':
			return scan_literal(s, "null");
		default:
			return scan_number(s);
	}
}

bool
toms_json_check(const unsigned char *json, size_t len, int max_depth)
{
	JsonScan	s;

	s.p = json;
	s.end = json + len;
	s.depth = 0;
	s.max_depth = max_depth;
	skip_ws(&s);
	if (!scan_value(&s))
		return false;
	skip_ws(&s);
	return s.p == s.end;
}

/*
 * PASETO footers are free-form; by convention a JSON object whose "kid"
 * names the key.  A footer that does not start with '{' is not JSON and
 * names no key.  One that does must be a well-formed object with at most
 * one "kid", a non-empty string no longer than TOMS_PASETO_MAX_KID bytes.
 */
const char *
toms_paseto_footer_kid(const unsigned char *footer, size_t len, char *kid,
					   bool *has_kid)
{
	JsonScan	s;
	bool		first = true;
	bool		too_long = false;

	*has_kid = false;
	kid[0] = '\0';
	s.p = footer;
	s.end = footer + len;
	s.depth = 1;
	s.max_depth = FOOTER_MAX_DEPTH;
	skip_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return NULL;
	s.p++;
	for (;;)
	{
		char		name[4];
		size_t		namelen;

		skip_ws(&s);
		if (s.p >= s.end)
			return R_MALFORMED;
		if (first && *s.p == '}')
			break;
		if (!first)
		{
			if (*s.p == '}')
				break;
			if (*s.p != ',')
				return R_MALFORMED;
			s.p++;
			skip_ws(&s);
		}
		first = false;
		if (!scan_string(&s, name, sizeof(name), &namelen))
			return R_MALFORMED;
		skip_ws(&s);
		if (s.p >= s.end || *s.p != ':')
			return R_MALFORMED;
		s.p++;
		skip_ws(&s);
		if (namelen == 3 && memcmp(name, "kid", 3) == 0)
		{
			size_t		kidlen;

			if (*has_kid)
				return R_MALFORMED; /* two "kid"s: which one? */
			if (s.p >= s.end || *s.p != '"' ||
				!scan_string(&s, kid, TOMS_PASETO_MAX_KID + 1, &kidlen) ||
				kidlen == 0)
				return R_MALFORMED;
			*has_kid = true;
			too_long = (kidlen > TOMS_PASETO_MAX_KID);
		}
		else if (!scan_value(&s))
			return R_MALFORMED;
	}
	s.p++;						/* '}' */
	skip_ws(&s);
	if (s.p != s.end)
		return R_MALFORMED;
	if (too_long)
	{
		kid[0] = '\0';
		return R_UNKNOWN_KEY;	/* too long to be a key_id we hold */
	}
	return NULL;
}
