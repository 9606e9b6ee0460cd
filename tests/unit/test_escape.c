/*
 * test_escape.c - escape_bytes(): what is escaped, and how it stops when
 * the output is full.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "escape.h"

static void
test_printable_ascii_unchanged(void **state)
{
	char in[0x7f - 0x20];
	char out[256];
	size_t o = 0;

	for (int c = 0x20; c < 0x7f; c++)
		if (c != '\\')
			in[o++] = (char)c;
	assert_int_equal(escape_bytes(out, sizeof(out), in, o), o);
	assert_memory_equal(out, in, o);
	assert_int_equal(out[o], '\0');
}

static void
test_escaped_bytes(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} v[] = {
		{ "a\nb", 3, "a\\x0ab" },
		{ "\x1b[2J", 4, "\\x1b[2J" },
		{ "\\", 1, "\\x5c" },
		{ "\x7f", 1, "\\x7f" },
		{ "\x80\xff", 2, "\\x80\\xff" },
		{ "caf\xc3\xa9", 5, "caf\\xc3\\xa9" },
		{ "a\0b", 3, "a\\x00b" },
		{ "\r\n\t", 3, "\\x0d\\x0a\\x09" },
		{ "", 0, "" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n = escape_bytes(out, sizeof(out), v[i].in, v[i].len);

		assert_string_equal(out, v[i].want);
		assert_int_equal(n, strlen(v[i].want));
	}
}

static void
test_every_byte(void **state)
{
	for (int c = 0; c < 256; c++) {
		char in = (char)c;
		char out[8];
		size_t n = escape_bytes(out, sizeof(out), &in, 1);
		int plain = c >= 0x20 && c < 0x7f && c != '\\';

		assert_int_equal(n, plain ? 1 : 4);
		if (!plain) {
			char want[5];

			snprintf(want, sizeof(want), "\\x%02x", c);
			assert_string_equal(out, want);
		}
	}
}

static void
test_full_output_never_splits_an_escape(void **state)
{
	char out[16];

	memset(out, '#', sizeof(out));
	/* "ab\x0a" needs 6 bytes and its NUL 7: with 6 only "ab" fits. */
	assert_int_equal(escape_bytes(out, 6, "ab\n", 3), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(out[6], '#');
	assert_int_equal(escape_bytes(out, 7, "ab\n", 3), 6);
	assert_string_equal(out, "ab\\x0a");
	assert_int_equal(escape_bytes(out, 3, "abcd", 4), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(escape_bytes(out, 4, "\n\n", 2), 0);
	assert_string_equal(out, "");
}

static void
test_tiny_outputs(void **state)
{
	char out[2] = { '#', '#' };

	assert_int_equal(escape_bytes(out, 0, "abc", 3), 0);
	assert_int_equal(out[0], '#');
	assert_int_equal(escape_bytes(out, 1, "abc", 3), 0);
	assert_int_equal(out[0], '\0');
	assert_int_equal(escape_bytes(out, 2, "abc", 3), 1);
	assert_string_equal(out, "a");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_printable_ascii_unchanged),
		cmocka_unit_test(test_escaped_bytes),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_full_output_never_splits_an_escape),
		cmocka_unit_test(test_tiny_outputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
