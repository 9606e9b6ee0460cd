/*
 * admin_proto.c - the admin command table and the request parser that chatd
 * and chatctl share (see admin_proto.h, docs/ADMIN.md).  No state but the
 * constant table: chatd calls it on its control thread, chatctl on its one.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_proto.h"
#include "names.h"

/* Largest N for "log show N": more lines than any log holds. */
#define ADMIN_COUNT_MAX 1000000000L

/* In the order help lists them; indexed by enum admin_cmd_id. */
const struct admin_cmd admin_commands[ADMIN_CMD_COUNT] = {
	[ADMIN_HELP] = { ADMIN_HELP, "help", NULL, ARGS_NONE, "list the commands" },
	[ADMIN_STATUS] = { ADMIN_STATUS, "status", NULL, ARGS_NONE,
			   "version, pid, uptime, listening address or paused, clients, rooms, "
			   "messages, history, config file" },
	[ADMIN_USERS] = { ADMIN_USERS, "users", NULL, ARGS_NONE,
			  "who is online, from which address, since when, on which protocol" },
	[ADMIN_STOP] = { ADMIN_STOP, "stop", NULL, ARGS_NONE,
			 "shut chatd down as SIGTERM does: clients get BYE, the history is synced" },
	[ADMIN_PAUSE] = { ADMIN_PAUSE, "pause", NULL, ARGS_NONE,
			  "stop listening: new clients are refused, people online carry on" },
	[ADMIN_RESUME] = { ADMIN_RESUME, "resume", NULL, ARGS_NONE,
			   "listen again on the same address and port" },
	[ADMIN_LOG_SHOW] = { ADMIN_LOG_SHOW, "log show", "show-log", ARGS_COUNT_OPT,
			     "the service log, or its last N lines" },
	[ADMIN_LOG_CLEAR] = { ADMIN_LOG_CLEAR, "log clear", "clear-log", ARGS_NONE,
			      "empty the log file; chatd goes on logging into it" },
	[ADMIN_IDENT_CLEAR] = { ADMIN_IDENT_CLEAR, "ident clear", "clear-ident", ARGS_FORCE_OPT,
				"forget every registered user (people online stay); "
				"--force when registration is off" },
	[ADMIN_USER_LIST] = { ADMIN_USER_LIST, "user list", NULL, ARGS_NONE,
			      "the registered names" },
	[ADMIN_USER_ADD] = { ADMIN_USER_ADD, "user add", NULL, ARGS_NAME_SECRET,
			     "register NAME with a password" },
	[ADMIN_USER_PASSWD] = { ADMIN_USER_PASSWD, "user passwd", NULL, ARGS_NAME_SECRET,
				"set NAME's password" },
	[ADMIN_USER_DEL] = { ADMIN_USER_DEL, "user del", NULL, ARGS_NAME,
			     "delete NAME; a session of NAME online is ended" },
	[ADMIN_KICK] = { ADMIN_KICK, "kick", NULL, ARGS_NAME_TEXT_OPT,
			 "disconnect NAME from the server; the members of its rooms see the "
			 "reason" },
	[ADMIN_NOTICE] = { ADMIN_NOTICE, "notice", NULL, ARGS_TEXT,
			   "a server notice to everyone online" },
	[ADMIN_ROOM_LIST] = { ADMIN_ROOM_LIST, "room list", NULL, ARGS_NONE,
			      "every room: name, members, who made it, topic" },
	[ADMIN_ROOM_CREATE] = { ADMIN_ROOM_CREATE, "room create", NULL, ARGS_ROOM_TOPIC_OPT,
				"create room NAME, with TOPIC if given; it never expires" },
	[ADMIN_ROOM_DEL] = { ADMIN_ROOM_DEL, "room del", NULL, ARGS_ROOM,
			     "delete room NAME; its members land in the default room" },
	[ADMIN_ROOM_TOPIC] = { ADMIN_ROOM_TOPIC, "room topic", NULL, ARGS_ROOM_TOPIC,
			       "set the topic of room NAME" },
	[ADMIN_ROOM_KICK] = { ADMIN_ROOM_KICK, "room kick", NULL, ARGS_ROOM_USER_REASON_OPT,
			      "take NAME out of room ROOM, telling its members the reason; "
			      "NAME stays online" },
	[ADMIN_ROOM_NOTICE] = { ADMIN_ROOM_NOTICE, "room notice", NULL, ARGS_ROOM_TEXT,
				"a server notice to the members of room ROOM" },
};

static int __attribute__((format(printf, 4, 5)))
fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

/* The next space-separated word, cut off in place; NULL at the end. */
static char *
cut_word(char **p)
{
	char *s = *p, *word;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0') {
		*p = s;
		return NULL;
	}
	word = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*p = s;
	return word;
}

/* Does the first word of cmd->words equal w (ignoring case)?  *rest: the second word. */
static bool
first_word_is(const struct admin_cmd *cmd, const char *w, const char **rest)
{
	size_t n = strcspn(cmd->words, " ");

	*rest = cmd->words[n] == ' ' ? cmd->words + n + 1 : NULL;
	return strlen(w) == n && strncasecmp(cmd->words, w, n) == 0;
}

