/*
 * secret.h - where the password comes from: a file (--password-file), the
 * environment (CHAT_PASSWORD) or the terminal with echo off.  Never the
 * command line, where every user of the machine can read it.
 */
#ifndef CHAT_SECRET_H
#define CHAT_SECRET_H

#include <stddef.h>

#define SECRET_ENV "CHAT_PASSWORD"

/*
 * The password from file (if not NULL) or else from $CHAT_PASSWORD, which
 * is then removed from the environment.  0 with *out NULL when neither is
 * given; -1 with err set when the file cannot be used.
 */
int secret_load(const char *file, char **out, char *err, size_t errsz);

/*
 * Prints prompt and reads one line from the terminal on fd without echo.
 * NULL on end of input or Ctrl-C.
 */
char *secret_prompt(int fd, const char *prompt);

/* Wipes and frees a password. */
void secret_free(char *s);

#endif
