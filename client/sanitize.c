/*
 * sanitize.c - sanitize_append(): untrusted text made safe to print.
 *
 * The rules for one character are those of common/utf8.c (text_check), the
 * gate chatd applies to what clients send: each character is judged by
 * text_check() on its own, so the client and the server never disagree on
 * what is safe.  A character refused (a control, bidi or invisible one) is
 * replaced by one U+FFFD; an invalid byte is replaced alone and decoding
 * resumes at the next byte, so one bad byte never hides the text after it.
 * No state: any thread.
 */
#include <stdbool.h>

#include "sanitize.h"
#include "utf8.h"

static const char REPLACEMENT[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Length of the plain printable ASCII run at s (the common case, copied at once). */
static size_t
printable_ascii_run(const unsigned char *s, size_t len)
{
	size_t n = 0;

	while (n < len && s[n] >= 0x20 && s[n] < 0x7f)
		n++;
	return n;
}

int
sanitize_append(struct strbuf *sb, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t run = printable_ascii_run(p + i, len - i), n;
		enum text_check tc;

		if (run > 0) {
			if (strbuf_add(sb, s + i, run) < 0)
				return -1;
			i += run;
			continue;
		}
		n = utf8_sequence_length(p[i]);
		tc = n > 0 && n <= len - i ? text_check(s + i, n) : TEXT_BAD_UTF8;
		if (tc == TEXT_OK) {
			if (strbuf_add(sb, s + i, n) < 0)
				return -1;
			i += n;
		} else {
			if (strbuf_add(sb, REPLACEMENT, sizeof(REPLACEMENT) - 1) < 0)
				return -1;
			i += tc == TEXT_BAD_UTF8 ? 1 : n;
		}
	}
	return 0;
}
