/*
 * peers.c - connections by address, for the connection limits (see peers.h).
 *
 * A chained hash table keyed by the 16-byte form of the address (IPv4 as
 * v4-mapped IPv6; an IPv6 address as its /64, the zeros of the rest), one
 * entry per address with connections.  Each entry counts its connections
 * and keeps its connections that have not logged in yet, oldest first, by
 * descriptor; entries with such connections are also on the `logging`
 * list, which the pre-login budget looks through for the address that
 * holds the most.
 *
 * Threads: the listener admits, a client thread moves its connection to
 * "logged in" and closes it.  One mutex guards everything.  A connection
 * dropped for the budget is shut down (shutdown(), not close()) under that
 * mutex by the listener thread; its owner closes the descriptor only under
 * the same mutex (peers_close), after taking it off the list, so the
 * number cannot be reused by another connection in between.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lograte.h"
#include "peers.h"
#include "proto.h"

#define PEER_BUCKETS 4096

struct login_conn {
	struct login_conn *next; /* the address's connections, oldest first */
	int fd;
	uint64_t seq; /* admission order: lower is older */
	bool dropped; /* shut down for the budget; no longer counted */
};

struct peer {
	struct peer *next;          /* hash chain */
	struct peer *lprev, *lnext; /* on `logging` while logins > 0 */
	uint8_t key[16];
	int count;                /* connections, logged in or not */
	int logins;               /* of them not logged in, not dropped */
	struct login_conn *conns; /* not logged in (dropped ones too) */
};

static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer *buckets[PEER_BUCKETS];
static struct peer *logging;
static size_t n_logged_in, n_logging_in;
static uint64_t next_seq;

static void
peer_key(const struct sockaddr_storage *addr, uint8_t key[16])
{
	memset(key, 0, 16);
	if (addr->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;

		/* A v4-mapped address is that IPv4 address; any other counts as its /64. */
		memcpy(key, a, IN6_IS_ADDR_V4MAPPED(a) ? 16 : 8);
	} else if (addr->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)addr)->sin_addr, 4);
	}
}

static size_t
peer_hash(const uint8_t key[16])
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return h % PEER_BUCKETS;
}

