/*
 * secret_tty.h - typing a password at a terminal: echo off (and signals,
 * so Ctrl-C cannot leave the terminal mute), then the terminal exactly as
 * it was.  Shared by chat and chatctl.
 */
#ifndef CHATD_SECRET_TTY_H
#define CHATD_SECRET_TTY_H

#include <stddef.h>
#include <stdio.h>

/*
 * Prints prompt on out and reads one line of at most max bytes from the
 * terminal fd without echo.  Returns it (wipe with secret_wipe_free()), or
 * NULL at end of input, on Ctrl-C or Ctrl-D, or when the line is too long.
 */
char *tty_read_secret(int fd, FILE *out, const char *prompt, size_t max);

/* Overwrites a password, then frees it; NULL is fine. */
void secret_wipe_free(char *s);

#endif
