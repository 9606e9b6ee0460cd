/*
 * utf8.c - fuzz target for text_check() and text_fit() (common/utf8.c).
 *
 * text_check() tests eight ASCII bytes at a time and decodes the rest by
 * the shapes of Unicode table 3-7.  This target compares it, on every
 * input, with a plain decoder written from the rules in docs/PROTOCOL.md
 * ("Framing"): one code point at a time, the first problem decides.  Text
 * it accepts must also hold no C0, DEL or C1 character, no bidi control,
 * line separator or invisible format character, whatever the fast path thinks, and text_fit() must cut it
 * only between characters, as late as max allows.
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "utf8.h"

/* Decodes the code point at s[0..left); 0 bytes used means malformed. */
static size_t
decode(const uint8_t *s, size_t left, uint32_t *cp)
{
	size_t n;
	uint32_t v, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2, v = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, v = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, v = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

static enum text_check
reference_check(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = decode(s + i, len - i, &cp);

		if (n == 0)
			return TEXT_BAD_UTF8;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return TEXT_CONTROL;
		if (cp == 0x061c || cp == 0x200e || cp == 0x200f ||
		    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
			return TEXT_BIDI;
		if (cp == 0x2028 || cp == 0x2029)
			return TEXT_SEPARATOR;
		if (cp == 0x00ad || cp == 0x180e || cp == 0x200b ||
		    (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff ||
		    (cp >= 0xfff9 && cp <= 0xfffb) || (cp >= 0x1bca0 && cp <= 0x1bca3) ||
		    (cp >= 0x1d173 && cp <= 0x1d17a) || (cp >= 0xe0000 && cp <= 0xe007f))
			return TEXT_INVISIBLE;
		i += n;
	}
	return TEXT_OK;
}

/* text_fit(): the longest prefix of whole characters within max bytes. */
static void
check_fit(const uint8_t *data, size_t size, size_t max)
{
	size_t n = text_fit((const char *)data, size, max);

	fuzz_assert(n <= max && n <= size);
	fuzz_assert(text_check((const char *)data, n) == TEXT_OK);
	if (n < size && n < max) {
		/* The next character would not have fitted. */
		uint32_t cp;

		fuzz_assert(n + decode(data + n, size - n, &cp) > max);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum text_check r = text_check((const char *)data, size);
	const char *what = text_check_str(r);

	fuzz_assert(r == reference_check(data, size));
	fuzz_assert(what != NULL && what[0] != '\0');
	if (r != TEXT_OK)
		return 0;
	/* Accepted text is safe to put in a line, a log or a terminal. */
	for (size_t i = 0; i < size; i++) {
		fuzz_assert(data[i] >= 0x20 && data[i] != 0x7f);
		/* C1 controls are U+0080..U+009F: C2 80..C2 9F in UTF-8. */
		if (data[i] == 0xc2 && i + 1 < size)
			fuzz_assert(data[i + 1] > 0x9f);
	}
	/* A prefix cut at a character boundary is valid text too (some 64 cuts). */
	for (size_t k = 0; k <= size; k += 1 + size / 64) {
		size_t cut = k;

		while (cut < size && (data[cut] & 0xc0) == 0x80)
			cut++;
		fuzz_assert(text_check((const char *)data, cut) == TEXT_OK);
		check_fit(data, size, k);
	}
	return 0;
}
