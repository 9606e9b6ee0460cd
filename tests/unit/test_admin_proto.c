/*
 * test_admin_proto.c - the admin command table and request parser shared by
 * chatd and chatctl.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "admin_proto.h"

static char err[256];

/* Parses a copy of text; returns the code, *req filled. */
static int
parse(const char *text, unsigned flags, struct admin_request *req)
{
	static char line[ADMIN_MAX_LINE + 1];

	snprintf(line, sizeof(line), "%s", text);
	return admin_parse(line, flags, req, err, sizeof(err));
}

static void
test_table_is_consistent(void **state)
{
	for (size_t i = 0; i < ADMIN_CMD_COUNT; i++) {
		const struct admin_cmd *a = &admin_commands[i];

		assert_int_equal(a->id, i);
		assert_non_null(a->words);
		assert_non_null(a->help);
		for (size_t j = i + 1; j < ADMIN_CMD_COUNT; j++) {
			const struct admin_cmd *b = &admin_commands[j];

			assert_string_not_equal(a->words, b->words);
			if (a->alias && b->alias)
				assert_string_not_equal(a->alias, b->alias);
		}
	}
}

static void
test_every_command_parses_by_its_words(void **state)
{
	struct admin_request req;

	for (size_t i = 0; i < ADMIN_CMD_COUNT; i++) {
		const struct admin_cmd *cmd = &admin_commands[i];
		char line[128];
		const char *args = "";

		switch (cmd->args) {
		case ARGS_NAME:
		case ARGS_NAME_TEXT_OPT:
			args = " bob";
			break;
		case ARGS_NAME_SECRET:
			args = " bob pw";
			break;
		case ARGS_TEXT:
			args = " hi";
			break;
		case ARGS_ROOM:
		case ARGS_ROOM_TOPIC_OPT:
			args = " games";
			break;
		case ARGS_ROOM_TOPIC:
		case ARGS_ROOM_TEXT:
			args = " games hi";
			break;
		case ARGS_ROOM_USER_REASON_OPT:
			args = " games bob";
			break;
		default:
			break;
		}
		snprintf(line, sizeof(line), "%s%s", cmd->words, args);
		assert_int_equal(parse(line, 0, &req), 0);
		assert_ptr_equal(req.cmd, cmd);
	}
}

static void
test_words_ignore_case_and_spacing(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("  LOG \t Show   5  ", 0, &req), 0);
	assert_int_equal(req.cmd->id, ADMIN_LOG_SHOW);
	assert_int_equal(req.count, 5);
	assert_int_equal(parse("Status", 0, &req), 0);
	assert_int_equal(req.cmd->id, ADMIN_STATUS);
}

static void
test_aliases_only_for_chatctl(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("show-log", 0, &req), ADMIN_ERR_NOT_FOUND);
	assert_string_equal(err, "unknown command 'show-log'; try 'help'");
	assert_int_equal(parse("show-log 3", ADMIN_PARSE_ALIASES, &req), 0);
	assert_int_equal(req.cmd->id, ADMIN_LOG_SHOW);
	assert_int_equal(req.count, 3);
	assert_int_equal(parse("clear-ident --force", ADMIN_PARSE_ALIASES, &req), 0);
	assert_int_equal(req.cmd->id, ADMIN_IDENT_CLEAR);
	assert_true(req.force);
}

static void
test_unknown_and_incomplete(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "empty request; try 'help'");
	assert_int_equal(parse("log", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "'log' needs one of: show, clear");
	assert_int_equal(parse("user frob", 0, &req), ADMIN_ERR_NOT_FOUND);
	assert_string_equal(err,
			    "unknown command 'user frob'; 'user' takes: list, add, passwd, del");
	assert_int_equal(parse("stop now", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "too many arguments; usage: stop");
}

static void
test_counts(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("log show", 0, &req), 0);
	assert_int_equal(req.count, 0);
	assert_int_equal(parse("log show 1000000000", 0, &req), 0);
	assert_int_equal(req.count, 1000000000);
	const char *bad[] = {
		"log show 0",  "log show -1",         "log show +2",
		"log show 2x", "log show 1000000001", "log show 99999999999999999999"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], 0, &req), ADMIN_ERR_BAD_REQUEST);
		assert_string_equal(err, "N must be a number of lines from 1; usage: log show [N]");
	}
	assert_int_equal(parse("log show 1 2", 0, &req), ADMIN_ERR_BAD_REQUEST);
}

