/*
 * irc_caps.c - IRCv3 capability negotiation (CAP LS, LIST, REQ, END; 302
 * values; cap-notify, with CAP NEW and DEL after a reload; ACK and NAK
 * that fit in a line with no name cut)
 * from one table of the capabilities chatd offers
 * (draft/account-registration only while registration is on), and the
 * line form a session's capabilities call for (wire.h): every tag
 * with message-tags; without it the tags of server-time, of account-tag,
 * or of both, as enabled; none otherwise.
 * Runs in the connection's own thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "irc.h"
#include "room.h"
#include "server.h"
#include "wire.h"

struct cap_def {
	const char *name;
	const char *value; /* CAP LS 302's "=value", NULL for none */
};

/* In enum irc_cap's order, which is alphabetical (by name, "draft/" aside). */
static const struct cap_def caps[CAP_N] = {
	/* REGISTER works before connection registration; the account is the nick. */
	[CAP_ACCOUNT_REGISTRATION] = { "draft/account-registration", "before-connect" },
	[CAP_ACCOUNT_TAG] = { "account-tag", NULL },
	[CAP_BATCH] = { "batch", NULL },
	[CAP_CAP_NOTIFY] = { "cap-notify", NULL },
	[CAP_CHATHISTORY] = { "draft/chathistory", NULL },
	[CAP_ECHO_MESSAGE] = { "echo-message", NULL },
	[CAP_EVENT_PLAYBACK] = { "draft/event-playback", NULL },
	[CAP_LABELED_RESPONSE] = { "labeled-response", NULL },
	[CAP_MESSAGE_TAGS] = { "message-tags", NULL },
	[CAP_SASL] = { "sasl", "PLAIN" },
	[CAP_SERVER_TIME] = { "server-time", NULL },
};

const char *
irc_cap_name(enum irc_cap cap)
{
	return caps[cap].name;
}

/*
 * Is cap offered now?  draft/account-registration only while registration
 * is on (read at each CAP LS and REQ; a reload that changes it is told to
 * cap-notify clients by irc_caps_notify()).
 */
static bool
cap_offered(int cap)
{
	return cap != CAP_ACCOUNT_REGISTRATION || settings_get()->registration;
}

/* The CAP_BIT()s offered now. */
static unsigned
offered_now(void)
{
	unsigned mask = 0;

	for (int i = 0; i < CAP_N; i++)
		if (cap_offered(i))
			mask |= CAP_BIT(i);
	return mask;
}

/*
 * "CAP * VERB :a b": the capabilities of mask, with their values for 302,
 * in as many lines as they take: LS marks each line but the last with "*"
 * (CAP LS 302), NEW and DEL send them as lines of their own.
 */
static int
cap_lines(struct client *c, const char *verb, unsigned mask, bool v302)
{
	const char *more = strcmp(verb, "LS") == 0 ? "* " : "";
	char list[400];
	size_t off = 0;

	list[0] = '\0';
	for (int i = 0; i < CAP_N; i++) {
		char one[64];
		int n;

		if (!(mask & CAP_BIT(i)))
			continue;
		n = snprintf(one, sizeof(one), "%s%s%s", caps[i].name,
			     v302 && caps[i].value ? "=" : "",
			     v302 && caps[i].value ? caps[i].value : "");
		if (off + (size_t)n + 1 >= sizeof(list) - 1) {
			if (irc_send(c, ":%s CAP %s %s %s:%s", settings_get()->server_name,
				     irc_target(c), verb, more, list) < 0)
				return -1;
			off = 0;
			list[0] = '\0';
		}
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", off ? " " : "",
					one);
	}
	return irc_send(c, ":%s CAP %s %s :%s", settings_get()->server_name, irc_target(c), verb,
			list);
}

int
irc_caps_notify(struct client *c)
{
	struct irc_conn *ic = irc_conn(c);
	unsigned now = offered_now(), added = now & ~ic->offered, gone = ic->offered & ~now;

	if (!ic->offered_known) {
		ic->offered = now;
		ic->offered_known = true;
		return 0;
	}
	ic->offered = now;
	if ((added | gone) == 0 || !irc_has(ic, CAP_CAP_NOTIFY))
		return 0;
	ic->caps &= ~gone; /* what DEL names the client holds off */
	if (added && cap_lines(c, "NEW", added, ic->cap_version >= 302) < 0)
		return -1;
	if (gone && cap_lines(c, "DEL", gone, false) < 0)
		return -1;
	return 1;
}

/* An offered capability by name, or -1. */
static int
cap_find(const char *name, size_t len)
{
	for (int i = 0; i < CAP_N; i++)
		if (strlen(caps[i].name) == len && strncasecmp(caps[i].name, name, len) == 0)
			return cap_offered(i) ? i : -1;
	return -1;
}

void
irc_caps_apply(struct client *c)
{
	struct irc_conn *ic = irc_conn(c);
	bool time = irc_has(ic, CAP_SERVER_TIME), account = irc_has(ic, CAP_ACCOUNT_TAG);
	unsigned wire = irc_has(ic, CAP_MESSAGE_TAGS) ? WIRE_IRC_TAGS
			: time && account             ? WIRE_IRC_TIME_ACCOUNT
			: time                        ? WIRE_IRC_TIME
			: account                     ? WIRE_IRC_ACCOUNT
						      : WIRE_IRC;

	room_set_form(c->srv->hub, c, wire, irc_has(ic, CAP_ECHO_MESSAGE));
}

