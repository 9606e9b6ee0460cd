/*
 * names.h - user and room names: what is valid, and how names compare.
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

/*
 * A room name is 1..ROOM_NAME_MAX characters of [A-Za-z0-9_.-] starting
 * with a letter (so it is never mistaken for a number: /who ROOM PAGE).
 * Rooms compare ignoring ASCII case, like names (name_cmp).
 */
#define ROOM_NAME_MAX 32
bool room_name_valid(const char *s, size_t len);

/* The longest room topic any setting allows (max_topic), bytes. */
#define MAX_TOPIC_BYTES 1024

/* strcmp() ignoring ASCII case: the order /who lists names in. */
int name_cmp(const char *a, const char *b);

#endif