static void
test_names(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("kick", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "NAME is missing; usage: kick NAME [REASON]");
	assert_int_equal(parse("kick bad/name", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "'bad/name' is not a valid user name");
	assert_int_equal(parse("kick bob", 0, &req), 0);
	assert_string_equal(req.name, "bob");
	assert_null(req.text);
	assert_int_equal(parse("kick bob   too  loud ", 0, &req), 0);
	assert_string_equal(req.text, "too  loud ");
	assert_int_equal(parse("user del bob extra", 0, &req), ADMIN_ERR_BAD_REQUEST);
}

static void
test_secrets_are_verbatim(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("user add bob  two  spaces ", 0, &req), 0);
	assert_string_equal(req.name, "bob");
	assert_string_equal(req.text, " two  spaces ");
	assert_int_equal(parse("user passwd bob", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "PASSWORD is missing; usage: user passwd NAME PASSWORD");
	/* chatctl checks the typed form, the password comes later. */
	assert_int_equal(parse("user add bob", ADMIN_PARSE_NO_SECRET, &req), 0);
	assert_null(req.text);
	assert_int_equal(parse("user add bob pw", ADMIN_PARSE_NO_SECRET, &req),
			 ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "too many arguments; usage: user add NAME");
}

static void
test_text(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("notice", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "TEXT is missing; usage: notice TEXT");
	assert_int_equal(parse("notice    ", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_int_equal(parse("notice  back at  noon", 0, &req), 0);
	assert_string_equal(req.text, "back at  noon");
}

static void
test_force(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("ident clear", 0, &req), 0);
	assert_false(req.force);
	assert_int_equal(parse("ident clear --force", 0, &req), 0);
	assert_true(req.force);
	assert_int_equal(parse("ident clear --FORCE", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "unknown option; usage: ident clear [--force]");
}

static void
test_rooms(void **state)
{
	struct admin_request req;

	assert_int_equal(parse("room", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "'room' needs one of: list, create, del, topic, kick, notice");
	assert_int_equal(parse("room list", 0, &req), 0);
	assert_int_equal(req.cmd->id, ADMIN_ROOM_LIST);
	assert_int_equal(parse("room create", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "NAME is missing; usage: room create NAME [TOPIC]");
	assert_int_equal(parse("room create #Games", 0, &req), 0);
	assert_string_equal(req.room, "Games"); /* the '#' dropped, the spelling kept */
	assert_null(req.text);
	assert_int_equal(parse("room create games  all  about games ", 0, &req), 0);
	assert_string_equal(req.text, "all  about games ");
	assert_int_equal(parse("room del 9lives", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "'9lives' is not a valid room name (1-32 letters, digits, "
				 "'_', '.' or '-', starting with a letter)");
	assert_int_equal(parse("room del #", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_int_equal(parse("room del aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, &req),
			 ADMIN_ERR_BAD_REQUEST);
	assert_int_equal(parse("room del games now", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "too many arguments; usage: room del NAME");
	assert_int_equal(parse("room topic games", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "TEXT is missing; usage: room topic NAME TEXT");
	assert_int_equal(parse("room topic games new rules", 0, &req), 0);
	assert_string_equal(req.room, "games");
	assert_string_equal(req.text, "new rules");
	assert_int_equal(parse("room kick games", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "NAME is missing; usage: room kick ROOM NAME [REASON]");
	assert_int_equal(parse("room kick games bob cheating at cards", 0, &req), 0);
	assert_string_equal(req.room, "games");
	assert_string_equal(req.name, "bob");
	assert_string_equal(req.text, "cheating at cards");
	assert_int_equal(parse("room kick #games bob", 0, &req), 0);
	assert_null(req.text);
	assert_int_equal(parse("room notice", 0, &req), ADMIN_ERR_BAD_REQUEST);
	assert_string_equal(err, "ROOM is missing; usage: room notice ROOM TEXT");
	assert_int_equal(parse("room notice games back soon", 0, &req), 0);
	assert_string_equal(req.room, "games");
	assert_string_equal(req.text, "back soon");
	assert_int_equal(parse("kick bob", 0, &req), 0);
	assert_null(req.room); /* kick and notice are the server's, no room */
}

static void
test_usage(void **state)
{
	char buf[64];

	admin_usage(&admin_commands[ADMIN_USER_ADD], true, buf, sizeof(buf));
	assert_string_equal(buf, "user add NAME PASSWORD");
	admin_usage(&admin_commands[ADMIN_USER_ADD], false, buf, sizeof(buf));
	assert_string_equal(buf, "user add NAME");
	admin_usage(&admin_commands[ADMIN_LOG_SHOW], false, buf, sizeof(buf));
	assert_string_equal(buf, "log show [N]");
}

static void
test_classify(void **state)
{
	const char *text = NULL;
	int code = 0;

	assert_int_equal(admin_classify("- OK 5", &code, &text), ADMIN_LINE_DATA);
	assert_string_equal(text, "OK 5");
	assert_int_equal(admin_classify("- ", &code, &text), ADMIN_LINE_DATA);
	assert_string_equal(text, "");
	assert_int_equal(admin_classify("OK", &code, &text), ADMIN_LINE_OK);
	assert_string_equal(text, "");
	assert_int_equal(admin_classify("OK paused", &code, &text), ADMIN_LINE_OK);
	assert_string_equal(text, "paused");
	assert_int_equal(admin_classify("ERR 404 no such user", &code, &text), ADMIN_LINE_ERR);
	assert_int_equal(code, 404);
	assert_string_equal(text, "no such user");
	assert_int_equal(admin_classify("ERR 503", &code, &text), ADMIN_LINE_ERR);
	const char *bad[] = { "OKAY",          "ERR", "ERR x", "ERR 40 short",
			      "ERR 4040 long", "-x",  "",      "hello" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(admin_classify(bad[i], &code, &text), ADMIN_LINE_BAD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_is_consistent),
		cmocka_unit_test(test_every_command_parses_by_its_words),
		cmocka_unit_test(test_words_ignore_case_and_spacing),
		cmocka_unit_test(test_aliases_only_for_chatctl),
		cmocka_unit_test(test_unknown_and_incomplete),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_secrets_are_verbatim),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_force),
		cmocka_unit_test(test_rooms),
		cmocka_unit_test(test_usage),
		cmocka_unit_test(test_classify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
