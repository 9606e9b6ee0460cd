/*
 * utf8.h - validation of text that crosses a trust boundary.
 *
 * Every name, password and chat message a client sends goes through
 * text_check() before chatd stores, forwards or logs it.  The rules are the
 * ones docs/PROTOCOL.md lists under "Framing".
 */
#ifndef CHATD_UTF8_H
#define CHATD_UTF8_H

#include <stddef.h>

enum text_check {
	TEXT_OK = 0,
	TEXT_BAD_UTF8,  /* overlong, surrogate, > U+10FFFF, truncated, stray byte */
	TEXT_CONTROL,   /* C0, DEL, C1 */
	TEXT_BIDI,      /* U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069 */
	TEXT_SEPARATOR, /* U+2028, U+2029 */
	TEXT_INVISIBLE, /* other invisible format characters, tag characters */
};

/* Checks len bytes at s (NUL bytes count as C0 control characters). */
enum text_check text_check(const char *s, size_t len);

/* Bytes of the multi-byte UTF-8 sequence lead starts (2..4); 0 for ASCII and stray bytes. */
size_t utf8_sequence_length(unsigned char lead);

/* A short human description of a result, for ERR lines. */
const char *text_check_str(enum text_check result);

/*
 * How many bytes of the valid text s (len bytes) fit in max bytes without
 * cutting a character in two: where to shorten text that others will see,
 * so that it stays valid.
 */
size_t text_fit(const char *s, size_t len, size_t max);

#endif
