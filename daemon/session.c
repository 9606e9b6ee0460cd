/*
 * session.c - one connected client's life as a struct client (session.h):
 * making and freeing it (refs), and waking its thread.
 *
 * Waking a client thread: a flag, and a signal that cuts its ppoll()
 * short.  The signal is blocked everywhere else (every thread starts with
 * all signals blocked), so it never interrupts anything but that wait; one
 * sent before the thread waits stays pending and ends the wait at once,
 * and the flag covers a thread that has not started yet.  It costs no
 * descriptor: a client's socket is the only one it needs.
 *
 * The connection's bytes go through session_read() and session_writev(),
 * plain or TLS (OpenSSL), by the holder of the write rights (session.h):
 * the thread, or the room's write-through while it sleeps.  The handshake
 * is made in steps by the thread (session_handshake_step), which waits
 * between them as it waits for input.
 *
 * client_wake() and client_unref() may be called by any thread (with a
 * reference); session_thread_enter(), session_wait(),
 * session_handshake_step(), session_pending(), session_close_notify(),
 * session_tls_free() and session_thread_leave() only by the client's own
 * thread.  Nothing here
 * calls into the hub or the front-end: they call down into it.
 */
#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "timefmt.h"
#include "tls.h"

#define WAKE_SIGNAL SIGURG

static sigset_t wait_mask; /* the threads' mask, but WAKE_SIGNAL open */
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;

static void
on_wake_signal(int sig)
{
	(void)sig; /* its only job is to end the ppoll() */
}

static void
wake_setup(void)
{
	struct sigaction sa = { .sa_handler = on_wake_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(WAKE_SIGNAL, &sa, NULL);
	/* The mask every thread has (the signals that must kill stay open), minus the wake-up. */
	pthread_sigmask(SIG_BLOCK, NULL, &wait_mask);
	sigdelset(&wait_mask, WAKE_SIGNAL);
}

struct client *
session_new(uint64_t id, int fd, const struct sockaddr_storage *addr, const char *addr_str,
	    size_t max_line, bool is_tls)
{
	struct client *c;

	pthread_once(&wake_once, wake_setup);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (linebuf_init(&c->in, max_line) < 0) {
		free(c);
		return NULL;
	}
	atomic_init(&c->tid, 0);
	atomic_init(&c->wake_pending, false);
	atomic_init(&c->refs, 1);
	c->id = id;
	c->fd = fd;
	c->addr = *addr;
	snprintf(c->addr_str, sizeof(c->addr_str), "%s", addr_str);
	c->connected_ms = time_now_ms();
	c->is_tls = is_tls;
	outq_init(&c->out);
	return c;
}

void
client_unref(struct client *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	linebuf_free(&c->in);
	outq_free(&c->out);
	SSL_free(c->tls);
	free(c);
}

void
client_wake(struct client *c)
{
	atomic_store(&c->wake_pending, true);
	pid_t tid = atomic_load(&c->tid);
	if (tid > 0)
		tgkill(getpid(), tid, WAKE_SIGNAL);
}

void
session_thread_enter(struct client *c)
{
	sigset_t wake_only;

	/* Blocked but in ppoll() (session_wait), whoever started this thread. */
	sigemptyset(&wake_only);
	sigaddset(&wake_only, WAKE_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &wake_only, NULL);
	atomic_store(&c->tid, gettid());
}

void
session_thread_leave(struct client *c)
{
	atomic_store(&c->tid, 0);
}

int
session_wait(struct client *c, struct pollfd *pfd, nfds_t n, int timeout_ms, bool *woken)
{
	struct timespec ts, *tsp = NULL;

	*woken = atomic_exchange(&c->wake_pending, false);
	if (*woken)
		timeout_ms = 0; /* just look at the socket */
	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
		tsp = &ts;
	}
	int rc = ppoll(pfd, n, tsp, &wait_mask);
	if (rc < 0 && errno == EINTR) {
		rc = 0;
		for (nfds_t i = 0; i < n; i++)
			pfd[i].revents = 0;
	}
	if (!*woken)
		*woken = atomic_exchange(&c->wake_pending, false);
	return rc;
}

/* ---- the connection's bytes ---- */

/*
 * What a failed SSL call on c means, as read() or writev() would say it.
 * OpenSSL's error queue (per thread) is emptied: the next connection this
 * thread serves (write-through serves many) starts clean.
 */
static ssize_t
tls_failed(struct client *c, int rc)
{
	int err = SSL_get_error(c->tls, rc);
	ssize_t ret = -1;

	switch (err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		break;
	case SSL_ERROR_ZERO_RETURN: /* close_notify, or the peer's end (no truncation check) */
		ret = 0;
		break;
	case SSL_ERROR_SYSCALL:
		c->tls_broken = true;
		if (errno == 0 || errno == EAGAIN)
			errno = ECONNRESET;
		break;
	default:
		c->tls_broken = true;
		errno = EPROTO;
		break;
	}
	ERR_clear_error();
	return ret;
}

