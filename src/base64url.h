/*-------------------------------------------------------------------------
 *
 * base64url.h
 *	  Strict unpadded base64url decoding (RFC 4648 section 5), shared by
 *	  PASETO tokens (paseto.c) and the text form of sealed values
 *	  (sealed_format.c).  Header-only and free of backend calls, so that
 *	  the fuzz targets of both need no further source file.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOMS_BASE64URL_H
#define TOMS_BASE64URL_H

#include <stddef.h>
#include <stdint.h>

typedef enum B64urlResult
{
	B64URL_OK,
	B64URL_BAD_CHAR,			/* outside the alphabet ('=' included) */
	B64URL_NOT_CANONICAL		/* a dangling character or nonzero unused bits */
} B64urlResult;

static inline int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Decode inlen characters into out (room for inlen * 3 / 4 bytes); *outlen
 * is the number of bytes decoded, also when the text is not canonical
 * (unused low bits of the last character must be zero, so that each byte
 * string has one text form).
 */
static inline B64urlResult
b64url_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen)
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		n = 0;
	size_t		i;

	*outlen = 0;
	for (i = 0; i < inlen; i++)
	{
		int			v = b64url_value((unsigned char) in[i]);

		if (v < 0)
			return B64URL_BAD_CHAR;
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[n++] = (uint8_t) (acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*outlen = n;
	return (inlen % 4 == 1 || acc != 0) ? B64URL_NOT_CANONICAL : B64URL_OK;
}

#endif							/* TOMS_BASE64URL_H */
