/*
 * auth.h - who a connection is: a password (registering the name when it
 * is unknown and registration is open) or a resume token.  Core: no wire
 * format; each front-end words the outcomes (login.c for the native
 * protocol).
 *
 * Runs in the client's own thread, before it joins a room.  A password
 * check is reserved with the throttle first (throttle.h: ERR 429's
 * delays, one check at a time per name and address); its hash runs
 * outside every lock, in a slot of the password gate (password.h) had by
 * the login's deadline.  A wrong password or token costs its delay here,
 * in the call, before the caller answers.  Passwords are never logged.
 */
#ifndef CHATD_AUTH_H
#define CHATD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "session.h"

enum auth_outcome {
	AUTH_OK,            /* logged in as the registered name (spelling in c->name) */
	AUTH_REGISTERED,    /* the name was not known: registered now with this password */
	AUTH_BAD_PASSWORD,  /* wrong password (or token): its delay is served; may try again */
	AUTH_TOO_MANY,      /* wrong, and login_attempts are used up: end the login */
	AUTH_THROTTLED,     /* refused unchecked: *wait_ms until name/address may try */
	AUTH_THROTTLE_FULL, /* too many logins are being throttled: try again in 1 s */
	AUTH_CLOSED,        /* the name is not registered and registration is closed */
	AUTH_TAKEN,         /* the name is registered: by someone else meanwhile, or already
			     * (auth_register()) */
	AUTH_TIMEOUT,       /* the login's deadline passed (a wait or a delay outlasted it) */
	AUTH_SHUTDOWN,      /* chatd is stopping */
	AUTH_GONE,          /* the connection was shut down (login budget) or reset */
	AUTH_INTERNAL,      /* could not check or store now (try again) */
	AUTH_BAD_INPUT,     /* not a valid name, password or token: nothing checked */
	AUTH_WEAK_PASSWORD, /* a new name's password is too weak to register (empty) */
	AUTH_BAD_NAME,      /* auth_register(): not a valid name; nothing checked */
};

/*
 * One login, on its caller's stack.  c, deadline and failures are the
 * caller's to read (and deadline to move); the rest belongs to auth.c.
 */
struct auth {
	struct client *c;
	int64_t deadline; /* time_mono_ms() by which the login must end */
	int failures;     /* wrong passwords and tokens so far */
	/* What auth_known() found, for the next auth_password() for that name: */
	bool looked_up;
	bool known;
	bool may_register;           /* registration was open then */
	char name[NAME_MAX_LEN + 1]; /* the registered spelling, or the name as given */
};

/* A new login for c: its deadline is login_timeout (current setting) after c's accept. */
void auth_start(struct auth *a, struct client *c);

/*
 * Is name (valid) registered?  canonical (NAME_MAX_LEN + 1 bytes, or
 * NULL) gets its registered spelling then.  Remembers the answer, and
 * whether registration is open now, for an auth_password() for the same
 * name, which then holds to them (a name registered by another meanwhile
 * is AUTH_TAKEN, not a check of that one's password).
 */
bool auth_known(struct auth *a, const char *name, char *canonical);

/*
 * Is c->name registered now?  A guest asks once online (room_login()):
 * a registration of its name that ended between its front-end's look-up
 * and then found no guest online to replace, so the guest must go.
 */
bool auth_registered_now(const struct client *c);

/*
 * Is the account c logged in as still there?  An account asks once
 * online: chatctl user del ends the sessions it finds online, so one that
 * comes online after is ended too, and so is one whose name was deleted
 * and registered again (by someone else, with another password) while its
 * password was checked.  One that chatctl ident clear forgot counts as
 * there, unless its name was registered again: ident clear keeps the
 * sessions online.
 */
bool auth_account_now(const struct client *c);

/*
 * Checks password pw (len bytes, NUL-terminated) for name, registering the
 * name with it if it is unknown and registration is open (an empty
 * password registers nothing: AUTH_WEAK_PASSWORD).  Without an
 * auth_known() for name first, it looks the name up now.  On AUTH_OK and
 * AUTH_REGISTERED c->name is the name logged in as; on the others it is
 * the name tried (for the answer's wording).  *wait_ms is set with
 * AUTH_THROTTLED (0 otherwise).  May block: for the throttle, a hash slot,
 * the hash, and a wrong password's delay, all bounded by the deadline.
 */
enum auth_outcome auth_password(struct auth *a, const char *name, const char *pw, size_t len,
				int64_t *wait_ms);

/*
 * Registers name with password pw (len bytes, NUL-terminated) and nothing
 * else: a known name is AUTH_TAKEN, never a password check.  The rules are
 * auth_password()'s for a new name: a valid name (else AUTH_BAD_NAME),
 * registration open (AUTH_CLOSED), a password of 1-PASSWORD_MAX_LEN bytes
 * of text (empty: AUTH_WEAK_PASSWORD; too long or not text: AUTH_BAD_INPUT),
 * checked in that order before anything is hashed; then the hash, in a
 * slot of the gate had by a->deadline (AUTH_REGISTERED, or AUTH_TAKEN if
 * someone registered it meanwhile, AUTH_TIMEOUT, AUTH_GONE, AUTH_INTERNAL).
 * Just before the hash c->name becomes name; pass c->name itself for a
 * connection that is online (a guest), whose name others read: it is then
 * left alone.  No throttle: nothing is guessed.
 */
enum auth_outcome auth_register(struct auth *a, const char *name, const char *pw, size_t len);

/*
 * A resume token (RESUME_TOKEN_HEX lower-case hex digits) for name: a live
 * one logs in (AUTH_OK) with no hash and no wait, and the address becomes
 * one the name logs in from.  A refused one costs what a wrong password
 * costs (AUTH_BAD_PASSWORD after the delay, AUTH_TOO_MANY, or
 * AUTH_THROTTLED before checking).  c->name as with auth_password().
 */
enum auth_outcome auth_token(struct auth *a, const char *name, const char *token, int64_t *wait_ms);

/*
 * plain_login: must c, on a plain (not TLS) port, be refused before it
 * sends a password or token?  tls_port is the TLS port of c's protocol
 * (<= 0: none, so never).
 */
bool auth_plain_refused(const struct client *c, int tls_port);

/* "ok", "wrong password", ...: for logs and tests. */
const char *auth_outcome_str(enum auth_outcome o);

#endif
