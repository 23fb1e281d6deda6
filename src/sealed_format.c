/*-------------------------------------------------------------------------
 *
 * sealed_format.c
 *	  Parsing and printing of toms.sealed values: the binary layout check
 *	  and the armoured text form (see sealed_format.h).
 *
 *	  The bottom layer of sealed columns (docs/encryption.md): no backend
 *	  calls and no allocation.  Everything that comes from outside (type
 *	  input and binary receive in sealed.c) is checked here first, and this
 *	  file is what the fuzz target (fuzz/sealed_fuzz.c) exercises.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "base64url.h"
#include "sealed_format.h"

static const char b64url[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *
toms_sealed_format_strerror(SealedFormatError err)
{
	switch (err)
	{
		case SEALED_OK:
			return "The value is well-formed.";
		case SEALED_ERR_PREFIX:
			return "A sealed value starts with \"sealed:v1:\"; plaintext is never accepted.";
		case SEALED_ERR_VERSION:
			return "The sealed value has an unsupported format version.";
		case SEALED_ERR_CHAR:
			return "The sealed value contains a character that is not base64url.";
		case SEALED_ERR_ENCODING:
			return "The sealed value is not canonical base64url.";
		case SEALED_ERR_TRUNCATED:
			return "The sealed value is shorter than its header says.";
		case SEALED_ERR_TRAILING:
			return "The sealed value is longer than its header says.";
		case SEALED_ERR_TOO_LONG:
			return "The sealed value's length is over the limit.";
	}
	return "The sealed value is malformed.";
}

SealedFormatError
toms_sealed_check_binary(const uint8_t *bin, size_t len)
{
	uint32_t	ptlen;

	if (len < 1)
		return SEALED_ERR_TRUNCATED;
	if (bin[0] != SEALED_FORMAT_VERSION)
		return SEALED_ERR_VERSION;
	if (len < SEALED_MIN_LEN)
		return SEALED_ERR_TRUNCATED;
	ptlen = sealed_get_u32(bin + SEALED_OFF_PTLEN);
	if (ptlen > SEALED_MAX_PLAINTEXT)
		return SEALED_ERR_TOO_LONG;
	if (len - SEALED_MIN_LEN < ptlen)
		return SEALED_ERR_TRUNCATED;
	if (len - SEALED_MIN_LEN > ptlen)
		return SEALED_ERR_TRAILING;
	return SEALED_OK;
}

size_t
toms_sealed_armour_len(size_t len)
{
	return SEALED_ARMOUR_PREFIX_LEN + (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
}

void
toms_sealed_armour(const uint8_t *bin, size_t len, char *out)
{
	size_t		i;
	char	   *p = out;

	memcpy(p, SEALED_ARMOUR_PREFIX, SEALED_ARMOUR_PREFIX_LEN);
	p += SEALED_ARMOUR_PREFIX_LEN;
	for (i = 0; i + 3 <= len; i += 3)
	{
		uint32_t	v = ((uint32_t) bin[i] << 16) | ((uint32_t) bin[i + 1] << 8) | bin[i + 2];

		*p++ = b64url[(v >> 18) & 63];
		*p++ = b64url[(v >> 12) & 63];
		*p++ = b64url[(v >> 6) & 63];
		*p++ = b64url[v & 63];
	}
	if (len - i == 1)
	{
		uint32_t	v = (uint32_t) bin[i] << 16;

		*p++ = b64url[(v >> 18) & 63];
		*p++ = b64url[(v >> 12) & 63];
	}
	else if (len - i == 2)
	{
		uint32_t	v = ((uint32_t) bin[i] << 16) | ((uint32_t) bin[i + 1] << 8);

		*p++ = b64url[(v >> 18) & 63];
		*p++ = b64url[(v >> 12) & 63];
		*p++ = b64url[(v >> 6) & 63];
	}
	*p = '\0';
}

size_t
toms_sealed_unarmour_maxlen(size_t textlen)
{
	return (textlen / 4) * 3 + 3;
}

SealedFormatError
toms_sealed_unarmour(const char *text, size_t textlen, uint8_t *out, size_t *outlen)
{
	size_t		o;
	B64urlResult r;
	SealedFormatError err;

	*outlen = 0;
	if (textlen < 8 || memcmp(text, "sealed:v", 8) != 0)
		return SEALED_ERR_PREFIX;
	if (textlen < SEALED_ARMOUR_PREFIX_LEN ||
		memcmp(text, SEALED_ARMOUR_PREFIX, SEALED_ARMOUR_PREFIX_LEN) != 0)
		return SEALED_ERR_VERSION;

	r = b64url_decode(text + SEALED_ARMOUR_PREFIX_LEN, textlen - SEALED_ARMOUR_PREFIX_LEN, out, &o);
	if (r == B64URL_BAD_CHAR)
		return SEALED_ERR_CHAR;
	*outlen = o;
	err = toms_sealed_check_binary(out, o);
	/* A value cut short (say, by a copy and paste) says so first. */
	if (err == SEALED_ERR_TRUNCATED)
		return err;
	/* A dangling character or leftover bits: one value, one text form. */
	if (r == B64URL_NOT_CANONICAL)
	{
		*outlen = 0;
		return SEALED_ERR_ENCODING;
	}
	return err;
}
