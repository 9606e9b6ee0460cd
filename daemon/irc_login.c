/*
 * irc_login.c - an IRC client's registration (docs/IRC.md
 * "Registration"): CAP negotiation, NICK, USER, PASS, SASL PLAIN and
 * REGISTER (irc_register.c), checked by the same core as the native login
 * (auth.h: throttle, hash slots, delays, registration when open), then the
 * welcome: 001-005, the MOTD and the default room.  Runs in the
 * connection's own thread, before it is online; passwords are wiped as
 * soon as they were used.
 *
 * The nick is the account name.  Registration completes once NICK and
 * USER came and CAP negotiation (if begun) ended: as the SASL account or
 * the account REGISTER made (irc_register.c), or as NICK with PASS as its
 * password (registering NICK if it is unknown and registration is open),
 * or, with guests on, as a guest under a NICK nobody registered.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "irc.h"
#include "log.h"
#include "lograte.h"
#include "names.h"
#include "password.h"
#include "room.h"
#include "server.h"
#include "timefmt.h"
#include "version.h"
#include "wire.h"

/* SASL: AUTHENTICATE data comes in chunks of 400 bytes; all of it at most this. */
#define SASL_CHUNK 400
#define SASL_MAX 1200

struct reg {
	struct auth a;
	bool done, ok;
	struct session_state *st;
};

static void
end_with(struct reg *rg, enum part_reason why, const char *text)
{
	rg->st->why = why;
	snprintf(rg->st->text, sizeof(rg->st->text), "%s", text);
	rg->done = true;
}

/* Anyone can cause these by connecting: bounded (lograte.h). */
static struct log_rate plain_refusals =
	LOG_RATE_INIT(LVL_INFO, "plain IRC logins refused (plain_login allows only TLS there)");
static struct log_rate guest_logins = LOG_RATE_INIT(LVL_INFO, "guest logins (IRC)");

bool
irc_plain_refused(struct client *c, struct session_state *st)
{
	int port = c->srv->irc_tls_port;

	if (!auth_plain_refused(c, port))
		return false;
	log_rated(&plain_refusals,
		  "refused a plain IRC login from %s: plain_login allows only TLS there",
		  c->addr_str);
	st->why = PART_REFUSED;
	snprintf(st->text, sizeof(st->text),
		 "no passwords in clear here: connect with TLS to port %d", port);
	return true;
}

/* Passwords in clear on the plain IRC port: the same rule as the native port (plain_login). */
static bool
clear_refused(struct reg *rg, struct client *c)
{
	if (!irc_plain_refused(c, rg->st))
		return false;
	rg->done = true;
	return true;
}

/* The outcome of a password check, worded for SASL (904...) or PASS (464); true when logged in. */
static bool
checked(struct reg *rg, struct client *c, enum auth_outcome o, int64_t wait_ms, bool sasl)
{
	const char *num = sasl ? "904" : "464";
	struct irc_conn *ic = irc_conn(c);

	switch (o) {
	case AUTH_OK:
	case AUTH_REGISTERED:
		ic->registered_now = o == AUTH_REGISTERED;
		ic->logged_in = true;
		irc_num(c, "900", "%s!%s@chatd %s :You are now logged in as %s", c->name, c->name,
			c->name, c->name);
		if (sasl)
			irc_num(c, "903", ":SASL authentication successful");
		return true;
	case AUTH_BAD_PASSWORD:
		irc_num(c, num, ":%s", sasl ? "SASL authentication failed" : "Password incorrect");
		break;
	case AUTH_TOO_MANY:
		irc_num(c, num, ":%s", sasl ? "SASL authentication failed" : "Password incorrect");
		end_with(rg, PART_REFUSED, "too many failed attempts");
		break;
	case AUTH_THROTTLED:
		irc_num(c, num, ":too many failed logins; try again in %lld s",
			(long long)(wait_ms + 999) / 1000);
		break;
	case AUTH_THROTTLE_FULL:
		irc_num(c, num, ":too many logins are being throttled; try again in 1 s");
		break;
	case AUTH_CLOSED:
		irc_num(c, num, ":no such account, and registration is closed");
		break;
	case AUTH_TAKEN:
		irc_num(c, num, ":the name was registered by someone else just now");
		break;
	case AUTH_TIMEOUT:
		end_with(rg, PART_TIMEOUT, "login took too long");
		break;
	case AUTH_SHUTDOWN:
		end_with(rg, PART_SHUTDOWN, part_reason_text(PART_SHUTDOWN));
		break;
	case AUTH_GONE:
		end_with(rg, PART_LOST, part_reason_text(PART_LOST));
		break;
	case AUTH_INTERNAL:
		irc_num(c, num, ":cannot check the password now; try again");
		break;
	case AUTH_WEAK_PASSWORD:
		irc_num(c, num, ":%s",
			sasl ? "SASL authentication failed: a new account's password must not be empty"
			     : "a new account's password must not be empty");
		break;
	case AUTH_BAD_INPUT:
	case AUTH_BAD_NAME: /* not reached: auth_register() only */
		irc_num(c, num, ":%s",
			sasl ? "SASL authentication failed: not a valid name or password"
			     : "not a valid name or password");
		break;
	}
	return false;
}

