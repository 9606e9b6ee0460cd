/*
 * render.h - how server lines look on a terminal: local timestamps, the
 * room of each line ("#dev"), names in colour, private messages, joins,
 * departures, notices and history each set apart.  Every piece of server
 * text passes through sanitize_append().
 */
#ifndef CHAT_RENDER_H
#define CHAT_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "names.h"
#include "rooms.h"
#include "srvline.h"
#include "strbuf.h"

struct render {
	bool color;
	char self[NAME_MAX_LEN + 1];          /* our own name, shown in bold */
	bool in_history;                      /* inside a run of HIST lines */
	char history_room[ROOM_NAME_MAX + 1]; /* the room of that run */
};

/* Appends the display form of l, one or more whole lines, to out. */
int render_line(struct render *r, struct strbuf *out, const struct srv_line *l);

/* Closes a run of history lines, if one is open. */
int render_end_history(struct render *r, struct strbuf *out);

/*
 * Our own room message (to room, NULL if in none) or private message, shown
 * when it is sent (queued: not yet).
 */
int render_own_message(struct render *r, struct strbuf *out, const char *room, const char *text,
		       bool queued);
int render_own_private(struct render *r, struct strbuf *out, const char *to, const char *text,
		       bool queued);

/* A note from the client itself ("-- ..."), or an error ("!! ..."). */
int render_note(struct render *r, struct strbuf *out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int render_error(struct render *r, struct strbuf *out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
