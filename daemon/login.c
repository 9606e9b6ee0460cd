/*
 * login.c - the login dialogue of the native protocol (docs/PROTOCOL.md
 * "Login"): HELLO, a name (or RESUME NAME TOKEN), PASS known/new, a
 * password, and the wording of every answer.
 *
 * Runs in the client's thread, before it joins the room.  What is checked
 * and how (the throttle, the hash gate, a wrong password's delay, the
 * attempts, registration, resume tokens) is auth.c's; this file maps each
 * outcome onto the native replies.  Password bytes are wiped from the
 * input buffer as soon as they were used, and never logged.  Each step
 * reads the settings it needs then (settings_get()): a reload may come
 * while the dialogue waits.
 *
 * While chatd has a TLS listener, plain_login says who may log in on the
 * plain port (auth_plain_refused()): a refused client gets ERR 426 naming
 * the TLS port in answer to its first line (a name or a RESUME), before it
 * sends a secret.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "login.h"
#include "lograte.h"
#include "password.h"
#include "resume.h"
#include "server.h"
#include "utf8.h"
#include "version.h"

#define SERVER_GREETING "welcome to chatd; who are you?"
#define RESUME_PREFIX "RESUME "
#define RESUME_PREFIX_LEN (sizeof(RESUME_PREFIX) - 1)

_Static_assert(LOGIN_LINE_MAX >= PASSWORD_MAX_LEN &&
		       LOGIN_LINE_MAX >= RESUME_PREFIX_LEN + NAME_MAX_LEN + 1 + RESUME_TOKEN_HEX,
	       "a password or a RESUME line would not fit a login line");

static int
ask_password(struct login *lg, const char *name)
{
	struct client *c = lg->auth.c;
	char canonical[NAME_MAX_LEN + 1];

	const struct settings *s = settings_get();

	lg->known = auth_known(&lg->auth, name, canonical);
	if (!lg->known && !s->registration && !s->guests)
		return client_reply_err(c, ERR_REGISTRATION_CLOSED,
					"no user %s, and registration is closed", name);
	snprintf(c->name, sizeof(c->name), "%s", lg->known ? canonical : name);
	lg->have_name = true;
	lg->guest_offered = !lg->known && s->guests;
	if (lg->known)
		return client_reply(c, "PASS known %s password for %s", c->name, c->name);
	if (!s->registration)
		return client_reply(c,
				    "PASS guest %s no user %s: an empty line comes in as a guest",
				    c->name, c->name);
	if (s->guests)
		return client_reply(c,
				    "PASS new %s choose a password to register %s, or send an "
				    "empty line to come in as a guest",
				    c->name, c->name);
	return client_reply(c, "PASS new %s choose a password to register %s", c->name, c->name);
}

static int
handle_name(struct login *lg, const char *line, size_t len)
{
	enum text_check tc = text_check(line, len);

	if (tc != TEXT_OK)
		return client_reply_err(lg->auth.c, ERR_BAD_TEXT, "%s in name", text_check_str(tc));
	if (!name_valid(line, len))
		return client_reply_err(lg->auth.c, ERR_BAD_NAME,
					"a name is 1-%d letters, digits, '_', '.' or '-', "
					"starting with a letter or digit",
					NAME_MAX_LEN);
	return ask_password(lg, line);
}

/* Ends the dialogue: why, and the text its BYE gives. */
static int
end(struct login *lg, enum part_reason why, const char *text)
{
	lg->why = why;
	snprintf(lg->text, sizeof(lg->text), "%s", text);
	lg->done = true;
	return 0;
}

/* The whole login is bounded by login_timeout, whatever it waits for. */
static int
timed_out(struct login *lg)
{
	return end(lg, PART_TIMEOUT, "login took too long");
}

/*
 * The native answer to a password (by_token false) or a resume token:
 * logged in, ERR and another try (a wrong one's delay is served by now),
 * or the end of the dialogue.
 */
