/*
 * room.h - the hub: who is online, the named rooms, and the fan-out of
 * everything said in them.
 *
 * The hub owns the list of connections, the sessions online (sorted by
 * name), and the rooms (sorted by name, ignoring case).  A room has its
 * members (sorted by name), its topic and a fan-out ring of its own: every
 * event of the room (a stored message, a join, a departure, a topic, a
 * notice) is put into its ring once, structured, with one shared line per
 * wire protocol in use (formatted once by that protocol's wire_format,
 * wire.h, never per member), and each member copies out what it has not
 * delivered yet in its own protocol.  The hub itself knows no protocol.  A session is in
 * at most max_rooms_per_user rooms: one membership (room, cursor) each.
 * Every ring slot carries a number from one sequence for the whole hub,
 * so what a session gets from several rooms is merged in publication
 * order and its replies (OK of a message, answers of commands) keep the
 * order of its requests.
 *
 * Members whose threads sleep idle are not woken: they handed their write
 * rights to the hub (room_sleep), and the flusher (whoever drops the room
 * lock after a change, usually the publisher; fanout.c) writes the new lines
 * to their sockets itself, one non-blocking writev() each; only a member
 * whose socket does not take it all is woken to finish.  A member that
 * falls further behind than its send queue limit (or a ring reaches) is
 * told "overflow" and leaves; nobody waits for it, but while more than
 * half its limit waits (room_backed_up) senders that pipeline are paced.
 * A batch of stored messages goes into the rings in pieces every member
 * can take, and the history's backlog that becomes the next batch is
 * bounded (room_backlog_limits).  Rings start small and grow on demand,
 * up to what the current send_queue_limit needs, so a quiet room costs
 * little.
 *
 * Locking: one mutex, the room lock, guards everything here and the
 * "room" part of every struct client.  It is never held across a blocking
 * call or a password hash, and never held together with the history lock
 * (stored messages are published with that lock dropped; the events this
 * module stores, joins, parts, quits, topics and deletions, are appended after
 * dropping it).  The rooms file is written outside it, under a save lock of its
 * own that is taken before, never under, the room lock.
 */
#ifndef CHATD_ROOM_H
#define CHATD_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "names.h"
#include "session.h"

struct hub;

/*
 * A hub formatting room events for the protocols in formats[0..WIRE_MAX)
 * (NULL: not in use; wire.h), at least formats[WIRE_LINE].  The default
 * room exists from the start.
 */
struct wire_format;
struct hub *hub_new(const struct wire_format *const *formats);
void hub_free(struct hub *h);

/*
 * The history the hub stores room events in (joins, parts, quits, topics,
 * deletions); NULL (the default) stores none.  Set once, before clients.
 */
void hub_set_history(struct hub *h, struct history *history);

/*
 * Loads the rooms file (path: rooms_file) and remembers path for saving
 * (the default room is hub_new()'s, whether the file has it or not).  -1
 * with a message in err if the file is damaged, or without memory for all
 * its rooms (the rooms made stay; chatd does not start).  Before clients.
 */
int hub_load_rooms(struct hub *h, const char *path, char *err, size_t errlen);

/* Every connection, logged in or not, is attached for its whole life. */
void room_attach(struct hub *h, struct client *c);
void room_detach(struct hub *h, struct client *c);
size_t room_connections(struct hub *h);

/*
 * Waits until no connection is left or deadline_mono_ms passes; true if
 * none is left.
 */
bool room_wait_empty(struct hub *h, int64_t deadline_mono_ms);

/* The lines of a reply to joining a room (login or /join); the caller owns the references. */
struct room_join_reply {
	char room[ROOM_NAME_MAX + 1]; /* as spelled when it was made */
	uint64_t first_id;            /* replay history above this id (room_resolve) */
	uint64_t last_msg_id;         /* replay history up to this id: later ones come live */
	struct line *users;           /* USERS line: page 1, or page 0 above room_notice_limit */
	struct line *topic;           /* TOPIC line; NULL when the room has no topic */
	bool created;                 /* the join made the room */
};

