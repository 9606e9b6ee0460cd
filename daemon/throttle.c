/*
 * throttle.c - growing delays after failed logins, one check at a time per
 * name and per address (see throttle.h).  Client threads call it during
 * login; the table, the hash key and the counts of ended checks are
 * guarded by one mutex, and threads waiting for a check to end sleep on
 * condition variables tied to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "peers.h"
#include "session.h"
#include "siphash.h"
#include "throttle.h"

#define THROTTLE_SLOTS 16384 /* a power of two; 72 bytes each */
#define THROTTLE_PROBES 16   /* an entry lives in one of these slots from its hash on */
#define THROTTLE_KEY_MAX 72  /* "a:" + an address, or "n:" + a name */
#define THROTTLE_MAX_SHIFT 20
#define THROTTLE_WAKERS 256 /* condition variables for waiting tries, by entry */

struct entry {
	uint64_t id;                    /* SipHash of "a:ADDRESS" or "n:name"; 0: free */
	unsigned failures;              /* within THROTTLE_WINDOW_MS of fail_ms */
	unsigned checking;              /* checks running now */
	int64_t fail_ms;                /* the latest failure */
	int64_t seen_ms;                /* the latest use, for reuse of the stalest */
	int64_t until_ms;               /* no try before this */
	uint64_t known[THROTTLE_KNOWN]; /* a name's: addresses it logged in from, latest first */
};

/*
 * A try that waits for another's check sleeps on the condition variable of
 * the entry it waits for (waker()), so the end of a check wakes those that
 * wait for its name or address, not every waiting login; ended counts the
 * checks ended per condition variable.
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wakers[THROTTLE_WAKERS]; /* on CLOCK_MONOTONIC */
static unsigned long ended[THROTTLE_WAKERS];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static unsigned char hash_key[SIPHASH_KEY_LEN];
static struct entry table[THROTTLE_SLOTS];

