/*
 * room.h - who is online, and the fan-out of everything said in the room.
 *
 * The room owns the list of connections, the members (logged-in users,
 * kept sorted by name) and the fan-out ring: every room event (a stored
 * message, a join, a departure, a notice) is put into the ring once, as a
 * shared line, and each member's own thread copies out what it has not
 * delivered yet.  Members whose threads sleep idle are not woken: they
 * handed their write rights to the room (room_sleep), and the publisher
 * writes the new lines to their sockets itself, one non-blocking writev()
 * each; only a member whose socket does not take it all is woken to
 * finish.  A running thread writes all it has pending in one writev().  A
 * member that falls further behind than its send queue limit is told
 * "overflow" and leaves; nobody waits for it, but while more than half
 * its limit waits (room_backed_up) senders that pipeline are paced.  A
 * batch of stored messages goes into the ring in pieces every member can
 * take (room_backlog_limits), so a burst never puts everyone behind.
 *
 * Locking: one mutex, the room lock, guards everything here and the
 * "room" part of every struct client.  It is never held across a blocking
 * call or a password hash, and never held together with the history lock
 * (stored messages are published with that lock dropped).
 */
#ifndef CHATD_ROOM_H
#define CHATD_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "session.h"

struct hub;

struct hub *room_new(int64_t send_queue_limit);
void room_free(struct hub *r);

/* Every connection, logged in or not, is attached for its whole life. */
void room_attach(struct hub *r, struct client *c);
void room_detach(struct hub *r, struct client *c);
size_t room_connections(struct hub *r);

/*
 * Waits until no connection is left or deadline_mono_ms passes; true if
 * none is left.
 */
bool room_wait_empty(struct hub *r, int64_t deadline_mono_ms);

/*
 * Log c in: a member already online under the same name is evicted
 * ("replaced"), others see JOIN.  *last_msg_id receives the id of the
 * newest message published before c joined: history up to it is replay,
 * everything after it reaches c live.  users_line receives the USERS line
 * for c's welcome (a new reference).
 */
int room_join(struct hub *r, struct client *c, uint64_t *last_msg_id, struct line **users_line);

/* c leaves of its own accord or by accident; others see PART. */
void room_leave(struct hub *r, struct client *c, enum part_reason why, const char *text);

/*
 * Copy what c has not received yet into its outq, at most a batch.
 * Returns 1 if more is waiting, 0 when c is caught up, or -1 when c must
 * go: *why says why (evicted, overflow, shutdown) and text the BYE text.
 * c's own messages come back as acknowledgements and count off c->unacked.
 */
int room_collect(struct hub *r, struct client *c, int64_t send_queue_limit, enum part_reason *why,
		 char *text, size_t textlen);

/*
 * If nothing is waiting for c, mark it sleeping and return true; false if
 * there is work to collect.  A sleeping member is woken (client_wake) by
 * the next publish, except with write_through (the caller's output queue
 * is empty and it waits for nothing but input and wake-ups): then it hands
 * its write rights to the room, which writes what is published to its
 * socket directly and wakes it only when the socket does not take it all
 * or something else needs the thread (a private message, eviction,
 * shutdown).
 */
bool room_sleep(struct hub *r, struct client *c, bool write_through);

/*
 * After a sleep that room_sleep() entered, whatever ended it: takes c's
 * write rights back from the room.  Until it returns, the thread must not
 * touch c->out or c->unacked nor write to its socket.
 */
void room_wake_up(struct hub *r, struct client *c);

/* The newest stored message when chatd starts (the history read from disk). */
void room_set_last_msg_id(struct hub *r, uint64_t id);

/*
 * The history's publish callback (history.h): stored messages enter the
 * ring, a long batch in pieces of at most the backlog limits below.
 */
void room_publish_history(void *room, const struct history_entry *entries, size_t n);

/*
 * What the history's backlog (history_backlog) may hold, in messages and
 * bytes, so that the batch it becomes fits a member that keeps collecting:
 * a quarter of the fan-out ring and of send_queue_limit.  Any thread, no
 * lock.
 */
void room_backlog_limits(struct hub *r, size_t *msgs, size_t *bytes);

/*
 * Whether some member has more than half its send_queue_limit waiting for
 * its socket: a member that reads slower than a burst comes.  Pipelining
 * senders wait for it (client.c) rather than push it over its limit.
 * Any thread, no lock; a moment old.
 */
bool room_backed_up(struct hub *r);

/* A private message; -1 if to is not online. */
int room_send_private(struct hub *r, const char *to, struct line *l);

/* USERS line for page (1-based) of the member list. */
struct line *room_users_line(struct hub *r, unsigned page);

bool room_closing(struct hub *r);

/*
 * Can the room lock be taken within timeout_ms?  The watchdog's health
 * check, pause, resume and shutdown.
 */
bool room_lock_probe(struct hub *r, int timeout_ms);

struct room_member_info {
	char name[NAME_MAX_LEN + 1];
	char addr[ADDR_STR_MAX];
	int64_t joined_ms; /* wall clock */
};

/*
 * For the control thread, which must never block on the room lock: each
 * takes the lock within timeout_ms (0: only tries) or returns -1 with
 * errno ETIMEDOUT having done nothing.  room_counts_within: members online
 * and connections.  room_evict_within: takes the member called name out
 * of the room (it gets BYE, others PART): 1 evicted, 0 not online.
 * room_notice_within: a server notice to everyone, *members those online
 * it went to (-1 ENOMEM too).  room_members_snapshot_within: a copy of the
 * member list, in name order (*out to be freed; -1 ENOMEM too).
 */
int room_counts_within(struct hub *r, int timeout_ms, size_t *members, size_t *conns);
int room_evict_within(struct hub *r, int timeout_ms, const char *name, enum part_reason why,
		      const char *text);
int room_notice_within(struct hub *r, int timeout_ms, const char *text, size_t *members);
int room_members_snapshot_within(struct hub *r, int timeout_ms, struct room_member_info **out,
				 size_t *n);

/*
 * Rooms, for the admin socket (chatctl room ...).  Same rules as above:
 * each takes the lock within timeout_ms or returns -1 with errno ETIMEDOUT
 * having done nothing.  Room names are compared ignoring ASCII case and
 * may carry a leading '#'.  An operator's topic is shown as set by "*".
 *
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
	bool op_made; /* made by an operator (chatctl) or the default room */
	bool is_default;
	int64_t created_ms;
	char topic[MAX_TOPIC_BYTES + 1]; /* "" if none */
	int64_t topic_ms;                /* 0 if never set */
	char topic_by[NAME_MAX_LEN + 1]; /* "" if never set, "*" an operator */
};
int rooms_snapshot_within(struct hub *h, int timeout_ms, struct room_info **out, size_t *n);
int room_create_within(struct hub *h, int timeout_ms, const char *name, const char *topic);
int room_delete_within(struct hub *h, int timeout_ms, const char *name);
int room_topic_within(struct hub *h, int timeout_ms, const char *name, const char *topic);
int room_kick_within(struct hub *h, int timeout_ms, const char *room, const char *user,
		     const char *reason);
int room_notice_room_within(struct hub *h, int timeout_ms, const char *room, const char *text,
			    size_t *members);
int room_expire_within(struct hub *h, int timeout_ms);

/* Shutdown: every connection is told to leave (BYE shutdown). */
void room_shutdown(struct hub *r);

#endif
