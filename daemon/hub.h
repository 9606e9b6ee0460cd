/*
 * hub.h - the hub's insides, shared by the files that make it up (room.h
 * is what the rest of chatd sees; the front-end never includes this):
 *
 *   hub.c     the hub itself, connections, sessions online, the room lock;
 *   room.c    the rooms: making, finding, tombs, memberships, the session's
 *             room commands, the rooms file, the control thread's room calls;
 *   fanout.c  the rings, what a member gets from them, write-through,
 *             waking, publication of stored messages, delivery.
 *
 * Calls go from hub.c and room.c down to fanout.c; fanout.c calls back
 * only to look things up (a room or a session by name, a membership) and
 * to lift a tomb when a deletion record is published.
 *
 * Lines come from the protocols' wire_formats (wire.h): a slot holds one
 * per line form some connection uses (form_users, forms_in_use), a reply
 * (USERS, TOPIC, ROOM) is made in the asker's form; nothing in the hub
 * spells a protocol line.
 *
 * Locking: everything here is guarded by h->lock, the room lock, but for
 * the count of backed-up members (an atomic that senders read without
 * it), forms_in_use (read without it to format a batch), the deletions
 * recorded (drops_recorded, written under drop_lock) and the rooms file,
 * written under save_lock alone; see room.h for the rules.  Every function named *_locked is called with the room lock
 * held, by any thread that holds it.  Room events are stored in the
 * history after the lock is dropped.
 */
#ifndef CHATD_HUB_H
#define CHATD_HUB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config.h"
#include "room.h"
#include "wire.h"

/* The shortest event line ("MSG a 1 <time> a x\n" is 38 bytes). */
#define RING_MIN_EVENT_BYTES 32
/* The most a ring grows to is at least this; a new room's ring starts at RING_START_CAP. */
#define RING_MIN_CAP 1024
#define RING_START_CAP 16
/* Ring slots one room_collect() moves, so no member holds the lock long. */
#define COLLECT_BATCH 256
/* Names per USERS line (/who pages; fewer with a short max_line), rooms per /rooms page. */
#define USERS_PAGE 100
#define ROOMS_PAGE 100
/* Sleepers woken per pass with the lock dropped. */
#define WAKE_BATCH 64
/* Sleepers each thread wakes on its way through the hub (a wake-up tree). */
#define WAKE_CASCADE 2
/* Pieces one write-through writev() carries, at most (IOV_MAX is 1024). */
#define WT_PIECES 512
/* Pieces one write-through pass gathers for all its members, at most. */
#define FLUSH_PIECES 8192
/*
 * Members a pass claims, writes to and lets go together (flush_pass): the
 * publisher hands the co-writer half of each, so fewer, bigger passes cost
 * fewer hand-overs (bench/RESULTS.md, "Many rooms, after two lock-free
 * paths and bigger passes"); a woken member claimed by a pass waits for
 * all of it.
 */
#define FLUSH_CHUNK 512
/*
 * Members a publisher's pass needs before it hands half to the co-writer
 * (cowriter.h): a smaller half is not worth the hand-over (one room of
 * 100, passes of 100: 5 % more deliveries a second and 5 % less CPU per
 * delivery with 128 than with 8; many rooms, passes of up to FLUSH_CHUNK,
 * level: bench/RESULTS.md, "One room: the co-writer").
 */
#define COWRITE_MIN 128
/*
 * One publication puts at most 1/PUBLISH_SHARE of the largest ring and of
 * the send queue limit in the rings (a longer batch goes in pieces, each
 * written through before the next).  The history backlog, which becomes
 * the next batch, is held to the same share of the ring's slots and to
 * 1/BACKLOG_SHARE of the send queue limit in bytes (client.c): a batch
 * spread over many rooms reaches each member as a small part of it (a
 * quarter held 1,000 rooms' senders to about 2,300 messages in flight in
 * all: bench/RESULTS.md, "Many rooms, the backlog"), and one that all goes
 * to one member never puts it past its limit: it counts as backed up
 * (senders paced) once more than half its limit waits, so with up to half
 * waiting unseen, the batch that marks it and the one already queued then
 * (half a limit each) bring it to one and a half limits at most, short of
 * the twice its limit at which it overflows.
 */
