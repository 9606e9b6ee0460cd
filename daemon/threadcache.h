/*
 * threadcache.h - client threads kept for the next connection instead of
 * ending (see threadcache.c).
 */
#ifndef CHATD_THREADCACHE_H
#define CHATD_THREADCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many threads wait for a connection at a time. */
#define THREAD_CACHE_MAX 64
/* A thread that waited this long with no connection ends. */
#define THREAD_CACHE_IDLE_MS 10000

/*
 * Gives job to a waiting thread (the one that waited least) and wakes it;
 * false when none waits, and the caller starts a thread.  Any thread.
 */
bool thread_cache_give(void *job);

/*
 * Called by a thread done with its job: waits up to THREAD_CACHE_IDLE_MS
 * for the next one and returns it, or returns NULL at once when
 * THREAD_CACHE_MAX threads wait already or the cache is closed
 * (thread_cache_close); on NULL the thread ends.  The
 * caller holds no lock and nothing that belongs to the last job.
 */
void *thread_cache_park(void);

/* How many threads wait now (chatctl status, tests). */
size_t thread_cache_waiting(void);

/*
 * Counting the threads that serve jobs, for thread_cache_close(): the
 * creator calls thread_cache_started() before pthread_create() (and
 * thread_cache_ended() itself if that failed); the thread calls
 * thread_cache_ended() as its last act, after freeing what it kept from
 * one job to the next.
 */
void thread_cache_started(void);
void thread_cache_ended(void);

/*
 * Shutdown (the control thread, once no job is left): from now on a
 * thread done with its job ends instead of waiting, those waiting end at
 * once, and this waits until every thread counted has ended, or until
 * deadline_mono_ms; false then.
 */
bool thread_cache_close(int64_t deadline_mono_ms);

#endif
