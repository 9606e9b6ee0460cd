/*
 * auth.c - who a connection is: password checks, registration and resume
 * tokens, shared by every front-end's login (login.c for the native
 * protocol); the outcomes are an enum, the wording is the front-end's.
 *
 * Runs in the client's thread, before it joins a room.  Password hashes
 * are computed here, outside every lock, each in a slot of the gate that
 * bounds how many run at once (password.c), taken by the login's deadline;
 * a password check is first reserved with the throttle (throttle.c).
 * A wrong password's delay is served with client_pause() (client.c), a
 * wait that knows no protocol.  Passwords are never logged.  Each step
 * reads the settings it needs then (settings_get()): a reload may come
 * while a login waits.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "ident.h"
#include "log.h"
#include "lograte.h"
#include "password.h"
#include "resume.h"
#include "room.h"
#include "server.h"
#include "throttle.h"
#include "timefmt.h"
#include "utf8.h"

void
auth_start(struct auth *a, struct client *c)
{
	*a = (struct auth){ .c = c };

	/* From the accept on (connected_ms, wall clock), on the monotonic clock. */
	int64_t timeout = (int64_t)settings_get()->login_timeout * 1000;
	int64_t since = c->connected_ms > 0 ? time_now_ms() - c->connected_ms : 0;

	since = since < 0 ? 0 : since > timeout ? timeout : since;
	a->deadline = time_mono_ms() + timeout - since;
}