/* The SASL PLAIN message "authzid NUL authcid NUL password", decoded. */
static void
sasl_plain(struct reg *rg, struct client *c)
{
	struct irc_conn *ic = irc_conn(c);
	unsigned char dec[SASL_MAX + 1];
	int n = ic->sasl_len ? EVP_DecodeBlock(dec, (unsigned char *)ic->sasl, (int)ic->sasl_len)
			     : 0;
	int64_t wait_ms = 0;

	ic->sasl_plain = false;
	if (n >= 0 && ic->sasl_len >= 1 && ic->sasl[ic->sasl_len - 1] == '=')
		n -= 1 + (ic->sasl_len >= 2 && ic->sasl[ic->sasl_len - 2] == '=');
	if (ic->sasl != NULL)
		explicit_bzero(ic->sasl, ic->sasl_len);
	ic->sasl_len = 0;
	dec[n > 0 ? n : 0] = '\0'; /* the password is the rest: a string */

	const char *authz = (const char *)dec;
	const char *z1 = n > 0 ? memchr(dec, '\0', (size_t)n) : NULL;
	const char *z2 = z1 ? memchr(z1 + 1, '\0', (size_t)n - (size_t)(z1 + 1 - authz)) : NULL;
	if (n < 0 || z2 == NULL || (z1 != authz && strcmp(authz, z1 + 1) != 0) ||
	    !name_valid(z1 + 1, strlen(z1 + 1))) {
		explicit_bzero(dec, sizeof(dec));
		irc_num(c, "904", ":SASL authentication failed: malformed PLAIN message");
		return;
	}
	const char *authc = z1 + 1, *pw = z2 + 1;
	size_t pwlen = (size_t)n - (size_t)(pw - authz);
	enum auth_outcome o = auth_password(&rg->a, authc, pw, pwlen, &wait_ms);

	explicit_bzero(dec, sizeof(dec));
	checked(rg, c, o, wait_ms, true);
}

/* Ends a SASL exchange under way: 906. */
static void
sasl_abort(struct client *c)
{
	struct irc_conn *ic = irc_conn(c);

	ic->sasl_plain = false;
	/* What came of the message may hold the start of a password: wiped, as when used. */
	if (ic->sasl != NULL)
		explicit_bzero(ic->sasl, ic->sasl_len);
	ic->sasl_len = 0;
	irc_num(c, "906", ":SASL authentication aborted");
}

