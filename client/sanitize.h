/*
 * sanitize.h - text from the network made safe for a terminal.
 *
 * chatd refuses control characters, but the client does not count on it:
 * whatever a server or another user sends, nothing reaches the terminal
 * that could move the cursor, change colours, retitle the window or
 * reorder text.
 */
#ifndef CHAT_SANITIZE_H
#define CHAT_SANITIZE_H

#include <stddef.h>

#include "strbuf.h"

/*
 * Appends len bytes of s to sb, each character text_check() refuses
 * (control, bidirectional control, line separator, invisible format or tag
 * character) and each byte of invalid UTF-8 replaced by U+FFFD; valid
 * printable text is copied unchanged.
 * Returns 0, or -1 when memory runs out.
 */
int sanitize_append(struct strbuf *sb, const char *s, size_t len);

#endif