/* Releases the references of a reply. */
void room_join_reply_release(struct room_join_reply *rep);

/*
 * Log c in: a session online under the same name is evicted ("replaced",
 * it parts all its rooms), c goes online and into the default room, which
 * becomes its current room; the default room's members see JOIN.  A guest
 * (c->room.guest) evicts nobody: -1 with errno EEXIST if the name is
 * online.  -1 with ESHUTDOWN while closing, ENOMEM without memory (then c
 * may be online already, only its reply missing: room_logout() still
 * takes it off).
 */
int room_login(struct hub *h, struct client *c, struct room_join_reply *rep);

/* c goes offline: every room it is in sees PART why text. */
void room_logout(struct hub *h, struct client *c, enum part_reason why, const char *text);

/* What a room operation of a session came to (commands.h: its ERR code and text). */
enum room_result {
	ROOM_DONE = 0,
	ROOM_ALREADY,       /* /join: already a member (it became current) */
	ROOM_BAD_NAME,      /* 423 */
	ROOM_NO_SUCH,       /* 404 no such room */
	ROOM_NOT_MEMBER,    /* 404 not in that room */
	ROOM_IN_NONE,       /* 404 in no room (no current room) */
	ROOM_CREATE_DENIED, /* 403 room_create does not let users create rooms */
	ROOM_MAX_ROOMS,     /* 405 max_rooms */
	ROOM_MAX_PER_USER,  /* 405 max_rooms_per_user */
	ROOM_TOPIC_LONG,    /* 400 longer than max_topic */
	ROOM_NO_MEMORY,     /* 500 */
	ROOM_CLOSING,       /* 503 the server is stopping */
	ROOM_GONE,          /* 404 a message's room was deleted as it was sent */
};
/*
 * The longest topic: max_topic, or max_line if that is less (a TOPIC line
 * stays within max_line + PROTO_SERVER_OVERHEAD bytes).
 */
size_t room_topic_limit(void);

/*
 * A session's room commands.  A room argument may carry a leading '#';
 * NULL means the current room.  spelled (ROOM_NAME_MAX + 1) receives the
 * room's name as it was made.  The events they cause are stored in the
 * history (after the lock is dropped).
 *
 * room_join: joins (creating it when missing, if allowed), or makes it
 *   current if c is already in it (ROOM_ALREADY, rep filled but its lines
 *   NULL).  A room of that name just deleted: waits (briefly, no lock
 *   held) until its deletion is in the history before making it again.
 * room_part: leaves (others see PART ROOM .. left reason); if it was the
 *   current room, the current room becomes the default room if c is in it,
 *   else the earliest joined room c is still in, else none.
 * room_switch: makes a room c is in current.
 * room_target: where a message goes: a room c is in.
 * room_resolve: any room that exists (for /history); *first: its history
 *   is the records with ids above it (0 for a room as old as chatd's
 *   start; for a room made since, the newest id published when it was made:
 *   older records of that name belong to a room deleted before).
 * room_topic_line: the TOPIC line of a room (any room; NULL room: current).
 * room_topic_set: sets the topic of a room c is in; the other members get
 *   TOPIC live, c gets the line in *topic (a reference) for its reply.
 * room_users_line: USERS line for page of a room (any room; NULL: current).
 * room_list: the ROOM lines (in c's protocol) of page (1-based, 100 a page,
 *   by name) in one line, *pages and *rooms the totals; NULL without memory.
 */
enum room_result room_join(struct hub *h, struct client *c, const char *room,
			   struct room_join_reply *rep);
enum room_result room_part(struct hub *h, struct client *c, const char *room, const char *reason,
			   char *spelled);
