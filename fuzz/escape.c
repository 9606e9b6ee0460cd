/*
 * escape.c - fuzz target for escape_bytes() (common/escape.c).
 *
 * Input: byte 0 picks a small output size, the rest are the bytes to
 * escape.  Checked: with room enough, the output is printable ASCII only
 * and reads back (\xNN decoded) to exactly the input; with a small output
 * buffer, the result is the longest prefix of that full output that fits
 * and ends between escapes; nothing is written past the buffer, and a
 * zero-sized buffer is not touched at all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "harness.h"

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* escape.c writes lower case only */
}

/* Decodes out (olen bytes) into back; returns the decoded length. */
static size_t
unescape(const char *out, size_t olen, uint8_t *back)
{
	size_t n = 0;

	for (size_t i = 0; i < olen; i++) {
		fuzz_assert(out[i] >= 0x20 && out[i] < 0x7f);
		if (out[i] != '\\') {
			back[n++] = (uint8_t)out[i];
			continue;
		}
		/* A backslash only ever starts a whole \xNN. */
		fuzz_assert(olen - i >= 4 && out[i + 1] == 'x');
		int hi = hex_value(out[i + 2]), lo = hex_value(out[i + 3]);
		fuzz_assert(hi >= 0 && lo >= 0);
		back[n++] = (uint8_t)(hi << 4 | lo);
		i += 3;
	}
	return n;
}

/* How many output bytes in[i] takes. */
static size_t
escaped_len(uint8_t c)
{
	return c < 0x20 || c >= 0x7f || c == '\\' ? 4 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t small = data[0] % 40;
	const char *in = (const char *)data + 1;
	size_t len = size - 1, fullsz = 4 * len + 1;
	char *full = malloc(fullsz), *part = malloc(small + 1);
	uint8_t *back = malloc(len + 1);

	fuzz_assert(full && part && back);

	/* Room enough: everything, and it reads back. */
	size_t flen = escape_bytes(full, fullsz, in, len);
	fuzz_assert(flen < fullsz && full[flen] == '\0' && strlen(full) == flen);
	fuzz_assert(unescape(full, flen, back) == len);
	fuzz_assert(memcmp(back, in, len) == 0);

	/* A small buffer: the longest prefix of whole escapes that fits. */
	memset(part, 0x5a, small + 1);
	size_t plen = escape_bytes(part, small, in, len);
	fuzz_assert(part[small] == 0x5a); /* the byte after the buffer */
	if (small == 0) {
		fuzz_assert(plen == 0 && part[0] == 0x5a);
	} else {
		size_t want = 0, i = 0;

		while (i < len && want + escaped_len(data[1 + i]) <= small - 1)
			want += escaped_len(data[1 + i++]);
		fuzz_assert(plen == want && part[plen] == '\0');
		fuzz_assert(memcmp(part, full, plen) == 0);
	}
	free(full);
	free(part);
	free(back);
	return 0;
}
