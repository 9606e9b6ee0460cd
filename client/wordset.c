/*
 * wordset.c - a small set of names (wordset.h): an array searched in
 * order, enough for what one person's client sees.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wordset.h"

int
wordset_add(struct wordset *w, const char *word, size_t len)
{
	char *copy;

	if (len == 0 || w->n >= WORDSET_MAX)
		return 0;
	for (size_t i = 0; i < w->n; i++)
		if (strlen(w->words[i]) == len && strncasecmp(w->words[i], word, len) == 0)
			return 0;
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
	return 0;
}

void
wordset_free(struct wordset *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->words[i]);
	free(w->words);
	memset(w, 0, sizeof(*w));
}
