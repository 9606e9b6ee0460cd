/*
 * peers.h - connections by address: the connection limits, and how an
 * address is written.
 *
 * A connection is "logging in" from its accept until its WELCOME, then
 * "logged in".  Logged-in users count against max_clients; connections
 * logging in have their own, smaller budget, max_logins in all and
 * max_logins_per_address from one address; max_clients_per_address bounds
 * both kinds together from one address.  An address here is an IPv4
 * address or an IPv6 /64 (IPv4 peers that reach an IPv6 socket,
 * ::ffff:a.b.c.d, count as the IPv4 address they are).
 *
 * When max_logins are in progress, a newcomer takes the place of the
 * oldest login of the address that holds the most (the newcomer's own
 * included), which is shut down; only when every login in progress is from
 * a different address is the newcomer refused.  So connections that never
 * log in cannot keep a user from an address of their own out, unless they
 * come from max_logins addresses.
 *
 * Thread-safe: the listener admits, each client thread logs in and closes.
 */
#ifndef CHATD_PEERS_H
#define CHATD_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct peers_limits {
	int max_clients;             /* logged in */
	int max_clients_per_address; /* logged in or not, from one address */
	int max_logins;              /* logging in */
	int max_logins_per_address;  /* logging in, from one address */
};

/*
 * Counts the new connection fd from addr as logging in, unless a limit
 * stands in the way: then false, with the reason (for an ERR 503 line) in
 * why.  This may shut down another connection's socket (see above); its
 * thread then finds its peer gone.
 */
bool peers_admit(const struct sockaddr_storage *addr, int fd, const struct peers_limits *lim,
		 char *why, size_t whylen);

/*
 * At WELCOME: moves the connection from logging in to logged in.  False if
 * max_clients are logged in already (then, if tell, "ERR 503 server is
 * full (N clients)" is written to fd: a plain native connection; a TLS or
 * IRC one says it through its session and front-end) or if the connection was dropped for the budget
 * meanwhile; the caller then ends it.
 */
bool peers_logged_in(const struct sockaddr_storage *addr, int fd, int max_clients, bool tell);

/*
 * Forgets the connection and closes fd (under the lock: see peers.c).
 * Every admitted connection ends here, by its owner.
 */
void peers_close(const struct sockaddr_storage *addr, int fd);

/* Connections logged in and logging in now. */
void peers_counts(size_t *logged_in, size_t *logging_in);

/* "127.0.0.1" or "::1" (no port). */
void peers_format(const struct sockaddr_storage *addr, char *buf, size_t len);

/* Frees the table (at exit, after every client is gone). */
void peers_reset(void);

#endif
