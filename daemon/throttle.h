/*
 * throttle.h - failed logins counted by address and by name, so password
 * guessing gets slower with every miss however many connections it uses.
 *
 * Each wrong password makes the next try for that name, and from that
 * address, wait twice as long as the last (login_fail_delay_ms, doubling
 * up to login_fail_delay_max_ms); a try made before then is refused with
 * ERR 429 without computing a hash.  A success clears the name's count;
 * counts older than THROTTLE_WINDOW_MS are forgotten.  IPv6 addresses
 * count by /64, which is what one host usually has to choose from.
 *
 * The table has a fixed size (no allocation, bounded memory under a flood
 * of addresses); when it is full the stalest entry makes room.
 * Thread-safe: client threads call it during login.
 */
#ifndef CHATD_THROTTLE_H
#define CHATD_THROTTLE_H

#include <stdint.h>
#include <sys/socket.h>

#define THROTTLE_WINDOW_MS (15 * 60 * 1000)

/* Milliseconds before a password may be tried for name from addr; 0: now. */
int64_t throttle_wait_ms(const struct sockaddr_storage *addr, const char *name, int64_t now_ms);

/*
 * Counts a wrong password; returns the delay (base_ms doubled per recent
 * failure, at most max_ms) to wait before answering.
 */
int64_t throttle_failed(const struct sockaddr_storage *addr, const char *name, int64_t now_ms,
			int64_t base_ms, int64_t max_ms);

/* name logged in: its count starts again. */
void throttle_succeeded(const char *name, int64_t now_ms);

/* Forgets everything (tests, and at exit). */
void throttle_reset(void);

#endif
