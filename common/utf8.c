/*
 * utf8.c - text_check(): the gate every name, password and message passes
 * before chatd stores, forwards or logs it (docs/PROTOCOL.md, "Framing").
 *
 * Multi-byte sequences are accepted only in the well-formed shapes of
 * Unicode table 3-7, so overlong forms, surrogates and code points above
 * U+10FFFF fail on the byte that makes them so; a well-formed one is then
 * looked up in REFUSED.  Called on any thread (it keeps no state).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "utf8.h"

#define BYTES_01 0x0101010101010101ULL
#define BYTES_20 0x2020202020202020ULL
#define BYTES_80 0x8080808080808080ULL

/*
 * Chat is mostly ASCII, so eight bytes are tested at once.  A byte sets its
 * top bit in (w | (w - 0x20..) | (w + 0x01..)) exactly when it is >= 0x80,
 * < 0x20 or 0x7f; carries only matter once some byte already failed.
 */
static bool
word_is_printable_ascii(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return ((w | (w - BYTES_20) | (w + BYTES_01)) & BYTES_80) == 0;
}

static bool
is_continuation(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

/*
 * The second byte is where table 3-7 differs between lead bytes: it alone
 * rules out overlong forms, surrogates and values above U+10FFFF.
 */
static bool
second_byte_ok(unsigned char lead, unsigned char c)
{
	switch (lead) {
	case 0xe0:
		return c >= 0xa0 && c <= 0xbf;
	case 0xed:
		return c >= 0x80 && c <= 0x9f;
	case 0xf0:
		return c >= 0x90 && c <= 0xbf;
	case 0xf4:
		return c >= 0x80 && c <= 0x8f;
	default:
		return is_continuation(c);
	}
}

size_t
utf8_sequence_length(unsigned char lead)
{
	if (lead >= 0xc2 && lead <= 0xdf)
		return 2;
	if (lead >= 0xe0 && lead <= 0xef)
		return 3;
	if (lead >= 0xf0 && lead <= 0xf4)
		return 4;
	return 0;
}

/*
 * The code points above U+007F that are refused, in order.  Besides C1, the
 * format characters (Unicode category Cf) that are invisible (also
 * Default_Ignorable) or must not be interchanged (the interlinear
 * annotation ones), and the line and paragraph separators: all of them can
 * make a line look other than it is on someone else's screen or in a log.
 * Allowed on purpose: ZWNJ and ZWJ (U+200C, U+200D: emoji sequences,
 * Persian and Indic scripts), the visible prepended concatenation marks
 * (Arabic number signs...) and the Egyptian hieroglyph format controls.
 */
static const struct {
	uint32_t first, last;
	enum text_check result;
} REFUSED[] = {
	{ 0x0080, 0x009f, TEXT_CONTROL },     /* C1 */
	{ 0x00ad, 0x00ad, TEXT_INVISIBLE },   /* soft hyphen */
	{ 0x061c, 0x061c, TEXT_BIDI },        /* Arabic letter mark */
	{ 0x180e, 0x180e, TEXT_INVISIBLE },   /* Mongolian vowel separator */
	{ 0x200b, 0x200b, TEXT_INVISIBLE },   /* zero width space */
	{ 0x200e, 0x200f, TEXT_BIDI },        /* LRM, RLM */
	{ 0x2028, 0x2029, TEXT_SEPARATOR },   /* line, paragraph separator */
	{ 0x202a, 0x202e, TEXT_BIDI },        /* embeddings, overrides */
	{ 0x2060, 0x2065, TEXT_INVISIBLE },   /* word joiner, invisible operators */
	{ 0x2066, 0x2069, TEXT_BIDI },        /* isolates */
	{ 0x206a, 0x206f, TEXT_INVISIBLE },   /* deprecated format characters */
	{ 0xfeff, 0xfeff, TEXT_INVISIBLE },   /* zero width no-break space, BOM */
	{ 0xfff9, 0xfffb, TEXT_INVISIBLE },   /* interlinear annotation */
	{ 0x1bca0, 0x1bca3, TEXT_INVISIBLE }, /* shorthand format controls */
	{ 0x1d173, 0x1d17a, TEXT_INVISIBLE }, /* musical symbol format controls */
	{ 0xe0000, 0xe007f, TEXT_INVISIBLE }, /* tag characters */
};

static enum text_check
code_point_check(uint32_t cp)
{
	for (size_t i = 0; i < sizeof(REFUSED) / sizeof(REFUSED[0]) && cp >= REFUSED[i].first; i++)
		if (cp <= REFUSED[i].last)
			return REFUSED[i].result;
	return TEXT_OK;
}

/* Checks the sequence at *p and advances *p past it. */
static enum text_check
multibyte_check(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *s = *p;
	size_t n = utf8_sequence_length(s[0]);
	uint32_t cp;

	if (n == 0 || (size_t)(end - s) < n || !second_byte_ok(s[0], s[1]))
		return TEXT_BAD_UTF8;
	cp = s[0] & (0x7f >> n);
	cp = (cp << 6) | (s[1] & 0x3f);
	for (size_t i = 2; i < n; i++) {
		if (!is_continuation(s[i]))
			return TEXT_BAD_UTF8;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	*p = s + n;
	return code_point_check(cp);
}

enum text_check
text_check(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;
	enum text_check result;

	while (p < end) {
		if (end - p >= 8 && word_is_printable_ascii(p)) {
			p += 8;
		} else if (*p < 0x80) {
			if (*p < 0x20 || *p == 0x7f)
				return TEXT_CONTROL;
			p++;
		} else if ((result = multibyte_check(&p, end)) != TEXT_OK) {
			return result;
		}
	}
	return TEXT_OK;
}

const char *
text_check_str(enum text_check result)
{
	switch (result) {
	case TEXT_OK:
		return "valid text";
	case TEXT_BAD_UTF8:
		return "invalid UTF-8";
	case TEXT_CONTROL:
		return "control character";
	case TEXT_BIDI:
		return "bidirectional control character";
	case TEXT_SEPARATOR:
		return "line or paragraph separator";
	case TEXT_INVISIBLE:
		return "invisible format character";
	}
	return "unknown text check result";
}

/* A continuation byte at the cut means the cut falls inside a character. */
size_t
text_fit(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && is_continuation((unsigned char)s[max]))
		max--;
	return max;
}
