/*
 * names.h - user names: what is a valid name, and how names compare.
 *
 * A name is 1..NAME_MAX_LEN characters of [A-Za-z0-9_.-] starting with a
 * letter or a digit.  Names are unique ignoring ASCII case.
 */
#ifndef CHATD_NAMES_H
#define CHATD_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_MAX_LEN 32

bool name_valid(const char *s, size_t len);

/* strcmp() ignoring ASCII case: the order /who lists names in. */
int name_cmp(const char *a, const char *b);

#endif
