/*
 * utf8.c - text_check(): the gate every name, password and message passes
 * before chatd stores, forwards or logs it (docs/PROTOCOL.md, "Framing").
 *
 * Multi-byte sequences are accepted only in the well-formed shapes of
 * Unicode table 3-7, so overlong forms, surrogates and code points above
 * U+10FFFF fail on the byte that makes them so.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "utf8.h"

#define BYTES_01	0x0101010101010101ULL
#define BYTES_20	0x2020202020202020ULL
#define BYTES_80	0x8080808080808080ULL

/*
 * Chat is mostly ASCII, so eight bytes are tested at once.  A byte sets its
 * top bit in (w | (w - 0x20..) | (w + 0x01..)) exactly when it is >= 0x80,
 * < 0x20 or 0x7f; carries only matter once some byte already failed.
 */
static bool word_is_printable_ascii(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return ((w | (w - BYTES_20) | (w + BYTES_01)) & BYTES_80) == 0;
}

static bool is_continuation(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

/*
 * The second byte is where table 3-7 differs between lead bytes: it alone
 * rules out overlong forms, surrogates and values above U+10FFFF.
 */
static bool second_byte_ok(unsigned char lead, unsigned char c)
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

size_t utf8_sequence_length(unsigned char lead)
{
	if (lead >= 0xc2 && lead <= 0xdf)
		return 2;
	if (lead >= 0xe0 && lead <= 0xef)
		return 3;
	if (lead >= 0xf0 && lead <= 0xf4)
		return 4;
	return 0;
}

static enum text_check code_point_check(uint32_t cp)
{
	if (cp >= 0x80 && cp <= 0x9f)
		return TEXT_CONTROL;
	if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		return TEXT_BIDI;
	return TEXT_OK;
}

/* Checks the sequence at *p and advances *p past it. */
static enum text_check multibyte_check(const unsigned char **p, const unsigned char *end)
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

enum text_check text_check(const char *s, size_t len)
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

const char *text_check_str(enum text_check result)
{
	switch (result) {
	case TEXT_OK:
		return "valid text";
	case TEXT_BAD_UTF8:
		return "invalid UTF-8";
	case TEXT_CONTROL:
		return "control character";
	case TEXT_BIDI:
		return "bidirectional override or isolate";
	}
	return "unknown text check result";
}

/* A continuation byte at the cut means the cut falls inside a character. */
size_t text_fit(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && is_continuation((unsigned char)s[max]))
		max--;
	return max;
}
