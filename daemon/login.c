/*
 * login.c - the login dialogue (docs/PROTOCOL.md "Login").
 *
 * Runs in the client's thread, before it joins the room.  Password hashes
 * are computed here, outside every lock (ident.c and password.c see to the
 * gate that bounds how many run at once).  Password bytes are wiped from
 * the input buffer as soon as they were used, and never logged.
 */
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "ident.h"
#include "log.h"
#include "login.h"
#include "password.h"
#include "resume.h"
#include "server.h"
#include "throttle.h"
#include "timefmt.h"
#include "utf8.h"
#include "version.h"

#define SERVER_GREETING "welcome to chatd; who are you?"

static int
ask_password(struct login *lg, const char *name)
{
	char canonical[NAME_MAX_LEN + 1];

	lg->known = ident_lookup(lg->c->srv->ident, name, canonical);
	if (!lg->known && !lg->s->registration)
		return client_reply_err(lg->c, ERR_REGISTRATION_CLOSED,
					"no user %s, and registration is closed", name);
	snprintf(lg->c->name, sizeof(lg->c->name), "%s", lg->known ? canonical : name);
	lg->have_name = true;
	if (lg->known)
		return client_reply(lg->c, "PASS known %s password for %s", lg->c->name, lg->c->name);
	return client_reply(lg->c, "PASS new %s choose a password to register %s",
			    lg->c->name, lg->c->name);
}

static int
handle_name(struct login *lg, const char *line, size_t len)
{
	enum text_check tc = text_check(line, len);

	if (tc != TEXT_OK)
		return client_reply_err(lg->c, ERR_BAD_TEXT, "%s in name", text_check_str(tc));
	if (!name_valid(line, len))
		return client_reply_err(lg->c, ERR_BAD_NAME,
					"a name is 1-%d letters, digits, '_', '.' or '-', "
					"starting with a letter or digit", NAME_MAX_LEN);
	return ask_password(lg, line);
}

/* A wrong password costs a delay, then a retry, until the attempts run out. */
static int
password_refused(struct login *lg)
{
	struct client *c = lg->c;

	int64_t delay = throttle_failed(&c->addr, c->name, time_mono_ms(),
					lg->s->login_fail_delay_ms, lg->s->login_fail_delay_max_ms);

	log_warning("login failed for %s from %s; next try in %lld ms", c->name, c->addr_str,
		    (long long)delay);
	lg->failures++;
	if (!client_pause(c, (int)delay)) {
		lg->why = PART_SHUTDOWN;
		snprintf(lg->text, sizeof(lg->text), "%s", part_reason_text(PART_SHUTDOWN));
		lg->done = true;
		return 0;
	}
	if (lg->failures >= lg->s->login_attempts) {
		lg->why = PART_REFUSED;
		snprintf(lg->text, sizeof(lg->text), "too many failed attempts");
		lg->done = true;
		return 0;
	}
	return client_reply_err(c, ERR_BAD_PASSWORD, "wrong password for %s", c->name);
}

/* Registers the name; false if someone else registered it meanwhile. */
static bool
register_name(struct login *lg, const char *pw, int *rc)
{
	struct client *c = lg->c;
	enum ident_result r = ident_register(c->srv->ident, c->name, pw, lg->s->hash_cost);

	*rc = 0;
	if (r == IDENT_EXISTS)
		return false;
	if (r == IDENT_OK) {
		log_notice("registered %s from %s", c->name, c->addr_str);
		lg->registered = lg->ok = lg->done = true;
	} else {
		log_error("cannot register %s: %s", c->name, ident_result_str(r));
		*rc = client_reply_err(c, ERR_INTERNAL, "registration could not be stored; try again");
	}
	return true;
}

static int
handle_password(struct login *lg, const char *pw, size_t len)
{
	struct client *c = lg->c;
	char canonical[NAME_MAX_LEN + 1];
	enum text_check tc = text_check(pw, len);

	if (tc != TEXT_OK)
		return client_reply_err(c, ERR_BAD_TEXT, "%s in password", text_check_str(tc));
	if (len > PASSWORD_MAX_LEN)
		return client_reply_err(c, ERR_BAD_REQUEST, "a password is at most %d bytes",
					PASSWORD_MAX_LEN);
	if (!lg->known) {
		int rc;

		if (register_name(lg, pw, &rc))
			return rc;
		lg->known = true;	/* registered by someone else meanwhile: a login now */
	}

	/* Before the hash: a guesser on many connections at once waits all the same. */
	int64_t wait = throttle_wait_ms(&c->addr, c->name, time_mono_ms());
	if (wait > 0)
		return client_reply_err(c, ERR_TOO_MANY, "too many failed logins for %s; try again "
					"in %lld s", c->name, (long long)(wait + 999) / 1000);
	switch (ident_verify(c->srv->ident, c->name, pw, lg->s->hash_cost, canonical)) {
	case IDENT_OK:
		throttle_succeeded(c->name, time_mono_ms());
		snprintf(c->name, sizeof(c->name), "%s", canonical);
		log_info("login %s from %s", c->name, c->addr_str);
		lg->ok = lg->done = true;
		return 0;
	case IDENT_BAD_PASSWORD:
	case IDENT_UNKNOWN:	/* deleted meanwhile */
		return password_refused(lg);
	default:
		return client_reply_err(c, ERR_INTERNAL, "cannot check the password now; try again");
	}
}

/* Reports why the line could not be had; false when the dialogue ends. */
static bool
line_arrived(struct login *lg, enum client_read r)
{
	switch (r) {
	case CLIENT_LINE:
		return true;
	case CLIENT_OVERLONG:
		client_reply_err(lg->c, ERR_TOO_LONG, "line too long");
		return false;
	case CLIENT_TIMEOUT:
		lg->why = PART_TIMEOUT;
		snprintf(lg->text, sizeof(lg->text), "login took too long");
		break;
	case CLIENT_SHUTDOWN:
		lg->why = PART_SHUTDOWN;
		snprintf(lg->text, sizeof(lg->text), "%s", part_reason_text(PART_SHUTDOWN));
		break;
	case CLIENT_EOF:
		lg->why = PART_LOST;
		snprintf(lg->text, sizeof(lg->text), "%s", part_reason_text(PART_LOST));
		break;
	}
	lg->done = true;
	return false;
}

void
login_start(struct login *lg, struct client *c)
{
	*lg = (struct login){ .c = c, .s = settings_get(), .why = PART_LOST };
}

int
login_step(struct login *lg, enum client_read r, char *line, size_t len)
{
	int rc;

	if (!line_arrived(lg, r) || len == 0)
		return 0;
	if (!lg->have_name && resume_is_line(line, len)) {	/* docs/PROTOCOL.md "Resume tokens" */
		rc = resume_login(lg, line, len);
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
	int64_t deadline = time_mono_ms() + (int64_t)lg.s->login_timeout * 1000;
	int rc = client_reply(c, "HELLO %d chatd/%s %s", PROTO_VERSION, CHATD_VERSION, SERVER_GREETING);

	while (rc == 0 && !lg.done) {
		char *line = NULL;
		size_t len = 0;
		enum client_read r = client_read_line(c, deadline, &line, &len);

		rc = login_step(&lg, r, line, len);
	}
	*registered = lg.registered;
	*why = lg.why;
	snprintf(text, textlen, "%s", lg.text);
	return rc == 0 && lg.ok ? 0 : -1;
}