#define PUBLISH_SHARE 4
#define BACKLOG_SHARE 2
/* Who set a topic through chatctl. */
#define OPERATOR_NAME "*"
/*
 * How long a deleted room's name waits, at most, for the history to
 * publish its deletion record (a tomb, see tomb_add); in practice one
 * disk sync.  Past this (the record could not be stored) it is forgotten.
 */
#define TOMB_MS 30000

enum slot_kind {
	SLOT_MSG,    /* a stored message: its line to others, an acknowledgement to its sender */
	SLOT_FAILED, /* a message that could not be stored: an error to its sender */
	SLOT_EVENT,  /* a line (join, part, topic, notice) for all but `sender` */
};

/*
 * A slot's bytes on one protocol: body->data[off, off + len), formatted
 * by that protocol's wire_format; for a message, the batch's line
 * (batch_make) and where its id is in it (the acknowledgement's bytes).
 */
struct wire_bytes {
	struct line *body;
	uint32_t off, len, id_off, id_len;
};

struct ring_slot {
	enum slot_kind kind;
	uint64_t sender;               /* session id; 0 for none */
	uint64_t seq;                  /* the hub's publication sequence */
	uint64_t at;                   /* the room's bytes before it (room.bytes) */
	struct wire_bytes w[WIRE_MAX]; /* one per line form in use (body NULL: not) */
	struct line *label;            /* "@label=X" for the sender's echo (IRC); NULL none */
};

/* What one slot puts on a member's wire: at most SLOT_PIECES runs of bytes. */
#define SLOT_PIECES 3
struct piece {
	const char *base;
	size_t len;
	struct line *owner; /* the line base points into; NULL for static bytes */
};

struct room {
	char name[ROOM_NAME_MAX + 1]; /* spelled as made */
	bool op_made;                 /* by an operator: never expires */
	bool is_default;              /* default_room: never expires nor goes */
	int64_t created_ms;
	int64_t empty_since_ms; /* wall clock; when its last member left */
	uint64_t first_id;      /* its records have ids above this (room_resolve) */
	uint64_t made_after;    /* drops_begun when it was made (store_event, room_target) */
	bool stale;             /* made again before its namesake's deletion was published */
	char topic[MAX_TOPIC_BYTES + 1];
	int64_t topic_ms; /* 0: never set */
	char topic_by[NAME_MAX_LEN + 1];
	bool topic_guest; /* topic_by was a guest (not the account of that name) */

	struct ring_slot *ring;
	uint64_t ring_cap; /* a power of two */
	uint64_t head;
	uint64_t bytes; /* of every slot pushed, each in its longest line form: ring_lag_bytes() */

	struct client **members; /* sorted by name */
	size_t n_members, cap_members;

	bool dirty;        /* on the hub's dirty list: its writers were not written yet */
	size_t flush_from; /* members before this were looked at by a pass (flush_collect_locked) */
	struct room *dirty_next;
	uint64_t piece_slots; /* scratch of room_publish_history */
	struct room *touched_next;
};

struct hub {
	const struct wire_format *formats[WIRE_MAX]; /* the protocols chatd speaks (NULL: not) */
	/*
	 * Connections attached per line form (room lock), and the forms that
	 * have any as a mask (written under the room lock, read without it
	 * to format a batch before taking it): only those are formatted.
	 */
	size_t form_users[WIRE_MAX];
	atomic_uint forms_in_use;
	pthread_mutex_t lock;
	pthread_cond_t empty; /* signalled when the last connection detaches */

	struct client *conns; /* every connection, doubly linked */
	size_t n_conns;
	struct client **online; /* logged in, sorted by name */
	size_t n_online, cap_online;
	struct room **rooms; /* sorted by name, ignoring case */
	size_t n_rooms, cap_rooms;
	struct room *lobby; /* default_room */

