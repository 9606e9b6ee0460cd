/*
 * irc_history.c - a room's history for IRC clients: the replay on joining
 * (the last history_replay messages; none with draft/chathistory) and CHATHISTORY (IRCv3
 * draft/chathistory: LATEST, BEFORE, AFTER, AROUND, BETWEEN, TARGETS),
 * both from the history's memory of the room (history_memory records;
 * 005 CHATHISTORY says how many).  Messages go out in the session's own
 * line form (wire_irc.c, the same bytes a live message has), with joins,
 * parts, kicks, quits and topics too when it has draft/event-playback (as
 * members saw them live: a quit record is a QUIT, a part "kicked" a
 * KICK), inside a chathistory batch when it has batch, which holds no
 * more than fits in half of send_queue_limit (fit_queue()).  msgid is
 * chatd's message id.
 * Runs in the connection's own thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "history.h"
#include "ident.h"
#include "irc.h"
#include "room.h"
#include "server.h"
#include "timefmt.h"
#include "wire.h"

/* The most a CHATHISTORY request returns, whatever it asks. */
#define CHATHISTORY_MAX 1000

/*
 * Entry e as c sees it in out (malloc'd), without its final CRLF: one line,
 * or for a long message several, CRLF between them; NULL when it has none.
 */
static char *
entry_line(struct client *c, const struct history_entry *e)
{
	const struct wire_format *f = wire_formats[c->wire];
	struct line *l = NULL;
	char *out = NULL;

	if (history_kind_message(e->kind)) {
		uint32_t id_off, id_len;

		if ((l = line_new(f->msg_len(e))) != NULL)
			f->msg_put(e, l->data, &id_off, &id_len);
	} else if (e->kind != HK_DELETE) {
		const char *d = e->body->data;
		char name[NAME_MAX_LEN + 1], text[MAX_TOPIC_BYTES + 1], reason[32];
		struct wire_event ev = { .room = e->room,
					 .name = name,
					 .text = text,
					 .guest = e->guest };

		snprintf(name, sizeof(name), "%.*s", (int)e->name_len, d + e->name_off);
		snprintf(text, sizeof(text), "%.*s", (int)e->text_len, d + e->text_off);
		time_parse_ms(d + e->time_off, TIME_RFC3339_LEN, &ev.ms);
		bool parted = e->kind == HK_PART || e->kind == HK_QUIT;

		ev.kind = e->kind == HK_JOIN ? WE_JOIN : parted ? WE_PART : WE_TOPIC;
		if (parted) { /* "REASON TEXT" */
			char *sp = strchr(text, ' ');

			snprintf(reason, sizeof(reason), "%.*s",
				 (int)(sp ? (size_t)(sp - text) : strlen(text)), text);
			ev.reason = reason;
			ev.text = sp ? sp + 1 : "";
			/*
			 * Off the server (QUIT, as the members saw it live):
			 * a quit record, or a part for a reason that is no
			 * leaving of the one room.  A part "kicked" is a
			 * kick out of the room (KICK), as live.
			 */
			ev.offline = e->kind == HK_QUIT || (strcmp(reason, "left") != 0 &&
							    strcmp(reason, "kicked") != 0 &&
							    strcmp(reason, "deleted") != 0);
		}
		if (e->kind == HK_TOPIC && ev.ms == 0)
			ev.ms = 1;
		l = f->event(&ev);
	}
	if (l != NULL) {
		size_t len = l->len;

		while (len > 0 && (l->data[len - 1] == '\n' || l->data[len - 1] == '\r'))
			len--;
		if ((out = malloc(len + 1)) != NULL) {
			memcpy(out, l->data, len);
			out[len] = '\0';
		}
		line_unref(l);
	}
	return out;
}

/* Which end of a run of entries a batch keeps when the whole would not fit (fit_queue()). */
enum keep {
	KEEP_NEWEST, /* LATEST, BEFORE, BETWEEN backwards, the replay on joining */
	KEEP_OLDEST, /* AFTER, BETWEEN forwards */
	KEEP_MIDDLE, /* AROUND */
};

/* The bytes entry e takes in c's output: its line(s), each with a batch tag and CRLF. */
static size_t
entry_cost(struct client *c, const struct history_entry *e)
{
	char *l = entry_line(c, e);
	size_t lines = 1, len;

	if (l == NULL)
		return 0;
	for (const char *p = l; (p = strstr(p, "\r\n")) != NULL; p += 2)
		lines++;
	len = strlen(l);
	free(l);
	return len + lines * (sizeof("@batch=b4294967295 \r\n") - 1);
}

