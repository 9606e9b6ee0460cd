/*
 * admin_proto.h - the admin protocol (docs/ADMIN.md) that chatd serves on
 * its Unix-domain admin socket and chatctl speaks.
 *
 * One table (admin_commands) lists every command with its argument shape
 * and help text.  chatd dispatches on it, chatctl checks what people type
 * against it before anything is sent, and both print their help from it,
 * so the three can never disagree; tests/consistency holds docs/ADMIN.md
 * and chatctl(8) to it.
 *
 * A request is one line, "COMMAND [ARGS]".  A reply is zero or more data
 * lines, each "- TEXT", then exactly one status line, "OK [TEXT]" or
 * "ERR CODE TEXT".  The "- " prefix is what keeps a data line (a log line,
 * a user name) from ever being read as the status line.
 */
#ifndef CHATD_ADMIN_PROTO_H
#define CHATD_ADMIN_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/* Longest request line, without its LF. */
#define ADMIN_MAX_LINE 4096
#define ADMIN_DATA_PREFIX "- "

enum admin_err {
	ADMIN_ERR_BAD_REQUEST = 400, /* wrong arguments */
	ADMIN_ERR_FORBIDDEN = 403,   /* peer not allowed; the connection closes */
	ADMIN_ERR_NOT_FOUND = 404,   /* unknown command, no such user or room */
	ADMIN_ERR_LIMIT = 405,       /* a limit was reached: max_rooms */
	ADMIN_ERR_CONFLICT = 409,    /* already exists; needs --force; the default room */
	ADMIN_ERR_TOO_LONG = 413,
	ADMIN_ERR_BAD_TEXT = 422, /* not UTF-8, control characters */
	ADMIN_ERR_INTERNAL = 500,
	ADMIN_ERR_UNAVAILABLE = 503, /* cannot now: port taken, too many admins */
	ADMIN_ERR_NOT_STORED = 507,  /* the identification file could not be written */
};

enum admin_cmd_id {
	ADMIN_HELP,
	ADMIN_STATUS,
	ADMIN_USERS,
	ADMIN_STOP,
	ADMIN_PAUSE,
	ADMIN_RESUME,
	ADMIN_LOG_SHOW,
	ADMIN_LOG_CLEAR,
	ADMIN_IDENT_CLEAR,
	ADMIN_USER_LIST,
	ADMIN_USER_ADD,
	ADMIN_USER_PASSWD,
	ADMIN_USER_DEL,
	ADMIN_KICK,
	ADMIN_NOTICE,
	ADMIN_ROOM_LIST,
	ADMIN_ROOM_CREATE,
	ADMIN_ROOM_DEL,
	ADMIN_ROOM_TOPIC,
	ADMIN_ROOM_KICK,
	ADMIN_ROOM_NOTICE,
	ADMIN_CMD_COUNT
};

/* What follows the command words. */
enum admin_args {
	ARGS_NONE,
	ARGS_COUNT_OPT,     /* [N], N >= 1 */
	ARGS_FORCE_OPT,     /* [--force] */
	ARGS_NAME,          /* NAME */
	ARGS_NAME_SECRET,   /* NAME PASSWORD: the password is read by chatctl */
	ARGS_NAME_TEXT_OPT, /* NAME [TEXT...] */
	ARGS_TEXT,          /* TEXT... */
	/* A room may be written "#name"; the '#' is dropped. */
	ARGS_ROOM,                 /* NAME: a room */
	ARGS_ROOM_TOPIC_OPT,       /* NAME [TOPIC...]: a room */
	ARGS_ROOM_TOPIC,           /* NAME TEXT...: a room */
	ARGS_ROOM_USER_REASON_OPT, /* ROOM NAME [REASON...]: NAME a user */
	ARGS_ROOM_TEXT,            /* ROOM TEXT... */
};

struct admin_cmd {
	enum admin_cmd_id id;
	const char *words; /* "log show" */
	const char *alias; /* chatctl's one-word form, "show-log", or NULL */
	enum admin_args args;
	const char *help;
};

extern const struct admin_cmd admin_commands[ADMIN_CMD_COUNT];

struct admin_request {
	const struct admin_cmd *cmd;
	const char *room; /* ARGS_ROOM*: the room, without a '#'; else NULL */
	const char *name; /* a user: ARGS_NAME*, ARGS_ROOM_USER_REASON_OPT; else NULL */
	const char *text; /* TEXT, TOPIC, REASON or PASSWORD, else NULL */
	long count;       /* ARGS_COUNT_OPT: N, or 0 when not given */
	bool force;
};

/* admin_parse() flags */
#define ADMIN_PARSE_NO_SECRET 0x1 /* chatctl: the password is not on the line */
#define ADMIN_PARSE_ALIASES 0x2   /* chatctl: accept "show-log" and the like */

/*
 * Parses one request line in place (it is cut into NUL-terminated words).
 * Returns 0, or an admin_err code with a message for the ERR line in err.
 */
int admin_parse(char *line, unsigned flags, struct admin_request *req, char *err, size_t errlen);

/* "log show [N]"; for chatctl (secret false) "user add NAME" without PASSWORD. */
void admin_usage(const struct admin_cmd *cmd, bool with_secret, char *buf, size_t len);

/* Classifying a reply line (chatctl). */
enum admin_line {
	ADMIN_LINE_DATA, /* *text: what follows "- " */
	ADMIN_LINE_OK,   /* *text: the text after OK, maybe "" */
	ADMIN_LINE_ERR,  /* *code, *text */
	ADMIN_LINE_BAD,  /* not a line of this protocol */
};
enum admin_line admin_classify(const char *line, int *code, const char **text);

#endif
