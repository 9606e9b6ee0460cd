/*
 * peers.h - connected peers by address: the max_clients and
 * max_clients_per_address limits, and how an address is written.
 *
 * Thread-safe: the listener admits, each client thread releases.  IPv4
 * peers that reach an IPv6 socket (::ffff:a.b.c.d) count as the IPv4
 * address they are.
 */
#ifndef CHATD_PEERS_H
#define CHATD_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/*
 * Counts a new connection from addr unless a limit is reached; then
 * returns false with the reason (for an ERR 503 line) in why.
 */
bool peers_admit(const struct sockaddr_storage *addr, int max_total, int max_per_address,
		 char *why, size_t whylen);
void peers_release(const struct sockaddr_storage *addr);

/* "127.0.0.1" or "::1" (no port). */
void peers_format(const struct sockaddr_storage *addr, char *buf, size_t len);

/* Frees the table (at exit, after every client is gone). */
void peers_reset(void);

#endif