enum room_result room_switch(struct hub *h, struct client *c, const char *room, char *spelled);
enum room_result room_target(struct hub *h, struct client *c, const char *room, char *spelled,
			     uint64_t *made_after);
enum room_result room_resolve(struct hub *h, struct client *c, const char *room, char *spelled,
			      uint64_t *first);
enum room_result room_topic_line(struct hub *h, struct client *c, const char *room,
				 struct line **topic);
enum room_result room_topic_set(struct hub *h, struct client *c, const char *room, const char *text,
				char *spelled, struct line **topic);
enum room_result room_users_line(struct hub *h, struct client *c, const char *room, unsigned page,
				 struct line **users);
struct line *room_list(struct hub *h, struct client *c, unsigned page, size_t *pages,
		       size_t *rooms);

/*
 * IRC's TAGMSG: c's client-only tags to the other members of a room it is
 * in (those whose form takes tags); nothing is stored.
 */
enum room_result room_tagmsg(struct hub *h, struct client *c, const char *room, const char *tags,
			     char *spelled);

/* The names of the rooms c is in, in the order joined, at most max; returns how many. */
size_t room_memberships(struct hub *h, struct client *c, char (*names)[ROOM_NAME_MAX + 1],
			size_t max);

/*
 * Who is in a room (any room; NULL: current), by name: *out (to be freed)
 * gets *n members, *listed whether the room is small enough for its
 * members to be listed (room_notice_limit), spelled its name.
 */
struct room_who {
	char name[NAME_MAX_LEN + 1];
	bool guest, away;
};
enum room_result room_who(struct hub *h, struct client *c, const char *room, struct room_who **out,
			  size_t *n, bool *listed, char *spelled);

/*
 * Copy what c has not received yet into its outq, at most a batch, and
 * none once more than half send_queue_limit waits for its socket: the
 * rest stays in the rings (c counts as backed up, room_backed_up) until
 * the socket took some.  Returns 1 if more is waiting and c may take it
 * now, 0 when c is caught up or backed up, or -1 when c must go: *why
 * says why (evicted, overflow: past its limit, past twice it counting
 * what waits in the rings, or further behind than a ring reaches, out of
 * memory: PART_ERROR, shutdown) and text the BYE text.  c's own messages come back as acknowledgements and count off
 * c->unacked.
 */
int room_collect(struct hub *h, struct client *c, int64_t send_queue_limit, enum part_reason *why,
		 char *text, size_t textlen);

/*
 * The same, but past half the limit too (up to the limit itself, then c
 * overflows): before a command's reply, which must come after everything
 * published before it.  Returns 1 while more is waiting.
 */
int room_collect_all(struct hub *h, struct client *c, int64_t send_queue_limit,
		     enum part_reason *why, char *text, size_t textlen);

/*
 * If nothing is waiting for c (or all that is waits behind its output
 * queue, backed up: see room_collect), mark it sleeping and return true;
 * false if there is work to collect.  A sleeping member is woken (client_wake) by
 * the next publish, except with write_through (the caller's output queue
 * is empty and it waits for nothing but input and wake-ups): then it hands
 * its write rights to the hub, which writes what is published to its
 * socket directly and wakes it only when the socket does not take it all
 * or something else needs the thread (a private message, eviction,
 * shutdown).
 */
bool room_sleep(struct hub *h, struct client *c, bool write_through);

/*
 * After a sleep that room_sleep() entered, whatever ended it: takes c's
 * write rights back from the hub, without the room lock unless a
 * write-through pass has c claimed (then it waits for the pass).  Until it
 * returns, the thread must not touch c->out or c->unacked nor write to its
 * socket.
 */
void room_wake_up(struct hub *h, struct client *c);

/* The newest stored record when chatd starts (the history read from disk). */
void room_set_last_msg_id(struct hub *h, uint64_t id);

