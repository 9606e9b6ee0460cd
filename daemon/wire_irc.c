/*
 * wire_irc.c - the IRC gateway's formats of room events (wire.h,
 * docs/IRC.md "What IRC clients see"): a room message as PRIVMSG to
 * #room (NOTICE for a notice), joins, parts, quits, kicks, topics, the
 * operator's notices, TAGMSG, private messages, RPL_TOPIC and the NAMES
 * and LIST numerics; how much of a topic IRC clients see and may set
 * (TOPICLEN: wire_irc_topic_max()).  Five forms, chosen by a session's
 * capabilities: no tags (wire_irc), server-time's (wire_irc_time),
 * account-tag's (wire_irc_account), both (wire_irc_time_account), and
 * every tag chatd sends (wire_irc_tags: time, msgid, account, the
 * sender's client-only tags).  No state; any thread.
 *
 * A user's prefix is NAME!NAME@chatd: the fixed host shows no address;
 * a guest's is NAME!~NAME@chatd in every line (IRC's '~' before a user
 * name nobody vouched for; natively a guest is ~NAME), so that nobody
 * takes it for the account someone may register under the name later.
 * A stored text "/me TEXT" is IRC's CTCP ACTION (irc_commands.c stores an
 * ACTION that way), so IRC clients show it as an action.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "irc_msg.h"
#include "names.h"
#include "room.h"
#include "timefmt.h"
#include "utf8.h"
#include "wire.h"

#define HOST "chatd"
#define ACTION_PREFIX "/me "
#define ACTION_PREFIX_LEN (sizeof(ACTION_PREFIX) - 1)

/*
 * A form is the tags it carries: time (server-time), account
 * (account-tag), and with message-tags every tag: msgid and the sender's
 * client-only tags too.
 */
enum form { F_NONE = 0, F_TIME = 1, F_ACCOUNT = 2, F_ALL = 4, F_TAGS = 7 };

/*
 * An IRC line holds at most IRC_BODY_MAX bytes after its tags: a longer
 * text (a native message may have max_line bytes) goes out as several
 * PRIVMSG lines, cut between characters (at a space when one is near),
 * each with the same tags but msgid, which only the first carries (a
 * client that drops repeated msgids keeps them all).
 */

/* Appends len bytes at *at (when dst is not NULL: counting otherwise). */
static void
put(char *dst, size_t *at, const char *p, size_t len)
{
	if (dst != NULL)
		memcpy(dst + *at, p, len);
	*at += len;
}

static void
puts_(char *dst, size_t *at, const char *s)
{
	put(dst, at, s, strlen(s));
}

/* Where to cut text (len bytes) so that the first part has at most max bytes. */
static size_t
cut(const char *text, size_t len, size_t max)
{
	size_t fit = text_fit(text, len, max);

	if (fit == len)
		return len;
	for (size_t i = fit; i > fit / 2; i--)
		if (text[i - 1] == ' ')
			return i;
	return fit > 0 ? fit : len; /* no character fits: never reached with max > 4 */
}

/* The bytes of text one line of a message from a from_len-byte name (a guest's?) holds. */
static size_t
text_room(size_t from_len, bool guest, const char *verb, const char *target_prefix,
	  size_t target_len, bool action)
{
	size_t head = 1 + 2 * from_len + 1 + (guest ? 1 : 0) + sizeof("@" HOST " ") - 1 +
		      strlen(verb) + 1 + strlen(target_prefix) + target_len + 2;

	return IRC_BODY_MAX > head + 16 ? IRC_BODY_MAX - head - (action ? 9 : 0) : 16;
}

bool
wire_irc_one_line(const char *from, bool guest, const char *verb, const char *target,
		  const char *text, size_t text_len)
{
	bool action = text_len >= ACTION_PREFIX_LEN && memcmp(text, ACTION_PREFIX, 4) == 0;
	size_t skip = action ? ACTION_PREFIX_LEN : 0;

	return cut(text + skip, text_len - skip,
		   text_room(strlen(from), guest, verb, "", strlen(target), action)) ==
	       text_len - skip;
}

/*
 * The line(s) of a message: "[@tags ]:FROM!FROM@chatd VERB TARGET :TEXT\r\n"
 * (FROM!~FROM@chatd for a guest),
 * several when TEXT is long.  Writes at dst (NULL: only counts); returns
 * the length.  time/msgid: the tag values (NULL: none); account: FROM,
 * unless a guest; ctags: the sender's client-only tags.
 */