/*
 * Narrows e[*from, *to) to what fits in half of send_queue_limit, keeping
 * the entries at the end keep names (at least one): the native replay's
 * budget (client_push_history()).  A batch bigger than the send queue
 * ended the session for overflow before the client could read a line of
 * it, though 005 CHATHISTORY promised that many; the specification lets a
 * batch hold fewer than asked, and the client pages on from the last
 * message it got (docs/IRC.md "CHATHISTORY").
 */
static void
fit_queue(struct client *c, const struct history_entry *e, size_t *from, size_t *to, enum keep keep)
{
	uint64_t budget = (uint64_t)settings_get()->send_queue_limit / 2, bytes = 0;
	size_t lo, hi; /* the entries kept: [lo, hi) */
	bool up = keep != KEEP_NEWEST;

	if (*from >= *to)
		return;
	lo = hi = keep == KEEP_NEWEST ? *to : keep == KEEP_OLDEST ? *from : (*from + *to) / 2;
	for (;;) {
		/* The next entry: the end keep grows from (AROUND: after, then before, in turns). */
		bool after = keep == KEEP_MIDDLE ? (up && hi < *to) || lo == *from : up;
		size_t i = after ? hi : lo - 1;
		size_t cost;

		if (after ? hi == *to : lo == *from)
			break;
		cost = entry_cost(c, &e[i]);
		if (hi > lo && bytes + cost > budget)
			break;
		bytes += cost;
		if (after)
			hi++;
		else
			lo--;
		if (keep == KEEP_MIDDLE)
			up = !up;
	}
	*from = lo;
	*to = hi;
}

/* Sends entries e[0..n) as a batch of type chathistory (when c has batch) for target. */
static int
send_entries(struct client *c, const char *target, const struct history_entry *e, size_t n)
{
	struct irc_conn *ic = irc_conn(c);
	bool batch = irc_has(ic, CAP_BATCH);
	char ref[16] = "";
	int rc = 0;

	if (batch) {
		irc_batch_ref(c, ref);
		rc = irc_send(c, ":%s BATCH +%s chathistory %s", settings_get()->server_name, ref,
			      target);
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char *l = entry_line(c, &e[i]);

		if (l == NULL)
			continue;
		/* A long message is several lines (wire_irc.c): each gets the batch tag. */
		for (char *p = l, *next; rc == 0 && p != NULL; p = next) {
			char *crlf = strstr(p, "\r\n");

			next = crlf != NULL ? crlf + 2 : NULL;
			if (crlf != NULL)
				*crlf = '\0';
			if (!batch)
				rc = irc_send(c, "%s", p);
			else if (p[0] == '@')
				rc = irc_send(c, "@batch=%s;%s", ref, p + 1);
			else
				rc = irc_send(c, "@batch=%s %s", ref, p);
		}
		free(l);
	}
	if (rc == 0 && batch)
		rc = irc_send(c, ":%s BATCH -%s", settings_get()->server_name, ref);
	return rc;
}

/*
 * The replay on joining: none for a client with draft/chathistory, which
 * asks for what it wants (the specification: a server SHOULD NOT play
 * back history it would otherwise send on its own).
 */
int
irc_replay(struct client *c, const char *room, uint64_t first, uint64_t last_id)
{
	bool asks = irc_has(irc_conn(c), CAP_CHATHISTORY);
	size_t max = asks ? 0 : (size_t)settings_get()->history_replay, n = 0;
	struct history_entry *e = max ? calloc(max, sizeof(*e)) : NULL;
	char target[ROOM_NAME_MAX + 2];
	int rc;

	if (max == 0)
		return 0;
	if (e == NULL)
		return -1;
	n = client_history_newer(e,
				 history_recent(c->srv->history, room, max, last_id,
						irc_has(irc_conn(c), CAP_EVENT_PLAYBACK), e),
				 first);
	snprintf(target, sizeof(target), "#%s", room);
	size_t from = 0, to = n;

	fit_queue(c, e, &from, &to, KEEP_NEWEST);
	rc = n > 0 ? send_entries(c, target, e + from, to - from) : 0;
	history_entries_release(e, n);
	free(e);
	return rc;
}

