/*
 * password.h - password hashes with libcrypt (yescrypt, as /etc/shadow).
 *
 * Hashing is slow and memory-hungry on purpose.  It runs in the client's
 * own thread and never under a lock others wait on; password_gate_*() bound
 * how many hashes run at once (about one per core), so a login flood costs
 * waiting, not memory.  Slots go to waiters in arrival order.  A login waits for a slot no longer than its
 * deadline (password_gate_enter(), password_gate_deadline()), so that
 * wait counts towards its login_timeout.  struct crypt_data (32 KiB) lives on the heap, never
 * on a client thread's small stack.  Passwords are never logged.
 */
#ifndef CHATD_PASSWORD_H
#define CHATD_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWORD_HASH_MAX 128 /* >= CRYPT_OUTPUT_SIZE is not needed for yescrypt */
#define PASSWORD_MAX_LEN 256

/* Sets how many hashes may run at once; 0 means one per online CPU. */
int password_gate_init(int concurrency);
void password_gate_destroy(void);
/* Threads waiting for a slot now (status, tests). */
size_t password_gate_waiting(void);

/*
 * Takes a hash slot for the calling thread, waiting at most until
 * deadline_ms on the monotonic clock (time_mono_ms(); negative: no limit).
 * The hashes this thread computes until password_gate_leave() use it
 * instead of taking one each.  0, or -1 with errno ETIMEDOUT (or
 * ECONNABORTED, see password_gate_abort_if()).
 */
int password_gate_enter(int64_t deadline_ms);
void password_gate_leave(void);

/*
 * Hashes this thread computes without holding a slot wait for theirs at
 * most until deadline_ms (negative, the default: no limit); one that
 * cannot have it fails with errno ETIMEDOUT.
 */
void password_gate_deadline(int64_t deadline_ms);

/*
 * While set (non-NULL), this thread's waits for a slot look every
 * GATE_POLL_MS, and once more when the slot comes, whether gone(arg) says
 * the wait has become pointless (the connection it is for was dropped or
 * closed) and then fail with errno ECONNABORTED (a slot that came is passed
 * on), so such a login does not live on, uncounted, until its turn, nor
 * hash when its turn came just after it was dropped; and a new hash
 * (password_hash()) made for one dropped meanwhile is thrown away.  NULL,
 * the default, waits without looking.
 */
void password_gate_abort_if(bool (*gone)(void *arg), void *arg);

/*
 * A new yescrypt hash of pw at cost (1..11); 0, or -1 with errno
 * (ECONNABORTED: password_gate_abort_if()'s gone() said so once it was made).
 */
int password_hash(const char *pw, int cost, char out[PASSWORD_HASH_MAX]);
/* Constant-time comparison of crypt(pw, hash) with hash. */
bool password_check(const char *pw, const char *hash);
/* True when hash was not made by yescrypt at this cost. */
bool password_needs_rehash(const char *hash, int cost);

#endif
