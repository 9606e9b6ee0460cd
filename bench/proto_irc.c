/*
 * proto_irc.c - IRC (RFC 1459/2812 as ngircd and InspIRCd speak it) for
 * chatbench: NICK and USER, JOIN #bench once welcomed (001), logged in at
 * the end of the channel's name list (366), PRIVMSG #bench to send, PING
 * answered with PONG.  In the rooms layout a client is logged in at the
 * end of the message of the day (376, or 422 when there is none), then
 * sends "JOIN #rN" for each of its rooms, each joined at the end of its
 * name list (366), and sends PRIVMSG #rN to the last one.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

#define CHANNEL "#bench"

enum { WAIT_WELCOME, WAIT_NAMES, WAIT_MOTD, READY };

static void
irc_connected(struct session *s)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "NICK b%u\r\nUSER b%u 0 * :chatbench\r\n", s->index,
			 s->index);

	session_write(s, buf, (size_t)n);
	s->phase = WAIT_WELCOME;
}

/* The command (or numeric) of a line, past its optional ":prefix". */
static const char *
command_of(const char *line, const char **params)
{
	const char *p = line;

	*params = "";
	if (*p == ':') {
		p = strchr(p, ' ');
		if (p == NULL)
			return "";
		p++;
	}
	const char *sp = strchr(p, ' ');
	*params = sp ? sp + 1 : "";
	return p;
}

static bool
is(const char *cmd, const char *name)
{
	size_t n = strlen(name);

	return strncmp(cmd, name, n) == 0 && (cmd[n] == ' ' || cmd[n] == '\0');
}

static enum proto_event
irc_line(struct session *s, char *line, size_t len, const char **payload)
{
	const char *params;
	const char *cmd = command_of(line, &params);

	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	if (is(cmd, "PING")) {
		char buf[600];
		int n = snprintf(buf, sizeof(buf), "PONG %s\r\n", params);

		session_write(s, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
		return PE_NONE;
	}
	if (is(cmd, "ERROR"))
		return s->phase == READY ? PE_CLOSING : PE_REFUSED;
	if (s->phase == READY) {
		if (is(cmd, "PRIVMSG")) {
			const char *text = strstr(params, " :");

			*payload = text ? text + 2 : NULL;
			return text ? PE_DELIVERY : PE_SERVER_ERROR;
		}
		if (is(cmd, "366"))
			return PE_JOINED;
		/* 4xx and 5xx numerics are errors (404: cannot send, 481...) */
		if ((cmd[0] == '4' || cmd[0] == '5') && cmd[3] == ' ')
			return PE_SERVER_ERROR;
		return PE_NONE;
	}
	if (is(cmd, "001") && s->nrooms > 0) {
		s->phase = WAIT_MOTD;
		return PE_NONE;
	}
	if (is(cmd, "001")) {
		static const char join[] = "JOIN " CHANNEL "\r\n";

		session_write(s, join, sizeof(join) - 1);
		s->phase = WAIT_NAMES;
		return PE_NONE;
	}
	if ((is(cmd, "376") || is(cmd, "422")) && s->phase == WAIT_MOTD) {
		s->phase = READY;
		return PE_LOGGED_IN;
	}
	if (is(cmd, "366") && s->phase == WAIT_NAMES) {
		s->phase = READY;
		return PE_LOGGED_IN;
	}
	if (is(cmd, "433") || is(cmd, "465") || is(cmd, "471") || is(cmd, "473"))
		return PE_REFUSED;
	return PE_NONE;
}

static void
irc_join(struct session *s)
{
	char buf[SESSION_ROOMS_MAX * 24];
	size_t n = 0;

	for (unsigned i = 0; i < s->nrooms; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "JOIN #r%u\r\n", s->rooms[i]);
	session_write(s, buf, n);
}

static size_t
irc_message(const struct session *s, char *buf, size_t cap, const char *text, size_t len)
{
	char head[48];
	size_t hl;

	if (s->nrooms > 0)
		hl = (size_t)snprintf(head, sizeof(head),
				      "PRIVMSG #r%u :", s->rooms[s->nrooms - 1]);
	else
		hl = (size_t)snprintf(head, sizeof(head), "PRIVMSG %s :", CHANNEL);
	if (hl + len + 2 > cap)
		return 0;
	memcpy(buf, head, hl);
	memcpy(buf + hl, text, len);
	memcpy(buf + hl + len, "\r\n", 2);
	return hl + len + 2;
}

const struct proto_ops proto_irc = {
	.name = "irc",
	.connected = irc_connected,
	.line = irc_line,
	.join = irc_join,
	.message = irc_message,
	.max_line = 8192,
};
