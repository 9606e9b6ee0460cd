/*
 * escape.c - escape_bytes(): untrusted bytes made safe for logs and
 * terminals.  Anything but printable ASCII becomes \xNN, and so does the
 * backslash, so an escaped text can always be read back unambiguously.
 * No state: any thread.
 */
#include <stdbool.h>
#include <stddef.h>

#include "escape.h"

#define ESCAPE_LEN 4 /* "\xNN" */

static bool
needs_escape(unsigned char c)
{
	return c < 0x20 || c >= 0x7f || c == '\\';
}

static void
put_escape(char *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[c >> 4];
	out[3] = hex[c & 0x0f];
}

size_t
escape_bytes(char *out, size_t outsz, const char *in, size_t len)
{
	size_t o = 0;

	if (outsz == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (!needs_escape(c)) {
			if (outsz - o < 2)
				break;
			out[o++] = (char)c;
		} else {
			if (outsz - o < ESCAPE_LEN + 1)
				break;
			put_escape(out + o, c);
			o += ESCAPE_LEN;
		}
	}
	out[o] = '\0';
	return o;
}
