/*
 * names.c - which user and room names are valid and how names compare.
 *
 * Only ASCII rules, spelled out by hand: the C library's ctype functions and
 * strcasecmp() follow the locale, and a name must mean the same user
 * whatever locale chatd happens to run in.  No state: any thread.
 */
#include <stdbool.h>
#include <stddef.h>

#include "names.h"

static bool
is_ascii_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_name_char(unsigned char c)
{
	return is_ascii_alnum(c) || c == '_' || c == '.' || c == '-';
}

static unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

bool
name_valid(const char *s, size_t len)
{
	if (len == 0 || len > NAME_MAX_LEN || !is_ascii_alnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!is_name_char((unsigned char)s[i]))
			return false;
	return true;
}

static bool
is_ascii_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool
room_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > ROOM_NAME_MAX || !is_ascii_alpha((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!is_name_char((unsigned char)s[i]))
			return false;
	return true;
}

int
name_cmp(const char *a, const char *b)
{
	const unsigned char *p = (const unsigned char *)a;
	const unsigned char *q = (const unsigned char *)b;

	while (*p != '\0' && ascii_lower(*p) == ascii_lower(*q)) {
		p++;
		q++;
	}
	return ascii_lower(*p) - ascii_lower(*q);
}
