/*
 * irc_commands.c - what a registered IRC client may send (docs/IRC.md
 * "Commands"): one table drives dispatch, the parameter counts (before
 * registration too: irc_login.c) and the command list of docs/IRC.md (a
 * ctest compares them).  Each command calls the core (room.h, history)
 * and words the outcome as IRC numerics.  A room is a channel: "#dev" is
 * the room dev.  Runs in the connection's own thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "history.h"
#include "irc.h"
#include "log.h"
#include "room.h"
#include "server.h"
#include "timefmt.h"
#include "utf8.h"
#include "wire.h"

#define HOST "chatd"
/* Targets one PRIVMSG or NOTICE may name (005 TARGMAX): one line costs one token. */
#define MAX_TARGETS 4

static const char *
srv_name(void)
{
	return settings_get()->server_name;
}

/* "#dev" -> "dev"; NULL when it is no channel name chatd could have. */
static const char *
channel_room(const char *chan)
{
	if (chan[0] != '#' || !room_name_valid(chan + 1, strlen(chan + 1)))
		return NULL;
	return chan + 1;
}

/* The numeric for a room operation that did not go through; param: the channel as sent. */
static int
room_refused(struct client *c, enum room_result res, const char *param)
{
	char echo[IRC_ECHO_MAX + 1];
	const char *chan = irc_echo(echo, param);

	switch (res) {
	case ROOM_BAD_NAME:
		return irc_num(c, "479", "%s :Illegal channel name", chan);
	case ROOM_NO_SUCH:
	case ROOM_GONE:
		return irc_num(c, "403", "%s :No such channel", chan);
	case ROOM_NOT_MEMBER:
	case ROOM_IN_NONE:
		return irc_num(c, "442", "%s :You're not on that channel", chan);
	case ROOM_CREATE_DENIED:
		return irc_num(c, "403", "%s :No such channel (only %s may make rooms)", chan,
			       settings_get()->room_create == ROOM_CREATE_ADMIN
				       ? "an operator"
				       : "registered users");
	case ROOM_MAX_ROOMS:
		return irc_num(c, "405", "%s :The server has as many rooms as it may", chan);
	case ROOM_MAX_PER_USER:
		return irc_num(c, "405", "%s :You have joined too many channels", chan);
	case ROOM_TOPIC_LONG:
		return irc_num(c, "417", ":Topic too long");
	case ROOM_CLOSING:
		return irc_send(c, "ERROR :Server is shutting down");
	case ROOM_NO_MEMORY:
	case ROOM_DONE:
	case ROOM_ALREADY:
		break;
	}
	return irc_send(c, "FAIL * INTERNAL_ERROR :out of memory");
}

/* ---- joining ---- */

/* RPL_NAMREPLY lines (as many names each as fit whole) and RPL_ENDOFNAMES for room. */
static int
names_reply(struct client *c, const char *room)
{
	char spelled[ROOM_NAME_MAX + 1], params[ROOM_NAME_MAX + 5];
	struct irc_list names;
	struct room_who *who;
	size_t n;
	bool listed;
	int rc = 0;

	if (room_who(c->srv->hub, c, room, &who, &n, &listed, spelled) != ROOM_DONE)
		return irc_num(c, "366", "#%s :End of /NAMES list.", room);
	snprintf(params, sizeof(params), "= #%s ", spelled);
	irc_list_start(&names, c, "353", params);
	if (!listed) /* a crowded room: the reader alone */
		rc = irc_list_add(&names, c->name);
	for (size_t i = 0; listed && rc == 0 && i < n; i++)
		rc = irc_list_add(&names, who[i].name);
	if (rc == 0)
		rc = irc_list_end(&names, false);
	free(who);
	return rc == 0 ? irc_num(c, "366", "#%s :End of /NAMES list.", spelled) : -1;
}

/* Whether l is RPL_NOTOPIC (wire_irc.c: a topic never set, or cleared). */
static bool
is_no_topic(const struct line *l)
{
	char head[128];
	int n = snprintf(head, sizeof(head), ":%s 331 ", srv_name());

	return n > 0 && (size_t)n < sizeof(head) && l->len >= (size_t)n &&
	       memcmp(l->data, head, (size_t)n) == 0;
}

int
irc_join_reply(struct client *c, struct room_join_reply *rep)
{
	int rc = irc_send(c, ":%s!%s%s@" HOST " JOIN #%s", c->name, WIRE_IRC_TILDE(c->room.guest),
			  c->name, rep->room);

	/* A room with a topic: 332 and 333; a cleared one has none, so no 331 either. */
	if (rc == 0 && rep->topic != NULL && !is_no_topic(rep->topic))
		rc = irc_send_line(c, rep->topic);
	room_join_reply_release(rep);
	if (rc == 0)
		rc = names_reply(c, rep->room);
	return rc == 0 ? irc_replay(c, rep->room, rep->first_id, rep->last_msg_id) : -1;
}

/*
 * JOIN, PART and NAMES take a list of rooms with no bound of their own: the line
 * took one flood token (irc_request()), each room after the first in it
 * takes one more, so twenty rooms on one line wait like twenty lines (a
 * bucket below zero holds the next line back until it has refilled).
 */
static void
charge_room(struct client *c, unsigned nth)
{
	if (nth > 0)
		irc_conn(c)->tokens -= 1.0;
}

