/*
 * conn.c - the client's socket: connect with a deadline to each address
 * the name resolves to, then the TLS handshake if asked (tls.c does the
 * TLS), non-blocking reads cut into lines by the linebuf of common/, and
 * an output queue flushed when poll() says the socket can take more; the
 * wait between reconnect attempts; the warning before a password goes
 * out in clear.
 * Owns a connection's socket, its TLS object and its buffers (struct conn);
 * chat's one thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "timefmt.h"
#include "tls.h"

void
conn_init(struct conn *c, struct tls_ctx *tls)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->tls_ctx = tls;
}

int
conn_backoff_next(int *backoff_ms)
{
	int base = *backoff_ms == 0 ? CONN_BACKOFF_FIRST_MS : *backoff_ms * 2;

	*backoff_ms = base > CONN_BACKOFF_MAX_MS ? CONN_BACKOFF_MAX_MS : base;
	return (int)((int64_t)*backoff_ms * (50 + random() % 101) / 100);
}

bool
conn_is_open(const struct conn *c)
{
	return c->fd >= 0;
}

bool
conn_is_tls(const struct conn *c)
{
	return c->tls != NULL;
}

bool
conn_resumed(const struct conn *c)
{
	return c->tls != NULL && tls_resumed(c->tls);
}

bool
conn_addr_is_loopback(const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (memcmp(a->s6_addr, mapped, sizeof(mapped)) == 0 && a->s6_addr[12] == 127);
	}
	return false;
}

void
conn_warn_clear_password(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";

	if (c->tls != NULL || c->warned_clear || c->fd < 0 ||
	    getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    conn_addr_is_loopback((struct sockaddr *)&ss))
		return;
	getnameinfo((struct sockaddr *)&ss, sl, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
	fprintf(stderr,
		"chat: warning: the connection to %s is not encrypted: the password crosses "
		"the network in clear (use --tls)\n",
		addr);
	c->warned_clear = true;
}

/* Waits for a non-blocking connect(); 0 connected, else an errno value. */
static int
finish_connect(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int64_t deadline = time_mono_ms() + timeout_ms;
	int soerr = 0, n;
	socklen_t sl = sizeof(soerr);

	for (;;) {
		int64_t left = deadline - time_mono_ms();

		if (left <= 0)
			return ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			return errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return errno;
	return soerr;
}

/*
 * A server that vanished without a word (power cut, cable pulled) is
 * noticed within about a minute and a half, not the kernel's two hours:
 * the terminal mode then reconnects.
 */
static void
set_keepalive(int fd)
{
	int one = 1, idle = 60, interval = 10, count = 3;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

/* One address: a connected non-blocking socket, or -1 with *why set. */
static int
connect_one(const struct addrinfo *ai, int timeout_ms, int *why)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);

	if (fd < 0) {
		*why = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		*why = 0;
	else if (errno == EINPROGRESS)
		*why = finish_connect(fd, timeout_ms);
	else
		*why = errno;
	if (*why != 0) {
		close(fd);
		return -1;
	}
	set_keepalive(fd);
	return fd;
}

/* The TLS handshake on the connected socket; the socket is closed if it fails. */
static enum conn_status
start_tls(struct conn *c, const char *host, const char *port, int timeout_ms, char *err,
	  size_t errsz)
{
	char why[400];
	enum tls_status st = tls_connect(c->tls_ctx, c->fd, host, time_mono_ms() + timeout_ms,
					 &c->tls, why, sizeof(why));

	if (st == TLS_OK)
		return CONN_OK;
	conn_close(c);
	if (st == TLS_REFUSED) {
		snprintf(err, errsz, "TLS: not connecting to %s port %s: %s", host, port, why);
		return CONN_TLS_REFUSED;
	}
	snprintf(err, errsz, "cannot connect to %s port %s: %s", host, port, why);
	return st == TLS_NO_MEMORY ? CONN_NO_MEMORY : CONN_CONNECT_FAILED;
}

enum conn_status
conn_open(struct conn *c, const char *host, const char *port, int timeout_ms, char *err,
	  size_t errsz)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	int rc = getaddrinfo(host, port, &hints, &res), why = 0;

	if (rc != 0) {
		snprintf(err, errsz, "cannot resolve %s: %s", host,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return CONN_RESOLVE_FAILED;
	}
	conn_close(c);
	for (ai = res; ai != NULL && c->fd < 0; ai = ai->ai_next)
		c->fd = connect_one(ai, timeout_ms, &why);
	freeaddrinfo(res);
	if (c->fd < 0) {
		snprintf(err, errsz, "cannot connect to %s port %s: %s", host, port,
			 why == ETIMEDOUT ? "timed out" : strerror(why));
		return CONN_CONNECT_FAILED;
	}
	if (c->tls_ctx != NULL) {
		enum conn_status st = start_tls(c, host, port, timeout_ms, err, errsz);

		if (st != CONN_OK)
			return st;
	}
	if (linebuf_init(&c->in, CONN_MAX_LINE) < 0) {
		conn_close(c);
		snprintf(err, errsz, "out of memory");
		return CONN_NO_MEMORY;
	}
	return CONN_OK;
}

void
conn_close(struct conn *c)
{
	tls_close(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	linebuf_free(&c->in);
	strbuf_free(&c->out);
}

int
conn_flush(struct conn *c)
{
	while (c->out.len > 0) {
		ssize_t n = c->tls != NULL ? tls_write(c->tls, c->out.buf, c->out.len)
					   : send(c->fd, c->out.buf, c->out.len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		strbuf_consume(&c->out, (size_t)n);
	}
	return 0;
}

bool
conn_wants_write(const struct conn *c)
{
	return c->out.len > 0 || (c->tls != NULL && tls_wants_write(c->tls));
}

bool
conn_pending(const struct conn *c)
{
	return c->tls != NULL && tls_pending(c->tls);
}

short
conn_poll_events(const struct conn *c)
{
	return (short)(POLLIN | (conn_wants_write(c) ? POLLOUT : 0));
}

bool
conn_readable(const struct conn *c, short revents)
{
	/* A TLS read that had to write (a KeyUpdate reply) goes on once the socket takes it. */
	return (revents & (POLLIN | POLLHUP | POLLERR)) || conn_pending(c) ||
	       ((revents & POLLOUT) && c->tls != NULL && tls_wants_write(c->tls));
}

/* One read into the line buffer, in clear or through TLS, as linebuf_fill(). */
static ssize_t
fill(struct conn *c)
{
	size_t avail;
	char *space;
	ssize_t n;

	if (c->tls == NULL)
		return linebuf_fill(&c->in, c->fd);
	if ((space = linebuf_space(&c->in, &avail)) == NULL)
		return -1;
	n = tls_read(c->tls, space, avail);
	if (n > 0)
		linebuf_commit(&c->in, (size_t)n);
	return n;
}

int
conn_send(struct conn *c, const char *text, size_t len)
{
	if (c->fd < 0) {
		errno = ENOTCONN;
		return -1;
	}
	if (strbuf_add(&c->out, text, len) < 0 || strbuf_add(&c->out, "\n", 1) < 0)
		return -1;
	return conn_flush(c);
}

int
conn_read(struct conn *c)
{
	ssize_t n;

	do
		n = fill(c);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 1;
	return n > 0 ? 1 : (int)n;
}

enum linebuf_result
conn_next_line(struct conn *c, char **line, size_t *len)
{
	return linebuf_next(&c->in, line, len);
}

int
conn_wait_line(struct conn *c, int64_t deadline_ms, char **line, size_t *len)
{
	for (;;) {
		struct pollfd pfd = { .fd = c->fd };
		enum linebuf_result r = conn_next_line(c, line, len);
		int64_t left;
		int n;

		if (r == LB_LINE)
			return 1;
		if (r == LB_OVERLONG)
			return -2;
		if (conn_flush(c) < 0)
			return -1;
		pfd.events = conn_poll_events(c);
		left = deadline_ms - time_mono_ms();
		if (left <= 0)
			return 0;
		n = conn_pending(c) ? 0 : poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (n < 0 && errno != EINTR)
			return -1;
		if (conn_readable(c, n > 0 ? pfd.revents : 0)) {
			int rc = conn_read(c);

			if (rc == 0)
				errno = 0;
			if (rc <= 0)
				return -1;
		}
	}
}