static int
answer(struct login *lg, enum auth_outcome o, int64_t wait, bool by_token)
{
	struct client *c = lg->auth.c;

	switch (o) {
	case AUTH_OK:
		lg->ok = lg->done = true;
		return 0;
	case AUTH_REGISTERED:
		lg->registered = lg->ok = lg->done = true;
		return 0;
	case AUTH_BAD_PASSWORD:
		if (by_token)
			return client_reply_err(c, ERR_BAD_PASSWORD,
						"resume token refused for %s; log in "
						"with the name and password",
						c->name);
		return client_reply_err(c, ERR_BAD_PASSWORD, "wrong password for %s", c->name);
	case AUTH_TOO_MANY:
		return end(lg, PART_REFUSED, "too many failed attempts");
	case AUTH_THROTTLED:
		return client_reply_err(c, ERR_TOO_MANY,
					"too many failed logins for %s; try "
					"again in %lld s",
					c->name, (long long)(wait + 999) / 1000);
	case AUTH_THROTTLE_FULL:
		return client_reply_err(c, ERR_TOO_MANY,
					"too many logins are being throttled; "
					"try again in 1 s");
	case AUTH_TAKEN:
		/* No wrong password: ERR 409, and the dialogue asks for a name again. */
		lg->have_name = false;
		return client_reply_err(c, ERR_NAME_TAKEN,
					"%s was registered by someone else just "
					"now; choose another name",
					c->name);
	case AUTH_TIMEOUT:
		return timed_out(lg);
	case AUTH_SHUTDOWN:
		return end(lg, PART_SHUTDOWN, part_reason_text(PART_SHUTDOWN));
	case AUTH_GONE:
		return end(lg, PART_LOST, part_reason_text(PART_LOST));
	case AUTH_INTERNAL:
		if (!lg->known)
			return client_reply_err(c, ERR_INTERNAL,
						"registration could not be stored; try again");
		return client_reply_err(c, ERR_INTERNAL,
					"cannot check the password now; try again");
	case AUTH_CLOSED:
		/* PASS new, then a reload closed registration: ask for a name again. */
		lg->have_name = false;
		return client_reply_err(c, ERR_REGISTRATION_CLOSED,
					"no user %s, and registration is closed now; "
					"choose another name",
					c->name);
	case AUTH_BAD_INPUT:     /* not reached: checked before */
	case AUTH_WEAK_PASSWORD: /* not reached: an empty line is no password */
	case AUTH_BAD_NAME:      /* not reached: auth_register() only */
		break;
	}
	return client_reply_err(c, ERR_BAD_REQUEST, "cannot check that");
}

static int
handle_password(struct login *lg, const char *pw, size_t len)
{
	struct client *c = lg->auth.c;
	enum text_check tc = text_check(pw, len);
	int64_t wait;

	if (tc != TEXT_OK)
		return client_reply_err(c, ERR_BAD_TEXT, "%s in password", text_check_str(tc));
	if (len > PASSWORD_MAX_LEN)
		return client_reply_err(c, ERR_BAD_REQUEST, "a password is at most %d bytes",
					PASSWORD_MAX_LEN);
	enum auth_outcome o = auth_password(&lg->auth, c->name, pw, len, &wait);

	return answer(lg, o, wait, false);
}

/*
 * "RESUME NAME TOKEN" as the first line (docs/PROTOCOL.md "Resume tokens"):
 * auth_token() logs a live token in or makes a refused one cost what a
 * wrong password costs; after a refusal the dialogue waits for a name
 * again.
 */
static int
handle_resume(struct login *lg, char *line, size_t len)
{
	char *name = line + RESUME_PREFIX_LEN;
	char *token = memchr(name, ' ', len - RESUME_PREFIX_LEN);
	enum auth_outcome o;
	int64_t wait;

	if (token == NULL || !name_valid(name, (size_t)(token - name)) ||
	    !resume_token_syntax(token + 1, len - (size_t)(token + 1 - line)))
		return client_reply_err(lg->auth.c, ERR_BAD_REQUEST,
					"usage: RESUME NAME TOKEN (a token is "
					"%d hex digits)",
					RESUME_TOKEN_HEX);
	*token++ = '\0';
	o = auth_token(&lg->auth, name, token, &wait);
	return answer(lg, o, wait, true);
}

/* Anyone can cause these by connecting: bounded (lograte.h). */
static struct log_rate plain_refusals =
	LOG_RATE_INIT(LVL_INFO, "plain logins refused (plain_login allows only TLS there)");
static struct log_rate guest_logins = LOG_RATE_INIT(LVL_INFO, "guest logins");

static int
refuse_plain(struct login *lg)
{
	struct client *c = lg->auth.c;
	int port = c->srv->tls_port;

	log_rated(&plain_refusals,
		  "refused a plain login from %s: plain_login allows only TLS there", c->addr_str);
	lg->why = PART_REFUSED;
	snprintf(lg->text, sizeof(lg->text), "log in over TLS on port %d", port);
	lg->done = true;
	return client_reply_err(c, ERR_TLS_REQUIRED,
				"no passwords in clear here: log in over TLS on port %d", port);
}