/* ---- CHATHISTORY ---- */

int
irc_chathistory_max(void)
{
	int memory = settings_get()->history_memory;

	return memory < CHATHISTORY_MAX ? memory : CHATHISTORY_MAX;
}

/* A message reference: msgid=ID or timestamp=TIME ("*" only for LATEST). */
struct ref {
	bool any;     /* "*" */
	bool by_time; /* timestamp=, else msgid= */
	uint64_t id;
	char time[TIME_RFC3339_LEN + 1];
};

/*
 * A number of decimal digits only (strtoull() would take a sign, "-1" as
 * the largest id, and spaces): *out, or false.  *too_big: it has more
 * than 64 bits (*out is UINT64_MAX then).
 */
static bool
parse_digits(const char *s, uint64_t *out, bool *too_big)
{
	*out = 0;
	*too_big = false;
	if (*s == '\0' || s[strspn(s, "0123456789")] != '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*out > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) {
			*out = UINT64_MAX;
			*too_big = true;
			return true;
		}
		*out = *out * 10 + (uint64_t)(*s - '0');
	}
	return true;
}

static bool
parse_ref(const char *s, struct ref *r)
{
	*r = (struct ref){ 0 };
	if (strcmp(s, "*") == 0)
		return r->any = true;
	if (strncmp(s, "msgid=", 6) == 0) {
		bool too_big;

		return parse_digits(s + 6, &r->id, &too_big) && !too_big;
	}
	if (strncmp(s, "timestamp=", 10) == 0) {
		int64_t ms;
		size_t len = strlen(s + 10);

		r->by_time = true;
		/* Seconds without milliseconds are accepted: "...:SSZ". */
		if (len == TIME_RFC3339_LEN - 4 && s[10 + len - 1] == 'Z') {
			snprintf(r->time, sizeof(r->time), "%.*s.000Z", (int)len - 1, s + 10);
			return time_parse_ms(r->time, TIME_RFC3339_LEN, &ms);
		}
		snprintf(r->time, sizeof(r->time), "%s", s + 10);
		return len == TIME_RFC3339_LEN && time_parse_ms(s + 10, len, &ms);
	}
	return false;
}

/* <0, 0, >0: entry e before, at, after reference r. */
static int
cmp_ref(const struct history_entry *e, const struct ref *r)
{
	if (r->by_time)
		return strncmp(e->body->data + e->time_off, r->time, TIME_RFC3339_LEN);
	return e->id < r->id ? -1 : e->id > r->id;
}

/* Index of the first entry at or after r (n if none). */
static size_t
first_at(const struct history_entry *e, size_t n, const struct ref *r)
{
	size_t i = 0;

	while (i < n && cmp_ref(&e[i], r) < 0)
		i++;
	return i;
}

/* Index of the first entry after r. */
static size_t
first_after(const struct history_entry *e, size_t n, const struct ref *r)
{
	size_t i = first_at(e, n, r);

	while (i < n && cmp_ref(&e[i], r) == 0)
		i++;
	return i;
}

/* FAIL CHATHISTORY CODE SUBCOMMAND :text (sub as sent: an unknown one is echoed shortened). */
static int
fail(struct client *c, const char *code, const char *sub, const char *text)
{
	char echo[IRC_ECHO_MAX + 1];

	return irc_send(c, ":%s FAIL CHATHISTORY %s %s :%s", settings_get()->server_name, code,
			irc_echo(echo, sub), text);
}

