/*
 * termcs.h - whether a terminal takes UTF-8.
 *
 * In a terminal whose character set is not UTF-8 (an 8-bit one: a locale
 * such as C or de_DE.ISO-8859-1) the bytes 0x80-0x9F are C1 controls: the
 * continuation bytes of valid UTF-8 text then steer it (U+00DB is C3 9B,
 * and 9B is CSI).  chat (client/termout.c) and chatctl keep such bytes
 * off those terminals.  Any thread; it changes no locale.
 */
#ifndef CHATD_TERMCS_H
#define CHATD_TERMCS_H

#include <stdbool.h>

/*
 * Whether fd is a terminal whose character set, that of the environment's
 * LC_CTYPE (LC_ALL, LC_CTYPE, LANG), is not UTF-8, or cannot be told.
 */
bool terminal_not_utf8(int fd);

#endif
