/*
 * lograte.c - bounds the log lines of events anyone can cause (lograte.h).
 *
 * Owns each kind's window and counts (under the kind's mutex) and the list
 * of kinds that ever had an event (a stack pushed with compare-and-swap,
 * never popped, so the tick walks it without a lock).  log_rate_pass()
 * runs on any thread; log_rate_tick() and log_rate_flush() on the control
 * thread.
 */
#include <stdatomic.h>

#include "lograte.h"

static _Atomic(struct log_rate *) kinds;

static void
list_kind(struct log_rate *r)
{
	struct log_rate *head = atomic_load(&kinds);

	do
		r->next = head;
	while (!atomic_compare_exchange_weak(&kinds, &head, r));
}

/* Under r->lock: one line for what the window held back, and the window ends. */
static void
summarize_locked(struct log_rate *r, int64_t now)
{
	if (r->held > 0) {
		int64_t ms = now - r->window_start;
		long long s = (ms + 999) / 1000;

		if (r->burst > 0)
			log_msg(r->level, "... and %lu more %s in the last %lld s", r->held,
				r->what, s > 0 ? s : 1);
		else
			log_msg(r->level, "%lu %s in the last %lld s", r->held, r->what,
				s > 0 ? s : 1);
	}
	r->in_window = false;
	r->passed = 0;
	r->held = 0;
}

bool
log_rate_pass(struct log_rate *r, int64_t now)
{
	bool pass, list;

	if (!log_enabled(r->level))
		return false;
	pthread_mutex_lock(&r->lock);
	if (r->in_window && now - r->window_start >= LOG_RATE_WINDOW_MS)
		summarize_locked(r, now);
	if (!r->in_window) {
		r->in_window = true;
		r->window_start = now;
	}
	pass = r->passed < r->burst;
	if (pass)
		r->passed++;
	else
		r->held++;
	list = !r->listed;
	r->listed = true;
	pthread_mutex_unlock(&r->lock);
	if (list)
		list_kind(r);
	return pass;
}

int
log_rate_tick(int64_t now)
{
	int64_t next = LOG_RATE_WINDOW_MS;

	for (struct log_rate *r = atomic_load(&kinds); r != NULL; r = r->next) {
		pthread_mutex_lock(&r->lock);
		if (r->in_window) {
			int64_t left = r->window_start + LOG_RATE_WINDOW_MS - now;

			if (left <= 0)
				summarize_locked(r, now);
			else if (r->held > 0 && left < next)
				next = left;
		}
		pthread_mutex_unlock(&r->lock);
	}
	return (int)next;
}

void
log_rate_flush(int64_t now)
{
	for (struct log_rate *r = atomic_load(&kinds); r != NULL; r = r->next) {
		pthread_mutex_lock(&r->lock);
		if (r->in_window)
			summarize_locked(r, now);
		pthread_mutex_unlock(&r->lock);
	}
}
