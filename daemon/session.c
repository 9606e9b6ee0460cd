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
 * client_wake() and client_unref() may be called by any thread (with a
 * reference); session_thread_enter(), session_wait() and
 * session_thread_leave() only by the client's own thread.  Nothing here
 * calls into the hub or the front-end: they call down into it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "timefmt.h"

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
	    size_t max_line)
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