static size_t
message_lines(char *dst, enum form f, const char *time, size_t time_len, const char *msgid,
	      size_t msgid_len, const char *ctags, size_t ctags_len, bool guest, const char *from,
	      size_t from_len, const char *verb, const char *target_prefix, const char *target,
	      size_t target_len, const char *text, size_t text_len)
{
	bool action = text_len >= ACTION_PREFIX_LEN && memcmp(text, ACTION_PREFIX, 4) == 0;
	size_t at = 0, room = text_room(from_len, guest, verb, target_prefix, target_len, action);
	bool first = true;

	if (action) {
		text += ACTION_PREFIX_LEN;
		text_len -= ACTION_PREFIX_LEN;
	}
	do {
		size_t part = cut(text, text_len, room);

		const char *sep = "@";

		if (f & F_TIME) {
			puts_(dst, &at, "@time=");
			put(dst, &at, time, time_len);
			sep = ";";
		}
		if ((f & F_ALL) && first && msgid != NULL) {
			puts_(dst, &at, sep);
			puts_(dst, &at, "msgid=");
			put(dst, &at, msgid, msgid_len);
			sep = ";";
		}
		if ((f & F_ACCOUNT) && !guest) {
			puts_(dst, &at, sep);
			puts_(dst, &at, "account=");
			put(dst, &at, from, from_len);
			sep = ";";
		}
		if ((f & F_ALL) && ctags != NULL) {
			puts_(dst, &at, sep);
			put(dst, &at, ctags, ctags_len);
			sep = ";";
		}
		puts_(dst, &at, sep[0] == ';' ? " :" : ":");
		put(dst, &at, from, from_len);
		puts_(dst, &at, guest ? "!~" : "!");
		put(dst, &at, from, from_len);
		puts_(dst, &at, "@" HOST " ");
		puts_(dst, &at, verb);
		puts_(dst, &at, " ");
		puts_(dst, &at, target_prefix);
		put(dst, &at, target, target_len);
		puts_(dst, &at, action ? " :\001ACTION " : " :");
		put(dst, &at, text, part);
		puts_(dst, &at, action ? "\001\r\n" : "\r\n");
		text += part;
		text_len -= part;
		first = false;
	} while (text_len > 0);
	return at;
}

/* A stored message as a room's members see it. */
static size_t
message(char *dst, enum form f, const struct history_entry *e)
{
	const char *d = e->body->data;

	return message_lines(dst, f, d + e->time_off, (size_t)(e->room_off - e->time_off - 1u), d,
			     (size_t)e->time_off - 1u, e->live.tags ? e->live.tags->data : NULL,
			     e->live.tags ? e->live.tags->len : 0, e->guest, d + e->name_off,
			     e->name_len, e->kind == HK_NOTICE ? "NOTICE" : "PRIVMSG", "#",
			     d + e->room_off, e->room_len, d + e->text_off, e->text_len);
}

#define FORM_OPS(suffix, form) \
	static size_t msg_len_##suffix(const struct history_entry *e) \
	{ \
		return message(NULL, form, e); \
	} \
	static void msg_put_##suffix(const struct history_entry *e, char *dst, uint32_t *id_off, \
				     uint32_t *id_len) \
	{ \
		message(dst, form, e); \
		*id_off = 0; \
		*id_len = 0; \
	}

FORM_OPS(none, F_NONE)
FORM_OPS(time, F_TIME)
FORM_OPS(account, F_ACCOUNT)
FORM_OPS(time_account, F_TIME | F_ACCOUNT)
FORM_OPS(tags, F_TAGS)

/* Digits of the longest member count a 322 may carry (a size_t). */
#define COUNT_DIGITS_MAX 20

/*
 * TOPICLEN: the longest topic that fits every line that carries one
 * whole, whoever reads it, with the longest nick and room name chatd
 * allows and this server_name (fixed while chatd runs): RPL_LIST's
 * ":SERVER 322 NICK #ROOM COUNT :" (longer than RPL_TOPIC's and than the
 * operator's ":SERVER TOPIC #ROOM :") and a user's
 * ":NICK!~NICK@chatd TOPIC #ROOM :" (a guest's); no more than max_topic
 * (room_topic_limit()).  IRC clients see at most this much of any topic
 * (topic_shown()), and TOPIC from one is cut to it (irc_commands.c).
 */
size_t
wire_irc_topic_max(void)
{
	size_t list = 1 + strlen(settings_get()->server_name) + sizeof(" 322 ") - 1 + NAME_MAX_LEN +
		      sizeof(" #") - 1 + ROOM_NAME_MAX + 1 + COUNT_DIGITS_MAX + sizeof(" :") - 1;
	size_t relay = 1 + 2 * NAME_MAX_LEN + sizeof("!~@" HOST " TOPIC #") - 1 + ROOM_NAME_MAX +
		       sizeof(" :") - 1;
	size_t fits = IRC_BODY_MAX - (list > relay ? list : relay), max = room_topic_limit();

	return fits < max ? fits : max;
}

