/*
 * test_lograte.c - the bound on log lines anyone can cause (lograte.h): a
 * burst per window, then counting; the summary from the next event, from
 * the tick once the window is over, or at shutdown; nothing counted below
 * the log level; exact counts with many threads logging at once (and the
 * TSan run).  Times are given, so nothing sleeps.  Each test has kinds of
 * its own: a kind stays on the tick's list for good.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lograte.h"

static char dir[64], path[96];

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/chatd-test-lograte-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/chatd.log", dir);
	log_set_level(LVL_DEBUG);
	log_set_stderr(false, false);
	return log_open(path);
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	log_close();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *
slurp(void)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Lines holding needle (not summaries), and the sum of what's summaries. */
static void
count(const char *needle, const char *what, unsigned long *lines, unsigned long *summed,
      unsigned *n_summaries)
{
	char *text = slurp(), *save = NULL, tail[128];

	*lines = *summed = 0;
	*n_summaries = 0;
	snprintf(tail, sizeof(tail), " more %s in the last ", what);
	for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		char *s = strstr(l, "... and ");
		unsigned long n;

		if (s != NULL && strstr(s, tail) != NULL && sscanf(s, "... and %lu", &n) == 1) {
			*summed += n;
			(*n_summaries)++;
		} else if (strstr(l, needle) != NULL)
			(*lines)++;
	}
	free(text);
}

/* n events of r at now: the logged ones as "NEEDLE i". */
static int
events(struct log_rate *r, int64_t now, int n, const char *needle)
{
	int passed = 0;

	for (int i = 0; i < n; i++)
		if (log_rate_pass(r, now)) {
			log_msg(r->level, "%s %d", needle, i);
			passed++;
		}
	return passed;
}

static struct log_rate burst_kind = LOG_RATE_INIT(LVL_WARNING, "burst events");

static void
test_burst_then_summary_from_the_tick(void **state)
{
	unsigned long lines, summed;
	unsigned n;
	char *text;

	(void)state;
	assert_int_equal(events(&burst_kind, 1000, 25, "burst-event"), LOG_RATE_BURST);
	count("burst-event", "burst events", &lines, &summed, &n);
	assert_int_equal(lines, LOG_RATE_BURST);
	assert_int_equal(n, 0);
	/* Before the window is over: no summary; the tick is due when it is. */
	assert_int_equal(log_rate_tick(1000 + 4000), 6000);
	count("burst-event", "burst events", &lines, &summed, &n);
	assert_int_equal(n, 0);
	/* Over, with nothing after: the tick sums it up, at the kind's level. */
	log_rate_tick(1000 + LOG_RATE_WINDOW_MS);
	count("burst-event", "burst events", &lines, &summed, &n);
	assert_int_equal(n, 1);
	assert_int_equal(summed, 25 - LOG_RATE_BURST);
	text = slurp();
	assert_non_null(strstr(text, " warning ... and 15 more burst events in the last 10 s\n"));
	free(text);
	/* Once: the next tick has nothing more to say. */
	log_rate_tick(1000 + 3 * LOG_RATE_WINDOW_MS);
	count("burst-event", "burst events", &lines, &summed, &n);
	assert_int_equal(n, 1);
	/* A new window: a new burst. */
	assert_int_equal(events(&burst_kind, 1000 + 4 * LOG_RATE_WINDOW_MS, 3, "burst-event"), 3);
}

static struct log_rate next_kind = LOG_RATE_INIT(LVL_INFO, "next events");

static void
test_the_next_event_after_the_window_sums_it_up_first(void **state)
{
	unsigned long lines, summed;
	unsigned n;
	char *text;

	(void)state;
	assert_int_equal(events(&next_kind, 5000, 12, "next-event"), LOG_RATE_BURST);
	/* One millisecond before the window is over: still counted in it. */
	assert_int_equal(events(&next_kind, 5000 + LOG_RATE_WINDOW_MS - 1, 1, "next-event"), 0);
	assert_int_equal(events(&next_kind, 5000 + LOG_RATE_WINDOW_MS, 1, "late-event"), 1);
	count("next-event", "next events", &lines, &summed, &n);
	assert_int_equal(lines, LOG_RATE_BURST);
	assert_int_equal(summed, 3);
	/* The summary comes before the line of the next window. */
	text = slurp();
	assert_true(strstr(text, "... and 3 more next events") < strstr(text, "late-event"));
	free(text);
}

