/*
 * conn.h - the TCP connection to chatd: resolving, connecting with a
 * timeout, cutting what arrives into lines and queueing what is sent so a
 * server that does not read never blocks the terminal.
 */
#ifndef CHAT_CONN_H
#define CHAT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "linebuf.h"
#include "strbuf.h"

/*
 * The longest line chatd may send: max_line can be set up to 65536 and a
 * server line is at most max_line + PROTO_SERVER_OVERHEAD bytes with its LF.
 */
#define CONN_MAX_LINE (65536 + 128)

struct conn {
	int fd; /* -1 when not connected */
	struct linebuf in;
	struct strbuf out; /* queued, not yet written */
};

enum conn_status {
	CONN_OK = 0,
	CONN_RESOLVE_FAILED, /* getaddrinfo() failed */
	CONN_CONNECT_FAILED, /* no address accepted the connection in time */
	CONN_NO_MEMORY,
};

void conn_init(struct conn *c);

#define CONN_BACKOFF_FIRST_MS 1000
#define CONN_BACKOFF_MAX_MS 30000

/*
 * The wait before the next reconnect attempt: *backoff_ms (0 before the
 * first) doubles from CONN_BACKOFF_FIRST_MS up to CONN_BACKOFF_MAX_MS, and
 * the wait is that times a random 50..150 %, so clients dropped together
 * (a server restart) come back spread out.  The caller sets *backoff_ms to
 * 0 once logged in again.
 */
int conn_backoff_next(int *backoff_ms);

/*
 * Connects to host:port, trying each address in turn, each for at most
 * timeout_ms.  On failure err says why, for a person.
 */
enum conn_status conn_open(struct conn *c, const char *host, const char *port, int timeout_ms,
			   char *err, size_t errsz);
void conn_close(struct conn *c);
bool conn_is_open(const struct conn *c);

/* Queues text and a LF and writes what the socket takes now; 0 or -1 (connection broken). */
int conn_send(struct conn *c, const char *text, size_t len);

/* Writes what is queued as far as the socket takes it; 0 or -1 (connection broken). */
int conn_flush(struct conn *c);
bool conn_wants_write(const struct conn *c);

/* Reads what has arrived: 1 data (or nothing yet), 0 at EOF, -1 on error (errno set). */
int conn_read(struct conn *c);

/* The next complete line, as linebuf_next(). */
enum linebuf_result conn_next_line(struct conn *c, char **line, size_t *len);

/*
 * Waits until a line is complete or deadline_ms (time_mono_ms()) passes,
 * writing queued output meanwhile: 1 a line, 0 timed out, -1 closed or
 * broken (errno 0 for an orderly close), -2 an over-long line was dropped.
 */
int conn_wait_line(struct conn *c, int64_t deadline_ms, char **line, size_t *len);

#endif
