/*
 * throttle.c - growing delays after failed logins (see throttle.h).
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "peers.h"
#include "session.h"
#include "throttle.h"

#define THROTTLE_SLOTS 4096		/* a power of two */
#define THROTTLE_PROBES 8
#define THROTTLE_KEY_MAX 72		/* "a:" + an address, or "n:" + a name */
#define THROTTLE_MAX_SHIFT 20

struct entry {
	char key[THROTTLE_KEY_MAX];	/* "" when free */
	unsigned failures;
	int64_t last_ms;		/* the latest failure */
	int64_t until_ms;		/* no try before this */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry table[THROTTLE_SLOTS];

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* "a:192.0.2.1", or for IPv6 the /64 it belongs to: "a:2001:db8:1:2::/64". */
static void
address_key(const struct sockaddr_storage *addr, char key[THROTTLE_KEY_MAX])
{
	struct sockaddr_storage prefix = *addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&prefix;
	char text[ADDR_STR_MAX];
	bool v6 = addr->ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);

	if (v6)
		memset(&in6->sin6_addr.s6_addr[8], 0, 8);
	peers_format(&prefix, text, sizeof(text));
	snprintf(key, THROTTLE_KEY_MAX, "a:%s%s", text, v6 ? "/64" : "");
}

/* Names are one user whatever their case. */
static void
name_key(const char *name, char key[THROTTLE_KEY_MAX])
{
	size_t i = 2;

	key[0] = 'n';
	key[1] = ':';
	for (; *name && i < THROTTLE_KEY_MAX - 1; name++)
		key[i++] = (*name >= 'A' && *name <= 'Z') ? (char)(*name - 'A' + 'a') : *name;
	key[i] = '\0';
}

static bool
expired(const struct entry *e, int64_t now_ms)
{
	return e->key[0] == '\0' || now_ms - e->last_ms > THROTTLE_WINDOW_MS;
}

/* Is e a better slot to reuse than v: forgotten rather than live, else staler? */
static bool
better_victim(const struct entry *e, const struct entry *v, int64_t now_ms)
{
	if (expired(e, now_ms) != expired(v, now_ms))
		return expired(e, now_ms);
	return e->last_ms < v->last_ms;
}

/* The entry for key, or NULL (create false) if there is none. */
static struct entry *
find(const char *key, int64_t now_ms, bool create)
{
	uint32_t h = hash(key);
	struct entry *victim = NULL;

	for (unsigned i = 0; i < THROTTLE_PROBES; i++) {
		struct entry *e = &table[(h + i) & (THROTTLE_SLOTS - 1)];

		if (strcmp(e->key, key) == 0)
			return !create && expired(e, now_ms) ? NULL : e;
		if (victim == NULL || better_victim(e, victim, now_ms))
			victim = e;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->key, sizeof(victim->key), "%s", key);
	return victim;
}

static int64_t
wait_for(const char *key, int64_t now_ms)
{
	struct entry *e = find(key, now_ms, false);

	return e != NULL && e->until_ms > now_ms ? e->until_ms - now_ms : 0;
}

int64_t
throttle_wait_ms(const struct sockaddr_storage *addr, const char *name, int64_t now_ms)
{
	char akey[THROTTLE_KEY_MAX], nkey[THROTTLE_KEY_MAX];
	int64_t a, n;

	address_key(addr, akey);
	name_key(name, nkey);
	pthread_mutex_lock(&lock);
	a = wait_for(akey, now_ms);
	n = wait_for(nkey, now_ms);
	pthread_mutex_unlock(&lock);
	return a > n ? a : n;
}

static unsigned
count_failure(const char *key, int64_t now_ms)
{
	struct entry *e = find(key, now_ms, true);

	if (now_ms - e->last_ms > THROTTLE_WINDOW_MS)
		e->failures = 0;
	e->failures++;
	e->last_ms = now_ms;
	return e->failures;
}

static void
set_until(const char *key, int64_t now_ms, int64_t until_ms)
{
	struct entry *e = find(key, now_ms, true);

	if (e->until_ms < until_ms)
		e->until_ms = until_ms;
}

int64_t
throttle_failed(const struct sockaddr_storage *addr, const char *name, int64_t now_ms,
		int64_t base_ms, int64_t max_ms)
{
	char akey[THROTTLE_KEY_MAX], nkey[THROTTLE_KEY_MAX];
	unsigned fa, fn, worst, shift;
	int64_t delay;

	address_key(addr, akey);
	name_key(name, nkey);
	pthread_mutex_lock(&lock);
	fa = count_failure(akey, now_ms);
	fn = count_failure(nkey, now_ms);
	worst = fa > fn ? fa : fn;
	shift = worst - 1 < THROTTLE_MAX_SHIFT ? worst - 1 : THROTTLE_MAX_SHIFT;
	delay = base_ms << shift;
	if (delay > max_ms)
		delay = max_ms;
	set_until(akey, now_ms, now_ms + delay);
	set_until(nkey, now_ms, now_ms + delay);
	pthread_mutex_unlock(&lock);
	return delay;
}

void
throttle_succeeded(const char *name, int64_t now_ms)
{
	char nkey[THROTTLE_KEY_MAX];
	struct entry *e;

	name_key(name, nkey);
	pthread_mutex_lock(&lock);
	if ((e = find(nkey, now_ms, false)) != NULL)
		memset(e, 0, sizeof(*e));
	pthread_mutex_unlock(&lock);
}

void
throttle_reset(void)
{
	pthread_mutex_lock(&lock);
	memset(table, 0, sizeof(table));
	pthread_mutex_unlock(&lock);
}