	uint64_t seq;         /* slots pushed, all rooms */
	uint64_t woken_seq;   /* seq when the sleepers were last all woken */
	uint64_t last_msg_id; /* newest stored record published */
	struct room *dirty;   /* rooms pushed to since their writers were written */

	struct client *sleepers; /* doubly linked through room.sleep_* */
	struct client *writers;  /* slept handing write rights to the hub (room.sleep_*) */
	struct client *targets;  /* to wake though nothing was published */
	/*
	 * Write-through (fanout.c: flush_locked): one thread at a time, the
	 * flusher, gathers under the lock and writes (without it, but for the
	 * publisher of stored messages: flush_pass, which hands half of each
	 * pass to the co-writer when there is one).  The buffers are the
	 * flusher's, in the hub to spare the stack; cowriter_iov is the
	 * co-writer's.
	 */
	bool flushing;
	pthread_cond_t flushed; /* the flusher stopped (flush_locked) */
	size_t flush_waiters;   /* threads waiting for that (room_publish_history) */
	struct piece flush_pieces[FLUSH_PIECES];
	struct flush_entry {
		struct client *c;
		size_t first, n; /* its pieces in flush_pieces */
		ssize_t written; /* what writev() took; -1: failed */
	} flush[FLUSH_PIECES];
	size_t flush_n, flush_pieces_n;
	struct iovec wt_iov[WT_PIECES];
	struct cowriter *cowriter; /* NULL: one core, the flusher writes alone */
	struct iovec cowriter_iov[WT_PIECES];
	/* For tests: called by the flusher with the lock dropped, before a pass's writes. */
	void (*flush_hook)(struct hub *h);
	/* For tests: called before a room event is stored, no lock held (store_event). */
	void (*event_hook)(struct hub *h);
	/* Members with room.backed_up set; written under the lock, read without it. */
	atomic_size_t backed_up;
	bool closing;

	struct history *history; /* where events are stored; set before clients */
	/* Deleted rooms whose deletion record the history has not published yet. */
	struct tomb {
		char name[ROOM_NAME_MAX + 1];
		int64_t until_ms; /* monotonic */
		uint64_t ticket;  /* its record is appended once drops_recorded reaches it */
	} * tombs;
	size_t n_tombs, cap_tombs;
	uint64_t drops_begun; /* deletions made (tickets given out, also without a tomb) */
	/*
	 * Deletions whose record is appended: the control thread writes it
	 * under drop_lock (a leaf, never held with another lock) and wakes
	 * the joins waiting on dropped (drop_waiters of them); read under the
	 * room lock too, without drop_lock.
	 */
	pthread_mutex_t drop_lock;
	pthread_cond_t dropped;
	atomic_uint_least64_t drops_recorded;
	size_t drop_waiters;
	/*
	 * The rooms file: rooms_dirty under the lock, the writing under
	 * save_lock, and rooms_unsaved (the last write failed: the next save
	 * writes even with nothing changed) under save_lock.
	 */
	pthread_mutex_t save_lock;
	char *rooms_path;
	bool rooms_dirty;
	bool rooms_unsaved;
};

/* ---- hub.c: the room lock, the sessions online ---- */

/* The room lock within timeout_ms (0: only tries), else false with errno ETIMEDOUT. */
bool lock_within(struct hub *h, int timeout_ms);
/* The room lock: waited for (timeout_ms < 0), or as lock_within(). */
bool hub_lock(struct hub *h, int timeout_ms);
struct client *online_find_locked(struct hub *h, const char *name);
/* The room lock and *count + 1 zeroed items of size bytes (see hub.c). */
void *snapshot_begin(struct hub *h, int timeout_ms, const size_t *count, size_t size);

/* ---- room.c: rooms, names, memberships ---- */

