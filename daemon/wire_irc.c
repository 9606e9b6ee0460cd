/*
 * wire_irc.c - the IRC gateway's formats of room events (wire.h,
 * docs/IRC.md "What IRC clients see"): a room message as PRIVMSG to
 * #room, joins, parts, quits, kicks, topics and the operator's notices,
 * private messages, and the NAMES and LIST numerics.  Three forms: no
 * tags (wire_irc), server-time's tag alone (wire_irc_time), and every
 * tag chatd sends (wire_irc_tags: time, msgid, account), chosen by a
 * session's capabilities.  No state; any thread.
 *
 * A user's prefix is NAME!NAME@chatd: the fixed host shows no address.
 * A stored text "/me TEXT" is IRC's CTCP ACTION (irc_commands.c stores an
 * ACTION that way), so IRC clients show it as an action.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "timefmt.h"
#include "wire.h"

#define HOST "chatd"
#define ACTION_PREFIX "/me "
#define ACTION_PREFIX_LEN (sizeof(ACTION_PREFIX) - 1)

enum form { F_NONE, F_TIME, F_TAGS };

/* The runs of bytes a message's line is made of, so its length and bytes agree. */
struct runs {
	const char *p[16];
	size_t len[16];
	size_t n;
};

static void
run(struct runs *r, const char *p, size_t len)
{
	r->p[r->n] = p;
	r->len[r->n++] = len;
}

static void
runs_str(struct runs *r, const char *s)
{
	run(r, s, strlen(s));
}

static void
message_runs(enum form f, const struct history_entry *e, struct runs *r)
{
	const char *d = e->body->data;
	const char *text = d + e->text_off;
	size_t text_len = e->text_len;
	bool action = text_len >= ACTION_PREFIX_LEN && memcmp(text, ACTION_PREFIX, 4) == 0;

	r->n = 0;
	if (f != F_NONE) {
		runs_str(r, "@time=");
		run(r, d + e->time_off, (size_t)(e->room_off - e->time_off - 1u));
	}
	if (f == F_TAGS) {
		runs_str(r, ";msgid=");
		run(r, d, (size_t)e->time_off - 1u);
		runs_str(r, ";account=");
		run(r, d + e->name_off, e->name_len);
	}
	runs_str(r, f != F_NONE ? " :" : ":");
	run(r, d + e->name_off, e->name_len);
	runs_str(r, "!");
	run(r, d + e->name_off, e->name_len);
	runs_str(r, "@" HOST " PRIVMSG #");
	run(r, d + e->room_off, e->room_len);
	runs_str(r, " :");
	if (action) {
		runs_str(r, "\001ACTION ");
		run(r, text + ACTION_PREFIX_LEN, text_len - ACTION_PREFIX_LEN);
		runs_str(r, "\001\r\n");
	} else {
		run(r, text, text_len);
		runs_str(r, "\r\n");
	}
}

static size_t
runs_len(const struct runs *r)
{
	size_t len = 0;

	for (size_t i = 0; i < r->n; i++)
		len += r->len[i];
	return len;
}

static void
runs_put(const struct runs *r, char *dst)
{
	for (size_t i = 0; i < r->n; i++) {
		memcpy(dst, r->p[i], r->len[i]);
		dst += r->len[i];
	}
}

#define FORM_OPS(suffix, form) \
	static size_t msg_len_##suffix(const struct history_entry *e) \
	{ \
		struct runs r; \
		message_runs(form, e, &r); \
		return runs_len(&r); \
	} \
	static void msg_put_##suffix(const struct history_entry *e, char *dst, uint32_t *id_off, \
				     uint32_t *id_len) \
	{ \
		struct runs r; \
		message_runs(form, e, &r); \
		runs_put(&r, dst); \
		*id_off = 0; \
		*id_len = 0; \
	}

FORM_OPS(none, F_NONE)
FORM_OPS(time, F_TIME)
FORM_OPS(tags, F_TAGS)

/* The tags of an event at ms: "" or "@time=... ". */
static void
time_tag(enum form f, int64_t ms, char out[TIME_RFC3339_LEN + 8])
{
	char when[TIME_RFC3339_LEN + 1];

	out[0] = '\0';
	if (f == F_NONE)
		return;
	time_format_ms(when, ms);
	snprintf(out, TIME_RFC3339_LEN + 8, "@time=%s ", when);
}

static struct line *
event(enum form f, const struct wire_event *ev)
{
	const char *srv = settings_get()->server_name;
	char tags[TIME_RFC3339_LEN + 8];

	time_tag(f, ev->ms, tags);
	switch (ev->kind) {
	case WE_JOIN:
		return line_printf("%s:%s!%s@" HOST " JOIN #%s\r\n", tags, ev->name, ev->name,
				   ev->room);
	case WE_PART:
		if (ev->offline)
			return line_printf("%s:%s!%s@" HOST " QUIT :%s\r\n", tags, ev->name,
					   ev->name, ev->text);
		if (strcmp(ev->reason, "kicked") == 0 || strcmp(ev->reason, "deleted") == 0)
			return line_printf("%s:%s KICK #%s %s :%s\r\n", tags, srv, ev->room,
					   ev->name, ev->text);
		return line_printf("%s:%s!%s@" HOST " PART #%s :%s\r\n", tags, ev->name, ev->name,
				   ev->room, ev->text);
	case WE_TOPIC:
		if (ev->ms == 0)
			return line_printf(":%s TOPIC #%s :\r\n", srv, ev->room);
		return line_printf("%s:%s!%s@" HOST " TOPIC #%s :%s\r\n", tags, ev->name, ev->name,
				   ev->room, ev->text);
	case WE_NOTICE:
		if (ev->room == NULL)
			return line_printf("%s:%s NOTICE * :%s\r\n", tags, srv, ev->text);
		return line_printf("%s:%s NOTICE #%s :%s\r\n", tags, srv, ev->room, ev->text);
	}
	return NULL;
}

