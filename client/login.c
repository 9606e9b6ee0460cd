/*
 * login.c - HELLO 2, name, PASS, password, WELCOME, USERS ROOM, TOPIC ROOM
 * (if it has one), HIST ROOM..., OK.
 *
 * Every refusal becomes an exit code and a sentence a person can act on;
 * the server's own words are quoted (sanitized) after it.
 * Owns one login's state (struct login, login.h); chat's one thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "timefmt.h"

#include "exitcode.h"
#include "login.h"
#include "names.h"
#include "proto.h"
#include "sanitize.h"

void
login_start(struct login *l, const char *name, const char *password, bool may_ask)
{
	memset(l, 0, sizeof(*l));
	l->state = LOGIN_AWAIT_HELLO;
	l->name = name;
	l->password = password;
	l->may_ask = may_ask;
}

void
login_as_guest(struct login *l)
{
	l->as_guest = true;
	l->password = "";
}

void
login_use_token(struct login *l, const char *token)
{
	l->token = token != NULL && strlen(token) == 64 ? token : NULL;
}

bool
login_parse_token(const struct srv_line *ok, char token[65], int64_t *expiry_ms)
{
	const char *text = srv_text(ok);
	size_t n = strspn(text, "0123456789abcdef");

	/* The expiry is read only if the line holds it: nothing past the line's end. */
	if (ok->tag != SRV_OK || n != 64 || text[64] != ' ' ||
	    strnlen(text + 65, TIME_RFC3339_LEN) != TIME_RFC3339_LEN ||
	    !time_parse_ms(text + 65, TIME_RFC3339_LEN, expiry_ms) ||
	    (text[65 + TIME_RFC3339_LEN] != ' ' && text[65 + TIME_RFC3339_LEN] != '\0'))
		return false;
	memcpy(token, text, 64);
	token[64] = '\0';
	return true;
}

/* Fails the login with code and a message ending in the server's text, sanitized. */
static enum login_event __attribute__((format(printf, 4, 5)))
fail(struct login *l, int code, const struct srv_line *line, const char *fmt, ...)
{
	struct strbuf text = { 0 };
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(l->message, sizeof(l->message), fmt, ap);
	va_end(ap);
	if (line != NULL && line->text_len > 0 && n >= 0 && (size_t)n < sizeof(l->message) &&
	    sanitize_append(&text, srv_text(line), line->text_len) == 0)
		snprintf(l->message + n, sizeof(l->message) - (size_t)n, " (server: %s)", text.buf);
	strbuf_free(&text);
	l->exit_code = code;
	l->state = LOGIN_FAILED;
	return LOGIN_ERROR;
}

static enum login_event
unexpected(struct login *l, const struct srv_line *line)
{
	return fail(l, CHAT_EXIT_LOST, line, "unexpected line from the server during login");
}

/* BYE during login: the server ends the connection. */
static enum login_event
on_bye(struct login *l, const struct srv_line *line)
{
	const char *reason = line->f[0];

	if (strcmp(reason, "refused") == 0)
		return fail(l, CHAT_EXIT_LOGIN, line, "the server refused the login");
	l->retry = true;
	if (strcmp(reason, "timeout") == 0)
		return fail(l, CHAT_EXIT_LOST, line, "the login took too long");
	return fail(l, CHAT_EXIT_LOST, line, "the server closed the connection during login");
}

/* A write failed: a new connection may well succeed. */
static enum login_event
connection_broken(struct login *l)
{
	l->retry = true;
	return fail(l, CHAT_EXIT_LOST, NULL, "the connection was lost during login");
}

static int
send_password(struct login *l, struct conn *c, const char *password)
{
	l->state = LOGIN_AWAIT_WELCOME;
	conn_warn_clear_password(c);
	return conn_send(c, password, strlen(password));
}

static enum login_event
send_name(struct login *l, struct conn *c)
{
	l->state = LOGIN_AWAIT_PASS;
	if (conn_send(c, l->name, strlen(l->name)) < 0)
		return connection_broken(l);
	return LOGIN_CONTINUE;
}

