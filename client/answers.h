/*
 * answers.h - the final replies (OK, ERR) to requests sent together with
 * one check behind the last of them (reqq.h, CHAT_CHECK), kept as they
 * came until the check's PONG says they answer exactly those requests, one
 * each and in order.  A reply may hold a resume token: the bytes are wiped
 * when they are forgotten.  One thread (the caller's).
 */
#ifndef CHAT_ANSWERS_H
#define CHAT_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

struct answers {
	struct strbuf lines; /* each reply as it came, with a LF after it */
	size_t count;        /* the replies kept */
};

/* Keeps a reply (len bytes, no LF in it): 0, or -1 when memory runs out. */
int answers_keep(struct answers *a, const char *line, size_t len);

/*
 * The reply at *pos (0 for the first), NUL-terminated in place, and *pos
 * moved to the next one; false after the last.  The caller may parse the
 * reply in place (srv_parse) and wipe the answers while going through them.
 */
bool answers_next(struct answers *a, size_t *pos, char **line, size_t *len);

/* Forgets the replies kept, their bytes zeroed. */
void answers_wipe(struct answers *a);

void answers_free(struct answers *a);

#endif
