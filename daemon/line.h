/*
 * line.h - a reference-counted, immutable run of protocol bytes.
 *
 * A room message is formatted once into a line and then shared by the
 * history's memory, the room's fan-out ring and every recipient's pending
 * output: delivering it to a thousand people takes a thousand references,
 * not a thousand copies.  The bytes never change after line_new*() returns,
 * so any thread holding a reference may read them without a lock.
 */
#ifndef CHATD_LINE_H
#define CHATD_LINE_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

struct line {
	atomic_uint refs;
	unsigned len;
	char data[]; /* len bytes, then a NUL not counted in len */
};

/* A line of len bytes (uninitialised, NUL-terminated) with one reference. */
struct line *line_new(size_t len);
/* A formatted line with one reference; NULL on allocation failure. */
struct line *line_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
struct line *line_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static inline struct line *
line_ref(struct line *l)
{
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	return l;
}

void line_unref(struct line *l); /* NULL is fine */

#endif