static int
cap_list(struct client *c)
{
	struct irc_conn *ic = irc_conn(c);
	char list[400];
	size_t off = 0;

	list[0] = '\0';
	for (int i = 0; i < CAP_N; i++)
		if (irc_has(ic, (enum irc_cap)i))
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
						off ? " " : "", caps[i].name);
	return irc_send(c, ":%s CAP %s LIST :%s", settings_get()->server_name, irc_target(c), list);
}

/* ":SERVER CAP TARGET VERB :" + list fits in one line. */
static bool
cap_fits(struct client *c, const char *verb, size_t list_len)
{
	size_t head = strlen(":") + strlen(settings_get()->server_name) + strlen(" CAP ") +
		      strlen(irc_target(c)) + 1 + strlen(verb) + strlen(" :");

	return head + list_len <= IRC_BODY_MAX;
}

/* Does name (len bytes) stand, as a whole word, in the space-separated list? */
static bool
word_in(const char *list, const char *name, size_t len)
{
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, " ");

		if (n == len && memcmp(p, name, len) == 0)
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

/*
 * NAK: the list as sent (the capability negotiation spec: at least its
 * first 100 characters, and a client may compare it with its REQ) when it
 * fits in the line; else its names as sent, whole, once each, one space
 * apart, as many as fit (a name that would not fit whole is left out, so
 * none is cut into another name).
 */
static int
cap_nak(struct client *c, const char *list)
{
	char out[IRC_BODY_MAX + 1];
	size_t off = 0;

	if (cap_fits(c, "NAK", strlen(list)))
		return irc_send(c, ":%s CAP %s NAK :%s", settings_get()->server_name, irc_target(c),
				list);
	out[0] = '\0';
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, " ");

		if (n > 0 && off + !!off + n < sizeof(out) && cap_fits(c, "NAK", off + !!off + n) &&
		    !word_in(out, p, n)) {
			if (off > 0)
				out[off++] = ' ';
			memcpy(out + off, p, n);
			off += n;
			out[off] = '\0';
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	return irc_send(c, ":%s CAP %s NAK :%s", settings_get()->server_name, irc_target(c), out);
}

/*
 * CAP REQ: all or nothing (ACK or NAK of the whole list).  The ACK names
 * each capability requested once, as the client spelled it first, in its
 * order, "-" before one turned off, one space apart: the same list as the
 * REQ for a REQ written so, and never longer than the capabilities chatd
 * has, so it always fits in the line whatever the REQ held.
 */
static int
cap_req(struct client *c, const char *list)
{
	struct irc_conn *ic = irc_conn(c);
	unsigned on = 0, off = 0;
	const char *spelled[CAP_N];
	int order[CAP_N];
	size_t n_order = 0;

	for (const char *p = list; *p;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		bool minus = *p == '-';
		const char *start = p + minus;
		size_t len = strcspn(start, " ");
		int i = cap_find(start, len);

		p = start + len;
		/* An unknown cap, or cap-notify off after CAP LS 302 (it stays on then): NAK. */
		if (i < 0 || (minus && i == CAP_CAP_NOTIFY && ic->cap_version >= 302))
			return cap_nak(c, list);
		if (((on | off) & CAP_BIT(i)) == 0) {
			spelled[n_order] = start;
			order[n_order++] = i;
		}
		if (minus)
			off |= CAP_BIT(i);
		else
			on |= CAP_BIT(i);
	}
	ic->caps = (ic->caps | on) & ~off;
	/* cap-notify is on for good with CAP LS 302. */
	if (ic->cap_version >= 302)
		ic->caps |= CAP_BIT(CAP_CAP_NOTIFY);
	if (c->name[0] != '\0')
		irc_caps_apply(c);

	/* Turned off wins over on (as ic->caps above): "batch -batch" is "-batch". */
	char ack[CAP_N * 40];
	size_t at = 0;

	ack[0] = '\0';
	for (size_t k = 0; k < n_order; k++)
		at += (size_t)snprintf(ack + at, sizeof(ack) - at, "%s%s%.*s", at ? " " : "",
				       off & CAP_BIT(order[k]) ? "-" : "",
				       (int)strlen(caps[order[k]].name), spelled[k]);
	return irc_send(c, ":%s CAP %s ACK :%s", settings_get()->server_name, irc_target(c), ack);
}

int
irc_cap_command(struct client *c, const struct irc_msg *m)
{
	struct irc_conn *ic = irc_conn(c);
	const char *sub = m->n_params > 0 ? m->params[0] : "";

	if (strcasecmp(sub, "LS") == 0) {
		unsigned v = m->n_params > 1 ? (unsigned)strtoul(m->params[1], NULL, 10) : 0;

		if (v > ic->cap_version)
			ic->cap_version = v;
		if (ic->cap_version >= 302)
			ic->caps |= CAP_BIT(CAP_CAP_NOTIFY);
		if (c->name[0] == '\0')
			ic->cap_negotiating = true;
		ic->offered = offered_now(); /* what the client is told now */
		ic->offered_known = true;
		return cap_lines(c, "LS", offered_now(), ic->cap_version >= 302);
	}
	if (strcasecmp(sub, "LIST") == 0)
		return cap_list(c);
	if (strcasecmp(sub, "REQ") == 0) {
		if (c->name[0] == '\0')
			ic->cap_negotiating = true;
		return cap_req(c, m->n_params > 1 ? m->params[1] : "");
	}
	if (strcasecmp(sub, "END") == 0) {
		ic->cap_negotiating = false;
		return 0;
	}
	char echo[IRC_ECHO_MAX + 1];

	return irc_num(c, "410", "%s :Invalid CAP command", irc_echo(echo, sub));
}
