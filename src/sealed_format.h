/*-------------------------------------------------------------------------
 *
 * sealed_format.h
 *	  The byte layout and the armoured text form of a toms.sealed value.
 *
 *	  Pure C (no backend calls) so that the parser can be built and fuzzed
 *	  on its own: see fuzz/sealed_fuzz.c and test/suites.d/sealed_fuzz.sh.
 *	  Every global name starts with toms_sealed_ (or SEALED_ for the
 *	  constants), as everywhere in toms.
 *
 *	  A sealed value, format version 1, is
 *
 *		offset	size	field
 *		0		1		format version (1)
 *		1		4		key version, big-endian (the tenant's data key)
 *		5		8		key id: BLAKE2b of the data key (a check value)
 *		13		4		plaintext length, big-endian
 *		17		24		random XChaCha20 nonce
 *		41		n+16	XChaCha20-Poly1305-IETF ciphertext and tag
 *
 *	  The associated data are the first 17 bytes followed by the tenant id,
 *	  so the value opens only under that tenant's key of that version, with
 *	  that header.  The armoured form is "sealed:v1:" followed by the whole
 *	  value in unpadded base64url; it is the type's only text form.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEALED_FORMAT_H
#define SEALED_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define SEALED_FORMAT_VERSION	1
#define SEALED_OFF_KEYVER		1
#define SEALED_OFF_KEYID		5
#define SEALED_KEYID_LEN		8
#define SEALED_OFF_PTLEN		13
#define SEALED_OFF_NONCE		17
#define SEALED_NONCE_LEN		24
#define SEALED_HEADER_LEN		41
#define SEALED_AD_HEADER_LEN	17	/* bytes of the header in the AD */
#define SEALED_TAG_LEN			16
#define SEALED_MIN_LEN			(SEALED_HEADER_LEN + SEALED_TAG_LEN)
/* Largest plaintext: keeps the armoured text well below 1 GB. */
#define SEALED_MAX_PLAINTEXT	(512 * 1024 * 1024)

#define SEALED_ARMOUR_PREFIX	"sealed:v1:"
#define SEALED_ARMOUR_PREFIX_LEN 10

typedef enum SealedFormatError
{
	SEALED_OK = 0,
	SEALED_ERR_PREFIX,			/* does not start with "sealed:v" */
	SEALED_ERR_VERSION,			/* unsupported format version */
	SEALED_ERR_CHAR,			/* a character outside base64url */
	SEALED_ERR_ENCODING,		/* impossible base64url length or bits */
	SEALED_ERR_TRUNCATED,		/* shorter than its header says */
	SEALED_ERR_TRAILING,		/* longer than its header says */
	SEALED_ERR_TOO_LONG			/* plaintext length over the limit */
} SealedFormatError;

/*
 * Human-readable reason, a full sentence, for callers outside the server
 * (the fuzz target); the server words its own translatable errdetail for
 * each error (sealed.c).
 */
extern const char *toms_sealed_format_strerror(SealedFormatError err);

/* Validate a binary sealed value (also what receive and unarmour check). */
extern SealedFormatError toms_sealed_check_binary(const uint8_t *bin, size_t len);

/* Length of the armoured form of a binary value of len bytes (no NUL). */
extern size_t toms_sealed_armour_len(size_t len);

/* Write the armoured form and a terminating NUL into out. */
extern void toms_sealed_armour(const uint8_t *bin, size_t len, char *out);

/* Upper bound of the binary length of an armoured text of textlen bytes. */
extern size_t toms_sealed_unarmour_maxlen(size_t textlen);

/*
 * Parse an armoured value (not necessarily NUL-terminated) into out, which
 * must hold toms_sealed_unarmour_maxlen(textlen) bytes; the result is
 * checked with toms_sealed_check_binary().  Only the canonical encoding is
 * accepted, so a value has exactly one text form.
 */
extern SealedFormatError toms_sealed_unarmour(const char *text, size_t textlen,
											  uint8_t *out, size_t *outlen);

static inline uint32_t
sealed_get_u32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
		((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static inline void
sealed_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

#endif							/* SEALED_FORMAT_H */
