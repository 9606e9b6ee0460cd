/*
 * siphash.h - SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012): a 64-bit hash under a secret 128-bit key, so
 * whoever does not know the key cannot choose inputs that collide.
 *
 * A pure function: any thread may call it.  The login throttle
 * (daemon/throttle.c) keys its table with it, and the history its table
 * of rooms (daemon/history.c).
 */
#ifndef CHATD_SIPHASH_H
#define CHATD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* SipHash-2-4 of len bytes at data under key (k0, k1 read little-endian). */
uint64_t siphash24(const unsigned char key[SIPHASH_KEY_LEN], const void *data, size_t len);

#endif