/*
 * The history's publish callback (history.h): stored messages enter their
 * rooms' rings, a long batch in pieces of at most a quarter of the
 * largest ring and of send_queue_limit; other records (events) are not
 * shown, the hub showed them live, but a room's deletion record lifts the
 * tomb its name waited under (hub.h: tomb_remove).
 */
void room_publish_history(void *hub, const struct history_entry *entries, size_t n);

/*
 * What the history's backlog (history_backlog) may hold, in messages and
 * bytes, so that the batch it becomes fits a member that keeps collecting:
 * a quarter of the most a fan-out ring grows to, and half of
 * send_queue_limit (both as the current settings say; hub.h,
 * BACKLOG_SHARE).  Any thread, no lock.
 */
void room_backlog_limits(struct hub *h, size_t *msgs, size_t *bytes);

/*
 * Whether some member has more than half its send_queue_limit waiting for
 * its socket: a member that reads slower than a burst comes.  Pipelining
 * senders wait for it (client.c) rather than push it over its limit.
 * Any thread, no lock; a moment old.
 */
bool room_backed_up(struct hub *h);

/*
 * A private message, formatted for the recipient's protocol: 0 sent (and
 * its AWAY text, if any, in away), -1 pm->to is not online, -2 no memory.
 * pm->to is found in any case; the line names the recipient as it spells
 * itself (its registered spelling).
 */
struct wire_private;
int room_send_private(struct hub *h, const struct wire_private *pm, char *away, size_t awaylen);
/*
 * room_send_private() without AWAY, and on 0 the recipient's name as
 * others see it in to: its spelling, "~NAME" for a guest.
 */
int room_send_private_to(struct hub *h, const struct wire_private *pm, char *to, size_t tolen);

/*
 * c's line form (enum wire) and whether its own messages come back whole
 * (IRC's echo-message): its thread, after its capabilities change.
 */
void room_set_form(struct hub *h, struct client *c, unsigned wire, bool echo);

/* c is away with text (NULL: back); -1 without memory. */
int room_set_away(struct hub *h, struct client *c, const char *text);

/*
 * c, online as a guest, has registered its name (IRC's REGISTER): from now
 * on it is that account's session, no guest.  Its thread.
 */
void room_set_account(struct hub *h, struct client *c);

/*
 * Whether name is online: its spelling in canonical (NAME_MAX_LEN + 1),
 * its AWAY text in away ("" if here), whether it is a guest.
 */
bool room_presence(struct hub *h, const char *name, char *canonical, char *away, size_t awaylen,
		   bool *guest);

bool room_closing(struct hub *h);

/*
 * Can the room lock be taken within timeout_ms?  The watchdog's health
 * check, pause, resume and shutdown.
 */
bool room_lock_probe(struct hub *h, int timeout_ms);

struct room_member_info {
	char name[NAME_MAX_LEN + 1];
	char addr[ADDR_STR_MAX];
	int64_t joined_ms;    /* wall clock */
	const char *protocol; /* its front-end's name: "line", "irc" */
	bool tls, guest;
};

/*
 * For the control thread, which must never block on the room lock: each
 * takes the lock within timeout_ms (0: only tries) or returns -1 with
 * errno ETIMEDOUT having done nothing.  room_counts_within: sessions
 * online and connections (and rooms, if not NULL).  room_evict_within:
 * takes the session called name offline (it gets BYE, its rooms PART, and
 * each room's history a quit record: hub.h, struct departure): 1 evicted,
 * 0 not online.  room_notice_within: a server notice to everyone
 * online (NOTICE * ...), *members those it went to; 0 (a member whose
 * line could not be made for want of memory ends with BYE error instead).
 * room_members_snapshot_within: a copy of the sessions online, in name
 * order (*out to be freed; -1 ENOMEM too).
 */
int room_counts_within(struct hub *h, int timeout_ms, size_t *members, size_t *conns);
/* The same, and in *irc the connections of the IRC gateway. */
int room_irc_counts_within(struct hub *h, int timeout_ms, size_t *members, size_t *conns,
			   size_t *irc);
