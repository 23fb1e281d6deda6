/*
 * sealed_fuzz.c
 *	  libFuzzer target for the toms.sealed parsers (src/sealed_format.c):
 *	  the armoured text input (sealed_in) and the binary receive check
 *	  (sealed_recv).  Built and run by test/suites.d/sealed_fuzz.sh.
 *
 *	  Besides memory safety it checks the properties the type relies on:
 *	  an accepted armoured text is the canonical armour of its bytes (one
 *	  value, one text form, so dump and restore never change a value), and
 *	  bytes accepted by the binary check survive armour and parse intact.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sealed_format.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t    *bin;
	size_t		binlen = 0;
	char	   *text;
	SealedFormatError err;

	/* Text input: the whole input as an armoured value. */
	bin = malloc(toms_sealed_unarmour_maxlen(size) + 1);
	err = toms_sealed_unarmour((const char *) data, size, bin, &binlen);
	if (err == SEALED_OK)
	{
		if (binlen > toms_sealed_unarmour_maxlen(size))
			abort();
		if (toms_sealed_check_binary(bin, binlen) != SEALED_OK)
			abort();
		text = malloc(toms_sealed_armour_len(binlen) + 1);
		toms_sealed_armour(bin, binlen, text);
		if (strlen(text) != toms_sealed_armour_len(binlen) ||
			strlen(text) != size || memcmp(text, data, size) != 0)
			abort();			/* accepted a non-canonical form */
		free(text);
	}
	else if (toms_sealed_format_strerror(err) == NULL)
		abort();
	free(bin);

	/* Binary receive: the whole input as the bytes of a value. */
	if (toms_sealed_check_binary(data, size) == SEALED_OK)
	{
		size_t		alen = toms_sealed_armour_len(size);

		text = malloc(alen + 1);
		toms_sealed_armour(data, size, text);
		bin = malloc(toms_sealed_unarmour_maxlen(alen) + 1);
		if (toms_sealed_unarmour(text, alen, bin, &binlen) != SEALED_OK ||
			binlen != size || memcmp(bin, data, size) != 0)
			abort();
		free(bin);
		free(text);
	}
	return 0;
}