static void
authenticate(struct reg *rg, struct client *c, const struct irc_msg *m)
{
	struct irc_conn *ic = irc_conn(c);
	const char *arg = m->params[0];

	if (ic->logged_in)
		return (void)irc_num(c, "907", ":You have already authenticated using SASL");
	if (strcmp(arg, "*") == 0)
		return sasl_abort(c);
	if (!ic->sasl_plain) {
		if (strcasecmp(arg, "PLAIN") != 0) {
			irc_num(c, "908", "PLAIN :are available SASL mechanisms");
			return (void)irc_num(c, "904", ":SASL authentication failed");
		}
		if (clear_refused(rg, c))
			return;
		ic->sasl_plain = true;
		ic->sasl_len = 0;
		return (void)irc_send(c, "AUTHENTICATE +");
	}
	size_t len = strcmp(arg, "+") == 0 ? 0 : strlen(arg);
	if (len > SASL_CHUNK || ic->sasl_len + len > SASL_MAX) {
		ic->sasl_plain = false;
		if (ic->sasl != NULL)
			explicit_bzero(ic->sasl, ic->sasl_len);
		ic->sasl_len = 0;
		return (void)irc_num(c, "905", ":SASL message too long");
	}
	if (ic->sasl == NULL && (ic->sasl = malloc(SASL_MAX + 1)) == NULL)
		return (void)irc_num(c, "904", ":SASL authentication failed: out of memory");
	memcpy(ic->sasl + ic->sasl_len, arg, len);
	ic->sasl_len += len;
	if (len == SASL_CHUNK) /* more to come */
		return;
	sasl_plain(rg, c);
}

/* NICK and USER are in and CAP negotiation is over: who is it? */
static void
complete(struct reg *rg, struct client *c)
{
	struct irc_conn *ic = irc_conn(c);
	char canonical[NAME_MAX_LEN + 1], away[8];
	int64_t wait_ms = 0;
	bool guest;

	if (ic->logged_in) {
		rg->ok = rg->done = true;
		return;
	}
	if (ic->pass != NULL) {
		size_t len = strlen(ic->pass);
		enum auth_outcome o = auth_password(&rg->a, ic->nick, ic->pass, len, &wait_ms);

		explicit_bzero(ic->pass, len);
		free(ic->pass);
		ic->pass = NULL;
		if (checked(rg, c, o, wait_ms, false))
			rg->ok = rg->done = true;
		else if (!rg->done) /* the session's last words say ERROR (irc_bye) */
			end_with(rg, PART_REFUSED, "wrong password");
		return;
	}
	if (auth_known(&rg->a, ic->nick, canonical)) {
		irc_num(c, "464", ":%s is registered: log in with SASL or PASS", canonical);
		end_with(rg, PART_REFUSED, "no password for a registered name");
		return;
	}
	if (!settings_get()->guests) {
		irc_num(c, "464",
			":Password required: %s is not registered; give a password with PASS (or "
			"SASL) to register it",
			ic->nick);
		end_with(rg, PART_REFUSED, "no password, and guests are off");
		return;
	}
	if (room_presence(c->srv->hub, ic->nick, canonical, away, sizeof(away), &guest)) {
		irc_num(c, "433", "%s :Nickname is already in use", ic->nick);
		ic->have_nick = false;
		return;
	}
	snprintf(c->name, sizeof(c->name), "%s", ic->nick);
	c->room.guest = true;
	log_rated(&guest_logins, "login %s from %s as a guest (IRC)", c->name, c->addr_str);
	rg->ok = rg->done = true;
}

static void
nick(struct reg *rg, struct client *c, const struct irc_msg *m)
{
	struct irc_conn *ic = irc_conn(c);
	const char *n = m->n_params > 0 ? m->params[0] : NULL;
	char echo[IRC_ECHO_MAX + 1];

	(void)rg;
	if (n == NULL || n[0] == '\0')
		return (void)irc_num(c, "431", ":No nickname given");
	if (!name_valid(n, strlen(n)))
		return (void)irc_num(c, "432",
				     "%s :Erroneous nickname: a nick is 1-%d letters, "
				     "digits, '_', '.' or '-', starting with a letter or "
				     "digit",
				     irc_echo(echo, n), NAME_MAX_LEN);
	snprintf(ic->nick, sizeof(ic->nick), "%s", n);
	ic->have_nick = true;
}

static void
pass(struct reg *rg, struct client *c, struct irc_msg *m)
{
	struct irc_conn *ic = irc_conn(c);
	char *p = (char *)m->params[0];
	size_t len = strlen(p);

	if (clear_refused(rg, c))
		return;
	if (len > PASSWORD_MAX_LEN)
		return (void)irc_num(c, "464", ":a password is at most %d bytes", PASSWORD_MAX_LEN);
	if (ic->pass != NULL) {
		explicit_bzero(ic->pass, strlen(ic->pass));
		free(ic->pass);
	}
	ic->pass = strdup(p);
}