static const struct admin_cmd *
find_command(char **p, const char *w1, unsigned flags, char *err, size_t errlen, int *code)
{
	const struct admin_cmd *group = NULL;
	const char *second;
	char *w2 = NULL;
	char subs[128] = "";

	for (size_t i = 0; i < ADMIN_CMD_COUNT; i++) {
		const struct admin_cmd *cmd = &admin_commands[i];

		if ((flags & ADMIN_PARSE_ALIASES) && cmd->alias && strcasecmp(cmd->alias, w1) == 0)
			return cmd;
		if (!first_word_is(cmd, w1, &second))
			continue;
		if (second == NULL)
			return cmd;
		if (group == NULL) {
			group = cmd;
			w2 = cut_word(p);
		}
		if (w2 != NULL && strcasecmp(second, w2) == 0)
			return cmd;
		snprintf(subs + strlen(subs), sizeof(subs) - strlen(subs), "%s%s",
			 subs[0] ? ", " : "", second);
	}
	if (group == NULL)
		*code = fail(err, errlen, ADMIN_ERR_NOT_FOUND, "unknown command '%s'; try 'help'",
			     w1);
	else if (w2 == NULL)
		*code = fail(err, errlen, ADMIN_ERR_BAD_REQUEST, "'%s' needs one of: %s", w1, subs);
	else
		*code = fail(err, errlen, ADMIN_ERR_NOT_FOUND,
			     "unknown command '%s %s'; '%s' takes: %s", w1, w2, w1, subs);
	return NULL;
}

static int
usage_error(const struct admin_cmd *cmd, unsigned flags, const char *what, char *err, size_t errlen)
{
	char usage[128];

	admin_usage(cmd, !(flags & ADMIN_PARSE_NO_SECRET), usage, sizeof(usage));
	return fail(err, errlen, ADMIN_ERR_BAD_REQUEST, "%s; usage: %s", what, usage);
}

static int
parse_count(const struct admin_cmd *cmd, unsigned flags, char *word, struct admin_request *req,
	    char *err, size_t errlen)
{
	char *end;
	long n;

	if (word == NULL)
		return 0;
	errno = 0;
	n = strtol(word, &end, 10);
	if (!isdigit((unsigned char)word[0]) || *end != '\0' || errno == ERANGE || n < 1 ||
	    n > ADMIN_COUNT_MAX)
		return usage_error(cmd, flags, "N must be a number of lines from 1", err, errlen);
	req->count = n;
	return 0;
}

static int
parse_name(const struct admin_cmd *cmd, unsigned flags, char **p, struct admin_request *req,
	   char *err, size_t errlen)
{
	char *name = cut_word(p);

	if (name == NULL)
		return usage_error(cmd, flags, "NAME is missing", err, errlen);
	if (!name_valid(name, strlen(name)))
		return fail(err, errlen, ADMIN_ERR_BAD_REQUEST, "'%s' is not a valid user name",
			    name);
	req->name = name;
	return 0;
}

/* A room: "#name" or "name", valid as room_name_valid() says; stored without the '#'. */
static int
parse_room(const struct admin_cmd *cmd, unsigned flags, char **p, struct admin_request *req,
	   char *err, size_t errlen)
{
	char *room = cut_word(p);

	if (room == NULL)
		return usage_error(cmd, flags,
				   cmd->args == ARGS_ROOM_USER_REASON_OPT ||
						   cmd->args == ARGS_ROOM_TEXT
					   ? "ROOM is missing"
					   : "NAME is missing",
				   err, errlen);
	if (room[0] == '#')
		room++;
	if (!room_name_valid(room, strlen(room)))
		return fail(err, errlen, ADMIN_ERR_BAD_REQUEST,
			    "'%s' is not a valid room name (1-%d letters, digits, '_', '.' or "
			    "'-', starting with a letter)",
			    room, ROOM_NAME_MAX);
	req->room = room;
	return 0;
}

/* The rest of the line, or NULL if only spaces are left. */
static const char *
rest_of_line(char *p)
{
	p += strspn(p, " \t");
	return *p != '\0' ? p : NULL;
}

/* After ROOM (or a room's NAME): nothing, TEXT, [TOPIC], or NAME [REASON]. */
static int
parse_room_args(const struct admin_cmd *cmd, unsigned flags, char *p, struct admin_request *req,
		char *err, size_t errlen)
{
	int rc;

	if ((rc = parse_room(cmd, flags, &p, req, err, errlen)) != 0)
		return rc;
	switch (cmd->args) {
	case ARGS_ROOM_TOPIC_OPT:
		req->text = rest_of_line(p);
		return 0;
	case ARGS_ROOM_TOPIC:
	case ARGS_ROOM_TEXT:
		if ((req->text = rest_of_line(p)) == NULL)
			return usage_error(cmd, flags, "TEXT is missing", err, errlen);
		return 0;
	case ARGS_ROOM_USER_REASON_OPT:
		if ((rc = parse_name(cmd, flags, &p, req, err, errlen)) != 0)
			return rc;
		req->text = rest_of_line(p);
		return 0;
	default:
		break;
	}
	if (cut_word(&p) != NULL)
		return usage_error(cmd, flags, "too many arguments", err, errlen);
	return 0;
}

