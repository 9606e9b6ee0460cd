/*
 * linebuf.h - splitting a byte stream into LF-terminated lines.
 *
 * Shared by chatd (client connections, admin connections) and the tools.
 * A line longer than max_line bytes (without its line end) is reported once
 * as LB_OVERLONG and then discarded up to and including its LF, so one bad
 * line never costs the connection.  CR before LF is dropped.
 *
 * Not thread-safe: a linebuf belongs to the one thread reading its socket.
 */
#ifndef CHATD_LINEBUF_H
#define CHATD_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct linebuf {
	char *buf; /* grows up to max_line + 2 bytes: the line, its CR, its LF */
	size_t cap;
	size_t start; /* first byte not yet returned */
	size_t end;   /* one past the last byte received */
	size_t scan;  /* bytes from start already searched for LF */
	size_t max_line;
	bool discarding; /* inside an over-long line */
	bool filled;     /* the last commit filled the buffer: grow it */
};

enum linebuf_result {
	LB_NONE = 0, /* no complete line buffered: read more */
	LB_LINE,     /* *line (NUL-terminated in place) holds *len bytes */
	LB_OVERLONG, /* a line exceeded max_line; the rest of it is dropped */
};

int linebuf_init(struct linebuf *lb, size_t max_line); /* 0 or -1 (ENOMEM) */
void linebuf_free(struct linebuf *lb);

/*
 * Free space to receive into, after moving unread bytes to the front.
 * Never returns 0 bytes of space: an over-long line is dropped first.
 * The buffer starts small and doubles when an unfinished line or one
 * read fills it; NULL (errno ENOMEM) if it has to and cannot.  Lines
 * returned by linebuf_next() are invalid after this call.
 */
char *linebuf_space(struct linebuf *lb, size_t *avail);
void linebuf_commit(struct linebuf *lb, size_t n); /* n bytes were written at linebuf_space() */

/* One read(2) into the buffer: > 0 bytes read, 0 at EOF, -1 with errno set (ENOMEM too). */
ssize_t linebuf_fill(struct linebuf *lb, int fd);

enum linebuf_result linebuf_next(struct linebuf *lb, char **line, size_t *len);

/* Bytes received but not yet returned as lines. */
size_t linebuf_pending(const struct linebuf *lb);

/*
 * From now on lines are at most max_line bytes, if that is less than
 * before (the buffer keeps its size); a line buffered already is held to it too.
 */
void linebuf_lower_max(struct linebuf *lb, size_t max_line);

#endif
