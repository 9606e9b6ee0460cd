/*
 * test_names.c - name_valid(), room_name_valid() and name_cmp(), and that the name rules are at
 * least as strict as the text rules (common/utf8.c) for every character.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "names.h"
#include "utf8.h"

static bool
valid(const char *s)
{
	return name_valid(s, strlen(s));
}

static void
test_lengths(void **state)
{
	char name[NAME_MAX_LEN + 2];

	memset(name, 'a', sizeof(name));
	assert_false(name_valid(name, 0));
	assert_true(name_valid(name, 1));
	assert_true(name_valid(name, NAME_MAX_LEN));
	assert_false(name_valid(name, NAME_MAX_LEN + 1));
	assert_int_equal(NAME_MAX_LEN, 32);
	assert_true(valid("x"));
	assert_true(valid("7"));
}

static void
test_first_character(void **state)
{
	assert_true(valid("alice"));
	assert_true(valid("Alice"));
	assert_true(valid("0day"));
	assert_false(valid("_alice"));
	assert_false(valid(".alice"));
	assert_false(valid("-alice"));
	assert_false(valid(" alice"));
	assert_false(valid("_"));
}

static void
test_every_allowed_mark(void **state)
{
	assert_true(valid("a_b"));
	assert_true(valid("a.b"));
	assert_true(valid("a-b"));
	assert_true(valid("a_"));
	assert_true(valid("a."));
	assert_true(valid("a-"));
	assert_true(valid("Z9_.-z"));
	assert_true(valid("abcdefghijklmnopqrstuvwxyzABCDEF"));
	assert_true(valid("GHIJKLMNOPQRSTUVWXYZ0123456789"));
}

static void
test_every_other_byte_refused(void **state)
{
	for (int c = 1; c < 256; c++) {
		char s[3] = { 'a', (char)c, '\0' };
		bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';

		assert_int_equal(name_valid(s, 2), allowed);
		s[0] = (char)c;
		s[1] = 'a';
		assert_int_equal(name_valid(s, 2), allowed && c != '_' && c != '.' && c != '-');
	}
}

static void
test_non_ascii_and_embedded(void **state)
{
	assert_false(valid("caf\xc3\xa9"));
	assert_false(valid("\xd0\xb0\xd0\xbb\xd0\xb8"));
	assert_false(valid("al ice"));
	assert_false(valid("alice\n"));
	assert_false(valid("bob/../x"));
	assert_false(name_valid("ali\0ce", 6));
}

/* Each invisible class text_check() refuses, inside a name that is otherwise fine. */
static void
test_invisible_characters_refused(void **state)
{
	static const char *const inside[] = {
		"\xe2\x80\xa8",     /* line separator */
		"\xe2\x80\xa9",     /* paragraph separator */
		"\xe2\x80\x8e",     /* LRM */
		"\xe2\x80\x8f",     /* RLM */
		"\xd8\x9c",         /* ALM */
		"\xe2\x80\xae",     /* RLO */
		"\xe2\x80\x8b",     /* zero width space */
		"\xe2\x80\x8c",     /* ZWNJ: allowed in text, not in names */
		"\xe2\x80\x8d",     /* ZWJ: likewise */
		"\xe2\x81\xa0",     /* word joiner */
		"\xef\xbb\xbf",     /* zero width no-break space */
		"\xc2\xad",         /* soft hyphen */
		"\xf3\xa0\x81\xa1", /* tag latin small letter a */
	};
	char name[32];

	for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
		snprintf(name, sizeof(name), "al%sice", inside[i]);
		assert_false(valid(name));
		snprintf(name, sizeof(name), "alice%s", inside[i]);
		assert_false(valid(name));
	}
}

/*
 * A character a name may hold is one text_check() lets through: every byte
 * allowed passes it, and no byte from 0x80 up is allowed, so no multi-byte
 * character (none of the invisible ones above) can be in a name at all.
 */
static void
test_at_least_as_strict_as_text(void **state)
{
	char name[3] = "a";

	for (unsigned b = 0; b < 256; b++) {
		name[1] = (char)b;
		if (name_valid(name, 2))
			assert_int_equal(text_check(name, 2), TEXT_OK);
		if (b >= 0x80)
			assert_false(name_valid(name, 2));
	}
}

static void
test_compare_ignores_case(void **state)
{
	assert_int_equal(name_cmp("Alice", "alice"), 0);
	assert_int_equal(name_cmp("BOB-1", "bob-1"), 0);
	assert_true(name_cmp("alice", "Bob") < 0);
	assert_true(name_cmp("Bob", "alice") > 0);
	assert_true(name_cmp("a", "ab") < 0);
	assert_true(name_cmp("AB", "a") > 0);
	assert_true(name_cmp("", "a") < 0);
	assert_int_equal(name_cmp("", ""), 0);
	/* Lowered, '_' (0x5f) sorts before letters and after digits. */
	assert_true(name_cmp("a_", "aB") < 0);
	assert_true(name_cmp("a_", "a9") > 0);
}

static bool
room_valid(const char *s)
{
	return room_name_valid(s, strlen(s));
}

static void
test_room_names(void **state)
{
	char name[ROOM_NAME_MAX + 2];

	memset(name, 'r', sizeof(name));
	assert_int_equal(ROOM_NAME_MAX, 32);
	assert_false(room_name_valid(name, 0));
	assert_true(room_name_valid(name, 1));
	assert_true(room_name_valid(name, ROOM_NAME_MAX));
	assert_false(room_name_valid(name, ROOM_NAME_MAX + 1));
	assert_true(room_valid("lobby"));
	assert_true(room_valid("Dev-ops_2.0"));
	/* The first a letter: never a number (/who ROOM PAGE), never a '#' or a mark. */
	assert_false(room_valid("7up"));
	assert_false(room_valid("#lobby"));
	assert_false(room_valid("_x"));
	assert_false(room_valid(".x"));
	assert_false(room_valid("-x"));
	assert_false(room_valid("a b"));
	assert_false(room_valid("a#b"));
	assert_false(room_valid("caf\xc3\xa9"));
	/* The length given counts, not the NUL. */
	assert_true(room_name_valid("ab cd", 2));
	for (int ch = 1; ch < 256; ch++) {
		char s[3] = { 'a', (char)ch, '\0' };
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';

		assert_int_equal(room_valid(s), ok);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_first_character),
		cmocka_unit_test(test_every_allowed_mark),
		cmocka_unit_test(test_every_other_byte_refused),
		cmocka_unit_test(test_non_ascii_and_embedded),
		cmocka_unit_test(test_invisible_characters_refused),
		cmocka_unit_test(test_at_least_as_strict_as_text),
		cmocka_unit_test(test_compare_ignores_case),
		cmocka_unit_test(test_room_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
