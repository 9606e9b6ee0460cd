/*
 * linebuf.c - cutting a byte stream into lines of at most max_line bytes.
 *
 * Callers read with linebuf_fill() (or linebuf_space()/linebuf_commit())
 * and then call linebuf_next() until it returns LB_NONE.  Every byte is
 * searched for LF once (lb->scan remembers how far the search got) and moved
 * at most once, so a peer trickling a long line byte by byte costs O(n).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linebuf.h"

/*
 * Where a buffer starts: chat lines are short, and chatd keeps one buffer
 * per connected client, so a full max_line each would be most of an idle
 * client's memory.  It doubles for a line that does not fit, and for a
 * peer that sends faster than it is read (a read filled it up), so a busy
 * connection still takes much per read().
 */
#define LINEBUF_FIRST_CAP 256

static size_t
full_cap(const struct linebuf *lb)
{
	return lb->max_line + 2;
}

int
linebuf_init(struct linebuf *lb, size_t max_line)
{
	memset(lb, 0, sizeof(*lb));
	if (max_line > SIZE_MAX - 2) {
		errno = ENOMEM;
		return -1;
	}
	lb->max_line = max_line;
	lb->cap = full_cap(lb) < LINEBUF_FIRST_CAP ? full_cap(lb) : LINEBUF_FIRST_CAP;
	lb->buf = malloc(lb->cap);
	return lb->buf != NULL ? 0 : -1;
}

void
linebuf_free(struct linebuf *lb)
{
	free(lb->buf);
	memset(lb, 0, sizeof(*lb));
}

/* Doubles the buffer, up to its full size. */
static bool
grow(struct linebuf *lb)
{
	size_t cap = lb->cap > full_cap(lb) / 2 ? full_cap(lb) : 2 * lb->cap;
	char *buf = realloc(lb->buf, cap);

	if (buf == NULL)
		return false;
	lb->buf = buf;
	lb->cap = cap;
	return true;
}

/*
 * After linebuf_next() returned LB_NONE at most max_line + 1 bytes of an
 * unfinished line are left (any more would have been LB_OVERLONG), so a
 * buffer grown to max_line + 2 bytes always has room once they are at the
 * front.
 */
char *
linebuf_space(struct linebuf *lb, size_t *avail)
{
	if (lb->start > 0) {
		memmove(lb->buf, lb->buf + lb->start, lb->end - lb->start);
		lb->end -= lb->start;
		lb->start = 0;
	}
	if (lb->end == lb->cap || lb->filled) {
		lb->filled = false;
		if (lb->cap < full_cap(lb) && !grow(lb) && lb->end == lb->cap) {
			*avail = 0;
			errno = ENOMEM;
			return NULL;
		}
	}
	*avail = lb->cap - lb->end;
	return lb->buf + lb->end;
}

void
linebuf_commit(struct linebuf *lb, size_t n)
{
	lb->end += n;
	lb->filled = lb->end == lb->cap;
}

ssize_t
linebuf_fill(struct linebuf *lb, int fd)
{
	size_t avail;
	char *space = linebuf_space(lb, &avail);
	ssize_t n;

	if (space == NULL)
		return -1;
	n = read(fd, space, avail);
	if (n > 0)
		linebuf_commit(lb, (size_t)n);
	return n;
}

static void
drop_buffered(struct linebuf *lb)
{
	lb->start = lb->end = lb->scan = 0;
}

/* Skips the rest of an over-long line; true once its LF has gone by. */
static bool
skip_overlong_rest(struct linebuf *lb)
{
	char *lf = memchr(lb->buf + lb->start, '\n', lb->end - lb->start);

	if (lf == NULL) {
		drop_buffered(lb);
		return false;
	}
	lb->start = (size_t)(lf - lb->buf) + 1;
	lb->discarding = false;
	return true;
}

/*
 * Without its LF an unfinished line is over-long once it holds more than
 * max_line bytes, except for a CR right at the limit: its LF may still come.
 */
static bool
unfinished_line_too_long(const struct linebuf *lb)
{
	size_t n = lb->end - lb->start;

	if (n <= lb->max_line)
		return false;
	return n > lb->max_line + 1 || lb->buf[lb->end - 1] != '\r';
}

static enum linebuf_result
cut_line(struct linebuf *lb, char *lf, char **line, size_t *len)
{
	char *first = lb->buf + lb->start;
	size_t n = (size_t)(lf - first);

	lb->start += n + 1;
	lb->scan = 0;
	if (n > 0 && first[n - 1] == '\r')
		n--;
	if (n > lb->max_line)
		return LB_OVERLONG;
	first[n] = '\0';
	*line = first;
	*len = n;
	return LB_LINE;
}

enum linebuf_result
linebuf_next(struct linebuf *lb, char **line, size_t *len)
{
	char *lf;

	if (lb->discarding && !skip_overlong_rest(lb))
		return LB_NONE;
	lf = memchr(lb->buf + lb->start + lb->scan, '\n', lb->end - lb->start - lb->scan);
	if (lf != NULL)
		return cut_line(lb, lf, line, len);
	lb->scan = lb->end - lb->start;
	if (unfinished_line_too_long(lb)) {
		drop_buffered(lb);
		lb->discarding = true;
		return LB_OVERLONG;
	}
	return LB_NONE;
}

size_t
linebuf_pending(const struct linebuf *lb)
{
	return lb->end - lb->start;
}

void
linebuf_lower_max(struct linebuf *lb, size_t max_line)
{
	if (max_line < lb->max_line)
		lb->max_line = max_line;
}
