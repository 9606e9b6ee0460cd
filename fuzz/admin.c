/*
 * admin.c - fuzz target for the admin protocol parser (common/admin_proto.c),
 * the one chatd runs on every request line and chatctl on what people type.
 *
 * Input: one request line.  Checked:
 * - a request that parses names a command of the table, a valid name where
 *   one is wanted, N within 1..10^9 or 0, the text where one is wanted;
 * - chatctl's round trip: what it accepts (aliases allowed, no password),
 *   rebuilt as it sends it (canonical words plus a password), parses on the
 *   daemon's side as the same command with the same arguments;
 * - a failure always comes with an admin_err code and a message;
 * - admin_classify() takes any line: a data line gives back what follows
 *   "- ", an ERR line a three-digit code.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_proto.h"
#include "harness.h"
#include "names.h"

static bool
known_code(int code)
{
	static const int codes[] = { 400, 403, 404, 405, 409, 413, 422, 500, 503, 507 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i] == code)
			return true;
	return false;
}

static void
check_request(const struct admin_request *req)
{
	fuzz_assert(req->cmd >= admin_commands && req->cmd < admin_commands + ADMIN_CMD_COUNT);
	switch (req->cmd->args) {
	case ARGS_NAME:
	case ARGS_NAME_SECRET:
	case ARGS_NAME_TEXT_OPT:
		fuzz_assert(req->name != NULL && name_valid(req->name, strlen(req->name)));
		break;
	case ARGS_TEXT:
		fuzz_assert(req->text != NULL && req->text[0] != ' ' && req->text[0] != '\0');
		break;
	case ARGS_ROOM_USER_REASON_OPT:
		fuzz_assert(req->name != NULL && name_valid(req->name, strlen(req->name)));
		break;
	default:
		fuzz_assert(req->name == NULL);
	}
	if (req->cmd->args >= ARGS_ROOM)
		fuzz_assert(req->room != NULL && room_name_valid(req->room, strlen(req->room)));
	else
		fuzz_assert(req->room == NULL);
	if (req->cmd->args == ARGS_ROOM_TOPIC || req->cmd->args == ARGS_ROOM_TEXT)
		fuzz_assert(req->text != NULL && req->text[0] != ' ' && req->text[0] != '\0');
	fuzz_assert(req->count >= 0 && req->count <= 1000000000L);
	fuzz_assert(req->count == 0 || req->cmd->args == ARGS_COUNT_OPT);
	fuzz_assert(!req->force || req->cmd->args == ARGS_FORCE_OPT);
}

/* What chatctl sends for what it parsed (ctl/chatctl.c: build_request). */
static void
rebuild(const struct admin_request *req, char *out, size_t len)
{
	int n = snprintf(out, len, "%s", req->cmd->words);

	if (req->room != NULL)
		n += snprintf(out + n, len - (size_t)n, " %s", req->room);
	if (req->name != NULL)
		n += snprintf(out + n, len - (size_t)n, " %s", req->name);
	if (req->count > 0)
		n += snprintf(out + n, len - (size_t)n, " %ld", req->count);
	if (req->force)
		n += snprintf(out + n, len - (size_t)n, " --force");
	if (req->text != NULL)
		n += snprintf(out + n, len - (size_t)n, " %s", req->text);
	if (req->cmd->args == ARGS_NAME_SECRET)
		snprintf(out + n, len - (size_t)n, " pass word");
}

static void
check_round_trip(const struct admin_request *typed)
{
	char sent[2 * ADMIN_MAX_LINE], err[256];
	struct admin_request got;

	rebuild(typed, sent, sizeof(sent));
	fuzz_assert(admin_parse(sent, 0, &got, err, sizeof(err)) == 0);
	fuzz_assert(got.cmd == typed->cmd);
	fuzz_assert(got.count == typed->count && got.force == typed->force);
	fuzz_assert((got.room == NULL) == (typed->room == NULL));
	if (got.room != NULL)
		fuzz_assert(strcmp(got.room, typed->room) == 0);
	fuzz_assert((got.name == NULL) == (typed->name == NULL));
	if (got.name != NULL)
		fuzz_assert(strcmp(got.name, typed->name) == 0);
	if (typed->cmd->args == ARGS_NAME_SECRET)
		fuzz_assert(got.text != NULL && strcmp(got.text, "pass word") == 0);
	else if (typed->text != NULL)
		fuzz_assert(got.text != NULL && strcmp(got.text, typed->text) == 0);
}

static void
parse_as(const char *line, unsigned flags)
{
	char *copy = strdup(line), err[256] = "";
	struct admin_request req;
	int code;

	fuzz_assert(copy != NULL);
	code = admin_parse(copy, flags, &req, err, sizeof(err));
	if (code != 0) {
		fuzz_assert(known_code(code) && err[0] != '\0');
	} else {
		check_request(&req);
		if (flags & ADMIN_PARSE_NO_SECRET)
			check_round_trip(&req);
	}
	free(copy);
}

static void
classify(const char *line)
{
	const char *text = NULL;
	int code = 0;

	switch (admin_classify(line, &code, &text)) {
	case ADMIN_LINE_DATA:
		fuzz_assert(text == line + 2);
		break;
	case ADMIN_LINE_OK:
		fuzz_assert(strncmp(line, "OK", 2) == 0 && text != NULL);
		break;
	case ADMIN_LINE_ERR:
		fuzz_assert(code >= 0 && code <= 999 && text != NULL);
		break;
	case ADMIN_LINE_BAD:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line;

	if (size > ADMIN_MAX_LINE)
		return 0; /* chatd cuts longer lines before they reach the parser */
	line = fuzz_strndup(data, size);
	line[strcspn(line, "\n")] = '\0'; /* one line, as the line framing gives it */
	parse_as(line, 0);
	parse_as(line, ADMIN_PARSE_NO_SECRET | ADMIN_PARSE_ALIASES);
	classify(line);
	free(line);
	return 0;
}
