/*
 * wire_line.c - the native line protocol's formats of room events
 * (wire.h, docs/PROTOCOL.md "Server lines"): MSG, the OK of a message,
 * ERR 507, JOIN, PART, TOPIC, NOTICE, USERS and ROOM.  The native
 * front-end's; the hub calls them through wire_line.  No state; any
 * thread.
 */
#include <stdio.h>
#include <string.h>

#include "timefmt.h"
#include "wire.h"

/*
 * "MSG ROOM ID TIME NAME TEXT\n" from the record "ID TIME ROOM KIND NAME
 * TEXT\n"; a guest's NAME keeps the record's mark: "~NAME".
 */
static size_t
msg_len(const struct history_entry *e)
{
	return 4 + e->room_len + 1u + e->room_off + (e->body->len - history_marked_name_off(e));
}

static void
msg_put(const struct history_entry *e, char *dst, uint32_t *id_off, uint32_t *id_len)
{
	const struct line *b = e->body;
	size_t off = 4 + e->room_len + 1u;

	memcpy(dst, "MSG ", 4);
	memcpy(dst + 4, b->data + e->room_off, e->room_len + 1u);
	memcpy(dst + off, b->data, e->room_off);
	/* The id and its space: "OK " + "ID " + "sent\n". */
	*id_off = (uint32_t)off;
	*id_len = e->time_off;
	off += e->room_off;
	memcpy(dst + off, b->data + history_marked_name_off(e),
	       b->len - history_marked_name_off(e));
}

/* A guest's name is shown as "~NAME", the mark of the files too ('~' is in no name). */
static const char *
mark(bool guest)
{
	return guest ? "~" : "";
}

static struct line *
event(const struct wire_event *ev)
{
	char when[TIME_RFC3339_LEN + 1];

	if (ev->kind == WE_TOPIC && ev->ms == 0)
		return line_printf("TOPIC %s - -\n", ev->room);
	time_format_ms(when, ev->ms);
	switch (ev->kind) {
	case WE_JOIN:
		return line_printf("JOIN %s %s %s%s\n", ev->room, when, mark(ev->guest), ev->name);
	case WE_PART:
		return line_printf("PART %s %s %s%s %s %s\n", ev->room, when, mark(ev->guest),
				   ev->name, ev->reason, ev->text);
	case WE_TOPIC:
		return line_printf("TOPIC %s %s %s%s %s\n", ev->room, when, mark(ev->guest),
				   ev->name, ev->text);
	case WE_NOTICE:
		return line_printf("NOTICE %s %s %s\n", ev->room ? ev->room : "*", when, ev->text);
	case WE_TAGMSG: /* IRC's tags alone: nothing to show here */
		return NULL;
	}
	return NULL;
}

static struct line *
priv(const struct wire_private *pm)
{
	char when[TIME_RFC3339_LEN + 1];

	time_format_ms(when, pm->ms);
	if (pm->tagmsg) /* IRC's tags alone: nothing to show here */
		return NULL;
	return line_printf("PRIV %s %s%s %s %s\n", when, mark(pm->guest), pm->from, pm->to,
			   pm->text);
}

static struct line *
users(const char *me, const char *room, size_t total, unsigned page, size_t pages,
      const char *const *names, const bool *guests, size_t n)
{
	char head[96 + 32];

	(void)me;
	size_t len = 0;
	int hlen = snprintf(head, sizeof(head), "USERS %s %zu %u %zu ", room, total, page, pages);

	for (size_t i = 0; i < n; i++)
		len += guests[i] + strlen(names[i]) + 1;

	struct line *l = line_new((size_t)hlen + len + (len == 0));
	if (l == NULL)
		return NULL;
	char *p = l->data;
	memcpy(p, head, (size_t)hlen);
	p += hlen;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(names[i]);

		if (guests[i])
			*p++ = '~';
		memcpy(p, names[i], nl);
		p += nl;
		*p++ = i + 1 < n ? ' ' : '\n';
	}
	if (len == 0)
		*p++ = '\n';
	*p = '\0';
	return l;
}

static struct line *
rooms(const char *me, const struct wire_room *v, size_t n)
{
	size_t len = 0, off = 0;
	struct line *l;

	(void)me;
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(NULL, 0, "ROOM %s %zu %s\n", v[i].name, v[i].members,
					v[i].topic);
	if ((l = line_new(len)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(l->data + off, len - off + 1, "ROOM %s %zu %s\n", v[i].name,
					v[i].members, v[i].topic);
	return l;
}

const struct wire_format wire_line = {
	.name = "line",
	.msg_len = msg_len,
	.msg_put = msg_put,
	.ack_head = "OK ",
	.ack_tail = "sent\n",
	.not_stored = "ERR 507 message not stored (the server could not write it): nobody got it\n",
	.event = event,
	.priv = priv,
	.users = users,
	.rooms = rooms,
};

const struct wire_format *const wire_formats[WIRE_MAX] = {
	[WIRE_LINE] = &wire_line,
	[WIRE_IRC] = &wire_irc,
	[WIRE_IRC_TIME] = &wire_irc_time,
	[WIRE_IRC_ACCOUNT] = &wire_irc_account,
	[WIRE_IRC_TIME_ACCOUNT] = &wire_irc_time_account,
	[WIRE_IRC_TAGS] = &wire_irc_tags,
};
