/*
 * proto_raw.c - plain lines, for the bare fan-out reference (fanout_ref.c):
 * the server greets each connection with one line, which is the login;
 * every later line is a message as it was sent.  In the rooms layout a
 * client sends "/join rN" for each of its rooms, each answered
 * "joined rN" (fanout_ref's rooms).
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

enum { WAIT_GREETING, READY };

static void
raw_connected(struct session *s)
{
	s->phase = WAIT_GREETING;
}

static enum proto_event
raw_line(struct session *s, char *line, size_t len, const char **payload)
{
	(void)len;
	if (s->phase == WAIT_GREETING) {
		s->phase = READY;
		return PE_LOGGED_IN;
	}
	if (line[0] == 'j' && strncmp(line, "joined ", 7) == 0)
		return PE_JOINED;
	*payload = line;
	return PE_DELIVERY;
}

static void
raw_join(struct session *s)
{
	char buf[SESSION_ROOMS_MAX * 24];
	size_t n = 0;

	for (unsigned i = 0; i < s->nrooms; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "/join r%u\n", s->rooms[i]);
	session_write(s, buf, n);
}

size_t
proto_line_message(const struct session *s, char *buf, size_t cap, const char *text, size_t len)
{
	(void)s;
	if (len + 1 > cap)
		return 0;
	memcpy(buf, text, len);
	buf[len] = '\n';
	return len + 1;
}

const struct proto_ops proto_raw = {
	.name = "raw",
	.connected = raw_connected,
	.line = raw_line,
	.join = raw_join,
	.message = proto_line_message,
	.max_line = 4096,
};
