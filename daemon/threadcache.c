/*
 * threadcache.c - client threads kept for the next connection (see
 * threadcache.h).
 *
 * Starting and ending a thread per connection took about a third of
 * chatd's CPU per TLS handshake: the clone, glibc's release of the
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
 *
 * A thread keeps its OpenSSL state (random generators, error queue) from
 * one connection to the next, since making it again for each cost about 4 %
 * of a handshake's instructions.  It must free that before exit() starts
 * OpenSSL's cleanup, so chatd's shutdown closes the cache: the waiting
 * threads end, the rest end instead of waiting, and thread_cache_close()
 * waits for the count of threads started and not ended to reach 0.
 */
#include <errno.h>
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
static size_t n_threads;       /* under cache_lock: started and not ended */
static bool closing;           /* under cache_lock: shutdown, nobody waits */
static pthread_cond_t all_ended = PTHREAD_COND_INITIALIZER; /* n_threads reached 0 */

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
	if (closing || n_waiting >= THREAD_CACHE_MAX) {
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
	while (w.job == NULL && !closing)
		if (pthread_cond_timedwait(&w.wake, &cache_lock, &until) != 0 && w.job == NULL &&
		    !closing) {
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

void
thread_cache_started(void)
{
	pthread_mutex_lock(&cache_lock);
	n_threads++;
	pthread_mutex_unlock(&cache_lock);
}

void
thread_cache_ended(void)
{
	pthread_mutex_lock(&cache_lock);
	if (--n_threads == 0)
		pthread_cond_broadcast(&all_ended);
	pthread_mutex_unlock(&cache_lock);
}

bool
thread_cache_close(int64_t deadline_mono_ms)
{
	struct timespec ts;

	/* all_ended runs on CLOCK_REALTIME; convert the deadline. */
	int64_t wall = time_now_ms() + (deadline_mono_ms - time_mono_ms());
	ts.tv_sec = wall / 1000;
	ts.tv_nsec = (wall % 1000) * 1000000;
	pthread_mutex_lock(&cache_lock);
	closing = true;
	for (struct waiter *w = waiting; w != NULL; w = w->next)
		pthread_cond_signal(&w->wake); /* job NULL: it ends */
	waiting = NULL;
	n_waiting = 0;
	while (n_threads > 0)
		if (pthread_cond_timedwait(&all_ended, &cache_lock, &ts) == ETIMEDOUT)
			break;
	bool ended = n_threads == 0;
	pthread_mutex_unlock(&cache_lock);
	return ended;
}