struct room *room_find_locked(struct hub *h, const char *name);
struct room *room_make_locked(struct hub *h, const char *name, bool op_made);
void room_free_one(struct room *r);
/* The deletion record of name was published (room_publish_history). */
void tomb_remove(struct hub *h, const char *name);
/*
 * A deletion in two steps, the room lock dropped in between:
 * room_delete_locked() takes r out and returns its ticket;
 * room_drop_record() appends its deletion record, and lets the name be
 * made again (a /join of it waits until then).  The control thread only.
 */
uint64_t room_delete_locked(struct hub *h, struct room *r);
void room_drop_record(struct hub *h, const char *name, uint64_t ticket);
/* Sorted arrays of clients by name: the sessions online, a room's members. */
size_t client_search(struct client *const *v, size_t n, const char *name, bool *found);
int client_insert(struct client ***v, size_t *n, size_t *cap, struct client *c);
void client_remove(struct client **v, size_t *n, struct client *c);
struct membership *membership_find(struct client *c, const struct room *r);

/* c's rooms or current room changed: its thread's room_target() answer is old. */
static inline void
moved_locked(struct client *c)
{
	atomic_fetch_add_explicit(&c->room.moves, 1, memory_order_release);
}

static inline void
current_set_locked(struct client *c, struct room *r)
{
	c->room.current = r;
	moved_locked(c);
}

int membership_add_locked(struct room *r, struct client *c);
void membership_remove_locked(struct hub *h, struct room *r, struct client *c);
void publish_join_locked(struct hub *h, struct room *r, struct client *c);
void part_all_locked(struct hub *h, struct client *c, enum part_reason why, const char *text);
/*
 * A session taken off the server by the operator leaves every room at
 * once, which the IRC members of each see as its QUIT: each room's history
 * records that (HK_QUIT, "REASON TEXT"), so that playback shows the same
 * QUIT.  departure_note_locked() copies what the records need while the
 * session is still in its rooms (the lock held); departure_store() stores
 * them once the lock is dropped, and frees the copy (a zeroed struct
 * departure stores nothing).
 */
struct departure {
	char name[NAME_MAX_LEN + 1];
	bool guest;
	char fields[32 + REASON_TEXT_MAX];
	struct departed {
		char name[ROOM_NAME_MAX + 1];
		uint64_t made_after; /* the room's */
	} * rooms;
	size_t n;
};
void departure_note_locked(struct departure *d, const struct client *c, enum part_reason why,
			   const char *text);
void departure_store(struct hub *h, struct departure *d);
void reason_copy(char *dst, const char *text, enum part_reason why);
int join_reply_locked(struct hub *h, struct room *r, struct client *c, struct room_join_reply *rep);
struct wire_event notice_event(const char *room, const char *text);

/* c counts for its line form (+1) or stops counting (-1): attach, detach, room_set_form. */
void form_count_locked(struct hub *h, const struct client *c, int delta);

/* ---- fanout.c: rings, waking, delivery ---- */

void slot_release(struct ring_slot *s);
void ring_push_event_locked(struct hub *h, struct room *r, const struct wire_event *ev,
			    uint64_t except);
void dirty_remove_locked(struct hub *h, struct room *r);
void target_add_locked(struct hub *h, struct client *c);
void wake_forget_locked(struct hub *h, struct client *c);
/* Waits until no write-through pass has c claimed (fanout.c: flush_pass); lock held. */
void claim_wait_locked(struct hub *h, struct client *c);
void backed_up_set_locked(struct hub *h, struct client *c, bool now);
void send_alone_locked(struct hub *h, struct client *c, const struct wire_event *ev);
void salvage_answers_locked(struct hub *h, struct client *c, struct room *r);
/* Drops the room lock and wakes everyone due (room_unlock_and_wake), or a cascade's share. */
void room_unlock_and_wake(struct hub *h);
void room_unlock_and_cascade(struct hub *h);
/* Starts and stops the co-writer of the publisher's passes (hub_new, hub_free). */
void flush_cowriter_start(struct hub *h);
void flush_cowriter_stop(struct hub *h);

#endif
