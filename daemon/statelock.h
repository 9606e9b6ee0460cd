/*
 * statelock.h - one chatd per state directory.
 *
 * An exclusive flock() on STATE_DIR/chatd.lock, taken before chatd binds a
 * port or touches its files and held (through an open descriptor) until
 * the process exits.  The file holds the owner's pid, for the message a
 * second chatd prints.
 */
#ifndef CHATD_STATELOCK_H
#define CHATD_STATELOCK_H

#include <stddef.h>

/* Returns the descriptor holding the lock, or -1 with a message in err. */
int statelock_acquire(const char *state_dir, char *err, size_t errlen);

#endif