/* Reports why the line could not be had; false when the dialogue ends. */
static bool
line_arrived(struct login *lg, enum client_read r)
{
	switch (r) {
	case CLIENT_LINE:
		return true;
	case CLIENT_OVERLONG:
		/* The line is dropped; the dialogue goes on, unless its answer cannot be had. */
		if (client_reply_err(lg->auth.c, ERR_TOO_LONG, "line too long") < 0)
			end(lg, PART_ERROR, "out of memory");
		return false;
	case CLIENT_TIMEOUT:
		timed_out(lg);
		break;
	case CLIENT_SHUTDOWN:
		end(lg, PART_SHUTDOWN, part_reason_text(PART_SHUTDOWN));
		break;
	case CLIENT_EOF:
		end(lg, PART_LOST, part_reason_text(PART_LOST));
		break;
	case CLIENT_NO_MEMORY:
		end(lg, PART_ERROR, "out of memory");
		break;
	}
	return false;
}

void
login_start(struct login *lg, struct client *c)
{
	*lg = (struct login){ .why = PART_LOST };
	auth_start(&lg->auth, c);
}

/*
 * An empty password for a name nobody registered, with guests on: in as a
 * guest, unless the name was registered since PASS new was said (looked up
 * again now: the dialogue may have waited up to login_timeout) or someone
 * of that name is online (ERR 409 both, a name again).
 */
static int
guest_login(struct login *lg)
{
	struct client *c = lg->auth.c;
	char canonical[NAME_MAX_LEN + 1], away[8];
	bool guest;

	if (auth_known(&lg->auth, c->name, canonical)) {
		lg->have_name = false;
		return client_reply_err(
			c, ERR_NAME_TAKEN,
			"%s was registered by someone else just now; choose another "
			"name",
			canonical);
	}
	if (room_presence(c->srv->hub, c->name, canonical, away, sizeof(away), &guest)) {
		lg->have_name = false;
		return client_reply_err(c, ERR_NAME_TAKEN, "%s is online; choose another name",
					canonical);
	}
	c->room.guest = true; /* not online yet: nobody else reads it before room_login() */
	log_rated(&guest_logins, "login %s from %s as a guest", c->name, c->addr_str);
	lg->ok = lg->done = true;
	return 0;
}

/*
 * An empty line after PASS offered to let it in as a guest, but a reload
 * turned guests off since: told so, a name again (as a registration
 * closed since PASS new), rather than left waiting for a password.
 */
static int
guests_closed(struct login *lg)
{
	lg->have_name = false;
	return client_reply_err(lg->auth.c, ERR_REGISTRATION_CLOSED,
				"no guests are let in now; choose another name");
}

int
login_step(struct login *lg, enum client_read r, char *line, size_t len)
{
	int rc;

	if (!line_arrived(lg, r))
		return 0;
	if (len == 0 && lg->have_name && !lg->known && settings_get()->guests)
		return guest_login(lg);
	if (len == 0 && lg->have_name && lg->guest_offered)
		return guests_closed(lg);
	if (len == 0)
		return 0;
	if (!lg->have_name && auth_plain_refused(lg->auth.c, lg->auth.c->srv->tls_port)) {
		explicit_bzero(line, len);
		return refuse_plain(lg);
	}
	if (!lg->have_name && len > RESUME_PREFIX_LEN &&
	    memcmp(line, RESUME_PREFIX, RESUME_PREFIX_LEN) == 0) {
		rc = handle_resume(lg, line, len);
		explicit_bzero(line, len);
		return rc;
	}
	if (!lg->have_name)
		return handle_name(lg, line, len);
	rc = handle_password(lg, line, len);
	explicit_bzero(line, len);
	return rc;
}

int
login_run(struct client *c, bool *registered, enum part_reason *why, char *text, size_t textlen)
{
	struct login lg;

	login_start(&lg, c);
	int rc = client_reply(c, "HELLO %d chatd/%s %s", PROTO_VERSION, CHATD_VERSION,
			      SERVER_GREETING);

	while (rc == 0 && !lg.done) {
		char *line = NULL;
		size_t len = 0;
		enum client_read r = client_read_line(c, lg.auth.deadline, &line, &len);

		rc = login_step(&lg, r, line, len);
	}
	*registered = lg.registered;
	/* A reply that could not be queued: memory ran out. */
	*why = rc < 0 ? PART_ERROR : lg.why;
	snprintf(text, textlen, "%s", rc < 0 ? "out of memory" : lg.text);
	return rc == 0 && lg.ok ? 0 : -1;
}