static struct log_rate flush_kind = LOG_RATE_INIT(LVL_WARNING, "flushed events");
static struct log_rate quiet_kind = LOG_RATE_INIT(LVL_WARNING, "quiet events");

static void
test_shutdown_sums_up_a_window_not_over(void **state)
{
	unsigned long lines, summed;
	unsigned n;

	(void)state;
	events(&flush_kind, 2000, LOG_RATE_BURST + 3, "flush-event");
	events(&quiet_kind, 2000, 2, "quiet-event");
	log_rate_flush(2100);
	count("flush-event", "flushed events", &lines, &summed, &n);
	assert_int_equal(lines + summed, LOG_RATE_BURST + 3);
	assert_int_equal(n, 1);
	/* "in the last 1 s": a part of a second counts as one. */
	char *text = slurp();
	assert_non_null(strstr(text, "... and 3 more flushed events in the last 1 s\n"));
	/* A kind with nothing held back has no summary. */
	assert_null(strstr(text, "more quiet events"));
	free(text);
}

static struct log_rate debug_kind = LOG_RATE_INIT(LVL_DEBUG, "debug events");

static void
test_below_the_log_level_nothing_is_counted(void **state)
{
	unsigned long lines, summed;
	unsigned n;

	(void)state;
	log_set_level(LVL_INFO);
	assert_int_equal(events(&debug_kind, 3000, 50, "debug-event"), 0);
	log_set_level(LVL_DEBUG);
	log_rate_flush(3000 + LOG_RATE_WINDOW_MS);
	count("debug-event", "debug events", &lines, &summed, &n);
	assert_int_equal(lines + summed, 0);
	/* Logged again: a full burst. */
	assert_int_equal(events(&debug_kind, 4000, LOG_RATE_BURST, "debug-event"), LOG_RATE_BURST);
}

static struct log_rate counted_kind = LOG_RATE_COUNTED(LVL_WARNING, "counted events");

static void
test_a_counted_kind_logs_only_its_count(void **state)
{
	char *text;

	(void)state;
	assert_int_equal(events(&counted_kind, 6000, 7, "counted-event"), 0);
	log_rate_tick(6000 + LOG_RATE_WINDOW_MS);
	text = slurp();
	assert_null(strstr(text, "counted-event"));
	assert_non_null(strstr(text, " warning 7 counted events in the last 10 s\n"));
	free(text);
}

#define THREADS 8
#define PER_THREAD 5000
static struct log_rate thread_kind = LOG_RATE_INIT(LVL_WARNING, "thread events");

static void *
flood(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++)
		log_rated(&thread_kind, "thread-event %d", i);
	return NULL;
}

static void *
ticker(void *arg)
{
	_Atomic int *stop = arg;

	while (!*stop)
		log_rate_tick(time_mono_ms());
	return NULL;
}

static void
test_threads_at_once_lose_no_event(void **state)
{
	pthread_t t[THREADS], tick;
	_Atomic int stop = 0;
	unsigned long lines, summed;
	unsigned n;

	(void)state;
	assert_int_equal(pthread_create(&tick, NULL, ticker, &stop), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, flood, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	stop = 1;
	pthread_join(tick, NULL);
	log_rate_flush(time_mono_ms());
	count("thread-event", "thread events", &lines, &summed, &n);
	assert_int_equal(lines + summed, THREADS * PER_THREAD);
	assert_true(n >= 1);
	/* A burst per window: each but maybe the last also summed up. */
	assert_true(lines <= LOG_RATE_BURST * (n + 1));
}

#define RATE_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		RATE_TEST(test_burst_then_summary_from_the_tick),
		RATE_TEST(test_the_next_event_after_the_window_sums_it_up_first),
		RATE_TEST(test_shutdown_sums_up_a_window_not_over),
		RATE_TEST(test_below_the_log_level_nothing_is_counted),
		RATE_TEST(test_a_counted_kind_logs_only_its_count),
		RATE_TEST(test_threads_at_once_lose_no_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
