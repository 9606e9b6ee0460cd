/*
 * irc.c - the IRC front-end's connection state and replies (irc.h): the
 * struct frontend the client's thread drives, the replies a command
 * gathers (each cut to IRC's 512 bytes and made valid UTF-8) and
 * irc_commit() queues with the command's label (labeled-response: one
 * line tagged, several in a labeled-response batch, none an ACK), and
 * flood control (a token bucket of
 * irc_flood_burst lines refilled at irc_flood_rate a second: a client
 * over it is not read until tokens come back).  Runs in the connection's
 * own thread.  A line the parser did not take is answered (417, 400:
 * irc_unparsed()).  PONG (the token whole; 417 if too long, FAIL PING
 * INVALID_UTF8 if not UTF-8) and the numerics that list
 * names (353, 303: as many lines as the names take) are built here so that
 * no cut at 512 bytes changes what they say.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "irc.h"
#include "line.h"
#include "room.h"
#include "server.h"
#include "timefmt.h"
#include "utf8.h"

const char *
irc_target(struct client *c)
{
	struct irc_conn *ic = irc_conn(c);

	if (c->name[0] != '\0')
		return c->name;
	return ic != NULL && ic->have_nick ? ic->nick : "*";
}

const char *
irc_echo(char out[IRC_ECHO_MAX + 1], const char *param)
{
	size_t len = strlen(param);

	if (len == 0 || param[0] == ':' || strchr(param, ' ') != NULL)
		return "*";
	len = text_fit(param, len, IRC_ECHO_MAX);
	if (len == 0) /* nothing but stray continuation bytes to cut between */
		return "*";
	memcpy(out, param, len);
	out[len] = '\0';
	return out;
}

bool
irc_has(const struct irc_conn *ic, enum irc_cap cap)
{
	return (ic->caps & CAP_BIT(cap)) != 0;
}

/* The reply buffer kept between commands; a bigger one is freed after use. */
#define PENDING_KEEP 16384

/* Bytes of the UTF-8 character at s (len > 0 bytes left), or 0 for a byte that starts none. */
static size_t
utf8_char_len(const char *s, size_t len)
{
	size_t n = utf8_sequence_length((unsigned char)s[0]);

	if ((unsigned char)s[0] < 0x80)
		return 1;
	if (n == 0 || n > len || text_check(s, n) == TEXT_BAD_UTF8)
		return 0;
	return n;
}

/*
 * A reply may carry what the client sent (a nick, a command, a target):
 * each byte that is not part of valid UTF-8 becomes '?' (005 says
 * UTF8ONLY), and the line is cut, between characters, to IRC_BODY_MAX
 * bytes after its tags: a last resort, which would cut a reply's text off
 * (what a reply echoes of the client's goes through irc_echo(), so that it
 * fits).  In place; returns the new length.
 */
static size_t
reply_clean(char *s, size_t len)
{
	size_t body = 0;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_char_len(s + i, len - i);

		if (n == 0)
			s[i++] = '?';
		else
			i += n;
	}
	if (len > 0 && s[0] == '@') {
		const char *sp = memchr(s, ' ', len);

		body = sp != NULL ? (size_t)(sp - s) + 1 : len;
	}
	return body + text_fit(s + body, len - body, IRC_BODY_MAX);
}

/* Appends len bytes and a NUL-separated end of line to the pending replies. */
static int
pending_add(struct irc_conn *ic, const char *s, size_t len)
{
	if (ic->pending_len + len + 1 > ic->pending_cap) {
		size_t cap = ic->pending_cap ? ic->pending_cap : 1024;

		while (cap < ic->pending_len + len + 1)
			cap *= 2;
		char *p = realloc(ic->pending, cap);
		if (p == NULL) {
			ic->reply_lost = true;
			return -1;
		}
		ic->pending = p;
		ic->pending_cap = cap;
	}
	memcpy(ic->pending + ic->pending_len, s, len);
	len = reply_clean(ic->pending + ic->pending_len, len);
	ic->pending[ic->pending_len + len] = '\0';
	ic->pending_len += len + 1;
	ic->pending_lines++;
	return 0;
}