static struct line *
priv(enum form f, const struct wire_private *pm)
{
	const char *verb = pm->notice ? "NOTICE" : "PRIVMSG";
	char when[TIME_RFC3339_LEN + 1];
	size_t tl = strlen(pm->text);

	if (f != F_NONE)
		time_format_ms(when, pm->ms);
	if (tl >= ACTION_PREFIX_LEN && memcmp(pm->text, ACTION_PREFIX, ACTION_PREFIX_LEN) == 0)
		return line_printf("%s%s%s%s%s:%s!%s@" HOST " %s %s :\001ACTION %s\001\r\n",
				   f != F_NONE ? "@time=" : "", f != F_NONE ? when : "",
				   f == F_TAGS ? ";account=" : "", f == F_TAGS ? pm->from : "",
				   f != F_NONE ? " " : "", pm->from, pm->from, verb, pm->to,
				   pm->text + ACTION_PREFIX_LEN);
	return line_printf("%s%s%s%s%s:%s!%s@" HOST " %s %s :%s\r\n", f != F_NONE ? "@time=" : "",
			   f != F_NONE ? when : "", f == F_TAGS ? ";account=" : "",
			   f == F_TAGS ? pm->from : "", f != F_NONE ? " " : "", pm->from, pm->from,
			   verb, pm->to, pm->text);
}

/* RPL_TOPIC (332) and RPL_TOPICWHOTIME (333), or RPL_NOTOPIC (331). */
static struct line *
topic_reply(const char *me, const struct wire_event *ev)
{
	const char *srv = settings_get()->server_name;

	if (ev->ms == 0)
		return line_printf(":%s 331 %s #%s :No topic is set\r\n", srv, me, ev->room);
	return line_printf(":%s 332 %s #%s :%s\r\n:%s 333 %s #%s %s %lld\r\n", srv, me, ev->room,
			   ev->text, srv, me, ev->room, ev->name[0] == '*' ? srv : ev->name,
			   (long long)(ev->ms / 1000));
}

/* RPL_NAMREPLY (353) for one page; RPL_ENDOFNAMES comes from the front-end. */
static struct line *
users(const char *me, const char *room, size_t total, unsigned page, size_t pages,
      const char *const *names, size_t n)
{
	const char *srv = settings_get()->server_name;
	size_t len = 0, off;
	struct line *l;
	int head;

	(void)total;
	(void)pages;
	if (page == 0) /* not listed (a crowded room): the reader alone */
		return line_printf(":%s 353 %s = #%s :%s\r\n", srv, me, room, me);
	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	head = snprintf(NULL, 0, ":%s 353 %s = #%s :", srv, me, room);
	if ((l = line_new((size_t)head + len + 2)) == NULL)
		return NULL;
	off = (size_t)snprintf(l->data, (size_t)head + 1, ":%s 353 %s = #%s :", srv, me, room);
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(names[i]);

		memcpy(l->data + off, names[i], nl);
		off += nl;
		if (i + 1 < n)
			l->data[off++] = ' ';
	}
	memcpy(l->data + off, "\r\n", 3);
	l->len = off + 2;
	return l;
}

/* RPL_LIST (322) lines; RPL_LISTSTART and RPL_LISTEND come from the front-end. */
static struct line *
rooms(const char *me, const struct wire_room *v, size_t n)
{
	const char *srv = settings_get()->server_name;
	size_t len = 0, off = 0;
	struct line *l;

	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(NULL, 0, ":%s 322 %s #%s %zu :%s\r\n", srv, me, v[i].name,
					v[i].members, v[i].topic);
	if ((l = line_new(len)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(l->data + off, len - off + 1, ":%s 322 %s #%s %zu :%s\r\n",
					srv, me, v[i].name, v[i].members, v[i].topic);
	return l;
}

#define FORM_EVENTS(suffix, form) \
	static struct line *event_##suffix(const struct wire_event *ev) \
	{ \
		return event(form, ev); \
	} \
	static struct line *priv_##suffix(const struct wire_private *pm) \
	{ \
		return priv(form, pm); \
	}

FORM_EVENTS(none, F_NONE)
FORM_EVENTS(time, F_TIME)
FORM_EVENTS(tags, F_TAGS)

#define NOT_STORED \
	"FAIL PRIVMSG MESSAGE_NOT_STORED :message not stored (the server could not write it): " \
	"nobody got it\r\n"

#define WIRE_IRC_FORM(var, label, suffix) \
	const struct wire_format var = { \
		.name = label, \
		.msg_len = msg_len_##suffix, \
		.msg_put = msg_put_##suffix, \
		.ack_head = NULL, \
		.ack_tail = NULL, \
		.not_stored = NOT_STORED, \
		.event = event_##suffix, \
		.topic_reply = topic_reply, \
		.priv = priv_##suffix, \
		.users = users, \
		.rooms = rooms, \
	}

WIRE_IRC_FORM(wire_irc, "irc", none);
WIRE_IRC_FORM(wire_irc_time, "irc+time", time);
WIRE_IRC_FORM(wire_irc_tags, "irc+tags", tags);
