/*
 * rooms.h - the rooms chat is in, as the server's replies tell it: the
 * rooms joined (in the order joined), the current one (where a plain line
 * goes), the default room (the room of the login reply), the highest
 * message id shown in each, and every room name seen (for completion).
 *
 * chat never guesses: the state changes only on the server's words,
 * "OK - joined ROOM", "OK - already in ROOM", "OK - talking in ROOM",
 * "OK - left ROOM", and a PART of our own name (kicked; deleted, which
 * puts us in the default room), after which the current room falls back as
 * the server's does.  So the client and the server agree on the current
 * room.  A name that is not a valid room name (names.h) is never taken, so
 * a hostile server's bytes never reach the prompt or Tab completion.  One
 * thread (the caller's).
 */
#ifndef CHAT_ROOMS_H
#define CHAT_ROOMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "srvline.h"
#include "wordset.h"

/*
 * The rooms remembered at most: those we are in (chatd allows 1000 at most,
 * max_rooms_per_user) and, for what is left, the last ones we were in or
 * saw messages from.  A server naming ever new rooms costs a bounded list.
 */
#define ROOMS_KEPT_MAX 2048

struct chat_room {
	char name[ROOM_NAME_MAX + 1]; /* the spelling the server gave */
	int64_t last_id;              /* the highest message id shown from it */
	bool in;                      /* a member now (false: remembered for its last_id) */
};

struct rooms {
	struct chat_room *list; /* in the order joined, ROOMS_KEPT_MAX at most */
	size_t n, cap;
	char current[ROOM_NAME_MAX + 1]; /* "" for none */
	char home[ROOM_NAME_MAX + 1];    /* the default room, "" until logged in */
	struct wordset seen;             /* every room name seen, for completion */
	unsigned changes; /* grows at each change of the rooms joined or the current one */
};

/* A room name as typed: without its leading '#'. */
const char *rooms_bare(const char *name);

/* The room called name (any case, '#' allowed), or NULL. */
struct chat_room *rooms_find(struct rooms *r, const char *name);

/* Whether we are in room now. */
bool rooms_in(const struct rooms *r, const char *name);

/* The current room, NULL for none. */
const char *rooms_current(const struct rooms *r);

/* The i-th room joined (from 0), NULL if there are fewer. */
const char *rooms_nth(const struct rooms *r, size_t i);

/* The number of rooms joined. */
size_t rooms_count(const struct rooms *r);

/*
 * A new login: every room is left (their last ids kept) and home, the
 * room of the login reply, is joined and current.
 */
int rooms_login(struct rooms *r, const char *home);

/* The server said we joined room: we are in it and it is current. */
int rooms_joined(struct rooms *r, const char *room);

/* We left room (or were put out): the current room falls back as the server's does. */
void rooms_left(struct rooms *r, const char *room);

/* room is current (we are in it). */
void rooms_switched(struct rooms *r, const char *room);

/* Remembers a room name for completion. */
int rooms_saw(struct rooms *r, const char *room);

/*
 * Follows a server line: an OK of /join, /switch or /leave, a PART or a
 * JOIN of self, and the room names every line carries (completion).
 */
void rooms_follow(struct rooms *r, const struct srv_line *l, const char *self);

/*
 * Whether the OK l says that request ("/join ROOM" or "/switch ROOM") was
 * done: "OK - joined ROOM" or "OK - already in ROOM" for /join, "OK -
 * talking in ROOM" for /switch, naming the room asked for (any case, '#'
 * allowed in request), the room rooms_follow() takes from it.
 */
bool rooms_ok_answers(const struct srv_line *l, const char *request);

/* Records id as shown from room; false if it was shown before (a replay). */
bool rooms_note_id(struct rooms *r, const char *room, int64_t id);

/* The last id shown from room, 0 if none. */
int64_t rooms_last_id(struct rooms *r, const char *room);

void rooms_free(struct rooms *r);

#endif