static int __attribute__((format(printf, 3, 0)))
pending_vadd(struct irc_conn *ic, const char *head, const char *fmt, va_list ap)
{
	char buf[1024];
	char *big = NULL;
	va_list copy;
	size_t hl = strlen(head);

	va_copy(copy, ap);
	int n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0)
		return -1;
	char *p = buf;
	if (hl + (size_t)n + 1 > sizeof(buf) && (p = big = malloc(hl + (size_t)n + 1)) == NULL) {
		ic->reply_lost = true;
		return -1;
	}
	memcpy(p, head, hl);
	vsnprintf(p + hl, (size_t)n + 1, fmt, ap);
	int rc = pending_add(ic, p, hl + (size_t)n);
	free(big);
	return rc;
}

int
irc_send(struct client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int rc = pending_vadd(irc_conn(c), "", fmt, ap);
	va_end(ap);
	return rc;
}

int
irc_num(struct client *c, const char *num, const char *fmt, ...)
{
	char head[128];
	va_list ap;

	snprintf(head, sizeof(head), ":%s %s %s ", settings_get()->server_name, num, irc_target(c));
	va_start(ap, fmt);
	int rc = pending_vadd(irc_conn(c), head, fmt, ap);
	va_end(ap);
	return rc;
}

int
irc_send_line(struct client *c, const struct line *l)
{
	size_t start = 0;

	/* A core line may hold several (LIST's 322s): one pending line each. */
	while (start < l->len) {
		const char *nl = memchr(l->data + start, '\n', l->len - start);
		size_t end = nl ? (size_t)(nl - l->data) : l->len;
		size_t len = end - start;

		if (len > 0 && l->data[start + len - 1] == '\r')
			len--;
		if (len > 0 && pending_add(irc_conn(c), l->data + start, len) < 0)
			return -1;
		start = end + 1;
	}
	return 0;
}

int
irc_pong(struct client *c, const char *token)
{
	const char *srv = settings_get()->server_name;
	size_t head = strlen(":") + strlen(srv) + strlen(" PONG ") + strlen(srv) + strlen(" :");

	size_t len = strlen(token);

	if (head + len > IRC_BODY_MAX)
		return irc_num(c, "417", ":PING token too long to send back whole in a PONG");
	/* A byte reply_clean() would change: the token could not come back as it came. */
	for (size_t i = 0, n; i < len; i += n)
		if ((n = utf8_char_len(token + i, len - i)) == 0)
			return irc_send(c,
					":%s FAIL PING INVALID_UTF8 :PING token is not UTF-8, "
					"so no PONG can carry it unchanged",
					srv);
	return irc_send(c, ":%s PONG %s :%s", srv, srv, token);
}

int
irc_unparsed(struct client *c, enum irc_parse_result pr)
{
	switch (pr) {
	case IRC_PARSE_TAGS_TOO_LONG:
	case IRC_PARSE_TOO_LONG:
		return irc_num(c, "417", ":Input line was too long");
	case IRC_PARSE_TOO_MANY_TAGS:
		return irc_num(c, "417", ":Input line had more than %d message tags", IRC_TAGS_N);
	case IRC_PARSE_BAD:
		return irc_num(c, "400",
			       "* :Malformed line (a NUL, CR or LF inside it, or no command): "
			       "not processed");
	case IRC_PARSE_OK:
	case IRC_PARSE_EMPTY:
		break;
	}
	return 0;
}

void
irc_list_start(struct irc_list *l, struct client *c, const char *num, const char *params)
{
	/* ":SERVER NUM TARGET PARAMS:" */
	size_t head = 1 + strlen(settings_get()->server_name) + 1 + strlen(num) + 1 +
		      strlen(irc_target(c)) + 1 + strlen(params) + 1;

	*l = (struct irc_list){ .c = c, .num = num, .params = params };
	l->room = head < IRC_BODY_MAX ? IRC_BODY_MAX - head : 0;
}

static int
list_flush(struct irc_list *l)
{
	l->names[l->len] = '\0';
	l->len = 0;
	l->sent = true;
	return irc_num(l->c, l->num, "%s:%s", l->params, l->names);
}

int
irc_list_add(struct irc_list *l, const char *name)
{
	size_t n = strlen(name);

	if (l->len > 0 && l->len + 1 + n > l->room && list_flush(l) < 0)
		return -1;
	if (l->len + 1 + n >= sizeof(l->names)) /* longer than a line: never a name */
		return 0;
	if (l->len > 0)
		l->names[l->len++] = ' ';
	memcpy(l->names + l->len, name, n);
	l->len += n;
	return 0;
}