/* A fresh random key; getrandom() fails only on a kernel without it. */
static void
new_key(void)
{
	size_t got = 0;

	while (got < sizeof(hash_key)) {
		ssize_t n = getrandom(hash_key + got, sizeof(hash_key) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == sizeof(hash_key))
		return;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && read(fd, hash_key, sizeof(hash_key)) == (ssize_t)sizeof(hash_key)) {
		close(fd);
		return;
	}
	if (fd >= 0)
		close(fd);
	/* No randomness at all: the clock and the pid are a poor secret. */
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t mix[2] = { (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32),
			    (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts };
	memcpy(hash_key, mix, sizeof(hash_key));
	log_warning("no random source for the login throttle's hash key: %s", strerror(errno));
}

static void
init_once(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	for (unsigned i = 0; i < THROTTLE_WAKERS; i++)
		pthread_cond_init(&wakers[i], &attr);
	pthread_condattr_destroy(&attr);
	new_key();
}

static uint64_t
key_hash(const char *text)
{
	uint64_t h = siphash24(hash_key, text, strlen(text));

	return h != 0 ? h : 1; /* 0 marks a free slot */
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

/* Is e making someone wait, or being checked?  Then it must stay. */
static bool
pinned(const struct entry *e, int64_t now_ms)
{
	return e->checking > 0 || e->until_ms > now_ms;
}

static struct entry *
slot(uint64_t id, unsigned i)
{
	return &table[(id + i) & (THROTTLE_SLOTS - 1)];
}

/* The entry for id, or NULL. */
static struct entry *
find(uint64_t id)
{
	for (unsigned i = 0; i < THROTTLE_PROBES; i++) {
		struct entry *e = slot(id, i);

		if (e->id == id)
			return e;
	}
	return NULL;
}

/*
 * The entry for id, made if need be in a free slot or in place of the
 * least recently used one that is not pinned; NULL if every slot is pinned.
 */
static struct entry *
find_or_make(uint64_t id, int64_t now_ms)
{
	struct entry *victim = NULL, *e = find(id);

	if (e != NULL)
		return e;
	for (unsigned i = 0; i < THROTTLE_PROBES; i++) {
		e = slot(id, i);
		if (e->id == 0) {
			victim = e;
			break;
		}
		if (!pinned(e, now_ms) && (victim == NULL || e->seen_ms < victim->seen_ms))
			victim = e;
	}
	if (victim == NULL)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->id = id;
	victim->seen_ms = now_ms;
	return victim;
}

/* The slot index uses the low bits of an id; the waker, higher ones. */
static unsigned
waker(uint64_t id)
{
	return (unsigned)(id >> 32) % THROTTLE_WAKERS;
}

static bool
knows(const struct entry *name, uint64_t addr_id)
{
	for (unsigned i = 0; name != NULL && i < THROTTLE_KNOWN; i++)
		if (name->known[i] == addr_id)
			return true;
	return false;
}

static int64_t
wait_of(const struct entry *e, int64_t now_ms)
{
	return e != NULL && e->until_ms > now_ms ? e->until_ms - now_ms : 0;
}

/* An entry made just now for a try that could not be reserved after all. */
static void
drop_if_unused(struct entry *e)
{
	if (e->checking == 0 && e->failures == 0 && e->until_ms == 0 && e->known[0] == 0)
		memset(e, 0, sizeof(*e));
}

enum throttle_verdict
throttle_begin(struct throttle_ticket *t, const struct sockaddr_storage *addr, const char *name,
	       int64_t now_ms, int64_t *wait_ms)
{
	char akey[THROTTLE_KEY_MAX], nkey[THROTTLE_KEY_MAX];
	enum throttle_verdict v = THROTTLE_GO;
	struct entry *a, *n;

	pthread_once(&once, init_once);
	address_key(addr, akey);
	name_key(name, nkey);
	pthread_mutex_lock(&lock);
	*t = (struct throttle_ticket){ .addr_id = key_hash(akey), .name_id = key_hash(nkey) };
	a = find(t->addr_id);
	n = find(t->name_id);
	t->known_address = knows(n, t->addr_id);
	if (t->known_address)
		n = NULL; /* the name's delay and checks are for the others */
	*wait_ms =
		wait_of(a, now_ms) > wait_of(n, now_ms) ? wait_of(a, now_ms) : wait_of(n, now_ms);
	if (*wait_ms > 0) {
		v = THROTTLE_WAIT;
	} else if ((a != NULL && a->checking > 0) || (n != NULL && n->checking > 0)) {
		v = THROTTLE_CHECKING;
		t->wait_id = a != NULL && a->checking > 0 ? a->id : n->id;
		t->generation = ended[waker(t->wait_id)];
	} else if ((a = find_or_make(t->addr_id, now_ms)) == NULL) {
		v = THROTTLE_FULL;
	} else {
		a->checking++; /* pinned: making the name's entry cannot take its slot */
		if ((n = find_or_make(t->name_id, now_ms)) == NULL) {
			a->checking--;
			drop_if_unused(a);
			v = THROTTLE_FULL;
		} else {
			n->checking++;
			a->seen_ms = n->seen_ms = now_ms;
			t->held = true;
		}
	}
	pthread_mutex_unlock(&lock);
	return v;
}

void
throttle_await(const struct throttle_ticket *t, int64_t until_ms)
{
	struct timespec ts = { .tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000 };

	unsigned k = waker(t->wait_id);

	pthread_once(&once, init_once);
	pthread_mutex_lock(&lock);
	while (ended[k] == t->generation)
		if (pthread_cond_timedwait(&wakers[k], &lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&lock);
}

/* Under the lock: t's check is over; its entries (NULL after a reset). */
static void
end_check(struct throttle_ticket *t, struct entry **a, struct entry **n)
{
	*a = find(t->addr_id);
	*n = find(t->name_id);
	if (*a != NULL && (*a)->checking > 0)
		(*a)->checking--;
	if (*n != NULL && (*n)->checking > 0)
		(*n)->checking--;
	t->held = false;
	ended[waker(t->addr_id)]++;
	pthread_cond_broadcast(&wakers[waker(t->addr_id)]);
	if (waker(t->name_id) != waker(t->addr_id)) {
		ended[waker(t->name_id)]++;
		pthread_cond_broadcast(&wakers[waker(t->name_id)]);
	}
}

/* Counts a failure in e; returns the delay it now asks for. */
static int64_t
count_failure(struct entry *e, int64_t now_ms, int64_t base_ms, int64_t max_ms)
{
	unsigned shift;
	int64_t delay;

	if (e == NULL)
		return base_ms < max_ms ? base_ms : max_ms;
	if (now_ms - e->fail_ms > THROTTLE_WINDOW_MS)
		e->failures = 0;
	e->failures++;
	e->fail_ms = e->seen_ms = now_ms;
	shift = e->failures - 1 < THROTTLE_MAX_SHIFT ? e->failures - 1 : THROTTLE_MAX_SHIFT;
	delay = base_ms << shift;
	if (delay > max_ms)
		delay = max_ms;
	if (e->until_ms < now_ms + delay)
		e->until_ms = now_ms + delay;
	return delay;
}

/* Under the lock: addr_id is the latest address name logged in from. */
static void
remember(struct entry *name, uint64_t addr_id, int64_t now_ms)
{
	unsigned i = 0;

	if (name == NULL)
		return;
	/* Latest first: move it to the front, or push the oldest out. */
	while (i < THROTTLE_KNOWN - 1 && name->known[i] != addr_id)
		i++;
	memmove(&name->known[1], &name->known[0], i * sizeof(name->known[0]));
	name->known[0] = addr_id;
	name->seen_ms = now_ms;
}

int64_t
throttle_failed(struct throttle_ticket *t, int64_t now_ms, int64_t base_ms, int64_t max_ms)
{
	struct entry *a, *n;
	int64_t da, dn;

	if (!t->held)
		return 0;
	pthread_mutex_lock(&lock);
	end_check(t, &a, &n);
	da = count_failure(a, now_ms, base_ms, max_ms);
	dn = count_failure(n, now_ms, base_ms, max_ms);
	pthread_mutex_unlock(&lock);
	return t->known_address || da > dn ? da : dn;
}

void
throttle_succeeded(struct throttle_ticket *t, int64_t now_ms)
{
	struct entry *a, *n;

	if (!t->held)
		return;
	pthread_mutex_lock(&lock);
	end_check(t, &a, &n);
	remember(n, t->addr_id, now_ms);
	if (a != NULL)
		a->seen_ms = now_ms;
	pthread_mutex_unlock(&lock);
}

void
throttle_registered(const struct sockaddr_storage *addr, const char *name, int64_t now_ms)
{
	char akey[THROTTLE_KEY_MAX], nkey[THROTTLE_KEY_MAX];

	pthread_once(&once, init_once);
	address_key(addr, akey);
	name_key(name, nkey);
	pthread_mutex_lock(&lock);
	remember(find_or_make(key_hash(nkey), now_ms), key_hash(akey), now_ms);
	pthread_mutex_unlock(&lock);
}

void
throttle_abandon(struct throttle_ticket *t)
{
	struct entry *a, *n;

	if (!t->held)
		return;
	pthread_mutex_lock(&lock);
	end_check(t, &a, &n);
	pthread_mutex_unlock(&lock);
}

void
throttle_reset(void)
{
	pthread_once(&once, init_once);
	pthread_mutex_lock(&lock);
	memset(table, 0, sizeof(table));
	new_key();
	pthread_mutex_unlock(&lock);
}

uint64_t
throttle_key_hash(const char *text)
{
	uint64_t h;

	pthread_once(&once, init_once);
	pthread_mutex_lock(&lock);
	h = key_hash(text);
	pthread_mutex_unlock(&lock);
	return h;
}
