/*
 * login.h - the native protocol's login dialogue: HELLO, name, password,
 * registration (docs/PROTOCOL.md "Login"), run in the client's own thread;
 * the checks are auth.h's.
 */
#ifndef CHATD_LOGIN_H
#define CHATD_LOGIN_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "client.h"
#include "session.h"

/*
 * The dialogue's state.  Its fields belong to login.c (auth's to auth.c);
 * it is declared here so a caller can keep one on its stack and drive the
 * dialogue without a socket (fuzz/login.c does, with lines from memory).
 */
struct login {
	struct auth auth; /* the client, the deadline, the failures so far */
	bool have_name;
	bool known;         /* the name is registered */
	bool registered;    /* ... by this login */
	bool guest_offered; /* PASS said an empty line comes in as a guest */
	bool ok;            /* logged in */
	bool done;          /* the dialogue is over: ok, or why and text say why not */
	enum part_reason why;
	char text[128];
};

/*
 * The longest line of the dialogue, whatever max_line is: a password may
 * be PASSWORD_MAX_LEN bytes (chatctl user add, IRC REGISTER) and "RESUME
 * NAME TOKEN" is 104, so a short max_line (64 at least) does not keep its
 * owner out; max_line holds from the welcome on.
 */
#define LOGIN_LINE_MAX 256

/* A new dialogue for c, its deadline from the current login_timeout (nothing is sent). */
void login_start(struct login *lg, struct client *c);

/*
 * One outcome of client_read_line() (line and len only with CLIENT_LINE):
 * queues the replies and moves the dialogue on, wiping a password from
 * line once used.  Returns 0, or -1 if a reply could not be queued.
 */
int login_step(struct login *lg, enum client_read r, char *line, size_t len);

/*
 * Runs the dialogue.  Returns 0 with c->name set once the client is who it
 * says; -1 when the connection must end: *why and text say why.
 * *registered tells whether the name was registered just now.
 */
int login_run(struct client *c, bool *registered, enum part_reason *why, char *text,
	      size_t textlen);

#endif