int
irc_list_end(struct irc_list *l, bool empty_too)
{
	return l->len > 0 || (empty_too && !l->sent) ? list_flush(l) : 0;
}

void
irc_batch_ref(struct client *c, char out[16])
{
	snprintf(out, 16, "b%u", ++irc_conn(c)->batch_seq);
}

/* Queues one reply line: extra tags (tag=value;... or ""), the line, CRLF. */
static int
queue_line(struct client *c, const char *tags, const char *line)
{
	size_t tl = strlen(tags), ll = strlen(line);
	bool own_tags = line[0] == '@';
	/* "@" tags (";" rest-of-own-tags | " ") line CRLF */
	size_t len = (tl ? 1 + tl + 1 : 0) + (tl && own_tags ? ll - 1 : ll) + 2;
	struct line *l = line_new(len);
	size_t off = 0;

	if (l == NULL)
		return -1;
	if (tl) {
		l->data[off++] = '@';
		memcpy(l->data + off, tags, tl);
		off += tl;
		l->data[off++] = own_tags ? ';' : ' ';
		memcpy(l->data + off, line + 1 * own_tags, ll - own_tags);
		off += ll - own_tags;
	} else {
		memcpy(l->data + off, line, ll);
		off += ll;
	}
	memcpy(l->data + off, "\r\n", 2);
	return outq_push_line(&c->out, l);
}

int
irc_commit(struct client *c)
{
	struct irc_conn *ic = irc_conn(c);
	bool labeled = ic->label[0] != '\0' && irc_has(ic, CAP_LABELED_RESPONSE);
	char tags[96], ref[16];
	int rc = 0;

	/* A reply is missing: the session ends, with ERROR (irc_bye) for the last word. */
	if (ic->reply_lost) {
		ic->pending_len = ic->pending_lines = 0;
		ic->reply_lost = false;
		return -1;
	}

	if (labeled && ic->pending_lines == 0 && ic->label_passed) {
		/* the echo of the message carries the label */
	} else if (labeled && ic->pending_lines == 0) {
		snprintf(tags, sizeof(tags), "label=%s", ic->label);
		char ack[96];

		snprintf(ack, sizeof(ack), ":%s ACK", settings_get()->server_name);
		rc = queue_line(c, tags, ack);
	} else if (labeled && ic->pending_lines == 1) {
		snprintf(tags, sizeof(tags), "label=%s", ic->label);
		rc = queue_line(c, tags, ic->pending);
	} else if (labeled && irc_has(ic, CAP_BATCH)) {
		char head[128];

		irc_batch_ref(c, ref);
		snprintf(tags, sizeof(tags), "label=%s", ic->label);
		snprintf(head, sizeof(head), ":%s BATCH +%s labeled-response",
			 settings_get()->server_name, ref);
		rc = queue_line(c, tags, head);
		snprintf(tags, sizeof(tags), "batch=%s", ref);
		for (size_t off = 0; rc == 0 && off < ic->pending_len;) {
			const char *line = ic->pending + off;

			/* A line of an inner batch keeps its own batch tag (the inner BATCH line its outer). */
			rc = queue_line(c, strncmp(line, "@batch=", 7) == 0 ? "" : tags, line);
			off += strlen(line) + 1;
		}
		snprintf(head, sizeof(head), ":%s BATCH -%s", settings_get()->server_name, ref);
		if (rc == 0)
			rc = queue_line(c, "", head);
	} else {
		for (size_t off = 0; rc == 0 && off < ic->pending_len;) {
			const char *line = ic->pending + off;

			rc = queue_line(c, "", line);
			off += strlen(line) + 1;
		}
	}
	ic->pending_len = ic->pending_lines = 0;
	ic->label[0] = '\0';
	ic->label_passed = false;
	/* A big reply's buffer (a LIST, a CHATHISTORY) goes: kept, each connection would pin one. */
	if (ic->pending_cap > PENDING_KEEP) {
		free(ic->pending);
		ic->pending = NULL;
		ic->pending_cap = 0;
	}
	return rc;
}

/* ---- the front-end ---- */

