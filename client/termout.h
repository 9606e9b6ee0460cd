/*
 * termout.h - chat's text written out, in the terminal's character set.
 *
 * chat's text is UTF-8, controls kept out of it (sanitize.h).  But in a
 * terminal whose character set is not UTF-8 (an 8-bit one: a locale such
 * as C or de_DE.ISO-8859-1) the bytes of a UTF-8 character may be C1
 * controls themselves: U+00DB is C3 9B, and 9B is CSI there (9D OSC, 9C
 * ST).  So when the output is a terminal and the character set of
 * LC_CTYPE is not UTF-8, each character beyond ASCII is written in that
 * character set (wcrtomb()) when it has a form there made of printable
 * bytes only (none below 0x20, 0x7F or 0x80-0x9F), and as '?' otherwise.
 * ASCII, chat's own colour sequences included, goes out as it is.  Output
 * to a file or a pipe stays UTF-8, as the protocol is.  One thread (the
 * caller's), after setlocale().
 */
#ifndef CHAT_TERMOUT_H
#define CHAT_TERMOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Whether text written to fd (standard output or error) is converted: looked up once. */
bool termout_converts(int fd);

/* Writes len bytes of UTF-8 text to f (stdout or stderr), converted if need be. */
void termout_write(FILE *f, const char *s, size_t len);

/* fprintf(), the text then written as termout_write() does. */
void termout_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