static int
parse_args(const struct admin_cmd *cmd, unsigned flags, char *p, struct admin_request *req,
	   char *err, size_t errlen)
{
	char *word;
	int rc;

	switch (cmd->args) {
	case ARGS_NONE:
		break;
	case ARGS_COUNT_OPT:
		if ((rc = parse_count(cmd, flags, cut_word(&p), req, err, errlen)) != 0)
			return rc;
		break;
	case ARGS_FORCE_OPT:
		if ((word = cut_word(&p)) != NULL && strcmp(word, "--force") != 0)
			return usage_error(cmd, flags, "unknown option", err, errlen);
		req->force = word != NULL;
		break;
	case ARGS_NAME:
		if ((rc = parse_name(cmd, flags, &p, req, err, errlen)) != 0)
			return rc;
		break;
	case ARGS_NAME_SECRET:
		if ((rc = parse_name(cmd, flags, &p, req, err, errlen)) != 0)
			return rc;
		if (flags & ADMIN_PARSE_NO_SECRET)
			break;
		/* Verbatim after the one space that ended NAME: spaces may be part of it. */
		if (*p == '\0')
			return usage_error(cmd, flags, "PASSWORD is missing", err, errlen);
		req->text = p;
		return 0;
	case ARGS_NAME_TEXT_OPT:
		if ((rc = parse_name(cmd, flags, &p, req, err, errlen)) != 0)
			return rc;
		req->text = rest_of_line(p);
		return 0;
	case ARGS_TEXT:
		if ((req->text = rest_of_line(p)) == NULL)
			return usage_error(cmd, flags, "TEXT is missing", err, errlen);
		return 0;
	case ARGS_ROOM:
	case ARGS_ROOM_TOPIC_OPT:
	case ARGS_ROOM_TOPIC:
	case ARGS_ROOM_USER_REASON_OPT:
	case ARGS_ROOM_TEXT:
		return parse_room_args(cmd, flags, p, req, err, errlen);
	}
	if (cut_word(&p) != NULL)
		return usage_error(cmd, flags, "too many arguments", err, errlen);
	return 0;
}

int
admin_parse(char *line, unsigned flags, struct admin_request *req, char *err, size_t errlen)
{
	char *p = line, *w1;
	int code = 0;

	memset(req, 0, sizeof(*req));
	if ((w1 = cut_word(&p)) == NULL)
		return fail(err, errlen, ADMIN_ERR_BAD_REQUEST, "empty request; try 'help'");
	if ((req->cmd = find_command(&p, w1, flags, err, errlen, &code)) == NULL)
		return code;
	return parse_args(req->cmd, flags, p, req, err, errlen);
}

void
admin_usage(const struct admin_cmd *cmd, bool with_secret, char *buf, size_t len)
{
	static const char *const shapes[] = {
		[ARGS_NONE] = "",
		[ARGS_COUNT_OPT] = " [N]",
		[ARGS_FORCE_OPT] = " [--force]",
		[ARGS_NAME] = " NAME",
		[ARGS_NAME_SECRET] = " NAME",
		[ARGS_NAME_TEXT_OPT] = " NAME [REASON]",
		[ARGS_TEXT] = " TEXT",
		[ARGS_ROOM] = " NAME",
		[ARGS_ROOM_TOPIC_OPT] = " NAME [TOPIC]",
		[ARGS_ROOM_TOPIC] = " NAME TEXT",
		[ARGS_ROOM_USER_REASON_OPT] = " ROOM NAME [REASON]",
		[ARGS_ROOM_TEXT] = " ROOM TEXT",
	};

	snprintf(buf, len, "%s%s%s", cmd->words, shapes[cmd->args],
		 cmd->args == ARGS_NAME_SECRET && with_secret ? " PASSWORD" : "");
}

enum admin_line
admin_classify(const char *line, int *code, const char **text)
{
	char *end;
	long n;

	if (strncmp(line, ADMIN_DATA_PREFIX, strlen(ADMIN_DATA_PREFIX)) == 0) {
		*text = line + strlen(ADMIN_DATA_PREFIX);
		return ADMIN_LINE_DATA;
	}
	if (strcmp(line, "OK") == 0 || strncmp(line, "OK ", 3) == 0) {
		*text = line[2] ? line + 3 : "";
		return ADMIN_LINE_OK;
	}
	if (strncmp(line, "ERR ", 4) != 0 || !isdigit((unsigned char)line[4]))
		return ADMIN_LINE_BAD;
	n = strtol(line + 4, &end, 10);
	if (end - (line + 4) != 3 || (*end != ' ' && *end != '\0'))
		return ADMIN_LINE_BAD;
	*code = (int)n;
	*text = *end ? end + 1 : "";
	return ADMIN_LINE_ERR;
}
