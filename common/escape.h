/*
 * escape.h - making untrusted bytes safe to print.
 *
 * Everything outside printable ASCII, and the backslash itself, becomes
 * \xNN, so no peer can forge a log line or a terminal escape sequence.
 */
#ifndef CHATD_ESCAPE_H
#define CHATD_ESCAPE_H

#include <stddef.h>

/*
 * Escapes len bytes of in into out (always NUL-terminated when outsz > 0);
 * returns the length written.  Stops early, without splitting an escape,
 * when out is full.
 */
size_t escape_bytes(char *out, size_t outsz, const char *in, size_t len);

#endif
