/*
 * login.h - the login exchange (docs/PROTOCOL.md, "Login"), protocol
 * version 2 (another major version is refused with a clear message), as a state
 * machine fed one server line at a time, so the terminal mode can run it
 * inside its event loop when it reconnects and the plain mode can run it
 * straight through.
 *
 * With a resume token (docs/PROTOCOL.md "Resume tokens") the first line is
 * "RESUME NAME TOKEN" instead of the name; if the server refuses the token
 * the exchange goes on with the name and the password on the same
 * connection.  After a password login the caller may ask for a new token
 * (LOGIN_TOKEN_REQUEST, login_parse_token()).  As a guest (--guest,
 * login_as_guest()) the password is the empty line, sent only where the
 * server's PASS offers it.
 */
#ifndef CHAT_LOGIN_H
#define CHAT_LOGIN_H

#include <stdbool.h>

#include "conn.h"
#include "names.h"
#include "rooms.h"
#include "srvline.h"

enum login_state {
	LOGIN_AWAIT_HELLO,
	LOGIN_AWAIT_RESUME, /* RESUME sent: WELCOME, or ERR and the name goes next */
	LOGIN_AWAIT_PASS,
	LOGIN_AWAIT_PASSWORD, /* the caller must supply it: login_send_password() */
	LOGIN_AWAIT_WELCOME,
	LOGIN_AWAIT_OK, /* USERS, TOPIC and HIST lines until the final OK */
	LOGIN_LOGGED_IN,
	LOGIN_FAILED,
};

enum login_event {
	LOGIN_CONTINUE, /* nothing for the caller to do */
	LOGIN_SHOW,     /* the line is part of the login reply (WELCOME, USERS, TOPIC, HIST, OK) */
	LOGIN_NEED_PASSWORD, /* ask for the password (again, if wrong_password) */
	LOGIN_DONE,          /* logged in: the line is the final OK */
	LOGIN_ERROR,         /* failed: exit_code and message say why */
};

struct login {
	enum login_state state;
	const char *name;
	const char *password; /* NULL: ask for it */
	const char *token;    /* a resume token to try first, or NULL */
	bool token_refused;   /* the server refused it: forget it */
	bool resumed;         /* logged in with the token, no password sent */
	bool may_ask;         /* a wrong password is asked for again */
	bool is_new;          /* PASS new: the name will be registered */
	bool guest_only;      /* PASS guest: no user of the name, no registration: an empty password
			    comes in as a guest */
	bool as_guest;        /* --guest: the empty line, only where the server offers it */
	bool wrong_password;  /* the last password given was wrong */
	bool retry;           /* failed for a reason a new connection may not have */
	bool name_taken;      /* ERR 409: a new name was registered by another just now */
	char user[NAME_MAX_LEN + 1];  /* the registered spelling, from WELCOME */
	char room[ROOM_NAME_MAX + 1]; /* the default room, from the reply's USERS */
	int exit_code;
	char message[600];
};

/* password may be NULL (then LOGIN_NEED_PASSWORD asks for it). */
void login_start(struct login *l, const char *name, const char *password, bool may_ask);

/*
 * Log in as a guest (--guest; call after login_start()): the empty line
 * goes as the password where the server's PASS offers a guest login
 * ("PASS guest", or "PASS new" whose text offers it); a registered name
 * (PASS known), or a server that offers none, fails with CHAT_EXIT_LOGIN.
 */
void login_as_guest(struct login *l);

/* Feeds one server line; may send the name or the password on c. */
enum login_event login_feed(struct login *l, const struct srv_line *line, struct conn *c);

/*
 * The resume token to present first (64 hex digits), or NULL; call after
 * login_start().
 */
void login_use_token(struct login *l, const char *token);

/* What asks for a new token once logged in; its reply is an OK or an ERR. */
#define LOGIN_TOKEN_REQUEST "/token"

/* The token of an "OK - TOKEN EXPIRY ..." reply to /token; false if it is not one. */
bool login_parse_token(const struct srv_line *ok, char token[65], int64_t *expiry_ms);

/* Sends the password the caller asked for; 0 or -1 (connection broken). */
int login_send_password(struct login *l, struct conn *c, const char *password);

#endif