/* Which of e[0..n) a request selects: [*from, *to); *keep: the end nearest its reference. */
static bool
select_range(const char *sub, const struct irc_msg *m, const struct history_entry *e, size_t n,
	     size_t limit, size_t *from, size_t *to, enum keep *keep)
{
	struct ref a, b;

	if (!parse_ref(m->params[2], &a))
		return false;
	*keep = KEEP_NEWEST;
	if (strcasecmp(sub, "LATEST") == 0) {
		*to = n;
		*from = a.any ? 0 : first_after(e, n, &a);
		if (*to - *from > limit)
			*from = *to - limit;
		return true;
	}
	if (a.any)
		return false;
	if (strcasecmp(sub, "BEFORE") == 0) {
		*to = first_at(e, n, &a);
		*from = *to > limit ? *to - limit : 0;
	} else if (strcasecmp(sub, "AFTER") == 0) {
		*from = first_after(e, n, &a);
		*to = n - *from > limit ? *from + limit : n;
		*keep = KEEP_OLDEST;
	} else if (strcasecmp(sub, "AROUND") == 0) {
		size_t mid = first_at(e, n, &a), half = limit / 2;

		*from = mid > half ? mid - half : 0;
		*to = n - *from > limit ? *from + limit : n;
		*keep = KEEP_MIDDLE;
	} else { /* BETWEEN a b limit: params 2, 3; limit in 4 */
		if (m->n_params < 5 || !parse_ref(m->params[3], &b) || b.any)
			return false;
		/* The references may be of two kinds: ordered by where they fall. */
		bool forward = first_at(e, n, &a) < first_at(e, n, &b) ||
			       (first_at(e, n, &a) == first_at(e, n, &b) &&
				(a.by_time == b.by_time
					 ? (a.by_time ? strcmp(a.time, b.time) <= 0 : a.id <= b.id)
					 : true));
		const struct ref *lo = forward ? &a : &b, *hi = forward ? &b : &a;

		*keep = forward ? KEEP_OLDEST : KEEP_NEWEST;

		*from = first_after(e, n, lo);
		*to = first_at(e, n, hi);
		if (*to < *from)
			*to = *from;
		if (*to - *from > limit) {
			if (forward)
				*to = *from + limit;
			else
				*from = *to - limit;
		}
	}
	return true;
}

/* A room and the time of its latest message, for TARGETS. */
struct target {
	char room[ROOM_NAME_MAX + 1];
	char time[TIME_RFC3339_LEN + 1];
};

static int
target_oldest_first(const void *a, const void *b)
{
	return strcmp(((const struct target *)a)->time, ((const struct target *)b)->time);
}

/*
 * TARGETS FROM TO LIMIT: the rooms c is in whose latest message falls
 * between the two timestamps, each with that message's time (bare, as the
 * specification writes the reply), oldest first.  The timestamps work as
 * BETWEEN's: the limit counts from FROM, forwards or backwards in time.
 * Private messages are not stored, so no nick is listed.
 */
static int
targets(struct client *c, const struct irc_msg *m)
{
	char(*names)[ROOM_NAME_MAX + 1] = calloc(ROOMS_PER_USER_MAX, sizeof(*names));
	char ref[16] = "";
	struct target *t = calloc(ROOMS_PER_USER_MAX, sizeof(*t));
	struct ref a, b;
	size_t n, found = 0;
	bool batch = irc_has(irc_conn(c), CAP_BATCH);
	int rc = 0;

	if (t == NULL || names == NULL) {
		free(t);
		free(names);
		return -1;
	}
	if (!parse_ref(m->params[1], &a) || !parse_ref(m->params[2], &b) || !a.by_time ||
	    !b.by_time) {
		free(t);
		free(names);
		return fail(c, "INVALID_PARAMS", "TARGETS",
			    "TARGETS timestamp=FROM timestamp=TO LIMIT");
	}
	uint64_t limit;
	bool too_big;
	if (!parse_digits(m->params[3], &limit, &too_big)) {
		free(t);
		free(names);
		return fail(c, "INVALID_PARAMS", "TARGETS", "LIMIT is a number");
	}
	const char *lo = strcmp(a.time, b.time) <= 0 ? a.time : b.time;
	const char *hi = lo == a.time ? b.time : a.time;

	n = room_memberships(c->srv->hub, c, names, ROOMS_PER_USER_MAX);
	for (size_t i = 0; i < n; i++) {
		struct history_entry e;

		if (history_recent(c->srv->history, names[i], 1, UINT64_MAX, false, &e) != 1)
			continue;
		const char *when = e.body->data + e.time_off;
		if (strncmp(when, lo, TIME_RFC3339_LEN) > 0 &&
		    strncmp(when, hi, TIME_RFC3339_LEN) < 0) {
			memcpy(t[found].room, names[i], sizeof(t[found].room));
			snprintf(t[found].time, sizeof(t[found].time), "%.*s", TIME_RFC3339_LEN,
				 when);
			found++;
		}
		history_entries_release(&e, 1);
	}
	qsort(t, found, sizeof(*t), target_oldest_first);
	size_t skip = 0;
	if (limit > 0 && found > limit) {
		if (lo != a.time) /* backwards from FROM: the newest */
			skip = found - limit;
		found = limit;
	}
	if (batch) {
		irc_batch_ref(c, ref);
		rc = irc_send(c, ":%s BATCH +%s draft/chathistory-targets",
			      settings_get()->server_name, ref);
	}
	for (size_t i = skip; rc == 0 && i < skip + found; i++)
		rc = batch ? irc_send(c, "@batch=%s :%s CHATHISTORY TARGETS #%s %s", ref,
				      settings_get()->server_name, t[i].room, t[i].time)
			   : irc_send(c, ":%s CHATHISTORY TARGETS #%s %s",
				      settings_get()->server_name, t[i].room, t[i].time);
	if (rc == 0 && batch)
		rc = irc_send(c, ":%s BATCH -%s", settings_get()->server_name, ref);
	free(t);
	free(names);
	return rc;
}

