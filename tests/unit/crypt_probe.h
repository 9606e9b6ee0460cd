/*
 * crypt_probe.h - a test seam around crypt_r(), to be included by exactly
 * one file of a test binary (it defines crypt_r()).  RTLD_NEXT needs
 * _GNU_SOURCE, which the build defines.
 *
 * The definition here wins over libcrypt's at link time and hands over to
 * the real one (RTLD_NEXT).  While armed, callers hashing the armed phrase
 * (or every caller, for NULL) are counted and held inside until the test
 * hands out a ticket or disarms, so a test can see how many hashes run at
 * once and stop one mid-way to race it, without any timing.
 */
#ifndef CHATD_TEST_CRYPT_PROBE_H
#define CHATD_TEST_CRYPT_PROBE_H

#include <crypt.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

typedef char *crypt_r_fn(const char *, const char *, struct crypt_data *);

static crypt_r_fn *real_crypt_r;
static pthread_once_t real_crypt_r_once = PTHREAD_ONCE_INIT;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool armed;
	const char *phrase; /* hold only this phrase; NULL: every one */
	int inside, max_inside, done, tickets;
} probe = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static inline void
probe_find_real(void)
{
	real_crypt_r = (crypt_r_fn *)dlsym(RTLD_NEXT, "crypt_r");
}

static inline bool
probe_catches(const char *phrase)
{
	return probe.armed && (probe.phrase == NULL || strcmp(phrase, probe.phrase) == 0);
}

static inline void
probe_hold(const char *phrase)
{
	pthread_mutex_lock(&probe.lock);
	if (probe_catches(phrase)) {
		probe.inside++;
		if (probe.inside > probe.max_inside)
			probe.max_inside = probe.inside;
		pthread_cond_broadcast(&probe.cond);
		while (probe.armed && probe.tickets == 0)
			pthread_cond_wait(&probe.cond, &probe.lock);
		if (probe.tickets > 0)
			probe.tickets--;
		probe.inside--;
		probe.done++;
		pthread_cond_broadcast(&probe.cond);
	}
	pthread_mutex_unlock(&probe.lock);
}

char *
crypt_r(const char *phrase, const char *setting, struct crypt_data *restrict data)
{
	pthread_once(&real_crypt_r_once, probe_find_real);
	probe_hold(phrase);
	return real_crypt_r(phrase, setting, data);
}

static inline void
probe_arm(const char *phrase)
{
	pthread_mutex_lock(&probe.lock);
	probe.armed = true;
	probe.phrase = phrase;
	probe.inside = probe.max_inside = probe.done = probe.tickets = 0;
	pthread_mutex_unlock(&probe.lock);
}

/* Lets everyone held go, and stops holding. */
static inline void
probe_disarm(void)
{
	pthread_mutex_lock(&probe.lock);
	probe.armed = false;
	pthread_cond_broadcast(&probe.cond);
	pthread_mutex_unlock(&probe.lock);
}

/* Waits until at least n callers are held at once. */
static inline void
probe_await_inside(int n)
{
	pthread_mutex_lock(&probe.lock);
	while (probe.inside < n)
		pthread_cond_wait(&probe.cond, &probe.lock);
	pthread_mutex_unlock(&probe.lock);
}

/* Lets one held caller go and waits until one took the ticket. */
static inline void
probe_release_one(void)
{
	pthread_mutex_lock(&probe.lock);
	probe.tickets++;
	pthread_cond_broadcast(&probe.cond);
	while (probe.tickets > 0)
		pthread_cond_wait(&probe.cond, &probe.lock);
	pthread_mutex_unlock(&probe.lock);
}

static inline int
probe_done(void)
{
	int n;

	pthread_mutex_lock(&probe.lock);
	n = probe.done;
	pthread_mutex_unlock(&probe.lock);
	return n;
}

static inline int
probe_max_inside(void)
{
	int n;

	pthread_mutex_lock(&probe.lock);
	n = probe.max_inside;
	pthread_mutex_unlock(&probe.lock);
	return n;
}

#endif