static int
join_one(struct client *c, const char *chan)
{
	struct room_join_reply rep = { 0 };
	const char *room = channel_room(chan);
	char echo[IRC_ECHO_MAX + 1];
	enum room_result res;

	if (room == NULL)
		return irc_num(c, "479", "%s :Illegal channel name", irc_echo(echo, chan));
	res = room_join(c->srv->hub, c, room, &rep);
	if (res == ROOM_ALREADY)
		return 0;
	if (res != ROOM_DONE)
		return room_refused(c, res, chan);
	return irc_join_reply(c, &rep);
}

static int
part_one(struct client *c, const char *chan, const char *reason)
{
	char spelled[ROOM_NAME_MAX + 1], echo[IRC_ECHO_MAX + 1];
	const char *room = channel_room(chan);
	enum room_result res;

	if (room == NULL)
		return irc_num(c, "403", "%s :No such channel", irc_echo(echo, chan));
	res = room_part(c->srv->hub, c, room, reason, spelled);
	if (res != ROOM_DONE)
		return room_refused(c, res, chan);
	return irc_send(c, ":%s!%s%s@" HOST " PART #%s :%s", c->name, WIRE_IRC_TILDE(c->room.guest),
			c->name, spelled, reason);
}

/* JOIN 0: leaves every room c is in (its current room, until it is in none). */
static int
part_all(struct client *c)
{
	char spelled[ROOM_NAME_MAX + 1], chan[ROOM_NAME_MAX + 2];
	int rc = 0;

	while (rc == 0 && room_target(c->srv->hub, c, NULL, spelled, NULL) == ROOM_DONE) {
		snprintf(chan, sizeof(chan), "#%s", spelled);
		rc = part_one(c, chan, "left");
	}
	return rc;
}

static int
cmd_join(struct client *c, struct session_state *st, struct irc_msg *m)
{
	char *list, *save = NULL;
	unsigned n = 0;
	int rc = 0;

	(void)st;
	if (strcmp(m->params[0], "0") == 0)
		return part_all(c);
	if ((list = strdup(m->params[0])) == NULL)
		return -1;
	for (char *it = strtok_r(list, ",", &save); it && rc == 0;
	     it = strtok_r(NULL, ",", &save)) {
		charge_room(c, n++);
		rc = join_one(c, it);
	}
	free(list);
	return rc;
}

static int
cmd_part(struct client *c, struct session_state *st, struct irc_msg *m)
{
	char reason[REASON_TEXT_MAX + 1] = "left", *list, *save = NULL;
	unsigned n = 0;
	int rc = 0;

	(void)st;
	/* Cut as the others get it (room.c), so the PART we send back is theirs. */
	if (m->n_params > 1 && m->params[1][0] &&
	    text_check(m->params[1], strlen(m->params[1])) == TEXT_OK)
		snprintf(reason, sizeof(reason), "%.*s",
			 (int)text_fit(m->params[1], strlen(m->params[1]), REASON_TEXT_MAX),
			 m->params[1]);
	if ((list = strdup(m->params[0])) == NULL)
		return -1;
	for (char *it = strtok_r(list, ",", &save); it && rc == 0;
	     it = strtok_r(NULL, ",", &save)) {
		charge_room(c, n++);
		rc = part_one(c, it, reason);
	}
	free(list);
	return rc;
}

/* ---- talking ---- */

/*
 * IRC text as chatd stores it: formatting codes stripped, a CTCP ACTION
 * as "/me TEXT"; NULL for other CTCP (not relayed).  In place.
 */
static char *
stored_text(char *text, size_t *len)
{
	*len = irc_strip_formatting(text, strlen(text));
	text[*len] = '\0';
	if (text[0] != '\001')
		return text;
	if (strncmp(text, "\001ACTION ", 8) != 0)
		return NULL;
	text += 4; /* "\001ACT" -> "/me " below */
	memcpy(text, "/me ", 4);
	*len -= 4;
	if (*len > 0 && text[*len - 1] == '\001')
		text[--*len] = '\0';
	return text;
}

/* Our own private message, back to us (echo-message), in our form. */
static int
echo_private(struct client *c, const struct wire_private *pm)
{
	const struct wire_format *f = wire_formats[c->wire];
	struct line *l = f->priv(pm);
	int rc = l != NULL ? irc_send_line(c, l) : -1;

	line_unref(l);
	return rc;
}

/*
 * The label a message's echo carries: with labeled-response and
 * echo-message, a labeled PRIVMSG or NOTICE to one room is answered by its
 * echo (when stored), not by an ACK, when that echo is one line: the label
 * marks one logical message, and an echo of several lines could only be
 * one inside a batch (the ACK answers, and the echo comes unlabeled).
 * NULL when none (or no memory: ACK).
 */
static struct line *
echo_label(struct client *c, bool single)
{
	struct irc_conn *ic = irc_conn(c);
	struct line *l;

	if (!single || ic->label[0] == '\0' || !irc_has(ic, CAP_LABELED_RESPONSE) ||
	    !irc_has(ic, CAP_ECHO_MESSAGE) || (l = line_printf("@label=%s", ic->label)) == NULL)
		return NULL;
	ic->label_passed = true;
	return l;
}

