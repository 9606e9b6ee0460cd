/*
 * cowriter.c - the co-writer thread (cowriter.h).  Owns the thread and the
 * hand-over: a range, a busy flag (and one to stop) and two condition
 * variables, work and done, under the co-writer's own mutex (a leaf
 * lock: the publisher takes it with the room lock held, the thread with
 * nothing else held).  What the thread writes
 * (the pass's entries) becomes visible to the publisher through that
 * mutex, and to everyone else through the room lock the publisher holds.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "cowriter.h"

struct cowriter {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work; /* the thread waits for a range or stop */
	pthread_cond_t done; /* the publisher waits for the range to be written */
	cowriter_fn fn;
	void *arg;
	size_t from, to;
	bool busy; /* a range is handed over and not yet written */
	bool stop;
};

static void *
cowriter_main(void *arg)
{
	struct cowriter *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->busy && !w->stop)
			pthread_cond_wait(&w->work, &w->lock);
		if (w->stop)
			break;
		size_t from = w->from, to = w->to;

		pthread_mutex_unlock(&w->lock);
		w->fn(w->arg, from, to);
		pthread_mutex_lock(&w->lock);
		w->busy = false;
		pthread_cond_signal(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct cowriter *
cowriter_start(cowriter_fn fn, void *arg)
{
	struct cowriter *w;
	sigset_t all, old;
	int err;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || (w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->fn = fn;
	w->arg = arg;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->done, NULL);
	/* Signals are the control thread's (its signalfd) and the clients' ppoll()'s, never this one's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&w->thread, NULL, cowriter_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		pthread_cond_destroy(&w->done);
		pthread_cond_destroy(&w->work);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void
cowriter_begin(struct cowriter *w, size_t from, size_t to)
{
	pthread_mutex_lock(&w->lock);
	w->from = from;
	w->to = to;
	w->busy = true;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->lock);
}

void
cowriter_wait(struct cowriter *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->busy)
		pthread_cond_wait(&w->done, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

void
cowriter_stop(struct cowriter *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
