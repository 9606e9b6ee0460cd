/*
 * login.c - the login dialogue (docs/PROTOCOL.md "Login").
 *
 * Runs in the client's thread, before it joins the room.  Password hashes
 * are computed here, outside every lock, each in a slot of the gate that
 * bounds how many run at once (password.c), taken by the login's deadline;
 * a password check is first reserved with the throttle (throttle.c).
 * Password bytes are wiped from the input buffer as soon as they were
 * used, and never logged.  Each step reads the settings it needs then
 * (settings_get()): a reload may come while the dialogue waits.
 *
 * While chatd has a TLS listener, plain_login says who may log in on the
 * plain port: a refused client gets ERR 426 naming the TLS port in answer
 * to its first line (a name or a RESUME), before it sends a secret.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "ident.h"
#include "log.h"
#include "login.h"
#include "password.h"
#include "room.h"
#include "resume.h"
#include "server.h"
#include "throttle.h"
#include "timefmt.h"
#include "utf8.h"
#include "version.h"

#define SERVER_GREETING "welcome to chatd; who are you?"
#define RESUME_PREFIX "RESUME "
#define RESUME_PREFIX_LEN (sizeof(RESUME_PREFIX) - 1)

static int
ask_password(struct login *lg, const char *name)
{
	char canonical[NAME_MAX_LEN + 1];

	lg->known = ident_lookup(lg->c->srv->ident, name, canonical);
	if (!lg->known && !settings_get()->registration)
		return client_reply_err(lg->c, ERR_REGISTRATION_CLOSED,
					"no user %s, and registration is closed", name);
	snprintf(lg->c->name, sizeof(lg->c->name), "%s", lg->known ? canonical : name);
	lg->have_name = true;
	if (lg->known)
		return client_reply(lg->c, "PASS known %s password for %s", lg->c->name,
				    lg->c->name);
	return client_reply(lg->c, "PASS new %s choose a password to register %s", lg->c->name,
			    lg->c->name);
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
					"starting with a letter or digit",
					NAME_MAX_LEN);
	return ask_password(lg, line);
}

/* The whole login is bounded by login_timeout, whatever it waits for. */
static int
timed_out(struct login *lg)
{
	lg->why = PART_TIMEOUT;
	snprintf(lg->text, sizeof(lg->text), "login took too long");
	lg->done = true;
	return 0;
}

static int
shutting_down(struct login *lg)
{
	lg->why = PART_SHUTDOWN;
	snprintf(lg->text, sizeof(lg->text), "%s", part_reason_text(PART_SHUTDOWN));
	lg->done = true;
	return 0;
}

/* Records the failure with the throttle: the delay it costs, under the current settings. */
static int64_t
failure_delay(struct throttle_ticket *t)
{
	const struct settings *s = settings_get();

	return throttle_failed(t, time_mono_ms(), s->login_fail_delay_ms,
			       s->login_fail_delay_max_ms);
}

/*
 * A wrong password (or resume token, by_token) costs a delay, then a retry,
 * until the attempts run out.  A delay that would outlast the login ends it
 * when the login's time is up.
 */
static int
password_refused(struct login *lg, struct throttle_ticket *t, bool by_token)
{
	struct client *c = lg->c;
	int64_t delay = failure_delay(t);
	int64_t left = lg->deadline - time_mono_ms();

	log_warning("%s for %s from %s; next try in %lld ms",
		    by_token ? "resume token refused" : "login failed", c->name, c->addr_str,
		    (long long)delay);
	lg->failures++;
	if (!client_pause(c, (int)(delay < left ? delay : left > 0 ? left : 0)))
		return shutting_down(lg);
	if (delay >= left)
		return timed_out(lg);
	if (lg->failures >= settings_get()->login_attempts) {
		lg->why = PART_REFUSED;
		snprintf(lg->text, sizeof(lg->text), "too many failed attempts");
		lg->done = true;
		return 0;
	}
	if (by_token)
		return client_reply_err(c, ERR_BAD_PASSWORD,
					"resume token refused for %s; log in "
					"with the name and password",
					c->name);
	return client_reply_err(c, ERR_BAD_PASSWORD, "wrong password for %s", c->name);
}

/*
 * Has the connection been shut down (dropped for the login budget,
 * peers.c) or reset by the peer?  Then a wait for a hash slot or for
 * another's check is pointless: the login ends instead of living on,
 * outside the budget, until its turn.  A peer that only stopped sending
 * (FIN) is still waited for: it may read the answer.
 */