/*
 * The client-only tags of m ("+a=b;+c", values escaped again) for those
 * who get the message live: a string to free, NULL when there are none.
 * A value that is no valid text (invalid UTF-8, control characters, bidi
 * controls...: text_check) is dropped with its tag: clients show some
 * values (reactions), and UTF8ONLY promises UTF-8 only.
 */
static char *
client_tags(const struct irc_msg *m)
{
	char *out = NULL;
	size_t len = 0;

	for (size_t i = 0; i < m->n_tags; i++) {
		const char *k = m->tags[i].key, *v = m->tags[i].value;

		if (k[0] != '+' || text_check(v, strlen(v)) != TEXT_OK)
			continue;
		size_t need = strlen(k) + 1 + irc_tag_escape(NULL, 0, v) + 1;
		char *p = realloc(out, len + need + 1);

		if (p == NULL) {
			free(out);
			return NULL;
		}
		out = p;
		len += (size_t)snprintf(out + len, need + 1, "%s%s", len ? ";" : "", k);
		if (v[0] != '\0') {
			out[len++] = '=';
			len += irc_tag_escape(out + len, need + 1, v);
		}
		out[len] = '\0';
	}
	return out;
}

static int
say_to(struct client *c, struct session_state *st, const char *target, char *text, bool notice,
       bool single, const char *tags)
{
	const char *verb = notice ? "NOTICE" : "PRIVMSG";
	char echo[IRC_ECHO_MAX + 1];
	const char *shown = irc_echo(echo, target); /* target as replies echo it */
	size_t len;
	char *t = stored_text(text, &len);

	if (t == NULL)
		return 0; /* CTCP other than ACTION: not relayed */
	if (len == 0)
		return notice ? 0 : irc_num(c, "412", ":No text to send");
	enum text_check tc = text_check(t, len);
	if (tc != TEXT_OK)
		return notice ? 0
			      : irc_send(c, ":%s FAIL %s INVALID_TEXT %s :%s: not sent", srv_name(),
					 verb, shown, text_check_str(tc));
	if (target[0] == '#') {
		const char *room = channel_room(target);
		enum room_result res = ROOM_NO_SUCH;

		if (room == NULL)
			return notice ? 0 : irc_num(c, "403", "%s :No such channel", shown);
		st->last_post_ms = time_mono_ms();
		bool one_line = wire_irc_one_line(c->name, c->room.guest, verb, target, t, len);

		if (client_store_live(c, room, notice ? HK_NOTICE : HK_MSG, t, len,
				      (struct history_live){
					      .label = echo_label(c, single && one_line),
					      .tags = tags ? line_printf("%s", tags) : NULL },
				      &res) == 0)
			return 0;
		irc_conn(c)->label_passed = false;
		if (notice)
			return 0;
		if (res == ROOM_NOT_MEMBER || res == ROOM_GONE)
			return irc_num(c, "404", "%s :Cannot send to channel", shown);
		return room_refused(c, res, target);
	}
	char away[REASON_TEXT_MAX + 1];
	struct wire_private pm = { .from = c->name,
				   .to = target,
				   .ms = time_now_ms(),
				   .text = t,
				   .notice = notice,
				   .tags = tags,
				   .guest = c->room.guest };
	int rc = room_send_private(c->srv->hub, &pm, away, sizeof(away));
	if (rc == -2)
		return -1;
	if (rc < 0)
		return notice ? 0 : irc_num(c, "401", "%s :No such nick/channel", shown);
	if (irc_has(irc_conn(c), CAP_ECHO_MESSAGE) && echo_private(c, &pm) < 0)
		return -1;
	if (!notice && away[0])
		return irc_num(c, "301", "%s :%s", shown, away);
	return 0;
}

static int
talk(struct client *c, struct session_state *st, struct irc_msg *m, bool notice)
{
	if (m->n_params < 2)
		return notice ? 0 : irc_num(c, "412", ":No text to send");
	char *targets = strdup(m->params[0]), *save = NULL, *tags = client_tags(m);
	bool single = strchr(m->params[0], ',') == NULL;
	int rc = 0, n = 0;

	if (targets == NULL) {
		free(tags);
		return -1;
	}
	for (char *t = strtok_r(targets, ",", &save); t && rc == 0;
	     t = strtok_r(NULL, ",", &save)) {
		if (++n > MAX_TARGETS) {
			char echo[IRC_ECHO_MAX + 1];

			rc = notice ? 0
				    : irc_num(c, "407", "%s :Too many targets (at most %d)",
					      irc_echo(echo, t), MAX_TARGETS);
			break;
		}
		/* Each target gets the text as sent: stored_text() changes it in place. */
		char *text = strdup(m->params[1]);

		rc = text != NULL ? say_to(c, st, t, text, notice, single, tags) : -1;
		free(text);
	}
	free(targets);
	free(tags);
	/* Only commas ("PRIVMSG ,, :hi"): nobody to send to, not a silent nothing. */
	if (rc == 0 && n == 0 && !notice)
		rc = irc_num(c, "411", ":No recipient given (PRIVMSG)");
	return rc;
}

static int
cmd_privmsg(struct client *c, struct session_state *st, struct irc_msg *m)
{
	return talk(c, st, m, false);
}

static int
cmd_notice(struct client *c, struct session_state *st, struct irc_msg *m)
{
	return talk(c, st, m, true);
}