/* One line before registration. */
static void
step(struct reg *rg, struct client *c, char *line, size_t len)
{
	struct irc_conn *ic = irc_conn(c);
	struct irc_msg m;
	enum irc_parse_result pr = irc_parse(line, len, &m);

	if (pr == IRC_PARSE_EMPTY)
		return;
	if (pr != IRC_PARSE_OK)
		return (void)irc_unparsed(c, pr);
	irc_take_label(c, &m);
	if (irc_cmd_is(&m, "CAP")) {
		irc_cap_command(c, &m);
		return;
	}
	if (irc_cmd_is(&m, "QUIT")) {
		return end_with(rg, PART_QUIT, part_reason_text(PART_QUIT));
	}
	bool known = irc_cmd_is(&m, "NICK") || irc_cmd_is(&m, "USER") || irc_cmd_is(&m, "PASS") ||
		     irc_cmd_is(&m, "AUTHENTICATE") || irc_cmd_is(&m, "REGISTER") ||
		     irc_cmd_is(&m, "VERIFY") || irc_cmd_is(&m, "PING");
	if (!known)
		return (void)irc_num(c, "451", ":You have not registered");
	/*
	 * The parameters each needs: the command table's counts (irc_commands.c),
	 * as after registration (a PING without its token gets 461 here too).
	 */
	const struct irc_command *cmd = irc_command_find(&m);
	if (cmd == NULL || m.n_params < cmd->min_params)
		return (void)irc_num(c, "461", "%s :Not enough parameters", m.command);
	if (irc_cmd_is(&m, "PING"))
		(void)irc_pong(c, m.params[0]);
	else if (irc_cmd_is(&m, "NICK"))
		nick(rg, c, &m);
	else if (irc_cmd_is(&m, "USER"))
		ic->have_user = true;
	else if (irc_cmd_is(&m, "PASS"))
		pass(rg, c, &m);
	else if (irc_cmd_is(&m, "AUTHENTICATE"))
		authenticate(rg, c, &m);
	else if ((irc_cmd_is(&m, "REGISTER") ? irc_register(c, &rg->a, rg->st, &m)
					     : irc_verify(c, &m)) > 0)
		rg->done = true; /* rg->st says why */
}

int
irc_login(struct client *c, bool *registered, struct session_state *st)
{
	struct irc_conn *ic = irc_conn(c);
	struct reg rg = { .st = st };

	auth_start(&rg.a, c);
	while (!rg.done) {
		char *line = NULL;
		size_t len = 0;
		/* Flood control from the first line (irc.c's bucket): past it, wait for a token. */
		int64_t wait = c->fe->line_wait(c);

		if (wait > 0) {
			int64_t left = rg.a.deadline - time_mono_ms();

			/* The answers so far go out first: the client may be waiting for them. */
			if (client_flush(c) < 0)
				end_with(&rg, PART_LOST, part_reason_text(PART_LOST));
			else if (left <= 0)
				end_with(&rg, PART_TIMEOUT, "login took too long");
			else {
				int ms = (int)(wait < left ? wait : left);
				int64_t from = time_mono_ms();

				if (!client_pause(c, ms))
					end_with(&rg, PART_SHUTDOWN,
						 part_reason_text(PART_SHUTDOWN));
				else if (time_mono_ms() - from <
					 ms) /* shut down or reset: not a wait */
					end_with(&rg, PART_LOST, part_reason_text(PART_LOST));
			}
			if (irc_commit(c) < 0)
				return client_out_of_memory(st);
			continue;
		}
		switch (client_read_line(c, rg.a.deadline, &line, &len)) {
		case CLIENT_LINE:
			ic->tokens -= 1.0;
			step(&rg, c, line, len);
			explicit_bzero(line, len); /* PASS and AUTHENTICATE carry secrets */
			break;
		case CLIENT_OVERLONG:
			ic->tokens -= 1.0;
			irc_num(c, "417", ":Input line was too long");
			break;
		case CLIENT_TIMEOUT:
			end_with(&rg, PART_TIMEOUT, "login took too long");
			break;
		case CLIENT_SHUTDOWN:
			end_with(&rg, PART_SHUTDOWN, part_reason_text(PART_SHUTDOWN));
			break;
		case CLIENT_EOF:
			end_with(&rg, PART_LOST, part_reason_text(PART_LOST));
			break;
		case CLIENT_NO_MEMORY:
			end_with(&rg, PART_ERROR, "out of memory");
			break;
		}
		/*
		 * The line's replies go with its label (labeled-response; an ACK
		 * when it has none), before the welcome it may set off, which
		 * answers no one command and carries no label.
		 */
		if (irc_commit(c) < 0)
			return client_out_of_memory(st);
		if (!rg.done && ic->have_nick && ic->have_user && !ic->cap_negotiating) {
			/*
			 * SASL 3.1: registration that completes while an exchange
			 * is under way aborts it (906) and goes on without it.
			 */
			if (ic->sasl_plain)
				sasl_abort(c);
			complete(&rg, c);
		}
		if (irc_commit(c) < 0)
			return client_out_of_memory(st);
	}
	if (!rg.ok)
		return -1;
	*registered = ic->registered_now;
	snprintf(ic->nick, sizeof(ic->nick), "%s", c->name);
	ic->registered = true;
	irc_caps_apply(c);
	if (!ic->offered_known)
		(void)irc_caps_notify(c); /* no CAP LS: what is offered now is the base */
	return 0;
}

