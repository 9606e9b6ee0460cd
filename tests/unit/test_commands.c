/*
 * test_commands.c - the slash command table and its parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "utf8.h"

static const struct command *
parse(const char *text, char *buf, size_t len, char **args)
{
	snprintf(buf, len, "%s", text);
	return command_parse(buf, args);
}

static void
test_every_command_parses_to_itself(void **state)
{
	char buf[64], *args;

	for (size_t i = 0; i < command_count; i++) {
		char line[64];

		snprintf(line, sizeof(line), "/%s", command_table[i].name);
		assert_ptr_equal(parse(line, buf, sizeof(buf), &args), &command_table[i]);
		assert_string_equal(args, "");
	}
}

static void
test_arguments_follow_one_space(void **state)
{
	char buf[64], *args;
	const struct command *c = parse("/msg bob  hello there", buf, sizeof(buf), &args);

	assert_non_null(c);
	assert_string_equal(c->name, "msg");
	assert_string_equal(args, "bob  hello there");
}

static void
test_unknown_and_prefixes_are_refused(void **state)
{
	char buf[64], *args;

	assert_null(parse("/nosuch", buf, sizeof(buf), &args));
	assert_null(parse("/wh", buf, sizeof(buf), &args));
	assert_null(parse("/whom", buf, sizeof(buf), &args));
	assert_null(parse("/WHO", buf, sizeof(buf), &args));
	assert_null(parse("/", buf, sizeof(buf), &args));
	assert_null(parse("/ who", buf, sizeof(buf), &args));
}

/* Others see the /quit reason in PART: cut short, it must still be valid text. */
static void
test_long_quit_reason_is_cut_between_characters(void **state)
{
	char line[1024] = "/quit ", text[256];

	for (int i = 0; i < 200; i++)
		strcat(line, "\xc3\xa9"); /* 400 bytes of U+00E9 */
	/* /quit touches no client: it only fills in the departure text. */
	assert_int_equal(command_run(NULL, line, text, sizeof(text)), COMMAND_QUIT);
	assert_int_equal(strlen(text), 254);
	assert_int_equal(text_check(text, strlen(text)), TEXT_OK);
}

static void
test_table_is_documented(void **state)
{
	for (size_t i = 0; i < command_count; i++) {
		assert_non_null(command_table[i].run);
		assert_true(strncmp(command_table[i].usage, "/", 1) == 0);
		assert_non_null(strstr(command_table[i].usage, command_table[i].name));
		assert_true(strlen(command_table[i].help) > 0);
	}
}

/*
 * docs/PROTOCOL.md's command table (the rows after its "<!-- commands:"
 * marker) lists exactly the commands of command_table, in the same order.
 */
static void
test_table_matches_protocol_md(void **state)
{
	FILE *f = fopen(CHATD_SOURCE_DIR "/docs/PROTOCOL.md", "r");
	char line[4096];
	bool in_table = false;
	size_t next = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "<!-- commands:", 14) == 0) {
			in_table = true;
			continue;
		}
		if (!in_table || strncmp(line, "| `/", 4) != 0) {
			if (in_table && next > 0 && line[0] != '|')
				break;
			continue;
		}
		char *word = line + 4;
		size_t len = strcspn(word, " `");

		if (next < command_count && strlen(command_table[next].name) == len &&
		    strncmp(command_table[next].name, word, len) == 0) {
			next++;
			continue;
		}
		/* The same command on a second row (another form of it) is fine. */
		assert_true(next > 0);
		assert_int_equal(strlen(command_table[next - 1].name), len);
		assert_memory_equal(command_table[next - 1].name, word, len);
	}
	fclose(f);
	assert_int_equal(next, command_count);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_command_parses_to_itself),
		cmocka_unit_test(test_arguments_follow_one_space),
		cmocka_unit_test(test_unknown_and_prefixes_are_refused),
		cmocka_unit_test(test_long_quit_reason_is_cut_between_characters),
		cmocka_unit_test(test_table_is_documented),
		cmocka_unit_test(test_table_matches_protocol_md),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