/*
 * TAGMSG: client-only tags alone (typing notices, reactions), live, never
 * stored.  With echo-message the sender gets it back once delivered, in
 * its own form as the others get it (time, and account unless a guest).
 */
static int
cmd_tagmsg(struct client *c, struct session_state *st, struct irc_msg *m)
{
	const char *target = m->params[0];
	char *tags = client_tags(m), spelled[ROOM_NAME_MAX + 1], shown[IRC_ECHO_MAX + 1];
	bool echo =
		irc_has(irc_conn(c), CAP_ECHO_MESSAGE) && irc_has(irc_conn(c), CAP_MESSAGE_TAGS);
	struct line *back = NULL;
	int rc = 0;

	(void)st;
	if (tags == NULL) /* nothing to relay */
		return 0;
	if (target[0] == '#') {
		const char *room = channel_room(target);
		enum room_result res =
			room ? room_tagmsg(c->srv->hub, c, room, tags, spelled) : ROOM_NO_SUCH;

		if (res == ROOM_NOT_MEMBER)
			rc = irc_num(c, "404", "%s :Cannot send to channel",
				     irc_echo(shown, target));
		else if (res != ROOM_DONE)
			rc = room_refused(c, res, target);
		else if (echo)
			back = wire_formats[c->wire]->event(
				&(struct wire_event){ .kind = WE_TAGMSG,
						      .room = spelled,
						      .ms = time_now_ms(),
						      .name = c->name,
						      .text = tags,
						      .guest = c->room.guest });
	} else {
		struct wire_private pm = { .from = c->name,
					   .to = target,
					   .ms = time_now_ms(),
					   .text = "",
					   .tagmsg = true,
					   .tags = tags,
					   .guest = c->room.guest };
		int sent = room_send_private(c->srv->hub, &pm, NULL, 0);

		if (sent == -2)
			rc = -1;
		else if (sent < 0)
			rc = irc_num(c, "401", "%s :No such nick/channel", irc_echo(shown, target));
		else if (echo)
			back = wire_formats[c->wire]->priv(&pm);
	}
	if (rc == 0 && back != NULL)
		rc = irc_send_line(c, back);
	line_unref(back);
	free(tags);
	return rc;
}

/* ---- rooms ---- */

static int
cmd_topic(struct client *c, struct session_state *st, struct irc_msg *m)
{
	char spelled[ROOM_NAME_MAX + 1], echo[IRC_ECHO_MAX + 1];
	const char *chan = m->params[0], *room = channel_room(chan);
	struct line *l = NULL;
	enum room_result res;

	(void)st;
	if (room == NULL)
		return irc_num(c, "403", "%s :No such channel", irc_echo(echo, chan));
	if (m->n_params < 2) {
		res = room_topic_line(c->srv->hub, c, room, &l);
	} else {
		char text[MAX_TOPIC_BYTES + 1];
		/* longer than TOPICLEN: cut to it between characters, as IRC servers do */
		size_t len = text_fit(m->params[1], strlen(m->params[1]), wire_irc_topic_max());

		snprintf(text, sizeof(text), "%.*s", (int)len, m->params[1]);
		if (text_check(text, len) != TEXT_OK)
			return irc_send(c, ":%s FAIL TOPIC INVALID_TEXT %s :%s", srv_name(), chan,
					text_check_str(text_check(text, len)));
		res = room_topic_set(c->srv->hub, c, room, text, spelled, &l);
	}
	if (res != ROOM_DONE)
		return room_refused(c, res, chan);
	int rc = irc_send_line(c, l);
	line_unref(l);
	return rc;
}

/* NAMES #a,#b: each channel's names and its 366 (a room after the first costs a token). */
static int
cmd_names(struct client *c, struct session_state *st, struct irc_msg *m)
{
	char *list, *save = NULL;
	unsigned n = 0;
	int rc = 0;

	(void)st;
	/* No channel named (no parameter, or only commas): one 366 for "*". */
	if (m->n_params < 1 || m->params[0][strspn(m->params[0], ",")] == '\0')
		return irc_num(c, "366", "* :End of /NAMES list.");
	if ((list = strdup(m->params[0])) == NULL)
		return -1;
	for (char *it = strtok_r(list, ",", &save); it && rc == 0;
	     it = strtok_r(NULL, ",", &save)) {
		const char *room = channel_room(it);
		char echo[IRC_ECHO_MAX + 1];

		charge_room(c, n++);
		rc = room != NULL
			     ? names_reply(c, room)
			     : irc_num(c, "366", "%s :End of /NAMES list.", irc_echo(echo, it));
	}
	free(list);
	return rc;
}