/* c->name = name (which may be c->name itself). */
static void
set_name(struct client *c, const char *name)
{
	if (name != c->name)
		snprintf(c->name, sizeof(c->name), "%s", name);
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

/* Lines anyone can cause without an account: bounded (lograte.h). */
static struct log_rate logins_gone =
	LOG_RATE_INIT(LVL_INFO, "logins given up (the connection was dropped)");
static struct log_rate logins_failed = LOG_RATE_INIT(LVL_WARNING, "failed logins");

static enum auth_outcome
gone(struct auth *a, const char *what)
{
	log_rated(&logins_gone, "gave up %s %s from %s: the connection was dropped", what,
		  a->c->name, a->c->addr_str);
	return AUTH_GONE;
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
 * A wrong password (or resume token, by_token) costs a delay, served
 * here, then a retry, until the attempts run out.  A delay that would
 * outlast the login ends it when the login's time is up.
 */
static enum auth_outcome
refused(struct auth *a, struct throttle_ticket *t, bool by_token)
{
	struct client *c = a->c;
	int64_t delay = failure_delay(t);
	int64_t left = a->deadline - time_mono_ms();

	log_rated(&logins_failed, "%s for %s from %s; next try in %lld ms",
		  by_token ? "resume token refused" : "login failed", c->name, c->addr_str,
		  (long long)delay);
	a->failures++;
	if (!client_pause(c, (int)(delay < left ? delay : left > 0 ? left : 0)))
		return AUTH_SHUTDOWN;
	if (delay >= left)
		return AUTH_TIMEOUT;
	if (a->failures >= settings_get()->login_attempts)
		return AUTH_TOO_MANY;
	return AUTH_BAD_PASSWORD;
}

/*
 * Reserves the check of a password for c->name from c's address
 * (throttle.h): AUTH_OK with *t held, else why not (nothing held).
 */
static enum auth_outcome
reserve_check(struct auth *a, struct throttle_ticket *t, int64_t *wait_ms)
{
	struct client *c = a->c;

	for (;;) {
		int64_t now = time_mono_ms();

		switch (throttle_begin(t, &c->addr, c->name, now, wait_ms)) {
		case THROTTLE_GO:
			return AUTH_OK;
		case THROTTLE_WAIT:
			return AUTH_THROTTLED;
		case THROTTLE_FULL:
			return AUTH_THROTTLE_FULL;
		case THROTTLE_CHECKING:
			break;
		}
		/* Another check for the name or from the address runs: its outcome decides. */
		if (now >= a->deadline)
			return AUTH_TIMEOUT;
		/* In steps of a second at most, to notice a shutdown or a drop. */
		throttle_await(t, a->deadline < now + 1000 ? a->deadline : now + 1000);
		if (room_closing(c->srv->hub))
			return AUTH_SHUTDOWN;
		if (connection_gone(c))
			return gone(a, "checking the password for");
	}
}

/*
 * Registers c->name.  Losing a race for it to another registration is no
 * wrong password: AUTH_TAKEN.  The hash waits for its slot only until the
 * login's deadline (the slot is not held while the registration is
 * written).
 */
static enum auth_outcome
register_name(struct auth *a, const char *pw)
{
	struct client *c = a->c;
	enum ident_result r;

	password_gate_deadline(a->deadline);
	password_gate_abort_if(connection_gone, c);
	r = ident_register(c->srv->ident, c->name, pw, settings_get()->hash_cost, &c->account);
	password_gate_abort_if(NULL, NULL);
	password_gate_deadline(-1);
	if (r == IDENT_OK) {
		/* A new account starts without tokens, whatever was issued under the name before. */
		resume_revoke(c->name);
		throttle_registered(&c->addr, c->name, time_mono_ms());
		log_notice("registered %s from %s", c->name, c->addr_str);
		a->known = true;
		return AUTH_REGISTERED;
	}
	if (r == IDENT_EXISTS) {
		log_info("%s was registered by someone else while %s chose a password", c->name,
			 c->addr_str);
		a->looked_up = false; /* the next try looks again */
		return AUTH_TAKEN;
	}
	if (time_mono_ms() >= a->deadline)
		return AUTH_TIMEOUT; /* no hash slot in time */
	if (connection_gone(c))
		return gone(a, "registering");
	log_error("cannot register %s: %s", c->name, ident_result_str(r));
	return AUTH_INTERNAL;
}

/* Checks pw for the registered name c->name. */
static enum auth_outcome
verify(struct auth *a, const char *pw, int64_t *wait_ms)
{
	struct client *c = a->c;
	char canonical[NAME_MAX_LEN + 1];
	struct throttle_ticket t;
	enum auth_outcome o;
	enum ident_result r;

	/* Reserved before the hash: a guesser on many connections gets one check at a time. */
	o = reserve_check(a, &t, wait_ms);
	if (o != AUTH_OK)
		return o;
	/* The slot is held across the check, so running out of time is no wrong password. */
	password_gate_abort_if(connection_gone, c);
	int entered = password_gate_enter(a->deadline);

	password_gate_abort_if(NULL, NULL);
	if (entered != 0) {
		throttle_abandon(&t);
		return connection_gone(c) ? gone(a, "checking the password for") : AUTH_TIMEOUT;
	}
	r = ident_verify(c->srv->ident, c->name, pw, settings_get()->hash_cost, canonical,
			 &c->account);
	password_gate_leave();
	switch (r) {
	case IDENT_OK:
		throttle_succeeded(&t, time_mono_ms());
		set_name(c, canonical);
		log_info("login %s from %s", c->name, c->addr_str);
		return AUTH_OK;
	case IDENT_BAD_PASSWORD:
	case IDENT_UNKNOWN: /* deleted meanwhile */
		return refused(a, &t, false);
	default:
		throttle_abandon(&t);
		return AUTH_INTERNAL;
	}
}

bool
auth_known(struct auth *a, const char *name, char *canonical)
{
	char spelling[NAME_MAX_LEN + 1];

	a->known = ident_lookup(a->c->srv->ident, name, spelling);
	a->may_register = settings_get()->registration;
	snprintf(a->name, sizeof(a->name), "%s", a->known ? spelling : name);
	a->looked_up = true;
	if (a->known && canonical != NULL)
		memcpy(canonical, spelling, strlen(spelling) + 1);
	return a->known;
}

bool
auth_registered_now(const struct client *c)
{
	return ident_lookup(c->srv->ident, c->name, NULL);
}

bool
auth_account_now(const struct client *c)
{
	uint64_t now = ident_account(c->srv->ident, c->name);

	if (c->account != 0 && now == c->account)
		return true;
	/* Forgotten by ident clear, whose sessions stay, as those online do. */
	return now == 0 && ident_cleared(c->srv->ident, c->account);
}

/*
 * Registration was open when the name was looked up, and still is: a
 * reload that closed it (SIGHUP) stops a dialogue that began before too.
 */
static bool
registration_open(const struct auth *a)
{
	return a->may_register && settings_get()->registration;
}

/* A password as text: at most PASSWORD_MAX_LEN bytes, no NUL inside, text_check()'s rules. */
static bool
password_text(const char *pw, size_t len)
{
	return len <= PASSWORD_MAX_LEN && text_check(pw, len) == TEXT_OK && pw[len] == '\0';
}

enum auth_outcome
auth_password(struct auth *a, const char *name, const char *pw, size_t len, int64_t *wait_ms)
{
	*wait_ms = 0;
	if (!name_valid(name, strlen(name)) || !password_text(pw, len))
		return AUTH_BAD_INPUT;
	if (!a->looked_up || name_cmp(a->name, name) != 0)
		auth_known(a, name, NULL);
	set_name(a->c, a->name);
	if (a->known)
		return verify(a, pw, wait_ms);
	if (!registration_open(a))
		return AUTH_CLOSED;
	if (len == 0) /* a new account's password: not empty */
		return AUTH_WEAK_PASSWORD;
	return register_name(a, pw);
}

enum auth_outcome
auth_register(struct auth *a, const char *name, const char *pw, size_t len)
{
	if (!name_valid(name, strlen(name)))
		return AUTH_BAD_NAME;
	auth_known(a, name, NULL);
	if (!registration_open(a))
		return AUTH_CLOSED;
	if (a->known)
		return AUTH_TAKEN;
	if (len == 0)
		return AUTH_WEAK_PASSWORD;
	if (!password_text(pw, len))
		return AUTH_BAD_INPUT;
	set_name(a->c, name);
	return register_name(a, pw);
}

/*
 * A token is 256 random bits, so checking one before the throttle gives a
 * guesser nothing; a refused one then counts as a failure for the name and
 * the address, or is refused unchecked while a delay runs.
 */
enum auth_outcome
auth_token(struct auth *a, const char *name, const char *token, int64_t *wait_ms)
{
	struct client *c = a->c;
	char canonical[NAME_MAX_LEN + 1];
	struct throttle_ticket t;
	enum auth_outcome o;
	uint64_t account;

	*wait_ms = 0;
	if (!name_valid(name, strlen(name)) || !resume_token_syntax(token, strlen(token)))
		return AUTH_BAD_INPUT;
	/* The account first: one cleared or deleted after the check is still told from no account. */
	if (settings_get()->resume_token_ttl > 0 &&
	    (account = ident_account(c->srv->ident, name)) != 0 &&
	    ident_lookup(c->srv->ident, name, canonical) &&
	    resume_verify(canonical, token, time_now_ms())) {
		set_name(c, canonical);
		c->account = account;
		throttle_registered(&c->addr, c->name, time_mono_ms());
		log_info("login %s from %s with a resume token", c->name, c->addr_str);
		return AUTH_OK;
	}
	set_name(c, name);
	o = reserve_check(a, &t, wait_ms);
	if (o != AUTH_OK)
		return o;
	return refused(a, &t, true);
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

bool
auth_plain_refused(const struct client *c, int tls_port)
{
	if (c->is_tls || tls_port <= 0)
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

const char *
auth_outcome_str(enum auth_outcome o)
{
	switch (o) {
	case AUTH_OK:
		return "ok";
	case AUTH_REGISTERED:
		return "registered";
	case AUTH_BAD_PASSWORD:
		return "wrong password";
	case AUTH_TOO_MANY:
		return "too many failed attempts";
	case AUTH_THROTTLED:
		return "throttled";
	case AUTH_THROTTLE_FULL:
		return "throttle full";
	case AUTH_CLOSED:
		return "registration closed";
	case AUTH_TAKEN:
		return "name taken";
	case AUTH_TIMEOUT:
		return "timed out";
	case AUTH_SHUTDOWN:
		return "shutting down";
	case AUTH_GONE:
		return "connection gone";
	case AUTH_INTERNAL:
		return "internal error";
	case AUTH_BAD_INPUT:
		return "bad input";
	case AUTH_WEAK_PASSWORD:
		return "weak password";
	case AUTH_BAD_NAME:
		return "bad name";
	}
	return "?";
}
