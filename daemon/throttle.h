/*
 * throttle.h - failed logins counted by address and by name, so password
 * guessing gets slower with every miss however many connections and
 * addresses it uses.
 *
 * A password check is reserved before its hash is computed
 * (throttle_begin()) and ends with throttle_failed(), throttle_succeeded()
 * or throttle_abandon().  While a check for a name, or from an address,
 * runs, another try for that name or from that address is not checked: it
 * waits for the outcome (throttle_await()) and then for the delay a
 * failure sets.  So a guesser gets one hash at a time, however many
 * connections it opens.
 *
 * Each wrong password makes the next try for that name, and from that
 * address, wait twice as long as the last (login_fail_delay_ms, doubling
 * up to login_fail_delay_max_ms); a try made before then is refused with
 * ERR 429 without computing a hash.  Failures older than
 * THROTTLE_WINDOW_MS are forgotten.  A success does not clear the name's
 * count (a guesser would start again); it, like the name's registration,
 * remembers the address as one the name logs in from (the latest
 * THROTTLE_KNOWN): a try for the name from there waits only for the
 * address's own delay and not behind others' checks for the name, so a
 * guesser elsewhere cannot lock the owner out.  IPv6 addresses count by /64, which is what one host
 * usually has to choose from.
 *
 * The table has a fixed size (no allocation, bounded memory under a
 * flood).  An entry's slots follow from SipHash-2-4 of its key under a
 * random key drawn at the first use, so nobody can choose names or
 * addresses that crowd out a victim's entry.  A new entry takes the least
 * recently used of its slots, but never one that is making someone wait or
 * has a check running; when only such entries are left, the try is refused
 * (THROTTLE_FULL) rather than forgetting someone's failures.
 *
 * Thread-safe: client threads call it during login.  One mutex guards the
 * table; nothing slow runs under it.
 */
#ifndef CHATD_THROTTLE_H
#define CHATD_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define THROTTLE_WINDOW_MS (15 * 60 * 1000)
#define THROTTLE_KNOWN 4 /* addresses remembered per name */

enum throttle_verdict {
	THROTTLE_GO,       /* reserved: check the password, then report the outcome */
	THROTTLE_WAIT,     /* a delay runs for the name or the address: *wait_ms */
	THROTTLE_CHECKING, /* another check for the name or from the address runs */
	THROTTLE_FULL,     /* no room in the table to count this try */
};

/* One try, from throttle_begin() to its outcome.  Owned by the caller. */
struct throttle_ticket {
	uint64_t addr_id, name_id;
	bool known_address;       /* the name logged in from this address before */
	bool held;                /* reserved: an outcome must be reported */
	uint64_t wait_id;         /* THROTTLE_CHECKING: the entry being checked */
	unsigned long generation; /* ... and the count of checks ended then */
};

/*
 * May a password for name be checked now from addr?  THROTTLE_GO reserves
 * the check: the caller must end it with throttle_failed(),
 * throttle_succeeded() or throttle_abandon().  THROTTLE_WAIT sets *wait_ms.
 */
enum throttle_verdict throttle_begin(struct throttle_ticket *t, const struct sockaddr_storage *addr,
				     const char *name, int64_t now_ms, int64_t *wait_ms);

/*
 * After THROTTLE_CHECKING: sleeps until the check it waits for ends (or
 * another one that shares its wake-up) or until until_ms on the monotonic
 * clock (time_mono_ms()).
 */
void throttle_await(const struct throttle_ticket *t, int64_t until_ms);

/*
 * The password was wrong: counts the failure for the name and the address
 * and returns the delay to wait before answering (base_ms doubled per
 * recent failure, at most max_ms; the address's own when the address is
 * known to the name).
 */
int64_t throttle_failed(struct throttle_ticket *t, int64_t now_ms, int64_t base_ms, int64_t max_ms);

/* The password was right: the address becomes one the name logs in from. */
void throttle_succeeded(struct throttle_ticket *t, int64_t now_ms);

/*
 * name was registered from addr, or logged in there with a resume token: the
 * address is one the name logs in from.
 */
void throttle_registered(const struct sockaddr_storage *addr, const char *name, int64_t now_ms);

/* No outcome (timeout, shutdown, an error): nothing is counted. */
void throttle_abandon(struct throttle_ticket *t);

/* Forgets everything and draws a new hash key (tests). */
void throttle_reset(void);

/* The table's hash of text under the current key (tests). */
uint64_t throttle_key_hash(const char *text);

#endif
