/*
 * proto_irc.c - IRC (RFC 1459/2812 as ngircd and InspIRCd speak it) for
 * chatbench: NICK and USER, JOIN #bench once welcomed (001), logged in at
 * the end of the channel's name list (366), PRIVMSG #bench to send, PING
 * answered with PONG.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

#define CHANNEL "#bench"

enum { WAIT_WELCOME, WAIT_NAMES, READY };

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
		/* 4xx and 5xx numerics are errors (404: cannot send, 481...) */
		if ((cmd[0] == '4' || cmd[0] == '5') && cmd[3] == ' ')
			return PE_SERVER_ERROR;
		return PE_NONE;
	}
	if (is(cmd, "001")) {
		static const char join[] = "JOIN " CHANNEL "\r\n";

		session_write(s, join, sizeof(join) - 1);
		s->phase = WAIT_NAMES;
		return PE_NONE;
	}
	if (is(cmd, "366") && s->phase == WAIT_NAMES) {
		s->phase = READY;
		return PE_LOGGED_IN;
	}
	if (is(cmd, "433") || is(cmd, "465") || is(cmd, "471") || is(cmd, "473"))
		return PE_REFUSED;
	return PE_NONE;
}

static size_t
irc_message(char *buf, size_t cap, const char *text, size_t len)
{
	static const char head[] = "PRIVMSG " CHANNEL " :";
	size_t hl = sizeof(head) - 1;

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
	.message = irc_message,
	.max_line = 8192,
};
