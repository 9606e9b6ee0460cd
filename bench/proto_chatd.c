/*
 * proto_chatd.c - the chatd protocol (docs/PROTOCOL.md) for chatbench.
 *
 * Login pipelines the name and the password (the protocol allows it): a
 * known name logs in, an unknown one is registered on the spot, so a
 * first run also registers the users.  A room message is a plain line (to
 * the current room); others receive "MSG room id time name text" (protocol
 * 2) or "MSG id time name text" (protocol 1, chatd before rooms: the HELLO
 * line says which), the sender "OK id sent".  In the rooms layout each
 * client sends "/join rN" for each of its rooms after its login (all at
 * once: the protocol lets commands be pipelined), each answered by
 * "OK - joined rN"; the last one joined is the current room.
 *
 * With want_token it does what chat does: after a password login it asks
 * for a resume token (/token) and, when it logs in again, sends
 * "RESUME NAME TOKEN" first, falling back to the password if refused.
 */
#include <stdio.h>
#include <stdlib.h>
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
			/* MSG [room] id time name text */
			*payload = after_fields(line, len, s->version >= 2 ? 5 : 4);
			return *payload ? PE_DELIVERY : PE_SERVER_ERROR;
		}
		if (starts(line, "OK ") && !starts(line, "OK - "))
			return PE_ACK;
		if (starts(line, "OK - joined "))
			return PE_JOINED;
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
		s->version = atoi(line + 6);
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

static void
chatd_join(struct session *s)
{
	char buf[SESSION_ROOMS_MAX * 24];
	size_t n = 0;

	for (unsigned i = 0; i < s->nrooms; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "/join r%u\n", s->rooms[i]);
	session_write(s, buf, n);
}

const struct proto_ops proto_chatd = {
	.name = "chatd",
	.connected = chatd_connected,
	.line = chatd_line,
	.join = chatd_join,
	.message = proto_line_message, /* a chat line is the message itself */
	.max_line = 4096 + 128,
};