static enum login_event
on_hello(struct login *l, const struct srv_line *line, struct conn *c)
{
	int rc;

	if (line->tag == SRV_ERR && srv_err_code(line) == ERR_UNAVAILABLE)
		return fail(l, CHAT_EXIT_CONNECT, line,
			    "the server cannot take the connection now");
	if (line->tag != SRV_HELLO)
		return unexpected(l, line);
	if (srv_version_major(line->f[0]) != SRV_PROTOCOL_MAJOR) {
		struct strbuf version = { 0 };
		enum login_event ev;

		/* The server's word for its version: at most 20 bytes of it, sanitized. */
		if (sanitize_append(&version, line->f[0], strnlen(line->f[0], 20)) < 0 ||
		    version.buf == NULL) {
			strbuf_free(&version);
			return fail(l, CHAT_EXIT_LOST, NULL,
				    "the server speaks another protocol version");
		}
		ev = fail(l, CHAT_EXIT_LOST, NULL,
			  "the server speaks protocol version %s; this chat speaks version "
			  "%d (chatd 0.2.0 and later): use a chat of the server's version",
			  version.buf, SRV_PROTOCOL_MAJOR);
		strbuf_free(&version);
		return ev;
	}
	if (l->token != NULL) {
		char resume[NAME_MAX_LEN + 80];
		int n = snprintf(resume, sizeof(resume), "RESUME %s %s", l->name, l->token);

		l->state = LOGIN_AWAIT_RESUME;
		rc = conn_send(c, resume, (size_t)n);
		explicit_bzero(resume, sizeof(resume));
		return rc < 0 ? connection_broken(l) : LOGIN_CONTINUE;
	}
	return send_name(l, c);
}

/* The token was refused (ERR): the name and the password on the same connection. */
/* ERR 503 once logged in (max_clients reached meanwhile): full, as at HELLO; try later. */
static enum login_event
server_full(struct login *l, const struct srv_line *line)
{
	l->retry = true;
	return fail(l, CHAT_EXIT_CONNECT, line, "the server cannot take the connection now");
}

/*
 * The WELCOME must name who we asked to be (the registered spelling may
 * differ in case): anything else is a session nobody asked for, and its
 * name would reach the prompt.  LOGIN_SHOW, or the failure.
 */
static enum login_event
welcomed(struct login *l, const struct srv_line *line)
{
	const char *who = line->f[0];

	if (!name_valid(who, strlen(who)) || name_cmp(who, l->name) != 0)
		return fail(l, CHAT_EXIT_LOST, NULL,
			    "the server broke the protocol: it welcomed another name than '%s'",
			    l->name);
	snprintf(l->user, sizeof(l->user), "%s", who);
	l->state = LOGIN_AWAIT_OK;
	return LOGIN_SHOW;
}

static enum login_event
on_resume_reply(struct login *l, const struct srv_line *line, struct conn *c)
{
	if (line->tag == SRV_ERR && srv_err_code(line) == ERR_UNAVAILABLE)
		return server_full(l, line); /* the token was good: kept */
	if (line->tag == SRV_ERR) {
		l->token_refused = true;
		l->token = NULL;
		return send_name(l, c);
	}
	if (line->tag != SRV_WELCOME)
		return unexpected(l, line);
	l->resumed = welcomed(l, line) == LOGIN_SHOW;
	return l->resumed ? LOGIN_SHOW : LOGIN_ERROR;
}

/* PASS new's text offers the empty line (server setting guests, PROTOCOL.md "Login" 2). */
static bool
guest_offered(const struct srv_line *line)
{
	static const char OFFER[] = "send an empty line to come in as a guest";
	size_t n = strlen(OFFER);

	return line->text_len >= n && memcmp(srv_text(line) + line->text_len - n, OFFER, n) == 0;
}

