/*
 * irc_register.c - IRCv3 draft/account-registration (docs/IRC.md
 * "Account registration"): REGISTER and VERIFY, before connection
 * registration (irc_login.c) and after it (irc_commands.c's table), when
 * only a guest has no account yet.  Which names and passwords may be
 * registered, and the registration itself (the hash in a slot of the
 * password gate, the identification file), are auth.c's
 * (auth_register()); this file words its outcomes as the specification's
 * standard replies (FAIL REGISTER CODE ACCOUNT :text).  The account is
 * the nick: chatd has no account name other than the nick, and no
 * verification step.  Runs in the connection's own thread; the password
 * is wiped once used.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "irc.h"
#include "names.h"
#include "password.h"
#include "room.h"
#include "server.h"
#include "timefmt.h"

/* What BAD_ACCOUNT_NAME says: names.h's rule. */
#define NAME_RULE_FMT \
	"An account name is 1-%d letters, digits, '_', '.' or '-', starting with a letter " \
	"or digit"

/*
 * FAIL cmd code account :text.  account: a name, "*", or what the client
 * sent as irc_echo() gives it, so the line keeps its text within 512 bytes.
 */
static int __attribute__((format(printf, 5, 6)))
fail_line(struct client *c, const char *cmd, const char *code, const char *account, const char *fmt,
	  ...)
{
	char text[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return irc_send(c, ":%s FAIL %s %s %s :%s", settings_get()->server_name, cmd, code, account,
			text);
}

/* The connection ends: why and its last words (irc_bye) in st. */
static int
connection_ends(struct session_state *st, enum part_reason why, const char *text)
{
	st->why = why;
	snprintf(st->text, sizeof(st->text), "%s", text);
	return 1;
}

/* REGISTER went through: c is logged in to its new account, as after SASL. */
static int
now_logged_in(struct client *c, bool online)
{
	struct irc_conn *ic = irc_conn(c);

	ic->logged_in = true;
	if (online)
		room_set_account(c->srv->hub, c); /* no guest now: account tags, WHOIS */
	else
		ic->registered_now = true; /* the welcome follows at registration's end */
	if (irc_send(c, ":%s REGISTER SUCCESS %s :Account %s registered",
		     settings_get()->server_name, c->name, c->name) < 0)
		return -1;
	return irc_num(c, "900", "%s!%s@chatd %s :You are now logged in as %s", c->name, c->name,
		       c->name, c->name);
}

/* REGISTER for nick (the account), online or not, with password pw of len bytes. */
static int
register_nick(struct client *c, struct auth *login, struct session_state *st, const char *nick,
	      const char *pw, size_t len)
{
	bool online = login == NULL;
	struct auth own, *a = login;
	enum auth_outcome o;

	if (online) {
		/* A login of its own, given login_timeout from now for a hash slot. */
		auth_start(&own, c);
		own.deadline = time_mono_ms() + (int64_t)settings_get()->login_timeout * 1000;
		a = &own;
	}
	o = auth_register(a, nick, pw, len);
	if (o == AUTH_REGISTERED)
		return now_logged_in(c, online);
	if (!online)
		c->name[0] = '\0'; /* no account yet: the nick is still only asked for */
	switch (o) {
	case AUTH_TAKEN:
		return fail_line(
			c, "REGISTER", "ACCOUNT_EXISTS", nick,
			"%s is registered: log in with SASL or PASS, or choose another nick", nick);
	case AUTH_CLOSED:
		return fail_line(c, "REGISTER", "DISALLOWED", nick, "Registration is closed here");
	case AUTH_BAD_NAME: /* not reached: a nick is a valid name */
		return fail_line(c, "REGISTER", "BAD_ACCOUNT_NAME", nick, NAME_RULE_FMT,
				 NAME_MAX_LEN);
	case AUTH_WEAK_PASSWORD:
		return fail_line(c, "REGISTER", "WEAK_PASSWORD", nick,
				 "A password must not be empty");
	case AUTH_BAD_INPUT:
		return fail_line(c, "REGISTER", "UNACCEPTABLE_PASSWORD", nick,
				 "A password is at most %d bytes of UTF-8 text, without control or "
				 "invisible characters",
				 PASSWORD_MAX_LEN);
	case AUTH_TIMEOUT:
		if (!online)
			return connection_ends(st, PART_TIMEOUT, "login took too long");
		return fail_line(c, "REGISTER", "TEMPORARILY_UNAVAILABLE", nick,
				 "No turn to hash the password in time; try again");
	case AUTH_SHUTDOWN:
		if (!online)
			return connection_ends(st, PART_SHUTDOWN, part_reason_text(PART_SHUTDOWN));
		return fail_line(c, "REGISTER", "TEMPORARILY_UNAVAILABLE", nick,
				 "The server is shutting down");
	case AUTH_GONE:
		return connection_ends(st, PART_LOST, part_reason_text(PART_LOST));
	case AUTH_INTERNAL:
	case AUTH_THROTTLED:     /* not reached: nothing is guessed, no throttle */
	case AUTH_THROTTLE_FULL: /* not reached, as above */
	case AUTH_OK:            /* not reached: auth_register() checks no password */
	case AUTH_BAD_PASSWORD:  /* not reached, as above */
	case AUTH_TOO_MANY:      /* not reached, as above */
	case AUTH_REGISTERED:    /* answered above */
		break;
	}
	return fail_line(c, "REGISTER", "TEMPORARILY_UNAVAILABLE", nick,
			 "The account could not be stored now; try again");
}

/*
 * REGISTER <account> {<email> | *} <password>: the account is the nick
 * ("*" says so); an e-mail address is not kept.
 */
static int
register_command(struct client *c, struct auth *login, struct session_state *st,
		 const struct irc_msg *m, const char *pw, size_t len)
{
	struct irc_conn *ic = irc_conn(c);
	bool online = login == NULL;
	const char *given = m->params[0];
	const char *nick = online ? c->name : ic->have_nick ? ic->nick : NULL;
	char echo[IRC_ECHO_MAX + 1];

	/* A password in clear where plain_login refuses it ends the connection, as PASS does. */
	if (irc_plain_refused(c, st))
		return fail_line(c, "REGISTER", "DISALLOWED", nick != NULL ? nick : "*", "%s",
				 st->text) < 0
			       ? -1
			       : 1;
	if (ic->logged_in)
		return fail_line(c, "REGISTER", "ALREADY_AUTHENTICATED", c->name,
				 "You are logged in as %s already", c->name);
	if (nick == NULL)
		return fail_line(c, "REGISTER", "NEED_NICK", "*",
				 "Send NICK first: the account is named for your nick");
	if (strcmp(given, "*") != 0 && name_cmp(given, nick) != 0) {
		if (!name_valid(given, strlen(given)))
			return fail_line(c, "REGISTER", "BAD_ACCOUNT_NAME", irc_echo(echo, given),
					 NAME_RULE_FMT, NAME_MAX_LEN);
		return fail_line(c, "REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", given,
				 "In chatd the account is the nick: register %s (or *)%s", nick,
				 online ? "" : ", or change your nick first");
	}
	return register_nick(c, login, st, nick, pw, len);
}

int
irc_register(struct client *c, struct auth *login, struct session_state *st, struct irc_msg *m)
{
	char *pw = (char *)m->params[2]; /* into the line, which irc_parse() cut in place */
	size_t len = strlen(pw);
	int rc = register_command(c, login, st, m, pw, len);

	explicit_bzero(pw, len);
	return rc;
}

int
irc_verify(struct client *c, const struct irc_msg *m)
{
	char echo[IRC_ECHO_MAX + 1];
	const char *account = irc_echo(echo, m->params[0]);

	if (irc_conn(c)->logged_in)
		return fail_line(c, "VERIFY", "ALREADY_AUTHENTICATED", c->name,
				 "You are logged in as %s already", c->name);
	if (!settings_get()->registration)
		return fail_line(c, "VERIFY", "DISALLOWED", account, "Registration is closed here");
	return fail_line(c, "VERIFY", "INVALID_CODE", account,
			 "chatd has no verification step: REGISTER logs you in at once");
}
