/*
 * peers.c - connection counts per address, for the connection limits.
 *
 * A chained hash table keyed by the 16-byte form of the address (IPv4 as
 * v4-mapped IPv6).  One mutex guards it; admits and releases are rare next
 * to chat traffic, so nothing finer is needed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"

#define PEER_BUCKETS 4096

struct peer {
	struct peer *next;
	uint8_t key[16];
	int count;
};

static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer *buckets[PEER_BUCKETS];
static size_t total;

static void
peer_key(const struct sockaddr_storage *addr, uint8_t key[16])
{
	memset(key, 0, 16);
	if (addr->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
	} else if (addr->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)addr)->sin_addr, 4);
	}
}

static size_t
peer_hash(const uint8_t key[16])
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

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

bool
peers_admit(const struct sockaddr_storage *addr, int max_total, int max_per_address,
	    char *why, size_t whylen)
{
	uint8_t key[16];
	bool ok = false;

	peer_key(addr, key);
	pthread_mutex_lock(&peers_lock);
	struct peer **pp = peer_slot_locked(key);
	if (total >= (size_t)max_total) {
		snprintf(why, whylen, "server is full (%d clients)", max_total);
	} else if (*pp != NULL && (*pp)->count >= max_per_address) {
		snprintf(why, whylen, "too many connections from your address (%d)", max_per_address);
	} else if (*pp == NULL && (*pp = calloc(1, sizeof(**pp))) == NULL) {
		snprintf(why, whylen, "out of memory");
	} else {
		memcpy((*pp)->key, key, 16);
		(*pp)->count++;
		total++;
		ok = true;
	}
	pthread_mutex_unlock(&peers_lock);
	return ok;
}

void
peers_release(const struct sockaddr_storage *addr)
{
	uint8_t key[16];

	peer_key(addr, key);
	pthread_mutex_lock(&peers_lock);
	struct peer **pp = peer_slot_locked(key);
	if (*pp != NULL) {
		total--;
		if (--(*pp)->count == 0) {
			struct peer *gone = *pp;

			*pp = gone->next;
			free(gone);
		}
	}
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
			free(p);
		}
	}
	total = 0;
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
		inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, buf, (socklen_t)len);
	else
		snprintf(buf, len, "unknown");
}