/* ---- the welcome ---- */

int
irc_isupport(struct client *c)
{
	const struct settings *s = settings_get();

	if (irc_num(c, "005",
		    "AWAYLEN=%d CASEMAPPING=ascii CHANLIMIT=#:%d CHANMODES=,,,n CHANNELLEN=%d "
		    "CHANTYPES=# CHATHISTORY=%d :are supported by this server",
		    REASON_TEXT_MAX, s->max_rooms_per_user, ROOM_NAME_MAX + 1,
		    irc_chathistory_max()) < 0)
		return -1;
	return irc_num(
		c, "005",
		"LINELEN=512 MODES=1 MSGREFTYPES=msgid,timestamp NETWORK=chatd NICKLEN=%d "
		"PREFIX=() TARGMAX=PRIVMSG:4,NOTICE:4 TOPICLEN=%zu UTF8ONLY :are supported by "
		"this server",
		NAME_MAX_LEN, wire_irc_topic_max());
}

int
irc_motd(struct client *c)
{
	const char *srv = settings_get()->server_name;

	if (irc_num(c, "375", ":- %s Message of the day -", srv) < 0 ||
	    irc_num(c, "372",
		    ":- This is chatd %s: rooms are channels, and everyone starts in #%s.",
		    CHATD_VERSION, settings_get()->default_room) < 0 ||
	    irc_num(c, "372", ":- What is said here is kept in the room's history.") < 0)
		return -1;
	return irc_num(c, "376", ":End of /MOTD command.");
}

int
irc_welcome(struct client *c, bool registered, struct room_join_reply *rep)
{
	const char *srv = settings_get()->server_name;
	char created[TIME_RFC3339_LEN + 1];

	time_format_ms(created, c->srv->started_ms);
	if (irc_num(c, "001", ":Welcome to the chatd IRC gateway, %s", c->name) < 0 ||
	    irc_num(c, "002", ":Your host is %s, running version chatd-%s", srv, CHATD_VERSION) <
		    0 ||
	    irc_num(c, "003", ":This server was started %s", created) < 0 ||
	    irc_num(c, "004", "%s chatd-%s i n", srv, CHATD_VERSION) < 0 || irc_isupport(c) < 0 ||
	    irc_motd(c) < 0) {
		room_join_reply_release(rep);
		return -1;
	}
	if (irc_join_reply(c, rep) < 0)
		return -1;
	/* As the native welcome says "registered": the nick is an account from now on. */
	if (registered && irc_send(c,
				   ":%s NOTICE %s :Your nick %s is now a registered account: "
				   "log in with its password from now on",
				   srv, c->name, c->name) < 0)
		return -1;
	return irc_commit(c);
}