int
irc_chathistory(struct client *c, struct session_state *st, struct irc_msg *m)
{
	const char *sub = m->params[0];
	bool between = strcasecmp(sub, "BETWEEN") == 0;
	size_t need = between ? 5 : 4;

	(void)st;
	if (strcasecmp(sub, "TARGETS") == 0)
		return m->n_params < 4 ? fail(c, "INVALID_PARAMS", sub, "TARGETS FROM TO LIMIT")
				       : targets(c, m);
	if (strcasecmp(sub, "LATEST") != 0 && strcasecmp(sub, "BEFORE") != 0 &&
	    strcasecmp(sub, "AFTER") != 0 && strcasecmp(sub, "AROUND") != 0 && !between)
		return fail(c, "INVALID_PARAMS", sub, "Unknown subcommand");
	if (m->n_params < need)
		return fail(c, "INVALID_PARAMS", sub, "Not enough parameters");

	const char *target = m->params[1];
	uint64_t limit;
	bool too_big;
	/* Digits only; 0, or more than any request returns (past 64 bits too): the most. */
	if (!parse_digits(m->params[need - 1], &limit, &too_big))
		return fail(c, "INVALID_PARAMS", sub, "LIMIT is a number");
	if (limit == 0 || limit > (uint64_t)irc_chathistory_max())
		limit = (uint64_t)irc_chathistory_max();

	/*
	 * A nick: private messages are not stored, the batch is empty.  The
	 * BATCH line names the target: one that is no nick (up to ~490 bytes
	 * the client sent) is refused, so that line always fits whole.
	 */
	if (target[0] != '#') {
		char canonical[NAME_MAX_LEN + 1], away[8];
		bool guest;

		if (!name_valid(target, strlen(target)))
			return fail(c, "INVALID_TARGET", sub, "No such nick or channel");
		/* The batch names the target as spelled (online, or an account), else as asked. */
		if (!room_presence(c->srv->hub, target, canonical, away, sizeof(away), &guest) &&
		    !ident_lookup(c->srv->ident, target, canonical))
			snprintf(canonical, sizeof(canonical), "%s", target);
		return send_entries(c, canonical, NULL, 0);
	}
	char spelled[ROOM_NAME_MAX + 1];
	uint64_t first;
	if (!room_name_valid(target + 1, strlen(target + 1)) ||
	    room_resolve(c->srv->hub, c, target + 1, spelled, &first) != ROOM_DONE)
		return fail(c, "INVALID_TARGET", sub, "No such channel");

	size_t max = (size_t)settings_get()->history_memory;
	struct history_entry *e = calloc(max, sizeof(*e));
	if (e == NULL)
		return -1;
	size_t n = client_history_newer(e,
					history_recent(c->srv->history, spelled, max, UINT64_MAX,
						       irc_has(irc_conn(c), CAP_EVENT_PLAYBACK), e),
					first);
	size_t from, to;
	enum keep keep;
	int rc;
	char chan[ROOM_NAME_MAX + 2];

	snprintf(chan, sizeof(chan), "#%s", spelled);
	if (!select_range(sub, m, e, n, (size_t)limit, &from, &to, &keep)) {
		rc = fail(c, "INVALID_PARAMS", sub, "a reference is msgid=ID or timestamp=TIME");
	} else {
		fit_queue(c, e, &from, &to, keep);
		rc = send_entries(c, chan, e + from, to - from);
	}
	history_entries_release(e, n);
	free(e);
	return rc;
}
