/*
 * proto_irc.c - IRC (RFC 1459/2812 as ngircd and InspIRCd speak it, and
 * chatd's IRC port) for chatbench: PASS with the password first when asked
 * (--irc-pass: on chatd's IRC port the nick is the account), NICK and
 * USER, JOIN of the one-room layout's channel (--channel, default #bench)
 * once welcomed (001), logged in at the end of that channel's name list
 * (366), PRIVMSG to the channel to send, PING answered with PONG.  The
 * name lists of other channels do not count: chatd joins every client to
 * its default room (#lobby) in its welcome, and a JOIN of a channel the
 * client is already in is answered with nothing.  In the rooms layout a
 * client is logged in at the end of the message of the day (376, or 422
 * when there is none), then sends "JOIN #rN" for each of its rooms, each
 * joined at the end of its name list (366), and sends PRIVMSG #rN to the
 * last one.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

enum { WAIT_WELCOME, WAIT_NAMES, WAIT_MOTD, READY };

static void
irc_connected(struct session *s)
{
	char buf[640];
	int n = 0;

	if (s->send_pass)
		n = snprintf(buf, sizeof(buf), "PASS %.500s\r\n", s->password);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "NICK b%u\r\nUSER b%u 0 * :chatbench\r\n",
		      s->index, s->index);
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

/* The channel a 366 (RPL_ENDOFNAMES "NICK #chan :End...") is about is chan. */
static bool
names_end_of(const char *params, const char *chan)
{
	const char *p = strchr(params, ' ');
	size_t n = strlen(chan);

	return p != NULL && strncasecmp(p + 1, chan, n) == 0 &&
	       (p[1 + n] == ' ' || p[1 + n] == '\0');
}

/* A 366 about one of the rooms layout's channels #rN of s. */
static bool
names_end_of_room(const struct session *s, const char *params)
{
	char chan[24];

	for (unsigned i = 0; i < s->nrooms; i++) {
		snprintf(chan, sizeof(chan), "#r%u", s->rooms[i]);
		if (names_end_of(params, chan))
			return true;
	}
	return false;
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
		if (is(cmd, "366") && names_end_of_room(s, params))
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
		char join[80];
		int n = snprintf(join, sizeof(join), "JOIN %s\r\n", s->channel);

		session_write(s, join, (size_t)n);
		s->phase = WAIT_NAMES;
		return PE_NONE;
	}
	if ((is(cmd, "376") || is(cmd, "422")) && s->phase == WAIT_MOTD) {
		s->phase = READY;
		return PE_LOGGED_IN;
	}
	if (is(cmd, "366") && s->phase == WAIT_NAMES && names_end_of(params, s->channel)) {
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
		hl = (size_t)snprintf(head, sizeof(head), "PRIVMSG %s :", s->channel);
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
