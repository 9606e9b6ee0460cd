/*
 * secret.h - reading a password: from the terminal without echo (asked
 * twice when confirm is set), or as one line of stdin when stdin is not a
 * terminal, so scripts can pipe it in.  Never from the command line.
 */
#ifndef CHATCTL_SECRET_H
#define CHATCTL_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* 0, or -1 with a message on stderr (no input, mismatch, too long). */
int secret_read(const char *prompt, bool confirm, char *buf, size_t len);

#endif
