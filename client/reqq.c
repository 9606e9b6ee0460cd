/*
 * reqq.c - request FIFOs.  They hold what one person typed, so a plain
 * array moved on removal is small and fast enough.
 * A queue belongs to its caller; chat's one thread.
 */
#include <stdlib.h>
#include <string.h>

#include "reqq.h"

static int
reserve(struct reqq *q, size_t extra)
{
	size_t cap = q->cap ? q->cap : 8;
	struct req *p;

	while (cap < q->count + extra)
		cap *= 2;
	if (cap == q->cap)
		return 0;
	p = realloc(q->items, cap * sizeof(*p));
	if (p == NULL)
		return -1;
	q->items = p;
	q->cap = cap;
	return 0;
}

int
reqq_push(struct reqq *q, enum req_kind kind, const char *line)
{
	char *copy = strdup(line);

	if (copy == NULL || reserve(q, 1) < 0) {
		free(copy);
		return -1;
	}
	q->items[q->count].kind = kind;
	q->items[q->count].line = copy;
	q->count++;
	return 0;
}

static void
remove_at(struct reqq *q, size_t i)
{
	memmove(q->items + i, q->items + i + 1, (q->count - i - 1) * sizeof(*q->items));
	q->count--;
}

bool
reqq_pop(struct reqq *q, struct req *out)
{
	if (q->count == 0)
		return false;
	*out = q->items[0];
	remove_at(q, 0);
	return true;
}

int
reqq_prepend_all(struct reqq *to, struct reqq *from)
{
	if (from->count == 0)
		return 0;
	if (reserve(to, from->count) < 0)
		return -1;
	memmove(to->items + from->count, to->items, to->count * sizeof(*to->items));
	memcpy(to->items, from->items, from->count * sizeof(*from->items));
	to->count += from->count;
	from->count = 0;
	return 0;
}

/* The text the server stores for a message line: "//x" is the message "/x". */
static const char *
stored_text(const char *line)
{
	return line[0] == '/' ? line + 1 : line;
}

bool
reqq_remove_message(struct reqq *q, const char *text)
{
	for (size_t i = 0; i < q->count; i++) {
		if (q->items[i].kind == REQ_MESSAGE &&
		    strcmp(stored_text(q->items[i].line), text) == 0) {
			free(q->items[i].line);
			remove_at(q, i);
			return true;
		}
	}
	return false;
}

void
reqq_drop_kind(struct reqq *q, enum req_kind kind)
{
	size_t kept = 0;

	for (size_t i = 0; i < q->count; i++) {
		if (q->items[i].kind == kind)
			free(q->items[i].line);
		else
			q->items[kept++] = q->items[i];
	}
	q->count = kept;
}

void
reqq_free(struct reqq *q)
{
	for (size_t i = 0; i < q->count; i++)
		free(q->items[i].line);
	free(q->items);
	memset(q, 0, sizeof(*q));
}
