/*
 * proto_chatd.c - the chatd protocol (docs/PROTOCOL.md) for chatbench.
 *
 * Login pipelines the name and the password (the protocol allows it): a
 * known name logs in, an unknown one is registered on the spot, so a
 * first run also registers the users.  A room message is a plain line;
 * others receive "MSG id time name text", the sender "OK id sent".
 *
 * With want_token it does what chat does: after a password login it asks
 * for a resume token (/token) and, when it logs in again, sends
 * "RESUME NAME TOKEN" first, falling back to the password if refused.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

enum { WAIT_HELLO, WAIT_RESUME, WAIT_WELCOME, WAIT_TOKEN, READY };

static void
chatd_connected(struct session *s)
{
	s->phase = WAIT_HELLO;
	s->resumed = false;
}

static void
send_password(struct session *s)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "b%u\n%s\n", s->index, s->password);

	session_write(s, buf, (size_t)n);
	s->phase = WAIT_WELCOME;
}

static bool
starts(const char *line, const char *prefix)
{
	return strncmp(line, prefix, strlen(prefix)) == 0;
}

/* The free text after n space-separated fields of the len bytes at p, or NULL. */
static const char *
after_fields(const char *p, size_t len, int n)
{
	const char *end = p + len;

	while (n-- > 0) {
		p = memchr(p, ' ', (size_t)(end - p));
		if (p == NULL)
			return NULL;
		p++;
	}
	return p;
}

static enum proto_event
chatd_line(struct session *s, char *line, size_t len, const char **payload)
{
	if (s->phase == READY) {
		if (starts(line, "MSG ")) {
			*payload = after_fields(line, len, 4);
			return *payload ? PE_DELIVERY : PE_SERVER_ERROR;
		}
		if (starts(line, "OK ") && !starts(line, "OK - "))
			return PE_ACK;
		if (starts(line, "ERR "))
			return PE_SERVER_ERROR;
		if (starts(line, "BYE "))
			return PE_CLOSING;
		return PE_NONE;
	}
	if (starts(line, "ERR 503") || starts(line, "BYE "))
		return PE_REFUSED;
	if (s->phase == WAIT_HELLO) {
		if (!starts(line, "HELLO "))
			return PE_REFUSED;
		if (s->token[0] == '\0') {
			send_password(s);
			return PE_NONE;
		}
		char buf[128];
		int n = snprintf(buf, sizeof(buf), "RESUME b%u %s\n", s->index, s->token);

		session_write(s, buf, (size_t)n);
		s->phase = WAIT_RESUME;
		return PE_NONE;
	}
	if (s->phase == WAIT_RESUME) {
		if (starts(line, "ERR ")) {
			s->token_refused = true;
			s->token[0] = '\0';
			send_password(s);
			return PE_NONE;
		}
		s->resumed = starts(line, "WELCOME ");
		s->phase = WAIT_WELCOME;
		return s->resumed ? PE_NONE : PE_REFUSED;
	}
	if (s->phase == WAIT_TOKEN) { /* live lines may come before the reply */
		if (starts(line, "OK - ") && strspn(line + 5, "0123456789abcdef") == 64) {
			memcpy(s->token, line + 5, 64);
			s->token[64] = '\0';
		} else if (!starts(line, "ERR ")) {
			return PE_NONE;
		}
		s->phase = READY;
		return PE_LOGGED_IN;
	}
	if (starts(line, "ERR "))
		return PE_REFUSED;
	if (starts(line, "OK - ")) {
		if (s->want_token && !s->resumed) {
			session_write(s, "/token\n", 7);
			s->phase = WAIT_TOKEN;
			return PE_NONE;
		}
		s->phase = READY;
		return PE_LOGGED_IN;
	}
	return PE_NONE; /* PASS, WELCOME, USERS, HIST */
}

const struct proto_ops proto_chatd = {
	.name = "chatd",
	.connected = chatd_connected,
	.line = chatd_line,
	.message = proto_line_message, /* a chat line is the message itself */
	.max_line = 4096 + 128,
};