static int
irc_refuse(struct client *c, const char *why)
{
	if (irc_send(c, "ERROR :%s (%d clients)", why, settings_get()->max_clients) < 0)
		return -1;
	return irc_commit(c);
}

static int
irc_overlong(struct client *c)
{
	irc_conn(c)->tokens -= 1.0; /* a line all the same, for flood control */
	if (irc_num(c, "417", ":Input line was too long") < 0)
		return -1;
	return irc_commit(c);
}

/* ERROR, without the replies gathered for a command the session ends in (the stack's only). */
static size_t
irc_bye(struct client *c, enum part_reason why, const char *text, char *buf, size_t len)
{
	struct irc_conn *ic = irc_conn(c);

	if (ic != NULL) {
		ic->pending_len = ic->pending_lines = 0;
		ic->label[0] = '\0';
	}
	int n = snprintf(buf, len, "ERROR :Closing link: %s (%s)", part_reason_name(why), text);

	if (n < 0 || (size_t)n + 2 >= len)
		return 0;
	n = (int)reply_clean(buf, (size_t)n);
	memcpy(buf + n, "\r\n", 2);
	return (size_t)n + 2;
}

/* Refills the bucket; 0 when a line may be taken, else milliseconds until one may. */
static int64_t
irc_line_wait(struct client *c)
{
	const struct settings *s = settings_get();
	struct irc_conn *ic = irc_conn(c);
	int64_t now = time_mono_ms();

	ic->tokens += (double)(now - ic->refilled_ms) * s->irc_flood_rate / 1000.0;
	ic->refilled_ms = now;
	if (ic->tokens > s->irc_flood_burst)
		ic->tokens = s->irc_flood_burst;
	if (ic->tokens >= 1.0)
		return 0;
	return (int64_t)((1.0 - ic->tokens) * 1000.0 / s->irc_flood_rate) + 1;
}

static void
irc_end(struct client *c)
{
	struct irc_conn *ic = irc_conn(c);

	if (ic == NULL)
		return;
	if (ic->pass != NULL) {
		explicit_bzero(ic->pass, strlen(ic->pass));
		free(ic->pass);
	}
	if (ic->sasl != NULL) {
		explicit_bzero(ic->sasl, ic->sasl_len);
		free(ic->sasl);
	}
	free(ic->pending);
	free(ic);
	c->proto = NULL;
}

static int
irc_frontend_login(struct client *c, bool *registered, struct session_state *st)
{
	struct irc_conn *ic = calloc(1, sizeof(*ic));

	if (ic == NULL)
		return client_out_of_memory(st);
	ic->tokens = settings_get()->irc_flood_burst;
	ic->refilled_ms = time_mono_ms();
	c->proto = ic;
	return irc_login(c, registered, st);
}

/*
 * Every line but a PRIVMSG or NOTICE to channels only (answered through
 * the room when stored) keeps its turn: a command, and a message to a
 * nick too, which goes out at once (private, not stored) and so would
 * overtake the room messages sent before it (natively /msg is a command
 * and waits the same way).
 */
bool
irc_in_order(const char *line, size_t len)
{
	const char *end = line + len, *p = line;

	if (p < end && *p == '@') { /* past the tags */
		const char *sp = memchr(p, ' ', (size_t)(end - p));

		if (sp == NULL)
			return true;
		p = sp + 1;
	}
	while (p < end && *p == ' ')
		p++;
	size_t left = (size_t)(end - p);

	if (left > 8 && strncasecmp(p, "PRIVMSG ", 8) == 0)
		p += 8;
	else if (left > 7 && strncasecmp(p, "NOTICE ", 7) == 0)
		p += 7;
	else
		return true;
	while (p < end && *p == ' ')
		p++;
	if (p == end || *p == ':')
		return true; /* no target: answered at once (412) */
	/* The targets, up to the next space: each a channel? */
	for (; p < end && *p != ' '; p++)
		if ((p[-1] == ' ' || p[-1] == ',') && *p != '#')
			return true;
	return false;
}

const struct frontend irc_frontend = {
	.name = "irc",
	.login = irc_frontend_login,
	.welcome = irc_welcome,
	.refuse = irc_refuse,
	.in_order = irc_in_order,
	.request = irc_request,
	.overlong = irc_overlong,
	.bye = irc_bye,
	.line_wait = irc_line_wait,
	.woken = irc_woken,
	.end = irc_end,
};
