/*
 * reqq.h - a FIFO of request lines: those sent and waiting for their
 * reply (replies come in the order of the requests), and those typed while
 * the connection was down, waiting to be sent.
 */
#ifndef CHAT_REQQ_H
#define CHAT_REQQ_H

#include <stdbool.h>
#include <stddef.h>

enum req_kind {
	REQ_MESSAGE, /* a room message: acknowledged with OK ID */
	REQ_PRIVATE, /* /msg NAME TEXT */
	REQ_SAY,     /* /say ROOM TEXT: a room message to another room than the current one */
	REQ_REJOIN,  /* /join or /switch sent by chat itself after logging in again */
	REQ_PASSWD,  /* /passwd NEW: on OK the new password is kept for logging in again */
	REQ_QUIT,    /* /quit: answered with BYE, never sent again */
	REQ_TOKEN,   /* /token, sent by chat itself: its reply is kept, not shown */
	REQ_COMMAND, /* any other / command, its reply shown */
	REQ_CHECK,   /* "/ping chat-check-N" behind a request, sent by chat itself (tty.c) */
};

struct req {
	enum req_kind kind;
	char *line; /* as sent on the wire */
};

/* The token of the /ping both modes send behind each request: "/ping " CHAT_CHECK "N". */
#define CHAT_CHECK "chat-check-"

struct reqq {
	struct req *items;
	size_t count;
	size_t cap;
};

int reqq_push(struct reqq *q, enum req_kind kind, const char *line); /* 0 or -1 */
bool reqq_pop(struct reqq *q, struct req *out); /* the oldest; the caller frees out->line */

/* Moves every item of from, oldest first, before those of to. */
int reqq_prepend_all(struct reqq *to, struct reqq *from);

/* Removes every item of kind. */
void reqq_drop_kind(struct reqq *q, enum req_kind kind);

/* Removes the oldest room message that the server stores as text; true if one was found. */
bool reqq_remove_message(struct reqq *q, const char *text);

void reqq_free(struct reqq *q);

#endif
