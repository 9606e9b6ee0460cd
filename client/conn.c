/*
 * conn.c - the client's socket: connect with a deadline to each address
 * the name resolves to, non-blocking reads cut into lines by the linebuf
 * of common/, and an output queue flushed when poll() says the socket can
 * take more; and the wait between reconnect attempts.
 */
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

void
conn_init(struct conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
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
		ssize_t n = send(c->fd, c->out.buf, c->out.len, MSG_NOSIGNAL);

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
	return c->out.len > 0;
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
		n = linebuf_fill(&c->in, c->fd);
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
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		enum linebuf_result r = conn_next_line(c, line, len);
		int64_t left;
		int n;

		if (r == LB_LINE)
			return 1;
		if (r == LB_OVERLONG)
			return -2;
		if (conn_flush(c) < 0)
			return -1;
		if (conn_wants_write(c))
			pfd.events |= POLLOUT;
		left = deadline_ms - time_mono_ms();
		if (left <= 0)
			return 0;
		n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (n < 0 && errno != EINTR)
			return -1;
		if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
			int rc = conn_read(c);

			if (rc == 0)
				errno = 0;
			if (rc <= 0)
				return -1;
		}
	}
}