static struct peer **
peer_slot_locked(const uint8_t key[16])
{
	struct peer **pp = &buckets[peer_hash(key)];

	while (*pp != NULL && memcmp((*pp)->key, key, 16) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* logins changed by delta; keeps the `logging` list and the total in step. */
static void
logins_add_locked(struct peer *p, int delta)
{
	bool was = p->logins > 0;

	p->logins += delta;
	n_logging_in = (size_t)((ptrdiff_t)n_logging_in + delta);
	if (!was && p->logins > 0) {
		p->lprev = NULL;
		p->lnext = logging;
		if (logging != NULL)
			logging->lprev = p;
		logging = p;
	} else if (was && p->logins == 0) {
		if (p->lprev != NULL)
			p->lprev->lnext = p->lnext;
		else
			logging = p->lnext;
		if (p->lnext != NULL)
			p->lnext->lprev = p->lprev;
	}
}

static struct login_conn *
oldest_live(const struct peer *p)
{
	for (struct login_conn *lc = p->conns; lc != NULL; lc = lc->next)
		if (!lc->dropped)
			return lc;
	return NULL;
}

/*
 * The pre-login budget is full: shuts down the oldest login of the address
 * that holds the most (`self`, the newcomer's, counting the newcomer), if
 * that is two or more.  False when every login is from another address.
 */
/* Anyone can cause these lines by connecting: bounded (lograte.h). */
static struct log_rate logins_dropped =
	LOG_RATE_INIT(LVL_INFO, "logins dropped for newcomers (max_logins)");
static struct log_rate logins_refused_full =
	LOG_RATE_INIT(LVL_WARNING, "logins refused (server full, max_clients)");

static bool
drop_one_locked(struct peer *self, int max_logins)
{
	struct peer *victim = NULL;
	int most = 1;
	uint64_t oldest = 0;

	for (struct peer *p = logging; p != NULL; p = p->lnext) {
		int n = p->logins + (p == self);
		uint64_t seq = oldest_live(p)->seq;

		if (n > most || (n == most && victim != NULL && seq < oldest)) {
			victim = p;
			most = n;
			oldest = seq;
		}
	}
	if (victim == NULL)
		return false;
	struct login_conn *lc = oldest_live(victim);
	char a[INET6_ADDRSTRLEN];
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };

	memcpy(&sa.sin6_addr, victim->key, 16);
	peers_format((const struct sockaddr_storage *)&sa, a, sizeof(a));
	log_rated(&logins_dropped,
		  "%d logins in progress (max_logins): dropped the oldest of %s%s, which has %d",
		  max_logins, a, IN6_IS_ADDR_V4MAPPED(&sa.sin6_addr) ? "" : "/64", victim->logins);
	shutdown(lc->fd, SHUT_RDWR);
	lc->dropped = true;
	logins_add_locked(victim, -1);
	return true;
}

bool
peers_admit(const struct sockaddr_storage *addr, int fd, const struct peers_limits *lim, char *why,
	    size_t whylen)
{
	uint8_t key[16];
	struct login_conn *lc = calloc(1, sizeof(*lc));
	bool ok = false;

	peer_key(addr, key);
	pthread_mutex_lock(&peers_lock);
	struct peer **pp = peer_slot_locked(key);
	struct peer *p = *pp;
	if (lc == NULL) {
		snprintf(why, whylen, "out of memory");
	} else if (n_logged_in >= (size_t)lim->max_clients) {
		snprintf(why, whylen, "server is full (%d clients)", lim->max_clients);
	} else if (p != NULL && p->count >= lim->max_clients_per_address) {
		snprintf(why, whylen, "too many connections from your address (%d)",
			 lim->max_clients_per_address);
	} else if (p != NULL && p->logins >= lim->max_logins_per_address) {
		snprintf(why, whylen, "too many logins in progress from your address (%d)",
			 lim->max_logins_per_address);
	} else if (n_logging_in >= (size_t)lim->max_logins &&
		   !drop_one_locked(p, lim->max_logins)) {
		snprintf(why, whylen, "too many logins in progress (%d); try again",
			 lim->max_logins);
	} else if (p == NULL && (p = *pp = calloc(1, sizeof(*p))) == NULL) {
		snprintf(why, whylen, "out of memory");
	} else {
		struct login_conn **tail = &p->conns;

		while (*tail != NULL)
			tail = &(*tail)->next;
		*lc = (struct login_conn){ .fd = fd, .seq = next_seq++ };
		*tail = lc;
		lc = NULL;
		memcpy(p->key, key, 16);
		p->count++;
		logins_add_locked(p, 1);
		ok = true;
	}
	pthread_mutex_unlock(&peers_lock);
	free(lc);
	return ok;
}

/* Takes fd's entry off p's list; NULL if it has none (it logged in). */
static struct login_conn *
unlink_conn_locked(struct peer *p, int fd)
{
	for (struct login_conn **lp = &p->conns; *lp != NULL; lp = &(*lp)->next)
		if ((*lp)->fd == fd) {
			struct login_conn *lc = *lp;

			*lp = lc->next;
			return lc;
		}
	return NULL;
}

bool
peers_logged_in(const struct sockaddr_storage *addr, int fd, int max_clients, bool tell)
{
	uint8_t key[16];
	char line[128];
	bool ok = false;
	struct login_conn *lc = NULL;

	peer_key(addr, key);
	pthread_mutex_lock(&peers_lock);
	struct peer *p = *peer_slot_locked(key);
	for (lc = p != NULL ? p->conns : NULL; lc != NULL && lc->fd != fd; lc = lc->next)
		;
	if (lc != NULL && !lc->dropped && n_logged_in < (size_t)max_clients) {
		unlink_conn_locked(p, fd);
		logins_add_locked(p, -1);
		n_logged_in++;
		ok = true;
	}
	bool dropped = lc == NULL || lc->dropped;
	pthread_mutex_unlock(&peers_lock);
	if (ok) {
		free(lc);
		return true;
	}
	if (!dropped) {
		int n = snprintf(line, sizeof(line), "ERR %d server is full (%d clients)\n",
				 ERR_UNAVAILABLE, max_clients);
		char a[INET6_ADDRSTRLEN];

		peers_format(addr, a, sizeof(a));
		log_rated(&logins_refused_full,
			  "refused a login from %s: server is full (%d clients)", a, max_clients);
		if (tell)
			send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	return false;
}

void
peers_close(const struct sockaddr_storage *addr, int fd)
{
	uint8_t key[16];
	struct login_conn *lc = NULL;

	peer_key(addr, key);
	pthread_mutex_lock(&peers_lock);
	struct peer **pp = peer_slot_locked(key);
	struct peer *p = *pp;
	if (p != NULL) {
		if ((lc = unlink_conn_locked(p, fd)) == NULL)
			n_logged_in--;
		else if (!lc->dropped)
			logins_add_locked(p, -1);
		if (--p->count == 0) {
			*pp = p->next;
			free(p);
		}
	}
	close(fd);
	pthread_mutex_unlock(&peers_lock);
	free(lc);
}

void
peers_counts(size_t *logged_in, size_t *logging_in)
{
	pthread_mutex_lock(&peers_lock);
	*logged_in = n_logged_in;
	*logging_in = n_logging_in;
	pthread_mutex_unlock(&peers_lock);
}

void
peers_reset(void)
{
	pthread_mutex_lock(&peers_lock);
	for (size_t i = 0; i < PEER_BUCKETS; i++) {
		while (buckets[i] != NULL) {
			struct peer *p = buckets[i];

			buckets[i] = p->next;
			while (p->conns != NULL) {
				struct login_conn *lc = p->conns;

				p->conns = lc->next;
				free(lc);
			}
			free(p);
		}
	}
	logging = NULL;
	n_logged_in = n_logging_in = 0;
	pthread_mutex_unlock(&peers_lock);
}

void
peers_format(const struct sockaddr_storage *addr, char *buf, size_t len)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;

	if (addr->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, (socklen_t)len);
	else if (addr->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
	else if (addr->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, buf,
			  (socklen_t)len);
	else
		snprintf(buf, len, "unknown");
}
