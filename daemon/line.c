/*
 * line.c - allocation and release of shared, immutable protocol lines
 * (line.h).  No state of its own; any thread holding a reference may take
 * another or drop it (an atomic count).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "line.h"

struct line *
line_new(size_t len)
{
	struct line *l;

	if (len > UINT_MAX)
		return NULL;
	l = malloc(sizeof(*l) + len + 1);
	if (l == NULL)
		return NULL;
	atomic_init(&l->refs, 1);
	l->len = (unsigned)len;
	l->data[len] = '\0';
	return l;
}

struct line *
line_vprintf(const char *fmt, va_list ap)
{
	va_list measure;
	struct line *l;
	int n;

	va_copy(measure, ap);
	n = vsnprintf(NULL, 0, fmt, measure);
	va_end(measure);
	if (n < 0 || (l = line_new((size_t)n)) == NULL)
		return NULL;
	vsnprintf(l->data, (size_t)n + 1, fmt, ap);
	return l;
}

struct line *
line_printf(const char *fmt, ...)
{
	struct line *l;
	va_list ap;

	va_start(ap, fmt);
	l = line_vprintf(fmt, ap);
	va_end(ap);
	return l;
}

/*
 * The last owner frees: acq_rel makes every other owner's reads of the bytes
 * happen before the free.
 */
void
line_unref(struct line *l)
{
	if (l != NULL && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
		free(l);
}
