/*
 * test_utf8.c - text_check() against Markus Kuhn style stress vectors, every
 * code point, the invisible characters refused (bidi marks, separators,
 * zero-width and tag characters) and the joiners allowed, and bad bytes at
 * every offset of the ASCII fast path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

struct vector {
	const char *s;
	size_t len;
	enum text_check want;
};

/* clang-format off */
#define V(str, result) { str, sizeof(str) - 1, result }
/* clang-format on */

static void
check_vectors(const struct vector *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum text_check got = text_check(v[i].s, v[i].len);

		if (got != v[i].want)
			fail_msg("vector %zu (%zu bytes): got %s, want %s", i, v[i].len,
				 text_check_str(got), text_check_str(v[i].want));
	}
}

static void
test_valid_multilingual(void **state)
{
	/* clang-format off */
	static const struct vector v[] = {
		V("", TEXT_OK),
		V("hello, world", TEXT_OK),
		V("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80", TEXT_OK),
		V("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88", TEXT_OK),
		V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", TEXT_OK),	/* Kuhn 1: Greek */
		V("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", TEXT_OK),			/* Hebrew, RTL by itself */
		V("\xf0\x9f\x98\x80\xf0\x9f\x8e\x89 party", TEXT_OK),		/* 4-byte emoji */
		V("ab\xf0\x9f\x98\x80" "cdefghij", TEXT_OK),			/* straddles 8 bytes */
	};
	/* clang-format on */

	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

static void
test_boundaries(void **state)
{
	static const struct vector v[] = {
		V(" ", TEXT_OK),                       /* U+0020 */
		V("~", TEXT_OK),                       /* U+007E */
		V("\x7f", TEXT_CONTROL),               /* U+007F */
		V("\xc2\x80", TEXT_CONTROL),           /* U+0080 */
		V("\xc2\x9f", TEXT_CONTROL),           /* U+009F */
		V("\xc2\xa0", TEXT_OK),                /* U+00A0 */
		V("\xdf\xbf", TEXT_OK),                /* U+07FF */
		V("\xe0\xa0\x80", TEXT_OK),            /* U+0800 */
		V("\xed\x9f\xbf", TEXT_OK),            /* U+D7FF */
		V("\xee\x80\x80", TEXT_OK),            /* U+E000 */
		V("\xef\xbf\xbd", TEXT_OK),            /* U+FFFD */
		V("\xef\xbf\xbf", TEXT_OK),            /* U+FFFF */
		V("\xf0\x90\x80\x80", TEXT_OK),        /* U+10000 */
		V("\xf4\x8f\xbf\xbf", TEXT_OK),        /* U+10FFFF */
		V("\xf4\x90\x80\x80", TEXT_BAD_UTF8),  /* U+110000 */
		V("\xe2\x80\xa7", TEXT_OK),            /* U+2027 */
		V("\xe2\x80\xa8", TEXT_SEPARATOR),     /* U+2028 */
		V("\xe2\x80\xa9", TEXT_SEPARATOR),     /* U+2029 */
		V("\xe2\x80\xaa", TEXT_BIDI),          /* U+202A */
		V("\xe2\x80\xae", TEXT_BIDI),          /* U+202E */
		V("\xe2\x80\xaf", TEXT_OK),            /* U+202F */
		V("\xe2\x81\xa5", TEXT_INVISIBLE),     /* U+2065 */
		V("\xe2\x81\xa6", TEXT_BIDI),          /* U+2066 */
		V("\xe2\x81\xa9", TEXT_BIDI),          /* U+2069 */
		V("\xe2\x81\xaa", TEXT_INVISIBLE),     /* U+206A */
		V("\xe2\x81\xaf", TEXT_INVISIBLE),     /* U+206F */
		V("\xe2\x81\xb0", TEXT_OK),            /* U+2070 */
		V("\xe2\x80\x8a", TEXT_OK),            /* U+200A */
		V("\xe2\x80\x8b", TEXT_INVISIBLE),     /* U+200B */
		V("\xe2\x80\x8c", TEXT_OK),            /* U+200C */
		V("\xe2\x80\x8d", TEXT_OK),            /* U+200D */
		V("\xe2\x80\x8e", TEXT_BIDI),          /* U+200E */
		V("\xe2\x80\x8f", TEXT_BIDI),          /* U+200F */
		V("\xe2\x80\x90", TEXT_OK),            /* U+2010 */
		V("\xf3\xa0\x80\x80", TEXT_INVISIBLE), /* U+E0000 */
		V("\xf3\xa0\x81\xbf", TEXT_INVISIBLE), /* U+E007F */
		V("\xf3\xa0\x82\x80", TEXT_OK),        /* U+E0080 */
		V("\xf3\xa0\x84\x80", TEXT_OK),        /* U+E0100, a variation selector */
	};

	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

static void
test_controls(void **state)
{
	/* clang-format off */
	static const struct vector v[] = {
		V("\0", TEXT_CONTROL),
		V("abc\0def", TEXT_CONTROL),
		V("a\tb", TEXT_CONTROL),
		V("line\n", TEXT_CONTROL),
		V("\r", TEXT_CONTROL),
		V("\x1b[31mred", TEXT_CONTROL),
		V("\x1f", TEXT_CONTROL),
		V("\x01", TEXT_CONTROL),
		V("del\x7f", TEXT_CONTROL),
		V("\xc2\x85", TEXT_CONTROL),			/* NEL */
		V("\xc2\x9b" "31m", TEXT_CONTROL),		/* CSI */
		V("caf\xc3\xa9\x07", TEXT_CONTROL),
	};
	/* clang-format on */

	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

static void
test_bidi(void **state)
{
	/* clang-format off */
	static const struct vector v[] = {
		V("\xe2\x80\xaa", TEXT_BIDI),	/* LRE */
		V("\xe2\x80\xab", TEXT_BIDI),	/* RLE */
		V("\xe2\x80\xac", TEXT_BIDI),	/* PDF */
		V("\xe2\x80\xad", TEXT_BIDI),	/* LRO */
		V("invoice_\xe2\x80\xae" "fdp.exe", TEXT_BIDI),	/* RLO */
		V("\xe2\x81\xa6", TEXT_BIDI),	/* LRI */
		V("\xe2\x81\xa7", TEXT_BIDI),	/* RLI */
		V("\xe2\x81\xa8", TEXT_BIDI),	/* FSI */
		V("\xe2\x81\xa9", TEXT_BIDI),	/* PDI */
		V("\xe2\x80\x8e", TEXT_BIDI),	/* LRM */
		V("\xe2\x80\x8f", TEXT_BIDI),	/* RLM */
		V("\xd8\x9c", TEXT_BIDI),		/* ALM */
		V("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d\xe2\x80\x8f", TEXT_BIDI),	/* even after RTL text */
	};
	/* clang-format on */

	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

/* U+2028, U+2029: a new line on screens and in loggers that honour them. */
static void
test_separators(void **state)
{
	/* clang-format off */
	static const struct vector v[] = {
		V("\xe2\x80\xa8", TEXT_SEPARATOR),
		V("\xe2\x80\xa9", TEXT_SEPARATOR),
		V("hi\xe2\x80\xa8" "12:00 <admin> reset your password", TEXT_SEPARATOR),
	};
	/* clang-format on */

	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

/* Zero-width and other invisible format characters, and the tag characters. */
static void
test_invisible(void **state)
{
	/* clang-format off */
	static const struct vector v[] = {
		V("\xc2\xad", TEXT_INVISIBLE),			/* soft hyphen */
		V("\xe1\xa0\x8e", TEXT_INVISIBLE),		/* Mongolian vowel separator */
		V("pay\xe2\x80\x8bpal", TEXT_INVISIBLE),	/* zero width space */
		V("\xe2\x81\xa0", TEXT_INVISIBLE),		/* word joiner */
		V("\xe2\x81\xa4", TEXT_INVISIBLE),		/* invisible plus */
		V("\xe2\x81\xab", TEXT_INVISIBLE),		/* deprecated: activate symmetric swapping */
		V("\xef\xbb\xbf" "BOM first", TEXT_INVISIBLE),	/* U+FEFF */
		V("\xef\xbf\xb9", TEXT_INVISIBLE),		/* interlinear annotation anchor */
		V("\xef\xbf\xbb", TEXT_INVISIBLE),		/* interlinear annotation terminator */
		V("\xf0\x9b\xb2\xa0", TEXT_INVISIBLE),	/* U+1BCA0 shorthand format letter overlap */
		V("\xf0\x9d\x85\xb3", TEXT_INVISIBLE),	/* U+1D173 musical symbol begin beam */
		V("\xf3\xa0\x80\x81", TEXT_INVISIBLE),	/* U+E0001 language tag */
		/* "hi" followed by the tags of "ignore all that" (hidden text) */
		V("hi\xf3\xa0\x81\xa9\xf3\xa0\x81\xa7", TEXT_INVISIBLE),
		/* England's flag: black flag, tags g b e n g, cancel tag (refused too) */
		V("\xf0\x9f\x8f\xb4\xf3\xa0\x81\xa7\xf3\xa0\x81\xa2\xf3\xa0\x81\xa5"
		  "\xf3\xa0\x81\xae\xf3\xa0\x81\xa7\xf3\xa0\x81\xbf", TEXT_INVISIBLE),
	};
	/* clang-format on */

	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

/* What stays allowed: the joiners scripts and emoji need, visible format marks. */
static void
test_joiners_and_visible_format_marks_allowed(void **state)
{
	static const struct vector v[] = {
		/* family: man ZWJ woman ZWJ girl */
		V("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
		  TEXT_OK),
		/* Persian "mi-khaham" with ZWNJ */
		V("\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae\xd9\x88\xd8\xa7\xd9\x87\xd9\x85", TEXT_OK),
		V("\xe2\x9d\xa4\xef\xb8\x8f", TEXT_OK), /* heart, variation selector 16 */
		V("\xd8\x80\xd9\xa1\xd9\xa2", TEXT_OK), /* Arabic number sign, visible */
		V("\xe1\x85\x9f", TEXT_OK),             /* Hangul filler: a blank, not Cf */
		V("\xf0\x93\x90\xb0", TEXT_OK), /* U+13430 Egyptian hieroglyph vertical joiner */
	};

	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

static void
test_bad_sequences(void **state)
{
	/* clang-format off */
	static const struct vector v[] = {
		/* Kuhn 3.1: unexpected continuation bytes */
		V("\x80", TEXT_BAD_UTF8),
		V("\xbf", TEXT_BAD_UTF8),
		V("\x80\xbf\x80\xbf", TEXT_BAD_UTF8),
		V("ok\xa9", TEXT_BAD_UTF8),
		/* Kuhn 3.2: lead bytes followed by a space */
		V("\xc3 ", TEXT_BAD_UTF8),
		V("\xe2 ", TEXT_BAD_UTF8),
		V("\xf0 ", TEXT_BAD_UTF8),
		/* Kuhn 3.3/3.4: sequences with the last byte missing, alone and in a row */
		V("\xc3", TEXT_BAD_UTF8),
		V("\xe2\x82", TEXT_BAD_UTF8),
		V("\xf0\x9f\x98", TEXT_BAD_UTF8),
		V("\xe2\x82" "A", TEXT_BAD_UTF8),
		V("\xf0\x9f\x98" "A", TEXT_BAD_UTF8),
		V("\xc3\xc3\xa9", TEXT_BAD_UTF8),
		V("\xe2\x28\xa1", TEXT_BAD_UTF8),
		V("\xe2\x82\xe2\x82\xac", TEXT_BAD_UTF8),
		V("text at the end \xf0\x9f", TEXT_BAD_UTF8),
		/* Kuhn 3.5: impossible bytes, and the old 5- and 6-byte forms */
		V("\xc0\x80", TEXT_BAD_UTF8),
		V("\xc1\xbf", TEXT_BAD_UTF8),
		V("\xf5\x80\x80\x80", TEXT_BAD_UTF8),
		V("\xf7\xbf\xbf\xbf", TEXT_BAD_UTF8),
		V("\xf8\x88\x80\x80\x80", TEXT_BAD_UTF8),
		V("\xfc\x84\x80\x80\x80\x80", TEXT_BAD_UTF8),
		V("\xfe", TEXT_BAD_UTF8),
		V("\xff", TEXT_BAD_UTF8),
		V("\xfe\xfe\xff\xff", TEXT_BAD_UTF8),
		/* Kuhn 4.1/4.2: overlong '/' and the largest overlong forms */
		V("\xc0\xaf", TEXT_BAD_UTF8),
		V("\xe0\x80\xaf", TEXT_BAD_UTF8),
		V("\xf0\x80\x80\xaf", TEXT_BAD_UTF8),
		V("\xc1\xbf", TEXT_BAD_UTF8),
		V("\xe0\x9f\xbf", TEXT_BAD_UTF8),
		V("\xf0\x8f\xbf\xbf", TEXT_BAD_UTF8),
		/* Kuhn 4.3: overlong NUL */
		V("\xc0\x80", TEXT_BAD_UTF8),
		V("\xe0\x80\x80", TEXT_BAD_UTF8),
		V("\xf0\x80\x80\x80", TEXT_BAD_UTF8),
		/* Kuhn 5.1/5.2: single and paired UTF-16 surrogates */
		V("\xed\xa0\x80", TEXT_BAD_UTF8),
		V("\xed\xad\xbf", TEXT_BAD_UTF8),
		V("\xed\xae\x80", TEXT_BAD_UTF8),
		V("\xed\xb0\x80", TEXT_BAD_UTF8),
		V("\xed\xbf\xbf", TEXT_BAD_UTF8),
		V("\xed\xa0\x80\xed\xb0\x80", TEXT_BAD_UTF8),
		V("\xed\xaf\xbf\xed\xbf\xbf", TEXT_BAD_UTF8),
		/* above U+10FFFF */
		V("\xf4\x90\x80\x80", TEXT_BAD_UTF8),
		V("\xf4\xbf\xbf\xbf", TEXT_BAD_UTF8),
		/* continuation byte missing in the middle of a 4-byte form */
		V("\xf0\x9f\x41\x80", TEXT_BAD_UTF8),
		V("\xf0\x9f\x98\x41", TEXT_BAD_UTF8),
	};
	/* clang-format on */

	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

static void
test_every_impossible_byte(void **state)
{
	for (int c = 0x80; c <= 0xff; c++) {
		char s[1] = { (char)c };
		int lead = c >= 0xc2 && c <= 0xf4;

		/* Alone, every byte >= 0x80 is a stray or a truncated sequence. */
		assert_int_equal(text_check(s, 1), TEXT_BAD_UTF8);
		if (!lead) {
			char t[4] = { (char)c, (char)0x80, (char)0x80, (char)0x80 };

			assert_int_equal(text_check(t, sizeof(t)), TEXT_BAD_UTF8);
		}
	}
}

/* The rules of PROTOCOL.md "Framing", written independently of the code. */
static enum text_check
expected_for(uint32_t cp)
{
	if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
		return TEXT_CONTROL;
	if (cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069))
		return TEXT_BIDI;
	if (cp == 0x2028 || cp == 0x2029)
		return TEXT_SEPARATOR;
	if (cp == 0x00ad || cp == 0x180e || cp == 0x200b || (cp >= 0x2060 && cp <= 0x206f) ||
	    cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) || (cp >= 0x1bca0 && cp <= 0x1bca3) ||
	    (cp >= 0x1d173 && cp <= 0x1d17a) || (cp >= 0xe0000 && cp <= 0xe007f))
		return TEXT_INVISIBLE;
	if (cp >= 0xd800 && cp <= 0xdfff)
		return TEXT_BAD_UTF8;
	return TEXT_OK;
}

static size_t
encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static void
test_every_code_point(void **state)
{
	char buf[4];

	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		size_t n = encode(cp, buf);
		enum text_check got = text_check(buf, n);

		if (got != expected_for(cp))
			fail_msg("U+%04X: got %s, want %s", (unsigned)cp, text_check_str(got),
				 text_check_str(expected_for(cp)));
		/* Every proper prefix of a multi-byte form is a truncated sequence. */
		for (size_t cut = 1; cut < n; cut++)
			assert_int_equal(text_check(buf, cut), TEXT_BAD_UTF8);
	}
}

/* Overlong encodings of every code point that has a shorter form. */
static void
test_every_overlong_form(void **state)
{
	for (uint32_t cp = 0; cp < 0x10000; cp++) {
		char two[2] = { (char)(0xc0 | cp >> 6), (char)(0x80 | (cp & 0x3f)) };
		char three[3] = { (char)(0xe0 | cp >> 12), (char)(0x80 | ((cp >> 6) & 0x3f)),
				  (char)(0x80 | (cp & 0x3f)) };
		char four[4] = { (char)0xf0, (char)(0x80 | cp >> 12),
				 (char)(0x80 | ((cp >> 6) & 0x3f)), (char)(0x80 | (cp & 0x3f)) };

		if (cp < 0x80)
			assert_int_equal(text_check(two, 2), TEXT_BAD_UTF8);
		if (cp < 0x800)
			assert_int_equal(text_check(three, 3), TEXT_BAD_UTF8);
		assert_int_equal(text_check(four, 4), TEXT_BAD_UTF8);
	}
}

/* A bad byte anywhere in a long ASCII run, around the 8-byte fast path. */
static void
test_bad_byte_at_every_offset(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
		enum text_check want;
	} bad[] = {
		{ "\0", 1, TEXT_CONTROL },
		{ "\x1f", 1, TEXT_CONTROL },
		{ "\t", 1, TEXT_CONTROL },
		{ "\x7f", 1, TEXT_CONTROL },
		{ "\x80", 1, TEXT_BAD_UTF8 },
		{ "\xff", 1, TEXT_BAD_UTF8 },
		{ "\xc2\x9b", 2, TEXT_CONTROL },
		{ "\xe2\x80\xae", 3, TEXT_BIDI },
		{ "\xe2\x80\x8f", 3, TEXT_BIDI },
		{ "\xe2\x80\xa8", 3, TEXT_SEPARATOR },
		{ "\xe2\x80\x8b", 3, TEXT_INVISIBLE },
		{ "\xf3\xa0\x80\x81", 4, TEXT_INVISIBLE },
	};
	char buf[48];

	for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
		for (size_t off = 0; off + bad[b].len <= 40; off++) {
			memset(buf, 'x', sizeof(buf));
			memcpy(buf + off, bad[b].bytes, bad[b].len);
			assert_int_equal(text_check(buf, 40), bad[b].want);
			/* Past len the byte must not be looked at. */
			assert_int_equal(text_check(buf, off), TEXT_OK);
		}
	}
}

static void
test_result_strings(void **state)
{
	const char *ok = text_check_str(TEXT_OK);
	const char *utf8 = text_check_str(TEXT_BAD_UTF8);
	const char *control = text_check_str(TEXT_CONTROL);
	const char *bidi = text_check_str(TEXT_BIDI);
	const char *separator = text_check_str(TEXT_SEPARATOR);
	const char *invisible = text_check_str(TEXT_INVISIBLE);

	assert_string_equal(utf8, "invalid UTF-8");
	assert_string_not_equal(ok, utf8);
	assert_string_not_equal(utf8, control);
	assert_string_not_equal(control, bidi);
	assert_string_not_equal(bidi, separator);
	assert_string_not_equal(separator, invisible);
	assert_string_not_equal(invisible, control);
	assert_non_null(text_check_str((enum text_check)99));
}

/* "aé€😀": characters of 1, 2, 3 and 4 bytes, ending at 1, 3, 6 and 10. */
static void
test_fit_cuts_between_characters(void **state)
{
	static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	static const size_t fit[] = { 0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10 };

	for (size_t max = 0; max < sizeof(fit) / sizeof(fit[0]); max++) {
		size_t n = text_fit(s, strlen(s), max);

		assert_int_equal(n, fit[max]);
		assert_int_equal(text_check(s, n), TEXT_OK);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_multilingual),
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_controls),
		cmocka_unit_test(test_bidi),
		cmocka_unit_test(test_separators),
		cmocka_unit_test(test_invisible),
		cmocka_unit_test(test_joiners_and_visible_format_marks_allowed),
		cmocka_unit_test(test_bad_sequences),
		cmocka_unit_test(test_every_impossible_byte),
		cmocka_unit_test(test_every_code_point),
		cmocka_unit_test(test_every_overlong_form),
		cmocka_unit_test(test_bad_byte_at_every_offset),
		cmocka_unit_test(test_result_strings),
		cmocka_unit_test(test_fit_cuts_between_characters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