int room_evict_within(struct hub *h, int timeout_ms, const char *name, enum part_reason why,
		      const char *text);
int room_notice_within(struct hub *h, int timeout_ms, const char *text, size_t *members);
/* Wakes every session online once (after a reload: client.c's frontend woken hook); -1 busy. */
int room_wake_all_within(struct hub *h, int timeout_ms);
int room_members_snapshot_within(struct hub *h, int timeout_ms, struct room_member_info **out,
				 size_t *n);

/*
 * Rooms, for the admin socket (chatctl room ...).  Same rules as above:
 * each takes the lock within timeout_ms or returns -1 with errno ETIMEDOUT
 * having done nothing.  Room names are compared ignoring ASCII case and
 * may carry a leading '#'.  An operator's topic is shown as set by "*".
 * Changes are saved to the rooms file before the call returns.
 *
 * rooms_count_within: how many rooms exist.
 * room_exists_within: 1 the room exists, 0 not (or not a room's name).
 * rooms_snapshot_within: every room, sorted by name (case-folded); *out to
 *   be freed (-1 ENOMEM too).
 * room_create_within: 1 created, 0 it exists already (topic unchanged),
 *   -1 with EINVAL (bad name), ENOSPC (max_rooms), EMSGSIZE (topic longer
 *   than max_topic), ENOMEM.  A room made here never expires.
 * room_delete_within: 1 deleted (members get PART ROOM .. deleted and are
 *   put in the default room if not there), 0 no such room, -1 EPERM for
 *   the default room.
 * room_topic_within: 1 set (members get TOPIC), 0 no such room, -1
 *   EMSGSIZE (longer than max_topic).
 * room_kick_within: 1 kicked (PART ROOM .. kicked REASON; if it was the
 *   user's current room, the current room moves as on /leave), 0 no such
 *   room or user not in it.
 * room_notice_room_within: NOTICE ROOM .. to the room's members: 1 sent
 *   (*members those it went to), 0 no such room.
 * room_expire_within: deletes the rooms made by users that have been empty
 *   for longer than room_expiry (the control thread's periodic tick);
 *   returns how many.
 */
struct room_info {
	char name[ROOM_NAME_MAX + 1];
	size_t members;
	bool op_made;    /* made by an operator (chatctl): never expires */
	bool is_default; /* the default room */
	int64_t created_ms;
	char topic[MAX_TOPIC_BYTES + 1]; /* "" if none */
	int64_t topic_ms;                /* 0 if never set */
	char topic_by[NAME_MAX_LEN + 1]; /* "" if never set, "*" an operator */
};
int rooms_count_within(struct hub *h, int timeout_ms, size_t *rooms);
int room_exists_within(struct hub *h, int timeout_ms, const char *name);
int rooms_snapshot_within(struct hub *h, int timeout_ms, struct room_info **out, size_t *n);
int room_create_within(struct hub *h, int timeout_ms, const char *name, const char *topic);
int room_delete_within(struct hub *h, int timeout_ms, const char *name);
int room_topic_within(struct hub *h, int timeout_ms, const char *name, const char *topic);
int room_kick_within(struct hub *h, int timeout_ms, const char *room, const char *user,
		     const char *reason);
int room_notice_room_within(struct hub *h, int timeout_ms, const char *room, const char *text,
			    size_t *members);
int room_expire_within(struct hub *h, int timeout_ms);

/*
 * Writes the rooms file if a change is not written yet (a save an admin
 * command or the expiry left because the room lock was busy): the control
 * thread's periodic tick and shutdown.  The room lock within timeout_ms,
 * else it stays for the next call.
 */
void room_save_within(struct hub *h, int timeout_ms);

/* Shutdown: every connection is told to leave (BYE shutdown). */
void room_shutdown(struct hub *h);

#endif
