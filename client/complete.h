/*
 * complete.h - what Tab completes in chat's input line: a command at the
 * start of the line, a room name after a command that takes one (only the
 * rooms joined after /switch, /leave and /say), any later word that starts
 * with '#', and a user's name after /msg.  No readline here: tty.c hands
 * it the line.
 */
#ifndef CHAT_COMPLETE_H
#define CHAT_COMPLETE_H

#include <stddef.h>

#include "rooms.h"
#include "wordset.h"

enum complete_what {
	COMPLETE_NOTHING,
	COMPLETE_COMMAND, /* the commands chat and chatd know */
	COMPLETE_ROOM,    /* the rooms joined and every room name seen (/rooms, lines) */
	COMPLETE_JOINED,  /* the rooms joined */
	COMPLETE_NAME,    /* the users seen (in USERS, JOIN, MSG, PRIV...) */
};

/* What the word starting at byte start of line is. */
enum complete_what complete_what(const char *line, size_t start);

/*
 * The next candidate for word (a prefix, any case), or NULL when there are
 * no more; *pos is 0 for the first call.  A room keeps the word's '#'.
 * The string is malloc()ed (readline frees it).
 */
char *complete_next(const struct rooms *r, const struct wordset *people, enum complete_what what,
		    const char *word, size_t *pos);

#endif