static enum login_event
on_name_reply(struct login *l, const struct srv_line *line, struct conn *c)
{
	switch (srv_err_code(line)) {
	case ERR_BAD_NAME:
	case ERR_BAD_TEXT:
		return fail(l, CHAT_EXIT_LOGIN, line,
			    "invalid name '%s': 1 to %d letters, digits, "
			    "'_', '.' or '-', starting with a letter or digit",
			    l->name, NAME_MAX_LEN);
	case ERR_REGISTRATION_CLOSED:
		if (l->as_guest)
			return fail(l, CHAT_EXIT_LOGIN, line,
				    "the server offers no guest login ('%s' is not registered "
				    "and registration is closed)",
				    l->name);
		return fail(l, CHAT_EXIT_LOGIN, line,
			    "'%s' is not registered and the server does "
			    "not register new names",
			    l->name);
	case ERR_TLS_REQUIRED: /* plain_login: nothing secret was sent */
		return fail(l, CHAT_EXIT_LOGIN, line,
			    "the server takes no password in clear from here: connect with --tls");
	case 0:
		break;
	default:
		return fail(l, CHAT_EXIT_LOGIN, line, "the server refused the name '%s'", l->name);
	}
	if (line->tag != SRV_PASS)
		return unexpected(l, line);
	l->is_new = strcmp(line->f[0], "new") == 0;
	l->guest_only = strcmp(line->f[0], "guest") == 0;
	if (l->as_guest && strcmp(line->f[0], "known") == 0)
		return fail(l, CHAT_EXIT_LOGIN, NULL,
			    "'%s' is registered: a guest cannot use the name; choose another "
			    "(or log in with its password)",
			    l->name);
	if (l->as_guest && !l->guest_only && !guest_offered(line))
		return fail(l, CHAT_EXIT_LOGIN, line, "the server offers no guest login");
	if (l->password == NULL) {
		l->state = LOGIN_AWAIT_PASSWORD;
		return LOGIN_NEED_PASSWORD;
	}
	if (send_password(l, c, l->password) < 0)
		return connection_broken(l);
	return LOGIN_CONTINUE;
}

static enum login_event
on_password_reply(struct login *l, const struct srv_line *line)
{
	switch (srv_err_code(line)) {
	case ERR_NAME_TAKEN: /* another registration of the name won the race */
		l->name_taken = true;
		return fail(l, CHAT_EXIT_LOGIN, line,
			    "'%s' was registered by someone else just "
			    "now; choose another name",
			    l->name);
	case ERR_UNAVAILABLE:
		return server_full(l, line);
	case ERR_BAD_PASSWORD:
		if (l->may_ask) {
			l->wrong_password = true;
			l->state = LOGIN_AWAIT_PASSWORD;
			return LOGIN_NEED_PASSWORD;
		}
		return fail(l, CHAT_EXIT_LOGIN, line,
			    "wrong password for '%s' (the name is "
			    "registered: if it is not yours, choose another name)",
			    l->name);
	case ERR_BAD_TEXT:
		return fail(l, CHAT_EXIT_LOGIN, line, "the server does not accept that password");
	case ERR_TOO_MANY:
		/* Failed logins from elsewhere, or a refused token: a later try may pass. */
		l->retry = true;
		return fail(l, CHAT_EXIT_LOGIN, line,
			    "too many failed logins for '%s' or from "
			    "this address; try again later",
			    l->name);
	case 0:
		break;
	default:
		return fail(l, CHAT_EXIT_LOGIN, line, "the server refused the login");
	}
	if (line->tag != SRV_WELCOME)
		return unexpected(l, line);
	return welcomed(l, line);
}

static enum login_event
on_login_reply(struct login *l, const struct srv_line *line)
{
	if (line->tag == SRV_USERS && l->room[0] == '\0')
		snprintf(l->room, sizeof(l->room), "%s", line->f[0]);
	if (line->tag == SRV_USERS || line->tag == SRV_TOPIC || line->tag == SRV_HIST)
		return LOGIN_SHOW;
	if (line->tag != SRV_OK)
		return unexpected(l, line);
	l->state = LOGIN_LOGGED_IN;
	return LOGIN_DONE;
}

enum login_event
login_feed(struct login *l, const struct srv_line *line, struct conn *c)
{
	if (line->tag == SRV_BYE)
		return on_bye(l, line);
	switch (l->state) {
	case LOGIN_AWAIT_HELLO:
		return on_hello(l, line, c);
	case LOGIN_AWAIT_RESUME:
		return on_resume_reply(l, line, c);
	case LOGIN_AWAIT_PASS:
		return on_name_reply(l, line, c);
	case LOGIN_AWAIT_WELCOME:
		return on_password_reply(l, line);
	case LOGIN_AWAIT_OK:
		return on_login_reply(l, line);
	case LOGIN_AWAIT_PASSWORD:
	case LOGIN_LOGGED_IN:
	case LOGIN_FAILED:
		break;
	}
	return unexpected(l, line);
}

int
login_send_password(struct login *l, struct conn *c, const char *password)
{
	l->wrong_password = false;
	return send_password(l, c, password);
}
