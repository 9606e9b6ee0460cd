/*
 * wordset.c - a set of names (wordset.h): a list in the order added, and an
 * open-addressing hash index over it (linear probing, the hash of the
 * ASCII-lowercased bytes), so a name is found or added in the time its
 * bytes take.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wordset.h"

_Static_assert((WORDSET_SLOTS & (WORDSET_SLOTS - 1)) == 0, "a power of 2");
_Static_assert(WORDSET_MAX < WORDSET_SLOTS && WORDSET_MAX < UINT16_MAX,
	       "a free slot always ends a probe; an index fits a slot");

/* FNV-1a of the bytes with ASCII letters lowercased: equal ignoring case, equal hash. */
static size_t
hash(const char *word, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)word[i];

		h ^= c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
		h *= 16777619u;
	}
	return h & (WORDSET_SLOTS - 1);
}

int
wordset_add(struct wordset *w, const char *word, size_t len)
{
	size_t at;
	char *copy;

	if (len == 0 || w->n >= WORDSET_MAX)
		return 0;
	if (w->slots == NULL && (w->slots = calloc(WORDSET_SLOTS, sizeof(*w->slots))) == NULL)
		return -1;
	for (at = hash(word, len); w->slots[at] != 0; at = (at + 1) & (WORDSET_SLOTS - 1)) {
		const char *seen = w->words[w->slots[at] - 1];

		if (strlen(seen) == len && strncasecmp(seen, word, len) == 0)
			return 0;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		char **p = realloc(w->words, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		w->words = p;
		w->cap = cap;
	}
	if ((copy = strndup(word, len)) == NULL)
		return -1;
	w->words[w->n++] = copy;
	w->slots[at] = (uint16_t)w->n;
	return 0;
}

void
wordset_free(struct wordset *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->words[i]);
	free(w->words);
	free(w->slots);
	memset(w, 0, sizeof(*w));
}
