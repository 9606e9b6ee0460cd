/*
 * wordset.h - names seen (rooms, users), kept for Tab completion: each
 * once ignoring ASCII case, in the spelling first seen and in the order
 * seen, at most WORDSET_MAX of them.  Adding one costs the same however
 * many are kept (a hash index beside the list), so a server naming the
 * same users over and over costs chat time in proportion to its bytes only.
 * One thread (the caller's).
 */
#ifndef CHAT_WORDSET_H
#define CHAT_WORDSET_H

#include <stddef.h>
#include <stdint.h>

#define WORDSET_MAX 4096
#define WORDSET_SLOTS (2 * WORDSET_MAX) /* the hash index: a power of 2, never over half full */

struct wordset {
	char **words; /* in the order added */
	size_t n, cap;
	uint16_t *slots; /* WORDSET_SLOTS of them: 0 empty, else index in words + 1 */
};

/* Adds the len bytes at word unless they are there already (or the set is full); 0 or -1. */
int wordset_add(struct wordset *w, const char *word, size_t len);

void wordset_free(struct wordset *w);

#endif
