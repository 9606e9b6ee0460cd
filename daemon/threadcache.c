/*
 * threadcache.c - client threads kept for the next connection (see
 * threadcache.h).
 *
 * Starting and ending a thread per connection cost more CPU than the rest
 * of a TLS handshake's bookkeeping: the clone, glibc's release of the
 * stack's pages at the thread's end (an madvise() whose TLB shootdown
 * interrupts the other cores), the malloc arena's trim, and page faults on
 * a fresh stack for the next one (bench/RESULTS.md, "TLS handshakes: where
 * the CPU goes").  So a thread done with its connection waits a while for
 * the next: the listener hands it over instead of starting a thread.  At
 * most THREAD_CACHE_MAX wait, so a burst that ended leaves few threads
 * behind, and each ends after THREAD_CACHE_IDLE_MS unused.
 *
 * Each waiting thread is a struct waiter on its own stack, on a list
 * (last parked first: its stack and caches are the warmest) under
 * cache_lock, a leaf.  A giver takes it off the list and sets its job
 * under the lock, so a waiter whose wait timed out at that moment still
 * finds the job and serves it.  Any thread may give; only a thread
 * created to serve jobs parks.
 */
#include <pthread.h>
#include <time.h>

#include "threadcache.h"
#include "timefmt.h"

struct waiter {
	struct waiter *next;
	pthread_cond_t wake;
	void *job; /* set by the giver, under cache_lock */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct waiter *waiting; /* under cache_lock: the last parked first */
static size_t n_waiting;       /* under cache_lock */

bool
thread_cache_give(void *job)
{
	pthread_mutex_lock(&cache_lock);
	struct waiter *w = waiting;
	if (w != NULL) {
		waiting = w->next;
		n_waiting--;
		w->job = job;
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&cache_lock);
	return w != NULL;
}

static void
unlink_locked(struct waiter *w)
{
	for (struct waiter **p = &waiting; *p != NULL; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			n_waiting--;
			return;
		}
}

void *
thread_cache_park(void)
{
	struct waiter w = { .job = NULL };
	pthread_condattr_t attr;
	struct timespec until;
	void *job;

	pthread_mutex_lock(&cache_lock);
	if (n_waiting >= THREAD_CACHE_MAX) {
		pthread_mutex_unlock(&cache_lock);
		return NULL;
	}
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.wake, &attr);
	pthread_condattr_destroy(&attr);
	w.next = waiting;
	waiting = &w;
	n_waiting++;
	until = time_after_ms(CLOCK_MONOTONIC, THREAD_CACHE_IDLE_MS);
	while (w.job == NULL)
		if (pthread_cond_timedwait(&w.wake, &cache_lock, &until) != 0 && w.job == NULL) {
			unlink_locked(&w);
			break;
		}
	job = w.job;
	pthread_mutex_unlock(&cache_lock);
	pthread_cond_destroy(&w.wake);
	return job;
}

size_t
thread_cache_waiting(void)
{
	pthread_mutex_lock(&cache_lock);
	size_t n = n_waiting;
	pthread_mutex_unlock(&cache_lock);
	return n;
}
