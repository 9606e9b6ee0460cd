/*
 * termcs.c - whether a terminal takes UTF-8 (termcs.h).
 */
#include <langinfo.h>
#include <locale.h>
#include <string.h>
#include <unistd.h>

#include "termcs.h"

bool
terminal_not_utf8(int fd)
{
	locale_t loc;
	bool utf8;

	if (!isatty(fd))
		return false;
	/* The environment's locale, without setlocale(): the process's stays as it is. */
	loc = newlocale(LC_CTYPE_MASK, "", (locale_t)0);
	if (loc == (locale_t)0)
		return true;
	utf8 = strcmp(nl_langinfo_l(CODESET, loc), "UTF-8") == 0;
	freelocale(loc);
	return !utf8;
}
