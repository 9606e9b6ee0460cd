/*
 * wire.h - how room events look on a wire protocol: the format ops a
 * front-end gives the hub.
 *
 * The hub (hub.h) keeps room events structured and knows no protocol:
 * for every event it asks each protocol in use for its line, once per
 * event and protocol, never per member, and puts them in the ring slot
 * side by side; a member gets the line of its own protocol
 * (client->wire).  The native line protocol's formats are wire_line
 * (wire_line.c, the native front-end's); the IRC gateway's are wire_irc
 * and its other forms (wire_irc.c).
 *
 * The ops only format: no locks, no state (but the settings); any thread.
 * What they return is one or more whole protocol lines (each ending in LF,
 * CR LF on IRC: a long IRC text takes several) with one reference, or
 * NULL without memory (or, for a TAGMSG, for a form that shows none).
 */
#ifndef CHATD_WIRE_H
#define CHATD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "line.h"

/*
 * The line forms the hub formats for, and how many: the native protocol,
 * and IRC without tags, with the tags of server-time, of account-tag, of
 * both, and with every tag (message-tags: time, msgid, account, the
 * sender's client-only tags).  A member's form follows its protocol and,
 * on IRC, its capabilities (irc_caps.c).
 */
enum wire {
	WIRE_LINE = 0,
	WIRE_IRC,
	WIRE_IRC_TIME,
	WIRE_IRC_ACCOUNT,
	WIRE_IRC_TIME_ACCOUNT,
	WIRE_IRC_TAGS
};
#define WIRE_MAX 6

/* A room event other than a message, structured. */
enum wire_event_kind {
	WE_JOIN,   /* name joined room */
	WE_PART,   /* name left room: reason (a word) and text */
	WE_TOPIC,  /* room's topic set by name at ms to text; ms 0: never set */
	WE_NOTICE, /* the operator's text to room, or to everyone (room NULL) */
	WE_TAGMSG, /* name's client-only tags (text) to room: IRC's TAGMSG, only forms with tags */
};

struct wire_event {
	enum wire_event_kind kind;
	const char *room;
	int64_t ms; /* wall clock */
	const char *name;
	const char *reason;
	const char *text;
	bool offline; /* WE_PART: the session left every room (quit, lost, a server kick...) */
	/*
	 * name is a guest's: shown as one where the protocol has the means
	 * (wire_line.c: "~NAME" in JOIN, PART and TOPIC; on IRC no account
	 * tag on a guest's TAGMSG, JOIN, PART, QUIT or TOPIC, where an
	 * account's carry one (account-tag: on every command a user sends),
	 * and a guest's prefix "NAME!~NAME@chatd" in each of them and as a
	 * topic's setter in 333).
	 */
	bool guest;
};

/* A private message from one session to another. */
struct wire_private {
	const char *from, *to;
	int64_t ms; /* wall clock */
	const char *text;
	bool notice;      /* IRC's NOTICE: never answered automatically */
	bool tagmsg;      /* IRC's TAGMSG: client tags alone, no text (only forms with tags) */
	const char *tags; /* the sender's client-only tags ("+a=b;+c"), NULL none */
	bool guest;       /* the sender is a guest: no account tag; natively "~NAME" */
};

/* One room of a /rooms page. */
struct wire_room {
	const char *name;
	size_t members;
	const char *topic;
};

struct wire_format {
	const char *name;
	/*
	 * A stored message (history record e) as others see it: msg_len()
	 * bytes that msg_put() writes at dst; *id_off and *id_len say where
	 * its id is in them (the acknowledgement shares those bytes).
	 */
	size_t (*msg_len)(const struct history_entry *e);
	void (*msg_put)(const struct history_entry *e, char *dst, uint32_t *id_off,
			uint32_t *id_len);
	/*
	 * The sender's acknowledgement: ack_head, the id bytes, ack_tail.
	 * ack_head NULL (IRC): the sender gets the message's own line if its
	 * session echoes (client->echo, IRC's echo-message), else nothing.
	 */
	const char *ack_head, *ack_tail;
	/* The sender's answer to a message that could not be stored. */
	const char *not_stored;
	struct line *(*event)(const struct wire_event *ev);
	/*
	 * A room's topic (a WE_TOPIC event) as the answer to the session
	 * called me, joining the room or asking; NULL: the event's line.
	 */
	struct line *(*topic_reply)(const char *me, const struct wire_event *ev);
	struct line *(*priv)(const struct wire_private *pm);
	/*
	 * Page page of pages of the names (n of total) in room, for the
	 * session called me; page 0: not listed.  guests[i]: names[i] is a
	 * guest's.
	 */
	struct line *(*users)(const char *me, const char *room, size_t total, unsigned page,
			      size_t pages, const char *const *names, const bool *guests, size_t n);
	/* The lines of a /rooms page, in one line ("" for none), for me. */
	struct line *(*rooms)(const char *me, const struct wire_room *v, size_t n);
};

extern const struct wire_format wire_line;
extern const struct wire_format wire_irc, wire_irc_time, wire_irc_account, wire_irc_time_account,
	wire_irc_tags;
/*
 * TOPICLEN (005): how much of a topic IRC clients see and may set, in
 * bytes (wire_irc.c).  Any thread.
 */
size_t wire_irc_topic_max(void);
/* The user part of an IRC prefix starts with '~' for a guest: "NAME!~NAME@chatd". */
#define WIRE_IRC_TILDE(guest) ((guest) ? "~" : "")
/*
 * Whether a message of text (as stored) from from (a guest: its prefix
 * has a '~') to target ("#room" or a nick), with verb PRIVMSG or NOTICE,
 * goes to IRC clients in one line (wire_irc.c; a longer one takes
 * several).  Any thread.
 */
bool wire_irc_one_line(const char *from, bool guest, const char *verb, const char *target,
		       const char *text, size_t text_len);
/* Every protocol chatd speaks, by enum wire: what server.c gives hub_new(). */
extern const struct wire_format *const wire_formats[WIRE_MAX];

#endif
