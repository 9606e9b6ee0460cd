/*
 * outq.h - a client's pending output: what its thread still has to write.
 *
 * Items point into shared, reference-counted lines (a room message is never
 * copied per recipient) or into static strings such as protocol tags; one
 * outq_flush_by() (the client's thread: through session_writev(), over TLS
 * record by record; outq_flush() on a bare descriptor) hands as many as
 * fit to a single writev(), so a woken thread writes everything pending
 * for its client in one system call.
 *
 * No locking of its own.  A client's outq belongs to its thread, except
 * while the thread sleeps having handed its write rights to the hub
 * (room_sleep with write-through, session.h): then the write-through pass
 * that claims it (under the room lock) may push to it, until the thread
 * takes the rights back (room_wake_up).  A client's inbox (session.h) is guarded by the room
 * lock.
 */
#ifndef CHATD_OUTQ_H
#define CHATD_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "line.h"

struct outq_item {
	struct iovec iov;
	struct line *owner; /* reference released once iov is written; NULL for static bytes */
};

struct outq {
	struct outq_item *items; /* ring of cap items */
	size_t cap;
	size_t head; /* first unwritten item */
	size_t count;
	size_t bytes; /* unwritten bytes */
};

void outq_init(struct outq *q);
void outq_free(struct outq *q); /* drops every reference */

/*
 * Queue len bytes at base.  owner, if not NULL, is a reference the queue
 * takes over (the caller gave up its own or took one for the queue).
 * Bytes that continue the last item in memory, with the same owner, are
 * added to it (and the spare reference released).
 * Returns -1 (ENOMEM) and releases owner on failure.
 */
int outq_push(struct outq *q, const void *base, size_t len, struct line *owner);
static inline int
outq_push_static(struct outq *q, const char *s, size_t len)
{
	return outq_push(q, s, len, NULL);
}
/* Queue a whole line (takes over the reference). */
int outq_push_line(struct outq *q, struct line *l);

/* Grows q's ring to hold at least count items; -1 (ENOMEM) when it could not. */
int outq_grow_to(struct outq *q, size_t count);

/*
 * Makes room for n more items, so that the next n pushes cannot fail: a
 * line queued in pieces goes in whole or not at all (without memory, a
 * half line followed by the next would be garbage).  -1 (ENOMEM) when it
 * could not.
 */
static inline int
outq_reserve(struct outq *q, size_t n)
{
	return q->count + n <= q->cap ? 0 : outq_grow_to(q, q->count + n);
}

static inline bool
outq_empty(const struct outq *q)
{
	return q->count == 0;
}

/*
 * Write as much as the socket takes without blocking.  Returns 0 (written
 * or would block: check outq_empty) or -1 with errno from writev().
 */
int outq_flush(struct outq *q, int fd);
/* The same through a writev()-like function (a TLS session's, session.h). */
typedef ssize_t (*outq_writev_fn)(void *arg, const struct iovec *iov, int n);
int outq_flush_by(struct outq *q, outq_writev_fn write_fn, void *arg);

#endif
