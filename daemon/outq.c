/*
 * outq.c - a client's pending output as a ring of iovecs (see outq.h).
 * No lock and no state of its own: a queue belongs to its client's thread,
 * or to the holder of the room lock while the thread has handed its write
 * rights to the hub (outq.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "outq.h"

/* One writev() never carries more than this many pieces. */
#define OUTQ_BATCH 256

void
outq_init(struct outq *q)
{
	memset(q, 0, sizeof(*q));
}

void
outq_free(struct outq *q)
{
	for (size_t i = 0; i < q->count; i++)
		line_unref(q->items[(q->head + i) % q->cap].owner);
	free(q->items);
	memset(q, 0, sizeof(*q));
}

int
outq_grow_to(struct outq *q, size_t count)
{
	size_t ncap = q->cap ? q->cap * 2 : 16;

	while (ncap < count)
		ncap *= 2;
	struct outq_item *n = malloc(ncap * sizeof(*n));

	if (n == NULL) {
		errno = ENOMEM;
		return -1;
	}
	/* Unroll the ring so the new one starts at index 0. */
	for (size_t i = 0; i < q->count; i++)
		n[i] = q->items[(q->head + i) % q->cap];
	free(q->items);
	q->items = n;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

/*
 * Bytes that continue the last item (the next message of a batch the room
 * keeps in one line) extend it: the kernel copies one run of bytes per
 * iovec, and per iovec is where a writev() of many short lines spends.
 */
static bool
outq_extend_last(struct outq *q, const void *base, size_t len, struct line *owner)
{
	struct outq_item *last;

	if (q->count == 0)
		return false;
	last = &q->items[(q->head + q->count - 1) % q->cap];
	if (last->owner != owner || (const char *)last->iov.iov_base + last->iov.iov_len != base)
		return false;
	last->iov.iov_len += len;
	q->bytes += len;
	line_unref(owner); /* the item holds one already */
	return true;
}

int
outq_push(struct outq *q, const void *base, size_t len, struct line *owner)
{
	if (outq_extend_last(q, base, len, owner))
		return 0;
	if (q->count == q->cap && outq_grow_to(q, q->count + 1) < 0) {
		line_unref(owner);
		errno = ENOMEM;
		return -1;
	}
	struct outq_item *it = &q->items[(q->head + q->count) % q->cap];
	it->iov.iov_base = (void *)base;
	it->iov.iov_len = len;
	it->owner = owner;
	q->count++;
	q->bytes += len;
	return 0;
}

int
outq_push_line(struct outq *q, struct line *l)
{
	return outq_push(q, l->data, l->len, l);
}

/* Drop n written bytes from the front, releasing fully written items. */
static void
outq_consume(struct outq *q, size_t n)
{
	q->bytes -= n;
	while (n > 0) {
		struct outq_item *it = &q->items[q->head];

		if (n < it->iov.iov_len) {
			it->iov.iov_base = (char *)it->iov.iov_base + n;
			it->iov.iov_len -= n;
			return;
		}
		n -= it->iov.iov_len;
		line_unref(it->owner);
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
	/* Empty items (zero-length) left at the front cost nothing; drop them too. */
	while (q->count > 0 && q->items[q->head].iov.iov_len == 0) {
		line_unref(q->items[q->head].owner);
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
}

static ssize_t
fd_writev(void *arg, const struct iovec *iov, int n)
{
	return writev(*(const int *)arg, iov, n);
}

int
outq_flush(struct outq *q, int fd)
{
	return outq_flush_by(q, fd_writev, &fd);
}

int
outq_flush_by(struct outq *q, outq_writev_fn write_fn, void *arg)
{
	struct iovec iov[OUTQ_BATCH];

	while (q->count > 0) {
		size_t n = q->count < OUTQ_BATCH ? q->count : OUTQ_BATCH;

		for (size_t i = 0; i < n; i++)
			iov[i] = q->items[(q->head + i) % q->cap].iov;
		ssize_t w = write_fn(arg, iov, (int)n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		outq_consume(q, (size_t)w);
	}
	return 0;
}