/*
 * How many bytes of topic IRC clients see: at most wire_irc_topic_max(),
 * cut between characters, the same in 332, 322 and TOPIC (a topic set
 * natively or by the operator may be up to max_topic bytes).
 */
static int
topic_shown(const char *topic)
{
	return (int)text_fit(topic, strlen(topic), wire_irc_topic_max());
}

/* The tags of an event at ms: "" or "@time=... ". */
static void
time_tag(enum form f, int64_t ms, char out[TIME_RFC3339_LEN + 8])
{
	char when[TIME_RFC3339_LEN + 1];

	out[0] = '\0';
	if (!(f & F_TIME))
		return;
	time_format_ms(when, ms);
	snprintf(out, TIME_RFC3339_LEN + 8, "@time=%s ", when);
}

#define EVENT_TAGS_MAX (TIME_RFC3339_LEN + sizeof("@time=;account= ") + NAME_MAX_LEN)

/*
 * The tags of a user's event (JOIN, PART, QUIT, TOPIC): time, and
 * account (account-tag: on every command a user sends) unless a guest's.
 */
static void
user_tags(enum form f, const struct wire_event *ev, char out[EVENT_TAGS_MAX])
{
	char when[TIME_RFC3339_LEN + 1];
	bool account = (f & F_ACCOUNT) && !ev->guest;

	out[0] = '\0';
	if (f & F_TIME)
		time_format_ms(when, ev->ms);
	if ((f & F_TIME) && account)
		snprintf(out, EVENT_TAGS_MAX, "@time=%s;account=%s ", when, ev->name);
	else if (f & F_TIME)
		snprintf(out, EVENT_TAGS_MAX, "@time=%s ", when);
	else if (account)
		snprintf(out, EVENT_TAGS_MAX, "@account=%s ", ev->name);
}

