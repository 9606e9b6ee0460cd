/*
 * login.h - the login dialogue: HELLO, name, password, registration
 * (docs/PROTOCOL.md "Login"), run in the client's own thread.
 */
#ifndef CHATD_LOGIN_H
#define CHATD_LOGIN_H

#include <stddef.h>

#include "session.h"

/*
 * Runs the dialogue.  Returns 0 with c->name set once the client is who it
 * says; -1 when the connection must end: *why and text say why.
 * *registered tells whether the name was registered just now.
 */
int login_run(struct client *c, bool *registered, enum part_reason *why, char *text, size_t textlen);

#endif
