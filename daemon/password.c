/*
 * password.c - yescrypt hashes through libxcrypt, and the gate that bounds
 * how many of them run at once.
 *
 * The gate hands its slots out first come, first served: a thread that
 * finds none free queues a waiter of its own (on its stack, with its own
 * condition variable on the monotonic clock) and is handed a slot by the
 * thread that leaves one.  A storm of logins is served in arrival order, so
 * none of them starves past its deadline while later ones go first (a
 * semaphore promises no order).  A waiter that gives up (its deadline, or
 * gone() says its connection went) takes itself off the queue.  Without
 * password_gate_init() hashes are not bounded, which keeps tools and tests
 * that never start a server simple.  A thread may hold a slot across
 * several hashes (password_gate_enter(): a login waits for its slot no
 * longer than its deadline); held counts that, per thread.
 */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "password.h"
#include "timefmt.h"

#define COST_MIN 1
#define COST_MAX 11

struct gate_waiter {
	struct gate_waiter *next;
	pthread_cond_t cond;
	bool granted; /* a leaving thread handed it its slot */
};

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static bool gate_ready;
static unsigned gate_free;             /* slots nobody holds */
static struct gate_waiter *queue_head; /* oldest first */
static struct gate_waiter **queue_tail = &queue_head;
static size_t queue_len;
static _Thread_local unsigned held; /* slots taken with password_gate_enter(), this thread */
static _Thread_local int64_t deadline = -1; /* password_gate_deadline(), this thread */
static _Thread_local bool (*gone)(void *);  /* password_gate_abort_if(), this thread */
static _Thread_local void *gone_arg;

#define GATE_POLL_MS 100 /* how often a wait with gone set looks at it */

int
password_gate_init(int concurrency)
{
	long n = concurrency;

	if (gate_ready) {
		errno = EBUSY;
		return -1;
	}
	if (concurrency < 0) {
		errno = EINVAL;
		return -1;
	}
	if (n == 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
	}
	pthread_mutex_lock(&gate_lock);
	gate_free = (unsigned)n;
	gate_ready = true;
	pthread_mutex_unlock(&gate_lock);
	return 0;
}

void
password_gate_destroy(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_ready = false;
	gate_free = 0;
	pthread_mutex_unlock(&gate_lock);
}

size_t
password_gate_waiting(void)
{
	pthread_mutex_lock(&gate_lock);
	size_t n = queue_len;
	pthread_mutex_unlock(&gate_lock);
	return n;
}

static void
gate_leave(void)
{
	pthread_mutex_lock(&gate_lock);
	if (gate_ready) {
		struct gate_waiter *w = queue_head;

		if (w != NULL) { /* the slot goes to the oldest waiter, not back to the pool */
			queue_head = w->next;
			if (queue_head == NULL)
				queue_tail = &queue_head;
			queue_len--;
			w->granted = true;
			pthread_cond_signal(&w->cond);
		} else {
			gate_free++;
		}
	}
	pthread_mutex_unlock(&gate_lock);
}

static void
queue_remove(struct gate_waiter *w)
{
	for (struct gate_waiter **p = &queue_head; *p != NULL; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			if (queue_tail == &w->next)
				queue_tail = p;
			queue_len--;
			return;
		}
}

/* Waits (gate_lock held) until w is granted or until_ms (monotonic; negative: no limit). */
static void
wait_granted(struct gate_waiter *w, int64_t until_ms)
{
	while (!w->granted) {
		if (until_ms < 0) {
			pthread_cond_wait(&w->cond, &gate_lock);
			continue;
		}
		struct timespec ts = { .tv_sec = until_ms / 1000,
				       .tv_nsec = (until_ms % 1000) * 1000000 };

		if (pthread_cond_timedwait(&w->cond, &gate_lock, &ts) == ETIMEDOUT)
			return;
	}
}

/*
 * A slot by deadline_ms (monotonic; negative: no limit), in arrival order;
 * 0, or -1 with errno ETIMEDOUT (or ECONNABORTED once gone() says so).
 */
static int
gate_enter_by(int64_t deadline_ms)
{
	struct gate_waiter w = { .granted = false };
	pthread_condattr_t attr;
	int rc = 0;

	pthread_mutex_lock(&gate_lock);
	if (!gate_ready || (gate_free > 0 && queue_head == NULL)) {
		if (gate_ready)
			gate_free--;
		pthread_mutex_unlock(&gate_lock);
		return 0;
	}
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &attr);
	pthread_condattr_destroy(&attr);
	*queue_tail = &w;
	queue_tail = &w.next;
	queue_len++;
	for (;;) {
		int64_t now = time_mono_ms(), until = deadline_ms;

		if (gone != NULL && (until < 0 || until > now + GATE_POLL_MS))
			until = now + GATE_POLL_MS;
		wait_granted(&w, until);
		if (w.granted)
			break;
		/* The lock is not held while gone() looks at the connection. */
		pthread_mutex_unlock(&gate_lock);
		bool went = gone != NULL && gone(gone_arg);
		pthread_mutex_lock(&gate_lock);
		if (w.granted)
			break;
		if (went || (deadline_ms >= 0 && time_mono_ms() >= deadline_ms)) {
			queue_remove(&w);
			errno = went ? ECONNABORTED : ETIMEDOUT;
			rc = -1;
			break;
		}
	}
	pthread_mutex_unlock(&gate_lock);
	pthread_cond_destroy(&w.cond);
	/*
	 * Granted between two looks: the reason to wait may have gone in the
	 * meantime (a login dropped); then the slot goes on to the next.
	 */
	if (rc == 0 && gone != NULL && gone(gone_arg)) {
		gate_leave();
		errno = ECONNABORTED;
		rc = -1;
	}
	return rc;
}

