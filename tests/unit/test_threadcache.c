/*
 * test_threadcache.c - a thread done with its job waits for the next and
 * gets exactly the one given to it; no more than THREAD_CACHE_MAX wait.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "threadcache.h"
#include "timefmt.h"

#define WAIT_MS 10000 /* for the parked count to reach a value */

struct worker {
	pthread_t tid;
	int jobs[4]; /* what it was given, in order */
	int n_jobs;
	void *last;        /* what its last park returned */
	int64_t parked_ms; /* how long its first park took */
};

/* Serves its first job, then what the cache hands it, as a client thread does; four in all. */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	void *job = &w->jobs[0]; /* its first job: "started with" */

	do
		w->jobs[w->n_jobs++] = (int)(intptr_t)(job == &w->jobs[0] ? 0 : job);
	while (w->n_jobs < 4 && (job = thread_cache_park()) != NULL);
	w->last = job;
	return NULL;
}

static void
await_waiting(size_t n)
{
	int64_t deadline = time_mono_ms() + WAIT_MS;

	while (thread_cache_waiting() != n && time_mono_ms() < deadline)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	assert_int_equal(thread_cache_waiting(), n);
}

static void
test_nobody_waits(void **state)
{
	(void)state;
	await_waiting(0);
	assert_false(thread_cache_give((void *)(intptr_t)7));
}

static void
test_handed_over_in_order(void **state)
{
	struct worker w = { 0 };

	(void)state;
	assert_int_equal(pthread_create(&w.tid, NULL, worker_main, &w), 0);
	await_waiting(1);
	assert_true(thread_cache_give((void *)(intptr_t)11));
	await_waiting(1); /* served it, waits again */
	assert_true(thread_cache_give((void *)(intptr_t)12));
	await_waiting(1);
	assert_true(thread_cache_give((void *)(intptr_t)13));
	assert_int_equal(pthread_join(w.tid, NULL), 0);
	assert_int_equal(w.n_jobs, 4);
	assert_int_equal(w.jobs[0], 0);
	assert_int_equal(w.jobs[1], 11);
	assert_int_equal(w.jobs[2], 12);
	assert_int_equal(w.jobs[3], 13);
	await_waiting(0);
	assert_false(thread_cache_give((void *)(intptr_t)14));
}

#define JOBS (3 * THREAD_CACHE_MAX)
#define STOP ((void *)(intptr_t)-1)

static atomic_int served[JOBS + 1]; /* how often each job was served */
static atomic_int stopped;

/* Serves what the cache hands it until STOP; its last park's result in w->last. */
static void *
serve_until_stop(void *arg)
{
	struct worker *w = arg;
	int64_t t0 = time_mono_ms();
	void *job = thread_cache_park();

	w->parked_ms = time_mono_ms() - t0;
	for (; job != NULL && job != STOP; job = thread_cache_park())
		atomic_fetch_add(&served[(intptr_t)job], 1);
	if (job == STOP)
		atomic_fetch_add(&stopped, 1);
	w->last = job;
	return NULL;
}

/* Gives job to whichever thread waits, waiting for one to; the test fails after WAIT_MS. */
static void
give_soon(void *job)
{
	int64_t deadline = time_mono_ms() + WAIT_MS;

	while (!thread_cache_give(job) && time_mono_ms() < deadline)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	assert_true(time_mono_ms() < deadline);
}

/*
 * THREAD_CACHE_MAX threads wait, one more is turned away at once; every
 * job given is served exactly once, whichever thread takes it.
 */
static void
test_at_most_max_wait(void **state)
{
	static struct worker w[THREAD_CACHE_MAX + 1];

	(void)state;
	for (int i = 0; i < THREAD_CACHE_MAX; i++)
		assert_int_equal(pthread_create(&w[i].tid, NULL, serve_until_stop, &w[i]), 0);
	await_waiting(THREAD_CACHE_MAX);
	assert_int_equal(pthread_create(&w[THREAD_CACHE_MAX].tid, NULL, serve_until_stop,
					&w[THREAD_CACHE_MAX]),
			 0);
	assert_int_equal(pthread_join(w[THREAD_CACHE_MAX].tid, NULL), 0);
	assert_null(w[THREAD_CACHE_MAX].last);
	assert_in_range(w[THREAD_CACHE_MAX].parked_ms, 0, THREAD_CACHE_IDLE_MS / 2); /* at once */
	assert_int_equal(thread_cache_waiting(), THREAD_CACHE_MAX);

	for (intptr_t job = 1; job <= JOBS; job++)
		give_soon((void *)job);
	for (int i = 0; i < THREAD_CACHE_MAX; i++)
		give_soon(STOP);
	for (int i = 0; i < THREAD_CACHE_MAX; i++) {
		assert_int_equal(pthread_join(w[i].tid, NULL), 0);
		assert_ptr_equal(w[i].last, STOP);
	}
	assert_int_equal(atomic_load(&stopped), THREAD_CACHE_MAX);
	for (int job = 1; job <= JOBS; job++)
		assert_int_equal(atomic_load(&served[job]), 1);
	assert_int_equal(thread_cache_waiting(), 0);
	assert_false(thread_cache_give((void *)(intptr_t)1));
}

static atomic_bool release_busy; /* the busy thread may end */

/* A counted thread that waits in the cache, then ends as client.c's do. */
static void *
counted_waiter(void *arg)
{
	struct worker *w = arg;

	w->last = thread_cache_park();
	thread_cache_ended();
	return NULL;
}

/* A counted thread still busy with its job until released. */
static void *
counted_busy(void *arg)
{
	(void)arg;
	while (!atomic_load(&release_busy))
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	thread_cache_ended();
	return NULL;
}

/*
 * Shutdown: waiting threads end at once, close waits for the busy ones to
 * end and says when they did not in time; nothing waits afterwards.  The
 * cache stays closed: this test runs last.
 */
static void
test_close_waits_for_every_thread(void **state)
{
	struct worker waiter = { 0 }, late = { 0 };
	pthread_t busy;

	(void)state;
	thread_cache_started();
	assert_int_equal(pthread_create(&waiter.tid, NULL, counted_waiter, &waiter), 0);
	await_waiting(1);
	thread_cache_started();
	assert_int_equal(pthread_create(&busy, NULL, counted_busy, NULL), 0);

	/* The busy one holds it up: not ended by the deadline. */
	assert_false(thread_cache_close(time_mono_ms() + 200));
	assert_int_equal(pthread_join(waiter.tid, NULL), 0);
	assert_null(waiter.last); /* woken with no job */
	assert_int_equal(thread_cache_waiting(), 0);

	atomic_store(&release_busy, true);
	assert_true(thread_cache_close(time_mono_ms() + WAIT_MS));
	assert_int_equal(pthread_join(busy, NULL), 0);

	/* Closed: a thread done with its job does not wait. */
	thread_cache_started();
	assert_int_equal(pthread_create(&late.tid, NULL, counted_waiter, &late), 0);
	assert_int_equal(pthread_join(late.tid, NULL), 0);
	assert_null(late.last);
	assert_false(thread_cache_give((void *)(intptr_t)1));
	assert_true(thread_cache_close(time_mono_ms() + WAIT_MS));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nobody_waits),
		cmocka_unit_test(test_handed_over_in_order),
		cmocka_unit_test(test_at_most_max_wait),
		cmocka_unit_test(test_close_waits_for_every_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