static struct line *
event_line(enum form f, const struct wire_event *ev)
{
	const char *srv = settings_get()->server_name;
	char tags[TIME_RFC3339_LEN + 8], user[EVENT_TAGS_MAX];

	time_tag(f, ev->ms, tags);
	user_tags(f, ev, user);
	switch (ev->kind) {
	case WE_JOIN:
		return line_printf("%s:%s!%s%s@" HOST " JOIN #%s\r\n", user, ev->name,
				   WIRE_IRC_TILDE(ev->guest), ev->name, ev->room);
	case WE_PART:
		if (ev->offline)
			return line_printf("%s:%s!%s%s@" HOST " QUIT :%s\r\n", user, ev->name,
					   WIRE_IRC_TILDE(ev->guest), ev->name, ev->text);
		if (strcmp(ev->reason, "kicked") == 0 || strcmp(ev->reason, "deleted") == 0)
			return line_printf("%s:%s KICK #%s %s :%s\r\n", tags, srv, ev->room,
					   ev->name, ev->text);
		return line_printf("%s:%s!%s%s@" HOST " PART #%s :%s\r\n", user, ev->name,
				   WIRE_IRC_TILDE(ev->guest), ev->name, ev->room, ev->text);
	case WE_TOPIC:
		if (ev->ms == 0)
			return line_printf(":%s TOPIC #%s :\r\n", srv, ev->room);
		/* "*": the operator set it (chatctl), the server is the source. */
		if (ev->name[0] == '*')
			return line_printf("%s:%s TOPIC #%s :%.*s\r\n", tags, srv, ev->room,
					   topic_shown(ev->text), ev->text);
		return line_printf("%s:%s!%s%s@" HOST " TOPIC #%s :%.*s\r\n", user, ev->name,
				   WIRE_IRC_TILDE(ev->guest), ev->name, ev->room,
				   topic_shown(ev->text), ev->text);
	case WE_TAGMSG:
		if (!(f & F_ALL))
			return NULL;
		return line_printf("%.*s%s%s;%s :%s!%s%s@" HOST " TAGMSG #%s\r\n",
				   (int)strlen(tags) - 1, tags,
				   ev->guest ? "" : ";account=", ev->guest ? "" : ev->name,
				   ev->text, ev->name, WIRE_IRC_TILDE(ev->guest), ev->name,
				   ev->room);
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
	size_t fl = strlen(pm->from), tol = strlen(pm->to), tl = strlen(pm->text);
	struct line *l;

	time_format_ms(when, pm->ms);
	if (pm->tagmsg) /* client tags alone: only for those that take tags */
		return !(f & F_ALL)
			       ? NULL
			       : line_printf("@time=%s%s%s%s%s :%s!%s%s@" HOST " TAGMSG %s\r\n",
					     when, pm->guest ? "" : ";account=",
					     pm->guest ? "" : pm->from, pm->tags ? ";" : "",
					     pm->tags ? pm->tags : "", pm->from,
					     WIRE_IRC_TILDE(pm->guest), pm->from, pm->to);
	size_t ctl = pm->tags ? strlen(pm->tags) : 0;
	size_t len = message_lines(NULL, f, when, TIME_RFC3339_LEN, NULL, 0, pm->tags, ctl,
				   pm->guest, pm->from, fl, verb, "", pm->to, tol, pm->text, tl);

	if ((l = line_new(len)) != NULL)
		message_lines(l->data, f, when, TIME_RFC3339_LEN, NULL, 0, pm->tags, ctl, pm->guest,
			      pm->from, fl, verb, "", pm->to, tol, pm->text, tl);
	return l;
}

/*
 * RPL_TOPIC (332) and RPL_TOPICWHOTIME (333), or RPL_NOTOPIC (331) when
 * the topic was never set or was cleared (an empty topic is none).  The
 * setter in 333: the server for the operator, a nick, or a guest's mask
 * NICK!~NICK@chatd (as a guest's prefix is), so an account of the name
 * made later does not seem to have set it.
 */
static struct line *
topic_reply(const char *me, const struct wire_event *ev)
{
	const char *srv = settings_get()->server_name;
	char mask[2 * NAME_MAX_LEN + sizeof("!~@" HOST)];
	const char *setter = ev->name;

	if (ev->ms == 0 || ev->text[0] == '\0')
		return line_printf(":%s 331 %s #%s :No topic is set\r\n", srv, me, ev->room);
	if (ev->name[0] == '*') {
		setter = srv;
	} else if (ev->guest) {
		snprintf(mask, sizeof(mask), "%s!~%s@" HOST, ev->name, ev->name);
		setter = mask;
	}
	return line_printf(":%s 332 %s #%s :%.*s\r\n:%s 333 %s #%s %s %lld\r\n", srv, me, ev->room,
			   topic_shown(ev->text), ev->text, srv, me, ev->room, setter,
			   (long long)(ev->ms / 1000));
}

/* RPL_NAMREPLY (353) for one page; RPL_ENDOFNAMES comes from the front-end. */
static struct line *
users(const char *me, const char *room, size_t total, unsigned page, size_t pages,
      const char *const *names, const bool *guests, size_t n)
{
	const char *srv = settings_get()->server_name;
	size_t len = 0, off;
	struct line *l;
	int head;

	(void)total;
	(void)pages;
	(void)guests;  /* a guest's nick is its nick: WHO and WHOIS tell */
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
		len += (size_t)snprintf(NULL, 0, ":%s 322 %s #%s %zu :%.*s\r\n", srv, me, v[i].name,
					v[i].members, topic_shown(v[i].topic), v[i].topic);
	if ((l = line_new(len)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(l->data + off, len - off + 1,
					":%s 322 %s #%s %zu :%.*s\r\n", srv, me, v[i].name,
					v[i].members, topic_shown(v[i].topic), v[i].topic);
	return l;
}

/*
 * Cuts the one line l, between characters, so that its body (what follows
 * its tags) fits IRC_BODY_MAX: an event's text is last, and an operator's
 * notice may be longer than that (a topic never is: topic_shown()).
 */
static struct line *
fit(struct line *l)
{
	if (l == NULL || l->len < 2 || l->data[0] == '\0')
		return l;
	size_t len = l->len - 2, tags = 0;
	const char *sp = l->data[0] == '@' ? memchr(l->data, ' ', len) : NULL;

	if (sp != NULL)
		tags = (size_t)(sp + 1 - l->data);
	if (len - tags > IRC_BODY_MAX) {
		len = tags + text_fit(l->data + tags, len - tags, IRC_BODY_MAX);
		memcpy(l->data + len, "\r\n", 3);
		l->len = (unsigned)len + 2;
	}
	return l;
}

static struct line *
event(enum form f, const struct wire_event *ev)
{
	return fit(event_line(f, ev));
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
FORM_EVENTS(account, F_ACCOUNT)
FORM_EVENTS(time_account, F_TIME | F_ACCOUNT)
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
WIRE_IRC_FORM(wire_irc_account, "irc+account", account);
WIRE_IRC_FORM(wire_irc_time_account, "irc+time+account", time_account);
WIRE_IRC_FORM(wire_irc_tags, "irc+tags", tags);