/* Whether the channel "#room" is in the comma list of channels wanted (ASCII case aside). */
static bool
list_wanted(const char *wanted, const char *chan, size_t chan_len)
{
	for (const char *p = wanted; *p != '\0';) {
		size_t n = strcspn(p, ",");

		if (n == chan_len && strncasecmp(p, chan, n) == 0)
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

/*
 * The 322 lines of l ("... 322 NICK #room COUNT :topic") whose channel is
 * wanted (NULL: all), while the reply keeps within budget bytes; *cut
 * counts the lines left out for it.
 */
static int
list_send(struct client *c, const struct line *l, const char *wanted, size_t budget, size_t *cut)
{
	const char *end = l->data + l->len;

	for (const char *p = l->data, *eol; p < end; p = eol + 1) {
		const char *sp = p;

		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		/* ":SERVER 322 NICK #room": the channel is the fourth word */
		for (int word = 0; word < 3 && sp != NULL; word++)
			if ((sp = memchr(sp, ' ', (size_t)(eol - sp))) != NULL)
				sp++;
		if (sp == NULL)
			continue;
		const char *chan_end = memchr(sp, ' ', (size_t)(eol - sp));
		size_t len = (size_t)(eol - p);

		if (chan_end == NULL ||
		    (wanted != NULL && !list_wanted(wanted, sp, (size_t)(chan_end - sp))))
			continue;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (irc_conn(c)->pending_len + len > budget) {
			(*cut)++;
			continue;
		}
		if (irc_send(c, "%.*s", (int)len, p) < 0)
			return -1;
	}
	return 0;
}

/*
 * LIST, or LIST #a,#b: only those channels (modern.ircdocs.horse).  A
 * first parameter that is no channel (an ELIST condition, which 005 does
 * not offer) lists every channel.  The reply holds no more than fits in
 * half of send_queue_limit (as a history batch): max_rooms rooms with long
 * topics would pass the send queue and end the session for overflow (a
 * user could make the rooms, and every IRC client's LIST would end it);
 * the 323 says how many rooms were left out.
 */
static int
cmd_list(struct client *c, struct session_state *st, struct irc_msg *m)
{
	const char *wanted = m->n_params > 0 && m->params[0][0] == '#' ? m->params[0] : NULL;
	size_t pages = 1, rooms, cut = 0, budget = (size_t)settings_get()->send_queue_limit / 2;
	int rc = irc_num(c, "321", "Channel :Users  Name");

	(void)st;
	for (unsigned page = 1; rc == 0 && page <= pages; page++) {
		struct line *l = room_list(c->srv->hub, c, page, &pages, &rooms);

		if (l == NULL)
			return -1;
		rc = list_send(c, l, wanted, budget, &cut);
		line_unref(l);
	}
	if (rc < 0)
		return -1;
	if (cut > 0)
		return irc_num(c, "323",
			       ":End of /LIST (%zu more rooms would not fit in the send queue: "
			       "LIST #a,#b lists those rooms)",
			       cut);
	return irc_num(c, "323", ":End of /LIST");
}

static int
who_line(struct client *c, const char *chan, const char *nick, bool away, bool guest)
{
	return irc_num(c, "352", "%s %s%s " HOST " %s %s %s :0 %s", chan, WIRE_IRC_TILDE(guest),
		       nick, srv_name(), nick, away ? "G" : "H", guest ? "guest" : nick);
}

static int
cmd_who(struct client *c, struct session_state *st, struct irc_msg *m)
{
	const char *mask = m->params[0];
	char spelled[ROOM_NAME_MAX + 1], away[REASON_TEXT_MAX + 1], canonical[NAME_MAX_LEN + 1];
	char echo[IRC_ECHO_MAX + 1];
	size_t cut = 0;
	int rc = 0;

	(void)st;
	if (mask[0] == '#') {
		const char *room = channel_room(mask);
		struct room_who *who = NULL;
		size_t n = 0;
		bool listed;

		if (room != NULL &&
		    room_who(c->srv->hub, c, room, &who, &n, &listed, spelled) == ROOM_DONE) {
			char chan[ROOM_NAME_MAX + 2];
			size_t budget = (size_t)settings_get()->send_queue_limit / 2;

			snprintf(chan, sizeof(chan), "#%s", spelled);
			/* As LIST: no more than half the send queue holds (a crowd would overflow it). */
			for (size_t i = 0; rc == 0 && i < n; i++) {
				if (irc_conn(c)->pending_len > budget) {
					cut = n - i;
					break;
				}
				rc = who_line(c, chan, who[i].name, who[i].away, who[i].guest);
			}
		}
		free(who);
	} else {
		bool guest;

		if (room_presence(c->srv->hub, mask, canonical, away, sizeof(away), &guest))
			rc = who_line(c, "*", canonical, away[0] != '\0', guest);
	}
	if (rc == 0 && cut > 0)
		return irc_num(
			c, "315",
			"%s :End of /WHO list (%zu more members would not fit in the send queue)",
			irc_echo(echo, mask), cut);
	return rc == 0 ? irc_num(c, "315", "%s :End of /WHO list.", irc_echo(echo, mask)) : -1;
}

static int
cmd_whois(struct client *c, struct session_state *st, struct irc_msg *m)
{
	/* WHOIS [server] nick */
	const char *nick = m->params[m->n_params > 1 ? 1 : 0];
	char away[REASON_TEXT_MAX + 1], canonical[NAME_MAX_LEN + 1], echo[IRC_ECHO_MAX + 1];
	bool guest;

	(void)st;
	if (!room_presence(c->srv->hub, nick, canonical, away, sizeof(away), &guest)) {
		const char *shown = irc_echo(echo, nick);

		return irc_num(c, "401", "%s :No such nick/channel", shown) < 0
			       ? -1
			       : irc_num(c, "318", "%s :End of /WHOIS list.", shown);
	}
	if (irc_num(c, "311", "%s %s%s " HOST " * :%s", canonical, WIRE_IRC_TILDE(guest), canonical,
		    guest ? "guest" : canonical) < 0 ||
	    irc_num(c, "312", "%s %s :chatd", canonical, srv_name()) < 0)
		return -1;
	if (guest ? irc_num(c, "320", "%s :is a guest (not logged in to an account)", canonical) < 0
		  : irc_num(c, "330", "%s %s :is logged in as", canonical, canonical) < 0)
		return -1;
	if (away[0] && irc_num(c, "301", "%s :%s", canonical, away) < 0)
		return -1;
	return irc_num(c, "318", "%s :End of /WHOIS list.", canonical);
}

static int
cmd_mode(struct client *c, struct session_state *st, struct irc_msg *m)
{
	const char *target = m->params[0];

	(void)st;
	if (target[0] == '#') {
		const char *room = channel_room(target);
		char spelled[ROOM_NAME_MAX + 1], echo[IRC_ECHO_MAX + 1];
		uint64_t first;

		if (room == NULL ||
		    room_resolve(c->srv->hub, c, room, spelled, &first) != ROOM_DONE)
			return irc_num(c, "403", "%s :No such channel", irc_echo(echo, target));
		if (m->n_params < 2)
			return irc_num(c, "324", "#%s +n", spelled);
		if (strcmp(m->params[1], "b") == 0 || strcmp(m->params[1], "+b") == 0)
			return irc_num(c, "368", "#%s :End of channel ban list", spelled);
		/* a letter chatd has no mode for is 472, each once; a known one (n, b) 482 */
		const char *modes = m->params[1];
		bool known = false;

		for (const char *p = modes; *p; p++) {
			if (*p == '+' || *p == '-')
				continue;
			if (*p == 'n' || *p == 'b') {
				known = true;
				continue;
			}
			if (memchr(modes, *p, (size_t)(p - modes)) != NULL)
				continue;
			if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
				continue; /* nothing a 472 could name */
			if (irc_num(c, "472", "%c :is unknown mode char to me", *p) < 0)
				return -1;
		}
		return known ? irc_num(c, "482", "#%s :Channel modes are fixed (+n) in chatd",
				       spelled)
			     : 0;
	}
	if (strcasecmp(target, c->name) != 0) {
		char away[8], canonical[NAME_MAX_LEN + 1], echo[IRC_ECHO_MAX + 1];
		bool guest;

		if (!room_presence(c->srv->hub, target, canonical, away, sizeof(away), &guest))
			return irc_num(c, "401", "%s :No such nick/channel",
				       irc_echo(echo, target));
		return irc_num(c, "502", ":Can't change mode for other users");
	}
	struct irc_conn *ic = irc_conn(c);

	if (m->n_params < 2)
		return irc_num(c, "221", ic->invisible ? "+i" : "+");
	/* "+i", "-i", "+i-w"...: i is the one user mode; the net change is echoed */
	bool was = ic->invisible, add = true, unknown = false;

	for (const char *p = m->params[1]; *p; p++) {
		if (*p == '+' || *p == '-')
			add = *p == '+';
		else if (*p == 'i')
			ic->invisible = add;
		else
			unknown = true;
	}
	if (ic->invisible != was &&
	    irc_send(c, ":%s!%s%s@" HOST " MODE %s :%s", c->name, WIRE_IRC_TILDE(c->room.guest),
		     c->name, c->name, ic->invisible ? "+i" : "-i") < 0)
		return -1;
	return unknown ? irc_num(c, "501", ":Unknown MODE flag") : 0;
}

/* ---- the connection ---- */

static int
cmd_ping(struct client *c, struct session_state *st, struct irc_msg *m)
{
	(void)st;
	return irc_pong(c, m->params[0]);
}

static int
cmd_pong(struct client *c, struct session_state *st, struct irc_msg *m)
{
	(void)c;
	(void)st;
	(void)m;
	return 0;
}

static int
cmd_quit(struct client *c, struct session_state *st, struct irc_msg *m)
{
	const char *text =
		m->n_params > 0 && m->params[0][0] ? m->params[0] : part_reason_text(PART_QUIT);

	(void)c;
	st->why = PART_QUIT;
	/* Cut between characters (the room cuts it further, so): a cut inside one is no text. */
	snprintf(st->text, sizeof(st->text), "%.*s",
		 (int)text_fit(text, strlen(text), sizeof(st->text) - 1), text);
	/* Others see the text: it must pass the same checks as a message. */
	if (text_check(st->text, strlen(st->text)) != TEXT_OK)
		snprintf(st->text, sizeof(st->text), "%s", part_reason_text(PART_QUIT));
	return 1;
}

static int
cmd_motd(struct client *c, struct session_state *st, struct irc_msg *m)
{
	(void)st;
	(void)m;
	return irc_motd(c);
}

static int
cmd_away(struct client *c, struct session_state *st, struct irc_msg *m)
{
	(void)st;
	if (m->n_params < 1 || m->params[0][0] == '\0') {
		if (room_set_away(c->srv->hub, c, NULL) < 0)
			return -1;
		return irc_num(c, "305", ":You are no longer marked as being away");
	}
	char text[REASON_TEXT_MAX + 1];
	size_t len = text_fit(m->params[0], strlen(m->params[0]), REASON_TEXT_MAX);

	snprintf(text, sizeof(text), "%.*s", (int)len, m->params[0]);
	if (text_check(text, len) != TEXT_OK)
		snprintf(text, sizeof(text), "away");
	if (room_set_away(c->srv->hub, c, text) < 0)
		return -1;
	return irc_num(c, "306", ":You have been marked as being away");
}

static int
cmd_cap(struct client *c, struct session_state *st, struct irc_msg *m)
{
	(void)st;
	return irc_cap_command(c, m);
}

static int
cmd_nick(struct client *c, struct session_state *st, struct irc_msg *m)
{
	char echo[IRC_ECHO_MAX + 1];
	const char *shown;

	(void)st;
	if (m->n_params == 0 || m->params[0][0] == '\0')
		return irc_num(c, "431", ":No nickname given");
	if (strcasecmp(m->params[0], c->name) == 0)
		return 0;
	shown = irc_echo(echo, m->params[0]);
	return irc_num(c, "432", "%s :Nicks are account names in chatd: log in as %s to use it",
		       shown, shown);
}

static int
cmd_registered(struct client *c, struct session_state *st, struct irc_msg *m)
{
	(void)st;
	(void)m;
	return irc_num(c, "462", ":You may not reregister");
}

/*
 * SASL after the welcome: a client logged in to an account has
 * authenticated (907); a guest never did, and cannot now (its session is
 * a guest's), so it is told how to log in (904).
 */
static int
cmd_authenticate(struct client *c, struct session_state *st, struct irc_msg *m)
{
	(void)st;
	(void)m;
	if (irc_conn(c)->logged_in)
		return irc_num(c, "907", ":You have already authenticated using SASL");
	return irc_num(c, "904",
		       ":SASL authentication failed: a guest cannot log in once connected; "
		       "reconnect with SASL or PASS%s",
		       settings_get()->registration ? ", or REGISTER your nick" : "");
}

static int
cmd_register(struct client *c, struct session_state *st, struct irc_msg *m)
{
	return irc_register(c, NULL, st, m);
}

static int
cmd_verify(struct client *c, struct session_state *st, struct irc_msg *m)
{
	(void)st;
	return irc_verify(c, m);
}

/* ISON: 303 with the nicks online; several 303s when they do not fit one line. */
static int
cmd_ison(struct client *c, struct session_state *st, struct irc_msg *m)
{
	char away[8], canonical[NAME_MAX_LEN + 1];
	struct irc_list online;
	bool guest;
	int rc = 0;

	(void)st;
	irc_list_start(&online, c, "303", "");
	for (size_t i = 0; rc == 0 && i < m->n_params; i++) {
		char *copy = strdup(m->params[i]), *save = NULL;

		if (copy == NULL)
			return -1;
		for (char *n = strtok_r(copy, " ", &save); n && rc == 0;
		     n = strtok_r(NULL, " ", &save))
			if (room_presence(c->srv->hub, n, canonical, away, sizeof(away), &guest))
				rc = irc_list_add(&online, canonical);
		free(copy);
	}
	return rc == 0 ? irc_list_end(&online, true) : -1;
}

static int
cmd_userhost(struct client *c, struct session_state *st, struct irc_msg *m)
{
	char list[512], away[REASON_TEXT_MAX + 1], canonical[NAME_MAX_LEN + 1];
	size_t off = 0;
	bool guest;

	(void)st;
	list[0] = '\0';
	for (size_t i = 0; i < m->n_params && i < 5; i++)
		if (room_presence(c->srv->hub, m->params[i], canonical, away, sizeof(away), &guest))
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s=%c%s%s@" HOST,
						off ? " " : "", canonical, away[0] ? '-' : '+',
						WIRE_IRC_TILDE(guest), canonical);
	return irc_num(c, "302", ":%s", list);
}

/* clang-format off */
const struct irc_command irc_commands[] = {
	{ "AUTHENTICATE", cmd_authenticate, 1, "SASL (before registration; after it, 907, or 904 for a guest)" },
	{ "AWAY", cmd_away, 0, "AWAY :text marks you away (306), AWAY alone back (305); PRIVMSG senders get 301" },
	{ "CAP", cmd_cap, 1, "LS [302], LIST, REQ, END: capability negotiation, also after registration" },
	{ "CHATHISTORY", irc_chathistory, 1, "LATEST, BEFORE, AFTER, AROUND, BETWEEN, TARGETS (draft/chathistory)" },
	{ "ISON", cmd_ison, 1, "which of the nicks are online (303; several when they do not fit one line)" },
	{ "JOIN", cmd_join, 1, "JOIN #a,#b joins (making a room if room_create allows); JOIN 0 leaves all" },
	{ "LIST", cmd_list, 0, "every room, or LIST #a,#b those rooms, with its members and topic (321, 322, 323)" },
	{ "MODE", cmd_mode, 1, "channel modes are +n (324: anyone in a room may set its topic); user mode +i/-i (MODE echoes the change, 221 shows it; hides no one); channel mode changes refused (482), unknown channel mode letters 472, other user modes 501; another user 502, a nick nobody has 401" },
	{ "MOTD", cmd_motd, 0, "the message of the day (375, 372, 376)" },
	{ "NAMES", cmd_names, 0, "NAMES #a,#b: who is in each room (353, 366)" },
	{ "NICK", cmd_nick, 0, "nicks are account names: another nick is refused (432), none given 431" },
	{ "NOTICE", cmd_notice, 0, "like PRIVMSG, never answered with an error" },
	{ "PART", cmd_part, 1, "PART #a,#b [:reason] leaves rooms" },
	{ "PASS", cmd_registered, 1, "the password (before registration; after it, 462)" },
	{ "PING", cmd_ping, 1, "PONG with the token whole (417 if that would not fit in 512 bytes, FAIL INVALID_UTF8 if it is not UTF-8)" },
	{ "PONG", cmd_pong, 0, "ignored" },
	{ "PRIVMSG", cmd_privmsg, 1, "to #room (stored, in the room's history) or to a nick (private, not stored)" },
	{ "QUIT", cmd_quit, 0, "QUIT [:text]: others see QUIT with the text" },
	{ "REGISTER", cmd_register, 3, "REGISTER * * :password registers your nick as an account and logs you in, before registration or as a guest (draft/account-registration; an e-mail address is not kept)" },
	{ "TAGMSG", cmd_tagmsg, 1, "client-only tags alone (typing, reactions) to #room or a nick, live, not stored; only clients with message-tags get it" },
	{ "TOPIC", cmd_topic, 1, "TOPIC #room shows (332, 333, 331), TOPIC #room :text sets, TOPIC #room : clears" },
	{ "USER", cmd_registered, 4, "(before registration; after it, 462)" },
	{ "USERHOST", cmd_userhost, 1, "up to 5 nicks (302)" },
	{ "VERIFY", cmd_verify, 2, "FAIL VERIFY INVALID_CODE: chatd has no verification step, REGISTER logs in at once" },
	{ "WHO", cmd_who, 1, "WHO #room or WHO nick (352, 315); H here, G away" },
	{ "WHOIS", cmd_whois, 1, "WHOIS nick (311, 312, 330 or 320, 301, 318)" },
};
/* clang-format on */
const size_t irc_n_commands = sizeof(irc_commands) / sizeof(irc_commands[0]);

const struct irc_command *
irc_command_find(const struct irc_msg *m)
{
	for (size_t i = 0; i < irc_n_commands; i++)
		if (irc_cmd_is(m, irc_commands[i].name))
			return &irc_commands[i];
	return NULL;
}

void
irc_take_label(struct client *c, const struct irc_msg *m)
{
	const char *label = irc_tag_get(m, "label");
	struct irc_conn *ic = irc_conn(c);

	ic->label[0] = '\0';
	/*
	 * Escaped, it must fit whole: a label cut short would answer some other
	 * command.  It goes back as it came, so it must be text (no bad UTF-8:
	 * 005 says UTF8ONLY), as a client-only tag's value must to be relayed.
	 */
	if (label != NULL && irc_has(ic, CAP_LABELED_RESPONSE) &&
	    (text_check(label, strlen(label)) != TEXT_OK ||
	     irc_tag_escape(ic->label, sizeof(ic->label), label) >= sizeof(ic->label)))
		ic->label[0] = '\0';
}

int
irc_woken(struct client *c, struct session_state *st)
{
	struct irc_conn *ic = irc_conn(c);
	int rc;

	ic->label[0] = '\0'; /* said unasked: no command's label */
	rc = irc_caps_notify(c);
	if (rc < 0 || (rc > 0 && irc_commit(c) < 0))
		return client_out_of_memory(st);
	return 0;
}

int
irc_request(struct client *c, struct session_state *st, char *line, size_t len)
{
	struct irc_conn *ic = irc_conn(c);
	struct irc_msg m;
	enum irc_parse_result pr = irc_parse(line, len, &m);
	int rc;

	ic->tokens -= 1.0;
	if (pr == IRC_PARSE_EMPTY)
		return 0;
	if (pr != IRC_PARSE_OK) { /* answered, not processed: its label is not to be trusted */
		rc = irc_unparsed(c, pr);
		return rc == 0 && irc_commit(c) == 0 ? 0 : client_out_of_memory(st);
	}
	/* A reload's CAP NEW or DEL first (if the wake-up missed it), without this command's label */
	if (irc_woken(c, st) < 0)
		return -1;
	irc_take_label(c, &m);
	const struct irc_command *cmd = irc_command_find(&m);
	/*
	 * Everything that happened before a command comes first (as natively);
	 * a message, like a native one, neither collects first nor counts as
	 * deep: its thread gives back no stack pages for it (client.c).
	 */
	bool message = irc_cmd_is(&m, "PRIVMSG") || irc_cmd_is(&m, "NOTICE");
	if (!message && client_collect(c, st) < 0)
		return -1;
	if (!message)
		st->went_deep = true;
	if (cmd == NULL) {
		char echo[IRC_ECHO_MAX + 1];

		rc = irc_num(c, "421", "%s :Unknown command", irc_echo(echo, m.command));
	} else if (m.n_params < cmd->min_params) {
		rc = irc_num(c, "461", "%s :Not enough parameters", cmd->name);
	} else {
		rc = cmd->run(c, st, &m);
	}
	if (rc < 0)
		return client_out_of_memory(st);
	if (irc_commit(c) < 0)
		return client_out_of_memory(st);
	return rc > 0 ? -1 : 0; /* QUIT */
}
