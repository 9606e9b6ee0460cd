/*
 * test_names.c - name_valid() and name_cmp().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "names.h"

static bool valid(const char *s)
{
	return name_valid(s, strlen(s));
}

static void test_lengths(void **state)
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

static void test_first_character(void **state)
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

static void test_every_allowed_mark(void **state)
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

static void test_every_other_byte_refused(void **state)
{
	for (int c = 1; c < 256; c++) {
		char s[3] = { 'a', (char)c, '\0' };
		bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';

		assert_int_equal(name_valid(s, 2), allowed);
		s[0] = (char)c;
		s[1] = 'a';
		assert_int_equal(name_valid(s, 2),
		    allowed && c != '_' && c != '.' && c != '-');
	}
}

static void test_non_ascii_and_embedded(void **state)
{
	assert_false(valid("caf\xc3\xa9"));
	assert_false(valid("\xd0\xb0\xd0\xbb\xd0\xb8"));
	assert_false(valid("al ice"));
	assert_false(valid("alice\n"));
	assert_false(valid("bob/../x"));
	assert_false(name_valid("ali\0ce", 6));
}

static void test_compare_ignores_case(void **state)
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_first_character),
		cmocka_unit_test(test_every_allowed_mark),
		cmocka_unit_test(test_every_other_byte_refused),
		cmocka_unit_test(test_non_ascii_and_embedded),
		cmocka_unit_test(test_compare_ignores_case),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
