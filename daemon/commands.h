/*
 * commands.h - the slash commands a logged-in client may send.
 *
 * One table (commands.c, made from common/chat_commands.h, which chat's
 * Tab completion shares) drives parsing, dispatch and /help;
 * docs/PROTOCOL.md lists the same commands.
 */
#ifndef CHATD_COMMANDS_H
#define CHATD_COMMANDS_H

#include <stddef.h>

#include "room.h"
#include "session.h"

enum command_result {
	COMMAND_DONE,  /* replied; go on */
	COMMAND_QUIT,  /* the client asked to leave; *why/text filled */
	COMMAND_FATAL, /* could not reply (out of memory) */
};

struct command {
	const char *name;
	enum command_result (*run)(struct client *c, char *args, char *text, size_t textlen);
	const char *usage;
	const char *help;
};

/*
 * Splits "/name args" (line starts with '/') into the command it names
 * (NULL if unknown) and its arguments (after one space; "" when none).
 */
const struct command *command_parse(char *line, char **args);

/* Runs a request line that starts with '/'. */
enum command_result command_run(struct client *c, char *line, char *text, size_t textlen);

/*
 * A room operation's outcome (room.h) as the user is told it: its ERR code
 * (0 for done) and its text, ROOM (as the user wrote it) filled in, into
 * buf.  client.c answers a message to a room with them too.
 */
int room_result_code(enum room_result r);
const char *room_result_text(enum room_result r, const char *room, char *buf, size_t len);

extern const struct command command_table[];
extern const size_t command_count;

#endif
