/*-------------------------------------------------------------------------
 *
 * sealed_fuzz.c
 *	  libFuzzer target for the toms.sealed parsers (src/sealed_format.c):
 *	  the armoured text form (type input, pg_restore, COPY FROM) and the
 *	  binary form (binary COPY, the wire protocol's receive).  Beyond "no
 *	  crash, no sanitizer report", it checks the format's promises:
 *	    - an accepted armoured text is the one canonical form of its bytes
 *	      (armouring them gives the input back), and those bytes pass the
 *	      binary check;
 *	    - an accepted binary value armours and unarmours back to itself;
 *	    - the output never exceeds sealed_unarmour_maxlen().
 *
 *	  Run by test/suites.d/fuzz.sh.
 *
 * FUZZ_SOURCES: src/sealed_format.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sealed_format.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_text(const uint8_t *data, size_t size)
{
	/* exact-size copies, so that ASan sees any overread or overwrite */
	char	   *text = malloc(size ? size : 1);
	size_t		max = sealed_unarmour_maxlen(size);
	uint8_t    *bin = malloc(max ? max : 1);
	size_t		binlen = 0;

	if (text == NULL || bin == NULL)
		abort();
	memcpy(text, data, size);
	if (sealed_unarmour(text, size, bin, &binlen) == SEALED_OK)
	{
		char	   *again;

		if (binlen > max || sealed_check_binary(bin, binlen) != SEALED_OK)
			abort();
		if (sealed_armour_len(binlen) != size)
			abort();			/* accepted a non-canonical length */
		again = malloc(size + 1);
		if (again == NULL)
			abort();
		sealed_armour(bin, binlen, again);
		if (memcmp(again, text, size) != 0 || again[size] != '\0')
			abort();			/* accepted a non-canonical encoding */
		free(again);
	}
	free(text);
	free(bin);
}

static void
check_binary(const uint8_t *data, size_t size)
{
	uint8_t    *bin = malloc(size ? size : 1);

	if (bin == NULL)
		abort();
	memcpy(bin, data, size);
	if (sealed_check_binary(bin, size) == SEALED_OK)
	{
		size_t		alen = sealed_armour_len(size);
		char	   *text = malloc(alen + 1);
		uint8_t    *back = malloc(sealed_unarmour_maxlen(alen));
		size_t		backlen = 0;

		if (text == NULL || back == NULL)
			abort();
		sealed_armour(bin, size, text);
		if (strlen(text) != alen)
			abort();
		if (sealed_unarmour(text, alen, back, &backlen) != SEALED_OK ||
			backlen != size || memcmp(back, bin, size) != 0)
			abort();			/* armour does not round-trip */
		free(text);
		free(back);
	}
	free(bin);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void) sealed_format_strerror((SealedFormatError) (size % 9));
	check_text(data, size);
	check_binary(data, size);
	return 0;
}