int
session_handshake_step(struct client *c)
{
	int rc;

	if (c->tls == NULL) {
		SSL_CTX *ctx = tls_ctx_get();

		c->tls = ctx != NULL ? SSL_new(ctx) : NULL;
		SSL_CTX_free(ctx); /* the SSL holds its own reference */
		if (c->tls == NULL || SSL_set_fd(c->tls, c->fd) != 1) {
			ERR_clear_error();
			c->tls_broken = true;
			errno = ENOMEM;
			return -1;
		}
	}
	ERR_clear_error();
	if ((rc = SSL_accept(c->tls)) == 1)
		return 0;
	switch (SSL_get_error(c->tls, rc)) {
	case SSL_ERROR_WANT_READ:
		return POLLIN;
	case SSL_ERROR_WANT_WRITE:
		return POLLOUT;
	default:
		tls_failed(c, rc);
		return -1;
	}
}

ssize_t
session_read(struct client *c, void *buf, size_t len)
{
	size_t got;

	if (c->tls == NULL)
		return read(c->fd, buf, len);
	if (c->tls_broken) {
		errno = EPROTO;
		return -1;
	}
	ERR_clear_error();
	if (SSL_read_ex(c->tls, buf, len, &got) == 1)
		return (ssize_t)got;
	return tls_failed(c, 0);
}

/* Where the next record starts: iovec i, byte off in it. */
struct iov_pos {
	int i;
	size_t off;
};

static void
iov_skip_empty(const struct iovec *iov, int n, struct iov_pos *at)
{
	while (at->i < n && at->off == iov[at->i].iov_len) {
		at->i++;
		at->off = 0;
	}
}

/*
 * The next record's bytes from at: min(what is left, SESSION_TLS_WRITE),
 * pointed to in place when one iovec holds them all, else gathered into
 * buf.  Always that many, whatever the layout: a retry after EAGAIN then
 * passes the same bytes first and no fewer of them, as OpenSSL requires
 * (what was left can only have grown).
 */
static size_t
next_record(const struct iovec *iov, int n, struct iov_pos at, char *buf, const void **data)
{
	size_t len = 0;

	if (at.i >= n)
		return 0;
	size_t here = iov[at.i].iov_len - at.off;
	if (here >= SESSION_TLS_WRITE || at.i == n - 1) {
		*data = (const char *)iov[at.i].iov_base + at.off;
		return here < SESSION_TLS_WRITE ? here : SESSION_TLS_WRITE;
	}
	for (; at.i < n && len < SESSION_TLS_WRITE; at.i++, at.off = 0) {
		size_t left = iov[at.i].iov_len - at.off;
		size_t take = left < SESSION_TLS_WRITE - len ? left : SESSION_TLS_WRITE - len;

		memcpy(buf + len, (const char *)iov[at.i].iov_base + at.off, take);
		len += take;
	}
	*data = buf;
	return len;
}

static void
iov_advance(const struct iovec *iov, int n, struct iov_pos *at, size_t bytes)
{
	while (bytes > 0 && at->i < n) {
		size_t left = iov[at->i].iov_len - at->off;
		size_t step = bytes < left ? bytes : left;

		at->off += step;
		bytes -= step;
		iov_skip_empty(iov, n, at);
	}
}

/*
 * Record after record until all is written or the socket is full, so a
 * batch longer than a record reaches a member asleep in the write-through
 * without waking it.  What was written counts even when a later record
 * failed: the next call says why.
 */
ssize_t
session_writev(struct client *c, const struct iovec *iov, int n)
{
	char buf[SESSION_TLS_WRITE];
	struct iov_pos at = { 0, 0 };
	size_t done = 0, len, wrote;
	const void *data;

	if (c->tls == NULL)
		return writev(c->fd, iov, n);
	if (c->tls_broken) {
		errno = EPIPE;
		return -1;
	}
	iov_skip_empty(iov, n, &at);
	while ((len = next_record(iov, n, at, buf, &data)) > 0) {
		ERR_clear_error();
		if (SSL_write_ex(c->tls, data, len, &wrote) != 1) {
			ssize_t rc = tls_failed(c, 0);

			return done > 0 ? (ssize_t)done : rc;
		}
		done += wrote;
		iov_advance(iov, n, &at, wrote);
	}
	return (ssize_t)done;
}

/*
 * SSL_pending(), not SSL_has_pending(): the latter is true for half a
 * record too, which no read can finish before more comes, and the thread
 * would spin instead of waiting in ppoll() for the rest.  Without
 * read-ahead OpenSSL takes no more from the socket than the record it
 * reads, so the records after it still wake ppoll().
 */
bool
session_pending(const struct client *c)
{
	return c->tls != NULL && !c->tls_broken && SSL_pending(c->tls) > 0;
}

void
session_close_notify(struct client *c)
{
	if (c->tls == NULL || c->tls_broken || !SSL_is_init_finished(c->tls))
		return;
	ERR_clear_error();
	SSL_shutdown(c->tls); /* once: chatd does not wait for the peer's */
	ERR_clear_error();
}

void
session_tls_free(struct client *c)
{
	SSL_free(c->tls);
	c->tls = NULL;
	ERR_clear_error();
}