static bool
connection_gone(void *arg)
{
	const struct client *c = arg;
	struct pollfd p = { .fd = c->fd };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static int
gone(struct login *lg, const char *what)
{
	log_info("gave up %s %s from %s: the connection was dropped", what, lg->c->name,
		 lg->c->addr_str);
	lg->why = PART_LOST;
	snprintf(lg->text, sizeof(lg->text), "%s", part_reason_text(PART_LOST));
	lg->done = true;
	return 0;
}

/*
 * Registers the name.  Losing a race for it to another registration is no
 * wrong password: ERR 409, and the dialogue asks for a name again.  The
 * hash waits for its slot only until the login's deadline (the slot is not
 * held while the registration is written).
 */
static int
register_name(struct login *lg, const char *pw)
{
	struct client *c = lg->c;
	enum ident_result r;

	password_gate_deadline(lg->deadline);
	password_gate_abort_if(connection_gone, c);
	r = ident_register(c->srv->ident, c->name, pw, settings_get()->hash_cost);
	password_gate_abort_if(NULL, NULL);
	password_gate_deadline(-1);
	if (r == IDENT_OK) {
		throttle_registered(&c->addr, c->name, time_mono_ms());
		log_notice("registered %s from %s", c->name, c->addr_str);
		lg->registered = lg->ok = lg->done = true;
		return 0;
	}
	if (r == IDENT_EXISTS) {
		log_info("%s was registered by someone else while %s chose a password", c->name,
			 c->addr_str);
		lg->have_name = false;
		return client_reply_err(c, ERR_NAME_TAKEN,
					"%s was registered by someone else just "
					"now; choose another name",
					c->name);
	}
	if (time_mono_ms() >= lg->deadline)
		return timed_out(lg); /* no hash slot in time */
	if (connection_gone(c))
		return gone(lg, "registering");
	log_error("cannot register %s: %s", c->name, ident_result_str(r));
	return client_reply_err(c, ERR_INTERNAL, "registration could not be stored; try again");
}

/*
 * Reserves the check of a password for c->name from c's address
 * (throttle.h): true with *t held; false once the reply (ERR 429) or the
 * end of the dialogue is settled, *rc saying how queueing the reply went.
 */
static bool
reserve_check(struct login *lg, struct throttle_ticket *t, int *rc)
{
	struct client *c = lg->c;
	int64_t wait;

	*rc = 0;
	for (;;) {
		int64_t now = time_mono_ms();

		switch (throttle_begin(t, &c->addr, c->name, now, &wait)) {
		case THROTTLE_GO:
			return true;
		case THROTTLE_WAIT:
			*rc = client_reply_err(c, ERR_TOO_MANY,
					       "too many failed logins for %s; try "
					       "again in %lld s",
					       c->name, (long long)(wait + 999) / 1000);
			return false;
		case THROTTLE_FULL:
			*rc = client_reply_err(c, ERR_TOO_MANY,
					       "too many logins are being throttled; "
					       "try again in 1 s");
			return false;
		case THROTTLE_CHECKING:
			break;
		}
		/* Another check for the name or from the address runs: its outcome decides. */
		if (now >= lg->deadline) {
			*rc = timed_out(lg);
			return false;
		}
		/* In steps of a second at most, to notice a shutdown or a drop. */
		throttle_await(t, lg->deadline < now + 1000 ? lg->deadline : now + 1000);
		if (room_closing(c->srv->hub)) {
			*rc = shutting_down(lg);
			return false;
		}
		if (connection_gone(c)) {
			*rc = gone(lg, "checking the password for");
			return false;
		}
	}
}

static int
handle_password(struct login *lg, const char *pw, size_t len)
{
	struct client *c = lg->c;
	char canonical[NAME_MAX_LEN + 1];
	enum text_check tc = text_check(pw, len);
	struct throttle_ticket t;
	enum ident_result r;
	int rc;

	if (tc != TEXT_OK)
		return client_reply_err(c, ERR_BAD_TEXT, "%s in password", text_check_str(tc));
	if (len > PASSWORD_MAX_LEN)
		return client_reply_err(c, ERR_BAD_REQUEST, "a password is at most %d bytes",
					PASSWORD_MAX_LEN);
	if (!lg->known)
		return register_name(lg, pw);

	/* Reserved before the hash: a guesser on many connections gets one check at a time. */
	if (!reserve_check(lg, &t, &rc))
		return rc;
	/* The slot is held across the check, so running out of time is no wrong password. */
	password_gate_abort_if(connection_gone, c);
	int entered = password_gate_enter(lg->deadline);

	password_gate_abort_if(NULL, NULL);
	if (entered != 0) {
		throttle_abandon(&t);
		return connection_gone(c) ? gone(lg, "checking the password for") : timed_out(lg);
	}
	r = ident_verify(c->srv->ident, c->name, pw, settings_get()->hash_cost, canonical);
	password_gate_leave();
	switch (r) {
	case IDENT_OK:
		throttle_succeeded(&t, time_mono_ms());
		snprintf(c->name, sizeof(c->name), "%s", canonical);
		log_info("login %s from %s", c->name, c->addr_str);
		lg->ok = lg->done = true;
		return 0;
	case IDENT_BAD_PASSWORD:
	case IDENT_UNKNOWN: /* deleted meanwhile */
		return password_refused(lg, &t, false);
	default:
		throttle_abandon(&t);
		return client_reply_err(c, ERR_INTERNAL,
					"cannot check the password now; try again");
	}
}

/*
 * "RESUME NAME TOKEN" as the first line (docs/PROTOCOL.md "Resume tokens"):
 * a live token of NAME logs it in with no hash and no wait, and its address
 * becomes one the name logs in from (throttle.h).  A token is 256 random
 * bits, so checking one before the throttle gives a guesser nothing; a
 * refused one then costs what a wrong password costs (a failure for the
 * name and the address, or ERR 429 while a delay runs), and the dialogue
 * waits for a name again.
 */
static int
handle_resume(struct login *lg, char *line, size_t len)
{
	struct client *c = lg->c;
	char *name = line + RESUME_PREFIX_LEN;
	char *token = memchr(name, ' ', len - RESUME_PREFIX_LEN);
	char canonical[NAME_MAX_LEN + 1];
	struct throttle_ticket t;
	int rc;

	if (token == NULL || !name_valid(name, (size_t)(token - name)) ||
	    !resume_token_syntax(token + 1, len - (size_t)(token + 1 - line)))
		return client_reply_err(c, ERR_BAD_REQUEST,
					"usage: RESUME NAME TOKEN (a token is "
					"%d hex digits)",
					RESUME_TOKEN_HEX);
	*token++ = '\0';
	if (settings_get()->resume_token_ttl > 0 && ident_lookup(c->srv->ident, name, canonical) &&
	    resume_verify(canonical, token, time_now_ms())) {
		snprintf(c->name, sizeof(c->name), "%s", canonical);
		throttle_registered(&c->addr, c->name, time_mono_ms());
		log_info("login %s from %s with a resume token", c->name, c->addr_str);
		lg->ok = lg->done = true;
		return 0;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (!reserve_check(lg, &t, &rc))
		return rc;
	return password_refused(lg, &t, true);
}

static bool
is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family != AF_INET6)
		return false;
	if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		return in6->sin6_addr.s6_addr[12] == 127;
	return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

/* plain_login: may this connection send a password (or token) in clear? */
static bool
plain_login_refused(const struct client *c)
{
	if (c->is_tls || c->srv->tls_port <= 0)
		return false;
	switch (settings_get()->plain_login) {
	case PLAIN_LOGIN_ALLOW:
		return false;
	case PLAIN_LOGIN_LOOPBACK:
		return !is_loopback(&c->addr);
	default:
		return true;
	}
}

static int
refuse_plain(struct login *lg)
{
	struct client *c = lg->c;
	int port = c->srv->tls_port;

	log_info("refused a plain login from %s: plain_login allows only TLS there", c->addr_str);
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
		client_reply_err(lg->c, ERR_TOO_LONG, "line too long");
		return false;
	case CLIENT_TIMEOUT:
		timed_out(lg);
		break;
	case CLIENT_SHUTDOWN:
		shutting_down(lg);
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
	*lg = (struct login){ .c = c, .why = PART_LOST };

	/* From the accept on (connected_ms, wall clock), on the monotonic clock. */
	int64_t timeout = (int64_t)settings_get()->login_timeout * 1000;
	int64_t since = c->connected_ms > 0 ? time_now_ms() - c->connected_ms : 0;

	since = since < 0 ? 0 : since > timeout ? timeout : since;
	lg->deadline = time_mono_ms() + timeout - since;
}

int
login_step(struct login *lg, enum client_read r, char *line, size_t len)
{
	int rc;

	if (!line_arrived(lg, r) || len == 0)
		return 0;
	if (!lg->have_name && plain_login_refused(lg->c)) {
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
		enum client_read r = client_read_line(c, lg.deadline, &line, &len);

		rc = login_step(&lg, r, line, len);
	}
	*registered = lg.registered;
	*why = lg.why;
	snprintf(text, textlen, "%s", lg.text);
	return rc == 0 && lg.ok ? 0 : -1;
}
