/*
 * wordset.h - names seen (rooms, users), kept for Tab completion: each
 * once ignoring ASCII case, in the spelling first seen, at most
 * WORDSET_MAX of them.  One thread (the caller's).
 */
#ifndef CHAT_WORDSET_H
#define CHAT_WORDSET_H

#include <stddef.h>

#define WORDSET_MAX 4096

struct wordset {
	char **words;
	size_t n, cap;
};

/* Adds the len bytes at word unless they are there already (or the set is full); 0 or -1. */
int wordset_add(struct wordset *w, const char *word, size_t len);

void wordset_free(struct wordset *w);

#endif
