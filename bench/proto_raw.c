/*
 * proto_raw.c - plain lines, for the bare fan-out reference (fanout_ref.c):
 * the server greets each connection with one line, which is the login;
 * every later line is a message as it was sent.
 */
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
	*payload = line;
	return PE_DELIVERY;
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
	.message = proto_line_message,
	.max_line = 4096,
};
