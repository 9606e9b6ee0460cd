/*
 * conn.h - the TCP connection to chatd, in clear or over TLS (tls.h):
 * resolving, connecting with a timeout, cutting what arrives into lines
 * and queueing what is sent so a server that does not read never blocks
 * the terminal.
 *
 * Over TLS a read may leave decrypted bytes inside the TLS connection that
 * poll() cannot see: callers do not wait in poll() while conn_pending().
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

struct tls_ctx;
struct tls_conn;

struct conn {
	int fd; /* -1 when not connected */
	struct linebuf in;
	struct strbuf out;       /* queued, not yet written */
	struct tls_ctx *tls_ctx; /* NULL: in clear; not owned */
	struct tls_conn *tls;    /* over this fd, when tls_ctx */
	bool warned_clear;       /* conn_warn_clear_password() spoke already */
};

enum conn_status {
	CONN_OK = 0,
	CONN_RESOLVE_FAILED, /* getaddrinfo() failed */
	CONN_CONNECT_FAILED, /* no address accepted the connection in time, or TLS failed */
	CONN_NO_MEMORY,
	CONN_TLS_REFUSED, /* the server's certificate was not accepted: never retried */
};

/* tls: the TLS context of the run (tls_ctx_new()), or NULL for a connection in clear. */
void conn_init(struct conn *c, struct tls_ctx *tls);

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
 * timeout_ms, then with TLS does the handshake within timeout_ms too (the
 * next address is not tried if it fails: never a fallback).  On failure
 * err says why, for a person.
 */
enum conn_status conn_open(struct conn *c, const char *host, const char *port, int timeout_ms,
			   char *err, size_t errsz);
void conn_close(struct conn *c);
bool conn_is_open(const struct conn *c);

/* The connection is TLS. */
bool conn_is_tls(const struct conn *c);

/* The connection is TLS and resumed an earlier session. */
bool conn_resumed(const struct conn *c);

/*
 * Before a password goes out: unless the connection is TLS or to a
 * loopback address, warns on stderr (once per struct conn) that it
 * crosses the network in clear.
 */
void conn_warn_clear_password(struct conn *c);

/* Whether sa is a loopback address: 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104. */
struct sockaddr;
bool conn_addr_is_loopback(const struct sockaddr *sa);

/* Queues text and a LF and writes what the socket takes now; 0 or -1 (connection broken). */
int conn_send(struct conn *c, const char *text, size_t len);

/* Writes what is queued as far as the socket takes it; 0 or -1 (connection broken). */
int conn_flush(struct conn *c);
bool conn_wants_write(const struct conn *c);

/* Reads what has arrived: 1 data (or nothing yet), 0 at EOF, -1 on error (errno set). */
int conn_read(struct conn *c);

/* TLS holds bytes already received: conn_read() now, without waiting in poll(). */
bool conn_pending(const struct conn *c);

/* The poll() events to wait for on c->fd. */
short conn_poll_events(const struct conn *c);

/* After poll() returned revents for c->fd (0 if not polled): whether to conn_read() now. */
bool conn_readable(const struct conn *c, short revents);

/* The next complete line, as linebuf_next(). */
enum linebuf_result conn_next_line(struct conn *c, char **line, size_t *len);

/*
 * Waits until a line is complete or deadline_ms (time_mono_ms()) passes,
 * writing queued output meanwhile: 1 a line, 0 timed out, -1 closed or
 * broken (errno 0 for an orderly close), -2 an over-long line was dropped.
 */
int conn_wait_line(struct conn *c, int64_t deadline_ms, char **line, size_t *len);

#endif
