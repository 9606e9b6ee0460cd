/*
 * lograte.h - log lines that anyone can cause, bounded per kind of event.
 *
 * A connection refused, a TLS handshake that failed, a login that went
 * away: a peer without an account can cause such a line each time it
 * connects, thousands a second.  Each kind of such event has a struct
 * log_rate: in a window of LOG_RATE_WINDOW_MS from its first line, the
 * first LOG_RATE_BURST events are logged as they come; the rest are only
 * counted, and one summary line says how many were left out, at the
 * kind's level:
 *
 *   "... and 4213 more refused connections (over max_clients) in the last 10 s"
 *
 * The summary comes with the kind's next event after the window, or from
 * the control thread's tick (log_rate_tick()) once the window is over
 * even if no event follows, or at shutdown (log_rate_flush()): every event
 * is either logged or counted in exactly one summary.  Events below the
 * log level are neither logged nor counted.
 *
 * A kind made with LOG_RATE_COUNTED logs no event by itself (a line of its
 * own tells of the state that causes them, once in a while); its summary
 * says how many there were: "37 connections refused for want of
 * descriptors in the last 10 s".
 *
 * Thread-safe: any thread may call log_rated(); each kind has a mutex of
 * its own, a leaf but for the log's own hold lock (a summary is written
 * under it, so it comes before the next window's lines), and may be taken
 * under the peers lock.  A kind is a static object of the file that logs
 * it; it joins the list the tick walks at its first event and stays there.
 */
#ifndef CHATD_LOGRATE_H
#define CHATD_LOGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "timefmt.h"

#define LOG_RATE_WINDOW_MS 10000
#define LOG_RATE_BURST 10

struct log_rate {
	pthread_mutex_t lock;
	enum log_level level;
	unsigned burst;        /* events logged per window: LOG_RATE_BURST, or 0 */
	const char *what;      /* plural, as in "and N more WHAT in the last 10 s" */
	int64_t window_start;  /* time_mono_ms() of the window's first event */
	bool in_window;        /* a window is open: window_start means something */
	unsigned passed;       /* events logged in the window */
	unsigned long held;    /* events counted, not logged, in the window */
	bool listed;           /* on the tick's list (never leaves it) */
	struct log_rate *next; /* the tick's list */
};

#define LOG_RATE_INIT(lvl, plural_what) \
	{ \
		.lock = PTHREAD_MUTEX_INITIALIZER, .level = (lvl), .burst = LOG_RATE_BURST, \
		.what = (plural_what) \
	}
#define LOG_RATE_COUNTED(lvl, plural_what) \
	{ \
		.lock = PTHREAD_MUTEX_INITIALIZER, .level = (lvl), .burst = 0, \
		.what = (plural_what) \
	}

/*
 * Whether this event of kind r may be logged now (at time now,
 * time_mono_ms()); if not, it is counted.  A window of r that is over is
 * summed up first.  False too if r's level is not logged at all.
 */
bool log_rate_pass(struct log_rate *r, int64_t now);

#define log_rated(r, ...) \
	do { \
		if (log_rate_pass((r), time_mono_ms())) \
			log_msg((r)->level, __VA_ARGS__); \
	} while (0)

/* Counts an event of a LOG_RATE_COUNTED kind. */
#define log_rate_count(r) ((void)log_rate_pass((r), time_mono_ms()))

/*
 * The control thread's tick: a summary for each kind whose window is over
 * with events held.  Returns the poll timeout (ms) until the next one may
 * be due, at most LOG_RATE_WINDOW_MS.
 */
int log_rate_tick(int64_t now);

/* At shutdown: a summary for every kind with events held, windows over or not. */
void log_rate_flush(int64_t now);

#endif