int
password_gate_enter(int64_t deadline_ms)
{
	if (held == 0 && gate_enter_by(deadline_ms) != 0)
		return -1;
	held++;
	return 0;
}

void
password_gate_deadline(int64_t deadline_ms)
{
	deadline = deadline_ms;
}

void
password_gate_abort_if(bool (*fn)(void *arg), void *arg)
{
	gone = fn;
	gone_arg = arg;
}

void
password_gate_leave(void)
{
	if (held > 0 && --held == 0)
		gate_leave();
}

static bool
password_within_max_len(const char *pw)
{
	return pw != NULL && strnlen(pw, PASSWORD_MAX_LEN + 1) <= PASSWORD_MAX_LEN;
}

static bool
cost_valid(int cost)
{
	return cost >= COST_MIN && cost <= COST_MAX;
}

/* A yescrypt setting ("$y$PARAMS$SALT") with fresh random salt. */
static int
new_setting(int cost, char setting[CRYPT_GENSALT_OUTPUT_SIZE])
{
	if (!cost_valid(cost)) {
		errno = EINVAL;
		return -1;
	}
	if (crypt_gensalt_rn("$y$", (unsigned long)cost, NULL, 0, setting,
			     CRYPT_GENSALT_OUTPUT_SIZE) == NULL)
		return -1;
	return 0;
}

/*
 * crypt_r() under a gate slot, the result copied to out.  libxcrypt reports
 * failure with a "*" token instead of NULL, which is never a valid hash.
 */
static int
gated_crypt(const char *pw, const char *setting, char out[PASSWORD_HASH_MAX])
{
	struct crypt_data *data;
	const char *res;
	int rc = -1;

	/*
	 * The 32 KiB of crypt_data are taken inside the gate: a burst of
	 * logins waiting for a slot would otherwise hold one each, and the
	 * allocator keeps such peaks for good.
	 */
	bool own = held == 0; /* else this thread holds a slot already */

	if (own && gate_enter_by(deadline) != 0)
		return -1;
	data = calloc(1, sizeof(*data));
	if (data == NULL) {
		if (own)
			gate_leave();
		return -1;
	}
	res = crypt_r(pw, setting, data);
	if (res == NULL || res[0] == '*')
		errno = EINVAL;
	else if (strlen(res) >= PASSWORD_HASH_MAX)
		errno = ENAMETOOLONG;
	else {
		strcpy(out, res);
		rc = 0;
	}
	explicit_bzero(data, sizeof(*data));
	free(data);
	if (own)
		gate_leave();
	return rc;
}

int
password_hash(const char *pw, int cost, char out[PASSWORD_HASH_MAX])
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	if (!password_within_max_len(pw)) {
		errno = EINVAL;
		return -1;
	}
	if (new_setting(cost, setting) != 0)
		return -1;
	if (gated_crypt(pw, setting, out) != 0)
		return -1;
	/*
	 * A new hash for a login dropped while it was computed (its slot came
	 * before the drop): not used, so that the login registers nothing.
	 */
	if (gone != NULL && gone(gone_arg)) {
		explicit_bzero(out, PASSWORD_HASH_MAX);
		errno = ECONNABORTED;
		return -1;
	}
	return 0;
}

/* Runs over the common length whatever the contents, so timing says nothing. */
static bool
equal_constant_time(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t n = la < lb ? la : lb;
	unsigned char diff = la != lb;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

bool
password_check(const char *pw, const char *hash)
{
	char out[PASSWORD_HASH_MAX];
	bool ok;

	if (!password_within_max_len(pw) || hash == NULL || hash[0] == '\0')
		return false;
	if (gated_crypt(pw, hash, out) != 0)
		return false;
	ok = equal_constant_time(out, hash);
	explicit_bzero(out, sizeof(out));
	return ok;
}

/* Length of "$y$PARAMS$", or 0 if s is not a yescrypt setting or hash. */
static size_t
yescrypt_params_len(const char *s)
{
	const char *end;

	if (strncmp(s, "$y$", 3) != 0)
		return 0;
	end = strchr(s + 3, '$');
	return end == NULL ? 0 : (size_t)(end - s) + 1;
}

bool
password_needs_rehash(const char *hash, int cost)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	size_t len;

	if (hash == NULL || new_setting(cost, setting) != 0)
		return true;
	len = yescrypt_params_len(setting);
	return len == 0 || yescrypt_params_len(hash) != len || memcmp(hash, setting, len) != 0;
}
