/*
 * room.c - the hub: sessions online, the named rooms and their fan-out
 * rings (see room.h).
 *
 * Each room's ring holds its last ring_cap events.  Slot i (a position
 * that only grows) lives at ring[i & (ring_cap - 1)].  Each membership's
 * cursor is the next position it has to deliver; head is the next to
 * fill.  A ring starts at RING_START_CAP slots and doubles, before a push
 * would overwrite a slot some member still needs, up to the most the
 * current send_queue_limit needs (ring_max_cap: the limit over the
 * shortest event line), so a member that keeps collecting is never
 * overrun and a quiet room stays small.  A membership whose cursor falls
 * more than ring_cap behind head, or a session whose collected but
 * unwritten bytes pass its send queue limit, has overflowed.  Every slot
 * gets the next number of the hub's sequence (seq): a session in several
 * rooms takes their slots in that order (next_pending), so its
 * acknowledgements and the lines around them keep the order they were
 * published in.
 *
 * Lines come from the protocols' wire_formats (wire.h): a slot holds one
 * per protocol in use, a reply (USERS, TOPIC, ROOM) is made in the
 * asker's protocol; nothing here spells a protocol line.
 *
 * Everything below is guarded by h->lock, but for the count of backed-up
 * members (an atomic that senders read without it) and the rooms file,
 * written under save_lock alone; see room.h for the locking rules.
 * Room events are stored in the history after the lock is dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fault.h"
#include "log.h"
#include "room.h"
#include "roomfile.h"
#include "timefmt.h"
#include "utf8.h"
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
/*
 * One publication puts at most 1/PUBLISH_SHARE of the largest ring and of
 * the send queue limit in the rings (a longer batch goes in pieces), and
 * the history backlog, which becomes the next batch, is held to the same
 * (client.c): a member that keeps collecting then never finds a batch it
 * cannot take.
 */
#define PUBLISH_SHARE 4
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
	struct wire_bytes w[WIRE_MAX]; /* one per protocol in use */
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
	bool stale;             /* made again before its namesake's deletion was published */
	char topic[MAX_TOPIC_BYTES + 1];
	int64_t topic_ms; /* 0: never set */
	char topic_by[NAME_MAX_LEN + 1];

	struct ring_slot *ring;
	uint64_t ring_cap; /* a power of two */
	uint64_t head;

	struct client **members; /* sorted by name */
	size_t n_members, cap_members;

	bool dirty; /* on the hub's dirty list: its writers were not written yet */
	struct room *dirty_next;
	uint64_t piece_slots; /* scratch of room_publish_history */
	struct room *touched_next;
};

struct hub {
	const struct wire_format *formats[WIRE_MAX]; /* the protocols in use (NULL: not) */
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
	struct client *writers;  /* asleep, write rights with the hub (room.sleep_*) */
	struct client *targets;  /* to wake though nothing was published */
	/* One member's write-through writev(), in the hub to spare the stack. */
	struct piece wt_pieces[WT_PIECES];
	struct iovec wt_iov[WT_PIECES];
	/* Members with room.backed_up set; written under the lock, read without it. */
	atomic_size_t backed_up;
	bool closing;

	struct history *history; /* where events are stored; set before clients */
	/* Deleted rooms whose deletion record the history has not published yet. */
	struct tomb {
		char name[ROOM_NAME_MAX + 1];
		int64_t until_ms; /* monotonic */
	} * tombs;
	size_t n_tombs, cap_tombs;
	/* The rooms file: rooms_dirty under the lock, the writing under save_lock. */
	pthread_mutex_t save_lock;
	char *rooms_path;
	bool rooms_dirty;
};

static void room_unlock_and_wake(struct hub *h);

/* ---- rooms: making, finding, freeing ---- */

/* A room argument: a leading '#' dropped, the rest a valid room name, into out. */
static bool
room_arg(const char *arg, char *out)
{
	if (arg[0] == '#')
		arg++;
	size_t len = strlen(arg);
	if (!room_name_valid(arg, len))
		return false;
	memcpy(out, arg, len + 1);
	return true;
}

/*
 * Binary search by name of n items sorted by name_cmp(), name_at(v, i) the
 * name of the i-th: its index, or where it would go (*found false).
 */
static size_t
name_search(const void *v, size_t n, const char *(*name_at)(const void *, size_t), const char *name,
	    bool *found)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = name_cmp(name_at(v, mid), name);

		if (cmp == 0) {
			*found = true;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static const char *
room_name_at(const void *v, size_t i)
{
	return ((struct room *const *)v)[i]->name;
}

/* Index of name in rooms, or where it would go (*found false). */
static size_t
room_search_locked(struct hub *h, const char *name, bool *found)
{
	return name_search(h->rooms, h->n_rooms, room_name_at, name, found);
}

static struct room *
room_find_locked(struct hub *h, const char *name)
{
	bool found;
	size_t i = room_search_locked(h, name, &found);

	return found ? h->rooms[i] : NULL;
}

/*
 * Tombs.  A deleted room's history gets a deletion record
 * (history_drop_room), but messages stored for the room before it are
 * published before it too, possibly after a room of the same name was
 * made again: those belong to the deleted room and must not reach the new
 * one.  So the name keeps a tomb from the deletion until the record is
 * published (room_publish_history), and a room made meanwhile is stale:
 * the messages published for it are the old room's.
 */
static bool
tomb_of(struct hub *h, const char *name)
{
	int64_t now = time_mono_ms();

	for (size_t i = 0; i < h->n_tombs; i++)
		if (h->tombs[i].until_ms > now && name_cmp(h->tombs[i].name, name) == 0)
			return true;
	return false;
}

static void
tomb_add(struct hub *h, const char *name)
{
	if (h->history == NULL) /* no history, no deletion record to wait for */
		return;
	if (h->n_tombs == h->cap_tombs) {
		size_t ncap = h->cap_tombs ? h->cap_tombs * 2 : 4;
		struct tomb *n = realloc(h->tombs, ncap * sizeof(*n));

		if (n == NULL)
			return;
		h->tombs = n;
		h->cap_tombs = ncap;
	}
	snprintf(h->tombs[h->n_tombs].name, sizeof(h->tombs[0].name), "%s", name);
	h->tombs[h->n_tombs++].until_ms = time_mono_ms() + TOMB_MS;
}

static struct room *room_find_locked(struct hub *h, const char *name);

/* The deletion record of name was published: its (oldest) tomb goes, and with it the staleness. */
static void
tomb_remove(struct hub *h, const char *name)
{
	int64_t now = time_mono_ms();
	size_t i, j = 0;
	bool removed = false;

	for (i = 0; i < h->n_tombs; i++) {
		bool it = !removed && name_cmp(h->tombs[i].name, name) == 0;

		removed |= it;
		if (!it && h->tombs[i].until_ms > now)
			h->tombs[j++] = h->tombs[i];
	}
	h->n_tombs = j;
	struct room *r = room_find_locked(h, name);
	if (r != NULL)
		r->stale = tomb_of(h, name);
}

static struct room *
room_make_locked(struct hub *h, const char *name, bool op_made)
{
	bool found;
	size_t i = room_search_locked(h, name, &found);
	struct room *r;

	if (found)
		return h->rooms[i];
	if (h->n_rooms == h->cap_rooms) {
		size_t ncap = h->cap_rooms ? h->cap_rooms * 2 : 16;
		struct room **n = realloc(h->rooms, ncap * sizeof(*n));

		if (n == NULL)
			return NULL;
		h->rooms = n;
		h->cap_rooms = ncap;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->ring = calloc(RING_START_CAP, sizeof(*r->ring))) == NULL) {
		free(r);
		return NULL;
	}
	r->ring_cap = RING_START_CAP;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->op_made = op_made;
	r->created_ms = r->empty_since_ms = time_now_ms();
	r->first_id = h->last_msg_id;
	r->stale = tomb_of(h, name);
	memmove(&h->rooms[i + 1], &h->rooms[i], (h->n_rooms - i) * sizeof(*h->rooms));
	h->rooms[i] = r;
	h->n_rooms++;
	h->rooms_dirty = true;
	return r;
}

static void
slot_release(struct ring_slot *s)
{
	for (size_t w = 0; w < WIRE_MAX; w++) {
		line_unref(s->w[w].body);
		s->w[w].body = NULL;
	}
}

static void
room_free_one(struct room *r)
{
	for (uint64_t i = 0; i < r->ring_cap; i++)
		slot_release(&r->ring[i]);
	free(r->ring);
	free(r->members);
	free(r);
}

struct hub *
hub_new(const struct wire_format *const *formats)
{
	struct hub *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	for (size_t w = 0; w < WIRE_MAX; w++)
		h->formats[w] = formats[w];
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->save_lock, NULL);
	pthread_cond_init(&h->empty, NULL);
	h->lobby = room_make_locked(h, settings_get()->default_room, true);
	if (h->lobby == NULL) {
		hub_free(h);
		return NULL;
	}
	h->lobby->is_default = true;
	h->rooms_dirty = false;
	return h;
}

void
hub_free(struct hub *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n_rooms; i++)
		room_free_one(h->rooms[i]);
	free(h->rooms);
	free(h->online);
	free(h->tombs);
	free(h->rooms_path);
	pthread_cond_destroy(&h->empty);
	pthread_mutex_destroy(&h->save_lock);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void
hub_set_history(struct hub *h, struct history *history)
{
	h->history = history;
}

/* ---- waking sleeping members ---- */

/*
 * A sleeping member is on one of two lists, linked through room.sleep_*:
 * sleepers (woken when a ring moves) or writers (the hub holds its write
 * rights and writes the rings to its socket itself, see
 * write_through_locked).
 */
static void
sleeper_remove_locked(struct hub *h, struct client *c)
{
	if (!c->room.sleeping)
		return;
	struct client **head = c->room.writer ? &h->writers : &h->sleepers;
	if (c->room.sleep_prev)
		c->room.sleep_prev->room.sleep_next = c->room.sleep_next;
	else
		*head = c->room.sleep_next;
	if (c->room.sleep_next)
		c->room.sleep_next->room.sleep_prev = c->room.sleep_prev;
	c->room.sleep_prev = c->room.sleep_next = NULL;
	c->room.sleeping = false;
	c->room.writer = false;
}

static void
sleeper_add_locked(struct hub *h, struct client *c, bool writer)
{
	if (c->room.sleeping)
		return;
	struct client **head = writer ? &h->writers : &h->sleepers;
	c->room.sleeping = true;
	c->room.writer = writer;
	c->room.sleep_prev = NULL;
	c->room.sleep_next = *head;
	if (*head)
		(*head)->room.sleep_prev = c;
	*head = c;
}

/* Wake c (at the next room_unlock_and_wake) even if nothing was published. */
static void
target_add_locked(struct hub *h, struct client *c)
{
	if (c->room.targeted)
		return;
	sleeper_remove_locked(h, c);
	c->room.targeted = true;
	c->room.target_next = h->targets;
	h->targets = c;
}

/*
 * The next client to wake: a target, or, if a ring moved, a sleeper
 * (while *sleepers_left allows).  Once no sleeper is left, everyone is
 * awake for what the rings hold: woken_seq catches up.
 */
static struct client *
wake_next_locked(struct hub *h, size_t *sleepers_left)
{
	struct client *c = h->targets;

	if (c != NULL) {
		h->targets = c->room.target_next;
		c->room.targeted = false;
		return c;
	}
	if (h->woken_seq == h->seq || *sleepers_left == 0)
		return NULL;
	if ((c = h->sleepers) == NULL) {
		h->woken_seq = h->seq;
		return NULL;
	}
	sleeper_remove_locked(h, c);
	(*sleepers_left)--;
	return c;
}

/*
 * A member is backed up while more than half its send queue limit waits
 * for its socket: pipelining senders then wait for it (room_backed_up).
 * Called when its queue may have changed: by its thread in room_collect()
 * and room_sleep(), by the publisher when write-through queues for it.
 */
static void
backed_up_set_locked(struct hub *h, struct client *c, bool now)
{
	if (now == c->room.backed_up)
		return;
	c->room.backed_up = now;
	if (now)
		atomic_fetch_add_explicit(&h->backed_up, 1, memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(&h->backed_up, 1, memory_order_relaxed);
}

static bool
queue_backed_up(const struct client *c)
{
	return c->room.member &&
	       c->out.bytes + c->room.inbox.bytes > (uint64_t)settings_get()->send_queue_limit / 2;
}

bool
room_backed_up(struct hub *h)
{
	return atomic_load_explicit(&h->backed_up, memory_order_relaxed) > 0;
}

/* ---- what a member gets from the rings ---- */

static const struct ring_slot *
slot_at(const struct membership *m)
{
	return &m->room->ring[m->cursor & (m->room->ring_cap - 1)];
}

/* Some membership of c is further behind than its ring reaches. */
static bool
ring_overflowed(const struct client *c)
{
	for (size_t i = 0; i < c->room.n_rooms; i++) {
		const struct membership *m = &c->room.rooms[i];

		if (m->room->head - m->cursor > m->room->ring_cap)
			return true;
	}
	return false;
}

/*
 * The membership whose next slot was published first, or NULL when c is
 * caught up everywhere.  Memberships are few (max_rooms_per_user): a scan.
 */
static struct membership *
next_pending(struct client *c)
{
	struct membership *best = NULL;
	uint64_t best_seq = 0;

	for (size_t i = 0; i < c->room.n_rooms; i++) {
		struct membership *m = &c->room.rooms[i];

		if (m->cursor == m->room->head)
			continue;
		uint64_t seq = slot_at(m)->seq;
		if (best == NULL || seq < best_seq) {
			best = m;
			best_seq = seq;
		}
	}
	return best;
}

static size_t
piece_static(struct piece *p, const char *text, size_t len)
{
	*p = (struct piece){ .base = text, .len = len };
	return 1;
}

static size_t
piece_line(struct piece *p, struct line *l, size_t from, size_t len)
{
	*p = (struct piece){ .base = l->data + from, .len = len, .owner = l };
	return 1;
}

/*
 * The acknowledgement ("OK ID sent" natively) shares the id's bytes in the
 * message's line instead of formatting a line of its own.
 */
static size_t
ack_pieces(const struct wire_format *f, const struct wire_bytes *w, struct piece *p)
{
	piece_static(&p[0], f->ack_head, strlen(f->ack_head));
	piece_line(&p[1], w->body, w->off + w->id_off, w->id_len);
	piece_static(&p[2], f->ack_tail, strlen(f->ack_tail));
	return 3;
}

/*
 * What slot s puts on c's wire, as at most SLOT_PIECES pieces pointing
 * into the slot's line or static text; *answered counts c's own messages
 * it answers (the caller takes them off c->unacked, or counts them in the
 * inbox's).  Shared by room_collect (which queues the pieces),
 * write-through (which writes them) and inbox_catch_up_locked.
 */
static size_t
slot_pieces(const struct hub *h, const struct client *c, const struct ring_slot *s, struct piece *p,
	    unsigned *answered)
{
	const struct wire_format *f = h->formats[c->wire];
	const struct wire_bytes *w = &s->w[c->wire];
	bool own = s->sender == c->id;

	switch (s->kind) {
	case SLOT_MSG:
		if (own) {
			(*answered)++;
			return ack_pieces(f, w, p);
		}
		return piece_line(p, w->body, w->off, w->len);
	case SLOT_FAILED:
		if (!own)
			return 0;
		(*answered)++;
		return piece_static(p, f->not_stored, strlen(f->not_stored));
	case SLOT_EVENT:
		return own || w->body == NULL ? 0 : piece_line(p, w->body, w->off, w->len);
	}
	return 0;
}

/* Queues what follows the first `skip` bytes of p, with a reference of its own. */
static int
piece_queue(struct outq *q, const struct piece *p, size_t skip)
{
	return outq_push(q, p->base + skip, p->len - skip, p->owner ? line_ref(p->owner) : NULL);
}

/* Queues slot s for c (each piece with a reference of its own). */
static int
deliver_slot(const struct hub *h, struct client *c, const struct ring_slot *s)
{
	struct piece p[SLOT_PIECES];
	unsigned answered = 0;
	size_t n = slot_pieces(h, c, s, p, &answered);

	c->unacked -= answered;
	for (size_t i = 0; i < n; i++)
		if (piece_queue(&c->out, &p[i], 0) < 0)
			return -1;
	return 0;
}

/* Appends the `added` pieces at p[n] to p[0..n), each merged into the one before if they touch. */
static size_t
pieces_merge(struct piece *p, size_t n, size_t added)
{
	for (size_t i = n, end = n + added; i < end; i++) {
		struct piece *last = n > 0 ? &p[n - 1] : NULL;

		if (last && last->owner == p[i].owner && last->base + last->len == p[i].base)
			last->len += p[i].len;
		else
			p[n++] = p[i];
	}
	return n;
}

/*
 * The pieces of c's pending slots, in publication order, while they fit
 * in WT_PIECES; moves the cursors past them.  The messages of a batch
 * touch in memory, so a batch of one room usually takes one piece.
 * False when nothing was pending.
 */
static bool
wt_gather(const struct hub *h, struct client *c, struct piece *p, size_t *np)
{
	struct membership *m;
	bool any = false;

	*np = 0;
	while (*np + SLOT_PIECES <= WT_PIECES && (m = next_pending(c)) != NULL) {
		unsigned answered = 0;

		*np = pieces_merge(p, *np, slot_pieces(h, c, slot_at(m), p + *np, &answered));
		c->unacked -= answered;
		m->cursor++;
		any = true;
	}
	return any;
}

/*
 * Writes the gathered pieces with one writev(); what the socket does not
 * take goes to c->out (with references of its own).  False if c has to be
 * woken: its socket is full or broken, or memory ran out.
 */
static bool
wt_write(struct hub *h, struct client *c, const struct piece *p, size_t np)
{
	struct iovec *iov = h->wt_iov;
	size_t total = 0, i;
	ssize_t w;

	for (i = 0; i < np; i++) {
		iov[i].iov_base = (void *)p[i].base;
		iov[i].iov_len = p[i].len;
		total += p[i].len;
	}
	w = np ? session_writev(c, iov, (int)np) : 0;
	if (w == (ssize_t)total)
		return true;
	/* Full or broken: all of it is queued, and the thread's own write finds out which. */
	if (w < 0)
		w = 0;
	for (i = 0; i < np; i++) {
		size_t skip = (size_t)w < p[i].len ? (size_t)w : p[i].len;

		w -= (ssize_t)skip;
		if (skip < p[i].len && piece_queue(&c->out, &p[i], skip) < 0) {
			c->room.out_lost = true;
			return false;
		}
	}
	backed_up_set_locked(h, c, queue_backed_up(c));
	return false;
}

/* Writes everything pending for the writer c to its socket; false if c must be woken. */
static bool
write_through_one(struct hub *h, struct client *c)
{
	struct piece *p = h->wt_pieces;
	size_t np;

	if (ring_overflowed(c))
		return false;
	while (wt_gather(h, c, p, &np))
		if (!wt_write(h, c, p, np))
			return false;
	return true;
}

/*
 * Write-through: every member on the writers list sleeps with an empty
 * output queue and has handed its write rights to the hub (room_sleep),
 * so whoever holds the room lock may write the rings to its socket
 * itself, instead of waking its thread for one line.  For each room that
 * moved, its members that are writers get what is new in all their rooms
 * (merged in publication order).  The pieces point into the rings' own
 * lines, which stay put while the lock is held: no reference and no queue
 * per delivery.  What the socket does not take stays in c->out, the member
 * comes off the list and its thread is woken to finish (it takes its
 * rights back first, room_wake_up).  A member too far behind, out of
 * memory or with a broken socket is woken the same way, and its thread
 * finds out what happened.
 */
static void
write_through_locked(struct hub *h)
{
	struct room *r;

	while ((r = h->dirty) != NULL) {
		h->dirty = r->dirty_next;
		r->dirty = false;
		for (size_t i = 0; i < r->n_members; i++) {
			struct client *c = r->members[i];

			if (c->room.sleeping && c->room.writer && !write_through_one(h, c))
				target_add_locked(h, c);
		}
	}
}

/*
 * Drops the room lock and wakes the targets and, if something was
 * published since the last time, up to `sleepers` sleepers.  The wake-ups
 * (client_wake) happen unlocked, so a big idle room does not stall the
 * fan-out path; the reference taken under the lock keeps each client
 * alive meanwhile.
 */
static void
room_unlock_and_wake_some(struct hub *h, size_t sleepers)
{
	struct client *batch[WAKE_BATCH];

	write_through_locked(h);
	for (;;) {
		size_t n = 0;
		struct client *c;

		while (n < WAKE_BATCH && (c = wake_next_locked(h, &sleepers)) != NULL) {
			client_ref(c);
			batch[n++] = c;
		}
		pthread_mutex_unlock(&h->lock);
		for (size_t i = 0; i < n; i++) {
			client_wake(batch[i]);
			client_unref(batch[i]);
		}
		if (n < WAKE_BATCH)
			return;
		pthread_mutex_lock(&h->lock);
	}
}

/* Wakes every sleeper: for events that are rare (joins, evictions, shutdown). */
static void
room_unlock_and_wake(struct hub *h)
{
	room_unlock_and_wake_some(h, SIZE_MAX);
}

/*
 * Room messages wake sleepers as a cascade: the publisher wakes
 * WAKE_CASCADE of them, and every member thread that passes through the
 * hub afterwards (room_collect, room_logout) wakes WAKE_CASCADE more,
 * until none is left.  Waking a thousand sleepers costs a thousand
 * wake-ups either way; spread like this, they run on every core at once
 * instead of keeping the publisher (the history's only one) from the next
 * batch: a single waker stalled every sender.
 */
static void
room_unlock_and_cascade(struct hub *h)
{
	room_unlock_and_wake_some(h, WAKE_CASCADE);
}

/* ---- the rings ---- */

/* The most slots a ring may have under the current send_queue_limit. */
static uint64_t
ring_max_cap(void)
{
	uint64_t cap = RING_MIN_CAP;

	while (cap < (uint64_t)settings_get()->send_queue_limit / RING_MIN_EVENT_BYTES)
		cap *= 2;
	return cap;
}

/*
 * Makes room for k more slots without overwriting one a member has not
 * delivered yet, by doubling the ring up to ring_max_cap().  A member
 * already overrun does not count.  Without memory the ring stays as it
 * is (the members that fall behind overflow).
 */
static void
ring_reserve_locked(struct room *r, uint64_t k)
{
	uint64_t oldest = r->head, max = ring_max_cap(), ncap = r->ring_cap;
	uint64_t reach = r->head > r->ring_cap ? r->head - r->ring_cap : 0;

	/* Full size already (a busy room), or slots never used ahead: nothing to check. */
	if (r->ring_cap >= max || r->head + k <= r->ring_cap)
		return;
	for (size_t i = 0; i < r->n_members; i++) {
		const struct client *c = r->members[i];

		for (size_t j = 0; j < c->room.n_rooms; j++)
			if (c->room.rooms[j].room == r && c->room.rooms[j].cursor < oldest &&
			    c->room.rooms[j].cursor >= reach)
				oldest = c->room.rooms[j].cursor;
	}
	while (ncap < r->head - oldest + k && ncap < max)
		ncap *= 2;
	if (ncap == r->ring_cap)
		return;
	struct ring_slot *n = calloc(ncap, sizeof(*n));
	if (n == NULL)
		return;
	for (uint64_t p = reach; p < r->head; p++)
		n[p & (ncap - 1)] = r->ring[p & (r->ring_cap - 1)];
	free(r->ring);
	r->ring = n;
	r->ring_cap = ncap;
}

static void
dirty_add_locked(struct hub *h, struct room *r)
{
	if (r->dirty)
		return;
	r->dirty = true;
	r->dirty_next = h->dirty;
	h->dirty = r;
}

static void
dirty_remove_locked(struct hub *h, struct room *r)
{
	for (struct room **pp = &h->dirty; r->dirty && *pp; pp = &(*pp)->dirty_next)
		if (*pp == r) {
			*pp = r->dirty_next;
			r->dirty = false;
		}
}

/* Takes over slot's references; room made by ring_reserve_locked() first. */
static void
ring_push_locked(struct hub *h, struct room *r, struct ring_slot slot)
{
	struct ring_slot *s = &r->ring[r->head & (r->ring_cap - 1)];

	slot_release(s);
	slot.seq = ++h->seq;
	*s = slot;
	r->head++;
	dirty_add_locked(h, r);
}

/*
 * Event ev for every member of r but `except`: formatted once for each
 * protocol in use.  *shown, if not NULL, gets a reference to the line of
 * protocol `wire` too.
 */
static void
ring_push_event_locked(struct hub *h, struct room *r, const struct wire_event *ev, uint64_t except)
{
	struct ring_slot slot = { .kind = SLOT_EVENT, .sender = except };

	for (size_t w = 0; w < WIRE_MAX; w++) {
		struct line *l = h->formats[w] ? h->formats[w]->event(ev) : NULL;

		if (h->formats[w] && l == NULL)
			log_warning("room: out of memory, an event was not sent");
		if (l != NULL)
			slot.w[w] = (struct wire_bytes){ .body = l, .len = l->len };
	}
	ring_reserve_locked(r, 1);
	ring_push_locked(h, r, slot);
}

void
room_set_last_msg_id(struct hub *h, uint64_t id)
{
	pthread_mutex_lock(&h->lock);
	h->last_msg_id = id;
	pthread_mutex_unlock(&h->lock);
}

/* A stored room message (events are stored and published too: the hub showed them live). */
static bool
is_message(const struct history_entry *e)
{
	return e->kind == HK_MSG && !e->failed;
}

/*
 * What every other member gets for a piece of a batch, formatted once per
 * message and protocol, never per member: for each protocol, one piece of
 * memory all the messages' lines share.  Consecutive slots' bytes then
 * touch, and touching pieces are merged (wt_gather, outq_push): a member
 * that gets the batch gets one iovec, not one per message, and per iovec
 * is where the kernel's copy in writev() spent.  A member pins at most the
 * batches at the ends of what it has queued, since it collects slots in
 * order.  at[k * WIRE_MAX + w]: where message k is in line[w].
 */
struct batch {
	struct line *line[WIRE_MAX];
	struct wire_bytes *at;
};

static void
batch_free(struct batch *b)
{
	for (size_t w = 0; w < WIRE_MAX; w++)
		line_unref(b->line[w]);
	free(b->at);
	memset(b, 0, sizeof(*b));
}

/* Formats the messages of e[0..n) for every protocol; -1 without memory. */
static int
batch_make(const struct hub *h, const struct history_entry *e, size_t n, struct batch *b)
{
	size_t msgs = 0;

	memset(b, 0, sizeof(*b));
	for (size_t i = 0; i < n; i++)
		msgs += is_message(&e[i]);
	if (msgs == 0)
		return 0;
	if ((b->at = calloc(msgs * WIRE_MAX, sizeof(*b->at))) == NULL)
		return -1;
	for (size_t w = 0; w < WIRE_MAX; w++) {
		const struct wire_format *f = h->formats[w];
		size_t total = 0, off = 0, k = 0;

		if (f == NULL)
			continue;
		for (size_t i = 0; i < n; i++)
			if (is_message(&e[i]))
				total += f->msg_len(&e[i]);
		if ((b->line[w] = line_new(total)) == NULL) {
			batch_free(b);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			struct wire_bytes *at = &b->at[k * WIRE_MAX + w];

			if (!is_message(&e[i]))
				continue;
			at->off = (uint32_t)off;
			at->len = (uint32_t)f->msg_len(&e[i]);
			f->msg_put(&e[i], b->line[w]->data + off, &at->id_off, &at->id_len);
			off += at->len;
			k++;
		}
	}
	return 0;
}

/*
 * Message k of batch b, e: its slot, the bytes in the batch's lines (or,
 * when the batch could not be made, in lines of its own; without memory
 * for those either it fails as if not stored).
 */
static struct ring_slot
msg_slot(const struct hub *h, const struct history_entry *e, const struct batch *b, size_t k)
{
	struct ring_slot s = { .kind = SLOT_MSG, .sender = e->sender };
	struct batch own;

	if (b->at == NULL) {
		if (batch_make(h, e, 1, &own) < 0) {
			s.kind = SLOT_FAILED;
			return s;
		}
		b = &own;
		k = 0;
	}
	for (size_t w = 0; w < WIRE_MAX; w++) {
		if (b->line[w] == NULL)
			continue;
		s.w[w] = b->at[k * WIRE_MAX + w];
		s.w[w].body = line_ref(b->line[w]);
	}
	if (b == &own)
		batch_free(&own);
	return s;
}

/* A message's bytes on the largest of the protocols in use. */
static size_t
msg_bytes(const struct hub *h, const struct history_entry *e)
{
	size_t most = 0;

	for (size_t w = 0; w < WIRE_MAX; w++)
		if (h->formats[w] && h->formats[w]->msg_len(e) > most)
			most = h->formats[w]->msg_len(e);
	return most;
}

void
room_backlog_limits(struct hub *h, size_t *msgs, size_t *bytes)
{
	(void)h;
	*msgs = (size_t)(ring_max_cap() / PUBLISH_SHARE);
	*bytes = (size_t)settings_get()->send_queue_limit / PUBLISH_SHARE;
}

/*
 * How many of the n entries from e go into the rings in one piece: at
 * most the backlog limits' worth of slots and bytes, and at least one.
 */
static size_t
publish_piece(struct hub *h, const struct history_entry *e, size_t n)
{
	size_t max_msgs, max_bytes, bytes = 0, i;

	room_backlog_limits(h, &max_msgs, &max_bytes);
	for (i = 0; i < n && i < max_msgs; i++) {
		if (is_message(&e[i]))
			bytes += msg_bytes(h, &e[i]);
		if (i > 0 && bytes > max_bytes)
			break;
	}
	return i;
}

/* ---- sessions online ---- */

static const char *
client_name_at(const void *v, size_t i)
{
	return ((struct client *const *)v)[i]->name;
}

/* Index of name in a sorted array of clients, or where it would go (*found false). */
static size_t
client_search(struct client *const *v, size_t n, const char *name, bool *found)
{
	return name_search(v, n, client_name_at, name, found);
}

/* Inserts c in a sorted array of clients by name. */
static int
client_insert(struct client ***v, size_t *n, size_t *cap, struct client *c)
{
	bool found;
	size_t i = client_search(*v, *n, c->name, &found);

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct client **nv = realloc(*v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		*v = nv;
		*cap = ncap;
	}
	memmove(&(*v)[i + 1], &(*v)[i], (*n - i) * sizeof(**v));
	(*v)[i] = c;
	(*n)++;
	return 0;
}

static void
client_remove(struct client **v, size_t *n, struct client *c)
{
	bool found;
	size_t i = client_search(v, *n, c->name, &found);

	if (found && v[i] == c) {
		memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
		(*n)--;
	}
}

static struct client *
online_find_locked(struct hub *h, const char *name)
{
	bool found;
	size_t i = client_search(h->online, h->n_online, name, &found);

	return found ? h->online[i] : NULL;
}

static struct membership *
membership_find(struct client *c, const struct room *r)
{
	for (size_t i = 0; i < c->room.n_rooms; i++)
		if (c->room.rooms[i].room == r)
			return &c->room.rooms[i];
	return NULL;
}

/* c enters r, from its head on. */
static int
membership_add_locked(struct room *r, struct client *c)
{
	if (c->room.n_rooms == c->room.cap_rooms) {
		size_t ncap = c->room.cap_rooms ? c->room.cap_rooms * 2 : 4;
		struct membership *n = realloc(c->room.rooms, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		c->room.rooms = n;
		c->room.cap_rooms = ncap;
	}
	if (client_insert(&r->members, &r->n_members, &r->cap_members, c) < 0)
		return -1;
	c->room.rooms[c->room.n_rooms++] = (struct membership){ .room = r, .cursor = r->head };
	return 0;
}

/*
 * c leaves r (what it had not delivered from r goes with it).  If r was
 * its current room, the current room becomes the default room if c is in
 * it, else the room of c it joined first, else none.
 */
static void
membership_remove_locked(struct hub *h, struct room *r, struct client *c)
{
	struct membership *m = membership_find(c, r);

	if (m == NULL)
		return;
	memmove(m, m + 1, (size_t)(&c->room.rooms[c->room.n_rooms] - (m + 1)) * sizeof(*m));
	c->room.n_rooms--;
	client_remove(r->members, &r->n_members, c);
	if (r->n_members == 0)
		r->empty_since_ms = time_now_ms();
	if (c->room.current == r) {
		if (membership_find(c, h->lobby) != NULL)
			c->room.current = h->lobby;
		else
			c->room.current = c->room.n_rooms > 0 ? c->room.rooms[0].room : NULL;
	}
}

/* Join and part notices stop above room_notice_limit members. */
static bool
notices_wanted(const struct room *r)
{
	return r->n_members <= (size_t)settings_get()->room_notice_limit;
}

/* An event of name in r, now. */
static struct wire_event
room_event(const struct room *r, enum wire_event_kind kind, const char *name)
{
	return (struct wire_event){ .kind = kind,
				    .room = r->name,
				    .ms = time_now_ms(),
				    .name = name };
}

/* Everyone in r but c sees c's JOIN (unless r is too big for notices). */
static void
publish_join_locked(struct hub *h, struct room *r, struct client *c)
{
	struct wire_event ev = room_event(r, WE_JOIN, c->name);

	if (notices_wanted(r))
		ring_push_event_locked(h, r, &ev, c->id);
}

/*
 * The longest PART text: REASON_TEXT_MAX, or less with a short max_line,
 * so a PART (room, time, name and reason word around it, at most 108
 * bytes) stays within the max_line + PROTO_SERVER_OVERHEAD bytes promised.
 */
static size_t
reason_limit(void)
{
	size_t fits = (size_t)settings_get()->max_line + PROTO_SERVER_OVERHEAD - 108;

	return fits < REASON_TEXT_MAX ? fits : REASON_TEXT_MAX;
}

/*
 * The longest topic: max_topic, or max_line if that is less, so a TOPIC
 * line (room, time and setter around it, under 100 bytes) stays within
 * max_line + PROTO_SERVER_OVERHEAD bytes, an operator's topic too.
 */
static size_t
topic_limit(void)
{
	const struct settings *s = settings_get();

	return (size_t)(s->max_topic < s->max_line ? s->max_topic : s->max_line);
}

/*
 * The reason of a PART or BYE, or the default one, into a buffer of
 * REASON_TEXT_MAX + 1: a long reason is cut between characters, so what
 * everyone sees stays valid UTF-8.
 */
static void
reason_copy(char *dst, const char *text, enum part_reason why)
{
	const char *src = text && *text ? text : part_reason_text(why);
	size_t n = text_fit(src, strlen(src), reason_limit());

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* "REASON TEXT", the fields of a PART after the name (and the text of its history record). */
static void
part_fields(char *fields, size_t len, enum part_reason why, const char *text)
{
	int n = snprintf(fields, len, "%s ", part_reason_name(why));

	reason_copy(fields + n, text, why);
}

/* Everyone in r but c sees c's PART (unless r is too big for notices). */
static void
publish_part_locked(struct hub *h, struct room *r, struct client *c, enum part_reason why,
		    const char *text)
{
	char reason[REASON_TEXT_MAX + 1];
	struct wire_event ev = room_event(r, WE_PART, c->name);

	if (!notices_wanted(r))
		return;
	reason_copy(reason, text, why);
	ev.reason = part_reason_name(why);
	ev.text = reason;
	ring_push_event_locked(h, r, &ev, c->id);
}

/* c leaves every room it is in, and the rooms see why. */
static void
part_all_locked(struct hub *h, struct client *c, enum part_reason why, const char *text)
{
	while (c->room.n_rooms > 0) {
		struct room *r = c->room.rooms[c->room.n_rooms - 1].room;

		publish_part_locked(h, r, c, why, text);
		membership_remove_locked(h, r, c);
	}
	c->room.current = NULL;
}

static void
offline_locked(struct hub *h, struct client *c)
{
	if (!c->room.member)
		return;
	backed_up_set_locked(h, c, false);
	client_remove(h->online, &h->n_online, c);
	c->room.member = false;
}

/* Takes c offline on someone else's behalf and wakes it to leave. */
static void
evict_locked(struct hub *h, struct client *c, enum part_reason why, const char *text)
{
	part_all_locked(h, c, why, text);
	offline_locked(h, c);
	c->room.evicted = true;
	c->room.evict_reason = why;
	reason_copy(c->room.evict_text, text, why);
	target_add_locked(h, c);
}

/* Event ev for c alone, through its inbox (the ring of a room it is not in, or of none). */
static void
send_alone_locked(struct hub *h, struct client *c, const struct wire_event *ev)
{
	struct line *l = h->formats[c->wire]->event(ev);

	if (l == NULL || outq_push_line(&c->room.inbox, l) < 0)
		log_warning("room: out of memory, a line to %s was not sent", c->name);
	target_add_locked(h, c);
}

/*
 * Names a USERS page lists: USERS_PAGE, or fewer when max_line is so short
 * that USERS_PAGE of the longest names would not fit in max_line +
 * PROTO_SERVER_OVERHEAD bytes (with a head of at most 93: tag, room and
 * three numbers).
 */
static size_t
users_page(void)
{
	size_t fits = ((size_t)settings_get()->max_line + PROTO_SERVER_OVERHEAD - 93) /
		      (NAME_MAX_LEN + 1);

	return fits < 1 ? 1 : fits > USERS_PAGE ? USERS_PAGE : fits;
}

/* The USERS line (on protocol wire) of page of r's members; page 0 when not listed. */
static struct line *
users_line_locked(const struct hub *h, const struct room *r, unsigned wire, unsigned page,
		  bool listed)
{
	size_t per = users_page(), pages = (r->n_members + per - 1) / per, first, last;
	const char *names[USERS_PAGE];

	if (!listed || page < 1 || page > pages)
		page = 0;
	first = page ? (size_t)(page - 1) * per : 0;
	last = page ? first + per : 0;
	if (last > r->n_members)
		last = r->n_members;
	for (size_t i = first; i < last; i++)
		names[i - first] = r->members[i]->name;
	return h->formats[wire]->users(r->name, r->n_members, page, pages, names, last - first);
}

/* r's topic as an event: set by whom, when (0: never set). */
static struct wire_event
topic_event(const struct room *r)
{
	return (struct wire_event){ .kind = WE_TOPIC,
				    .room = r->name,
				    .ms = r->topic_ms,
				    .name = r->topic_by,
				    .text = r->topic };
}

static struct line *
topic_line_locked(const struct hub *h, const struct room *r, unsigned wire)
{
	struct wire_event ev = topic_event(r);

	return h->formats[wire]->event(&ev);
}

/* The reply to c's joining r: USERS (page 1, or 0 above room_notice_limit) and TOPIC if any. */
static int
join_reply_locked(struct hub *h, struct room *r, struct client *c, struct room_join_reply *rep)
{
	snprintf(rep->room, sizeof(rep->room), "%s", r->name);
	rep->first_id = r->first_id;
	rep->last_msg_id = h->last_msg_id;
	rep->users = users_line_locked(h, r, c->wire, 1, notices_wanted(r));
	rep->topic = r->topic_ms != 0 ? topic_line_locked(h, r, c->wire) : NULL;
	return rep->users != NULL && (r->topic_ms == 0 || rep->topic != NULL) ? 0 : -1;
}

void
room_join_reply_release(struct room_join_reply *rep)
{
	line_unref(rep->users);
	line_unref(rep->topic);
	rep->users = rep->topic = NULL;
}

/* ---- storing events and the rooms file (no room lock held) ---- */

static void
store_event(struct hub *h, const char *room, enum history_kind kind, const char *name,
	    const char *text)
{
	if (h->history != NULL &&
	    history_append(h->history, 0, room, kind, name, text, strlen(text)) < 0)
		log_warning("room %s: an event could not be stored: %s", room, strerror(errno));
}

static bool
lock_within(struct hub *h, int timeout_ms)
{
	struct timespec until = time_after_ms(CLOCK_REALTIME, timeout_ms);
	int err = timeout_ms > 0 ? pthread_mutex_timedlock(&h->lock, &until)
				 : pthread_mutex_trylock(&h->lock);

	if (err != 0) {
		errno = ETIMEDOUT;
		return false;
	}
	return true;
}

/* The room lock: waited for (timeout_ms < 0), or as lock_within(). */
static bool
hub_lock(struct hub *h, int timeout_ms)
{
	if (timeout_ms >= 0)
		return lock_within(h, timeout_ms);
	pthread_mutex_lock(&h->lock);
	return true;
}

/*
 * Writes the rooms file if a room or a topic changed since it was last
 * written.  timeout_ms < 0: waits for the room lock (a client's thread);
 * else the control thread's rule: a lock not free in time leaves the
 * change for the next save.
 */
static void
rooms_save(struct hub *h, int timeout_ms)
{
	struct roomfile_room *v;
	size_t n;
	char err[256];

	pthread_mutex_lock(&h->save_lock);
	if (!hub_lock(h, timeout_ms)) {
		log_warning("rooms: the room lock was busy: %s is written at the next change",
			    h->rooms_path);
		pthread_mutex_unlock(&h->save_lock);
		return;
	}
	if (!h->rooms_dirty || h->rooms_path == NULL ||
	    (v = calloc(h->n_rooms, sizeof(*v))) == NULL) {
		pthread_mutex_unlock(&h->lock);
		pthread_mutex_unlock(&h->save_lock);
		return;
	}
	n = h->n_rooms;
	for (size_t i = 0; i < n; i++) {
		const struct room *r = h->rooms[i];

		snprintf(v[i].name, sizeof(v[i].name), "%s", r->name);
		v[i].op_made = r->op_made || r->is_default;
		v[i].created_ms = r->created_ms;
		v[i].topic_ms = r->topic_ms;
		snprintf(v[i].topic_by, sizeof(v[i].topic_by), "%s", r->topic_by);
		snprintf(v[i].topic, sizeof(v[i].topic), "%s", r->topic);
	}
	h->rooms_dirty = false;
	pthread_mutex_unlock(&h->lock);
	if (roomfile_save(h->rooms_path, v, n, err, sizeof(err)) < 0) {
		log_error("%s", err);
		if (hub_lock(h, timeout_ms)) {
			h->rooms_dirty = true; /* the next change tries again */
			pthread_mutex_unlock(&h->lock);
		}
	}
	free(v);
	pthread_mutex_unlock(&h->save_lock);
}

void
room_save_within(struct hub *h, int timeout_ms)
{
	rooms_save(h, timeout_ms);
}

int
hub_load_rooms(struct hub *h, const char *path, char *err, size_t errlen)
{
	struct roomfile_room *v = NULL;
	size_t n = 0;

	if ((h->rooms_path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (roomfile_load(path, &v, &n, err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < n; i++) {
		struct room *r = room_make_locked(h, v[i].name, v[i].op_made);

		if (r == NULL)
			break;
		r->created_ms = v[i].created_ms;
		r->topic_ms = v[i].topic_ms;
		snprintf(r->topic_by, sizeof(r->topic_by), "%s", v[i].topic_by);
		snprintf(r->topic, sizeof(r->topic), "%s", v[i].topic);
	}
	/* Counted from now: a room's empty time before a restart is not known. */
	h->rooms_dirty = false;
	pthread_mutex_unlock(&h->lock);
	free(v);
	return 0;
}

/* ---- logging in and out ---- */

int
room_login(struct hub *h, struct client *c, struct room_join_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	pthread_mutex_lock(&h->lock);
	if (h->closing) {
		pthread_mutex_unlock(&h->lock);
		errno = ESHUTDOWN;
		return -1;
	}
	struct client *old = online_find_locked(h, c->name);
	if (old != NULL)
		evict_locked(h, old, PART_REPLACED, NULL);
	if (client_insert(&h->online, &h->n_online, &h->cap_online, c) < 0)
		goto nomem;
	c->room.member = true;
	if (membership_add_locked(h->lobby, c) < 0) {
		offline_locked(h, c);
		goto nomem;
	}
	c->room.current = h->lobby;
	c->room.joined_ms = time_now_ms();
	publish_join_locked(h, h->lobby, c);
	int rc = join_reply_locked(h, h->lobby, c, rep);
	room_unlock_and_wake(h);
	return rc;

nomem:
	room_unlock_and_wake(h);
	errno = ENOMEM;
	return -1;
}

void
room_logout(struct hub *h, struct client *c, enum part_reason why, const char *text)
{
	pthread_mutex_lock(&h->lock);
	/* At shutdown everyone goes at once: spare the survivors the notices. */
	if (!c->room.member || c->room.evicted || h->closing) {
		room_unlock_and_cascade(h);
		return;
	}
	part_all_locked(h, c, why, text);
	offline_locked(h, c);
	room_unlock_and_wake(h);
}

/* ---- a session's room commands ---- */

int
room_result_code(enum room_result r)
{
	switch (r) {
	case ROOM_DONE:
	case ROOM_ALREADY:
		return 0;
	case ROOM_BAD_NAME:
		return ERR_BAD_NAME;
	case ROOM_NO_SUCH:
	case ROOM_NOT_MEMBER:
	case ROOM_IN_NONE:
		return ERR_NOT_FOUND;
	case ROOM_CREATE_DENIED:
		return ERR_REGISTRATION_CLOSED;
	case ROOM_MAX_ROOMS:
	case ROOM_MAX_PER_USER:
		return ERR_ROOM_LIMIT;
	case ROOM_TOPIC_LONG:
		return ERR_BAD_REQUEST;
	case ROOM_NO_MEMORY:
		return ERR_INTERNAL;
	case ROOM_CLOSING:
		return ERR_UNAVAILABLE;
	}
	return ERR_INTERNAL;
}

const char *
room_result_text(enum room_result r, const char *room, char *buf, size_t len)
{
	const struct settings *s = settings_get();

	if (room != NULL && room[0] == '#')
		room++;
	switch (r) {
	case ROOM_DONE:
	case ROOM_ALREADY:
		snprintf(buf, len, "done");
		break;
	case ROOM_BAD_NAME:
		snprintf(buf, len,
			 "invalid room name: 1-%d of A-Z a-z 0-9 _ . -, the first a letter",
			 ROOM_NAME_MAX);
		break;
	case ROOM_NO_SUCH:
		snprintf(buf, len, "no such room: %s", room);
		break;
	case ROOM_NOT_MEMBER:
		snprintf(buf, len, "you are not in %s", room);
		break;
	case ROOM_IN_NONE:
		snprintf(buf, len, "you are in no room; /join one");
		break;
	case ROOM_CREATE_DENIED:
		snprintf(buf, len, "only an operator may create rooms here");
		break;
	case ROOM_MAX_ROOMS:
		snprintf(buf, len, "too many rooms (max_rooms %d)", s->max_rooms);
		break;
	case ROOM_MAX_PER_USER:
		snprintf(buf, len, "you are in too many rooms (max %d); /leave one",
			 s->max_rooms_per_user);
		break;
	case ROOM_TOPIC_LONG:
		snprintf(buf, len, "topic too long (max %zu bytes)", topic_limit());
		break;
	case ROOM_NO_MEMORY:
		snprintf(buf, len, "out of memory");
		break;
	case ROOM_CLOSING:
		snprintf(buf, len, "the server is shutting down");
		break;
	}
	return buf;
}

/*
 * The room a command names (NULL: c's current room), locked: *r set, or
 * why not.  member: c must be in it.
 */
static enum room_result
room_of_locked(struct hub *h, struct client *c, const char *arg, bool member, struct room **r)
{
	char name[ROOM_NAME_MAX + 1];

	if (arg == NULL) {
		*r = c->room.current;
		return *r != NULL ? ROOM_DONE : ROOM_IN_NONE;
	}
	if (!room_arg(arg, name))
		return ROOM_BAD_NAME;
	if ((*r = room_find_locked(h, name)) == NULL)
		return ROOM_NO_SUCH;
	if (member && membership_find(c, *r) == NULL)
		return ROOM_NOT_MEMBER;
	return ROOM_DONE;
}

/* Whether a user may make room `name` by joining it: ROOM_DONE if so. */
static enum room_result
may_create_locked(struct hub *h)
{
	const struct settings *s = settings_get();

	if (s->room_create == ROOM_CREATE_ADMIN)
		return ROOM_CREATE_DENIED;
	if (h->n_rooms >= (size_t)s->max_rooms)
		return ROOM_MAX_ROOMS;
	return ROOM_DONE;
}

enum room_result
room_join(struct hub *h, struct client *c, const char *arg, struct room_join_reply *rep)
{
	char name[ROOM_NAME_MAX + 1];
	enum room_result res = ROOM_DONE;
	struct room *r;

	memset(rep, 0, sizeof(*rep));
	if (!room_arg(arg, name))
		return ROOM_BAD_NAME;
	pthread_mutex_lock(&h->lock);
	if (h->closing) {
		pthread_mutex_unlock(&h->lock);
		return ROOM_CLOSING;
	}
	r = room_find_locked(h, name);
	if (r != NULL && membership_find(c, r) != NULL) {
		c->room.current = r;
		snprintf(rep->room, sizeof(rep->room), "%s", r->name);
		pthread_mutex_unlock(&h->lock);
		return ROOM_ALREADY;
	}
	if (c->room.n_rooms >= (size_t)settings_get()->max_rooms_per_user)
		res = ROOM_MAX_PER_USER;
	else if (r == NULL && (res = may_create_locked(h)) == ROOM_DONE) {
		if ((r = room_make_locked(h, name, false)) == NULL)
			res = ROOM_NO_MEMORY;
		rep->created = r != NULL;
	}
	if (res == ROOM_DONE && membership_add_locked(r, c) < 0)
		res = ROOM_NO_MEMORY;
	if (res != ROOM_DONE) {
		pthread_mutex_unlock(&h->lock);
		return res;
	}
	c->room.current = r;
	publish_join_locked(h, r, c);
	if (join_reply_locked(h, r, c, rep) < 0)
		res = ROOM_NO_MEMORY;
	room_unlock_and_wake(h);
	store_event(h, rep->room, HK_JOIN, c->name, "");
	if (rep->created)
		rooms_save(h, -1);
	return res;
}

enum room_result
room_part(struct hub *h, struct client *c, const char *arg, const char *reason, char *spelled)
{
	char fields[32 + REASON_TEXT_MAX];
	struct room *r;

	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, true, &r);
	if (res != ROOM_DONE) {
		pthread_mutex_unlock(&h->lock);
		return res;
	}
	snprintf(spelled, ROOM_NAME_MAX + 1, "%s", r->name);
	publish_part_locked(h, r, c, PART_LEFT, reason);
	membership_remove_locked(h, r, c);
	room_unlock_and_wake(h);
	part_fields(fields, sizeof(fields), PART_LEFT, reason);
	store_event(h, spelled, HK_PART, c->name, fields);
	return ROOM_DONE;
}

enum room_result
room_switch(struct hub *h, struct client *c, const char *arg, char *spelled)
{
	struct room *r;

	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, true, &r);
	if (res == ROOM_DONE) {
		c->room.current = r;
		snprintf(spelled, ROOM_NAME_MAX + 1, "%s", r->name);
	}
	pthread_mutex_unlock(&h->lock);
	return res;
}

static enum room_result
room_name_of(struct hub *h, struct client *c, const char *arg, bool member, char *spelled,
	     uint64_t *first)
{
	struct room *r;

	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, member, &r);
	if (res == ROOM_DONE) {
		snprintf(spelled, ROOM_NAME_MAX + 1, "%s", r->name);
		if (first != NULL)
			*first = r->first_id;
	}
	pthread_mutex_unlock(&h->lock);
	return res;
}

enum room_result
room_target(struct hub *h, struct client *c, const char *arg, char *spelled)
{
	return room_name_of(h, c, arg, true, spelled, NULL);
}

enum room_result
room_resolve(struct hub *h, struct client *c, const char *arg, char *spelled, uint64_t *first)
{
	return room_name_of(h, c, arg, false, spelled, first);
}

enum room_result
room_topic_line(struct hub *h, struct client *c, const char *arg, struct line **topic)
{
	struct room *r;

	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, false, &r);
	if (res == ROOM_DONE && (*topic = topic_line_locked(h, r, c->wire)) == NULL)
		res = ROOM_NO_MEMORY;
	pthread_mutex_unlock(&h->lock);
	return res;
}

/*
 * Sets r's topic and shows it to every member; the setter (NULL: the
 * operator) gets it in *shown instead, for its reply.
 */
static void
topic_set_locked(struct hub *h, struct room *r, const char *by, const char *text,
		 struct client *setter, struct line **shown)
{
	struct wire_event ev;

	snprintf(r->topic, sizeof(r->topic), "%s", text);
	snprintf(r->topic_by, sizeof(r->topic_by), "%s", by);
	r->topic_ms = time_now_ms();
	h->rooms_dirty = true;
	ev = topic_event(r);
	if (setter != NULL)
		*shown = topic_line_locked(h, r, setter->wire);
	ring_push_event_locked(h, r, &ev, setter ? setter->id : 0);
}

enum room_result
room_topic_set(struct hub *h, struct client *c, const char *arg, const char *text, char *spelled,
	       struct line **topic)
{
	struct room *r;

	if (strlen(text) > topic_limit())
		return ROOM_TOPIC_LONG;
	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, true, &r);
	if (res != ROOM_DONE) {
		pthread_mutex_unlock(&h->lock);
		return res;
	}
	snprintf(spelled, ROOM_NAME_MAX + 1, "%s", r->name);
	topic_set_locked(h, r, c->name, text, c, topic);
	room_unlock_and_wake(h);
	store_event(h, spelled, HK_TOPIC, c->name, text);
	rooms_save(h, -1);
	return ROOM_DONE;
}

enum room_result
room_users_line(struct hub *h, struct client *c, const char *arg, unsigned page,
		struct line **users)
{
	struct room *r;

	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, false, &r);
	if (res == ROOM_DONE && (*users = users_line_locked(h, r, c->wire, page, true)) == NULL)
		res = ROOM_NO_MEMORY;
	pthread_mutex_unlock(&h->lock);
	return res;
}

struct line *
room_list(struct hub *h, struct client *c, unsigned page, size_t *pages, size_t *rooms)
{
	struct wire_room v[ROOMS_PAGE];
	size_t first, last;
	struct line *l;

	pthread_mutex_lock(&h->lock);
	*rooms = h->n_rooms;
	*pages = (h->n_rooms + ROOMS_PAGE - 1) / ROOMS_PAGE;
	first = page >= 1 ? (size_t)(page - 1) * ROOMS_PAGE : h->n_rooms;
	last = first + ROOMS_PAGE;
	if (first > h->n_rooms)
		first = h->n_rooms;
	if (last > h->n_rooms)
		last = h->n_rooms;
	for (size_t i = first; i < last; i++) {
		const struct room *r = h->rooms[i];

		v[i - first] = (struct wire_room){ .name = r->name,
						   .members = r->n_members,
						   .topic = r->topic };
	}
	l = h->formats[c->wire]->rooms(v, last - first);
	pthread_mutex_unlock(&h->lock);
	return l;
}

/* ---- connections ---- */

void
room_attach(struct hub *h, struct client *c)
{
	pthread_mutex_lock(&h->lock);
	outq_init(&c->room.inbox);
	c->room.prev = NULL;
	c->room.next = h->conns;
	if (h->conns)
		h->conns->room.prev = c;
	h->conns = c;
	h->n_conns++;
	pthread_mutex_unlock(&h->lock);
}

void
room_detach(struct hub *h, struct client *c)
{
	pthread_mutex_lock(&h->lock);
	/* In rooms still only at shutdown, which spares the survivors the notices. */
	while (c->room.n_rooms > 0)
		membership_remove_locked(h, c->room.rooms[0].room, c);
	offline_locked(h, c);
	sleeper_remove_locked(h, c);
	for (struct client **pp = &h->targets; c->room.targeted && *pp;
	     pp = &(*pp)->room.target_next)
		if (*pp == c) {
			*pp = c->room.target_next;
			c->room.targeted = false;
		}
	if (c->room.prev)
		c->room.prev->room.next = c->room.next;
	else
		h->conns = c->room.next;
	if (c->room.next)
		c->room.next->room.prev = c->room.prev;
	outq_free(&c->room.inbox);
	free(c->room.rooms);
	c->room.rooms = NULL;
	c->room.cap_rooms = 0;
	if (--h->n_conns == 0)
		pthread_cond_broadcast(&h->empty);
	pthread_mutex_unlock(&h->lock);
}

size_t
room_connections(struct hub *h)
{
	pthread_mutex_lock(&h->lock);
	size_t n = h->n_conns;
	pthread_mutex_unlock(&h->lock);
	return n;
}

bool
room_closing(struct hub *h)
{
	pthread_mutex_lock(&h->lock);
	bool closing = h->closing;
	pthread_mutex_unlock(&h->lock);
	return closing;
}

bool
room_wait_empty(struct hub *h, int64_t deadline_mono_ms)
{
	struct timespec ts;

	/* The condition variable runs on CLOCK_REALTIME; convert the deadline. */
	int64_t wall = time_now_ms() + (deadline_mono_ms - time_mono_ms());
	ts.tv_sec = wall / 1000;
	ts.tv_nsec = (wall % 1000) * 1000000;
	pthread_mutex_lock(&h->lock);
	while (h->n_conns > 0)
		if (pthread_cond_timedwait(&h->empty, &h->lock, &ts) == ETIMEDOUT)
			break;
	bool empty = h->n_conns == 0;
	pthread_mutex_unlock(&h->lock);
	return empty;
}

void
room_shutdown(struct hub *h)
{
	pthread_mutex_lock(&h->lock);
	h->closing = true;
	for (struct client *c = h->conns; c != NULL; c = c->room.next)
		target_add_locked(h, c);
	room_unlock_and_wake(h);
}

/* ---- publication of stored messages ---- */

/* The session that sent entry e, if it is online still. */
static struct client *
sender_locked(struct hub *h, const struct history_entry *e)
{
	char name[NAME_MAX_LEN + 1];

	if (e->sender == 0)
		return NULL;
	if (!e->failed && e->name_len <= NAME_MAX_LEN) {
		memcpy(name, e->body->data + e->name_off, e->name_len);
		name[e->name_len] = '\0';
		struct client *c = online_find_locked(h, name);
		return c != NULL && c->id == e->sender ? c : NULL;
	}
	for (size_t i = 0; i < h->n_online; i++) /* a failed entry has no name: rare */
		if (h->online[i]->id == e->sender)
			return h->online[i];
	return NULL;
}

/*
 * Moves what c has pending in the rings, up to publication number upto,
 * into its inbox in publication order, so that a line sent to c alone
 * next (an answer from a room it is no longer in, a PART) keeps its place
 * among its replies.  Of room gone (the one c is taken out of; NULL for
 * none) only c's own answers go.  c->unacked is its thread's: the answers
 * are counted in inbox_acks.  Nothing moves for a c already overrun in a
 * ring: it is dropped for overflow at its next turn.
 */
static void
inbox_catch_up_locked(const struct hub *h, struct client *c, uint64_t upto, const struct room *gone)
{
	struct membership *m;

	if (ring_overflowed(c))
		return;
	while ((m = next_pending(c)) != NULL && slot_at(m)->seq <= upto) {
		const struct ring_slot *s = slot_at(m);
		struct piece p[SLOT_PIECES];
		unsigned answered = 0;
		size_t n = m->room != gone || s->sender == c->id
				   ? slot_pieces(h, c, s, p, &answered)
				   : 0;

		for (size_t i = 0; i < n; i++)
			if (piece_queue(&c->room.inbox, &p[i], 0) < 0)
				c->room.out_lost = true;
		c->room.inbox_acks += answered;
		m->cursor++;
	}
}

/*
 * The answer to a message whose sender is no longer in its room (taken out
 * by an operator, or the room deleted, after it was sent): through the
 * sender's inbox, so its count of unanswered messages still comes down,
 * after what was published before it in c's other rooms.
 */
static void
ack_elsewhere_locked(struct hub *h, struct client *c, const struct history_entry *e)
{
	const struct wire_format *f = h->formats[c->wire];
	struct line *l = e->failed ? line_printf("%s", f->not_stored)
				   : line_printf("%s%.*s%s", f->ack_head, (int)e->time_off,
						 e->body->data, f->ack_tail);

	inbox_catch_up_locked(h, c, h->seq, NULL);
	if (l == NULL || outq_push_line(&c->room.inbox, l) < 0)
		c->room.out_lost = true;
	c->room.inbox_acks++;
	target_add_locked(h, c);
}

/*
 * The room a message goes to (NULL: deleted meanwhile), and in *elsewhere
 * its sender when the answer cannot come through that room (the sender
 * was taken out of it, or it is gone).  last caches the previous entry's
 * room: a batch is mostly one room.
 */
static struct room *
dest_locked(struct hub *h, const struct history_entry *e, struct room **last,
	    struct client **elsewhere)
{
	struct room *r = *last;
	struct client *c;

	*elsewhere = NULL;
	if (r == NULL || name_cmp(r->name, e->room) != 0)
		r = *last = room_find_locked(h, e->room);
	if (r != NULL && r->stale)
		r = NULL; /* the message is a deleted namesake's */
	if (e->sender != 0 && (c = sender_locked(h, e)) != NULL &&
	    (r == NULL || membership_find(c, r) == NULL))
		*elsewhere = c;
	return r;
}

/* Grows each room of the piece for the slots it is about to take. */
static void
reserve_piece_locked(struct hub *h, const struct history_entry *e, size_t n)
{
	struct room *touched = NULL, *last = NULL, *r;
	struct client *elsewhere;

	for (size_t i = 0; i < n; i++) {
		if (e[i].kind != HK_MSG || (r = dest_locked(h, &e[i], &last, &elsewhere)) == NULL)
			continue; /* one for its room, if any: a stored message reaches its members */
		if (r->piece_slots++ == 0) {
			r->touched_next = touched;
			touched = r;
		}
	}
	for (r = touched; r != NULL; r = r->touched_next) {
		ring_reserve_locked(r, r->piece_slots);
		r->piece_slots = 0;
	}
}

/*
 * A batch goes into the rings in pieces the rings and a member's send
 * queue can hold, each written through to the idle members before the
 * next: one batch longer than a ring would put every member behind at
 * once, the sender, idle members and fast readers alike.  The history
 * backlog is held to one piece (client.c), so a batch is one piece but
 * for the one message each member may always have in flight.  Records
 * other than messages are not shown: the hub sent them live.
 */
void
room_publish_history(void *ctx, const struct history_entry *e, size_t n)
{
	struct hub *h = ctx;

	while (n > 0) {
		size_t piece = publish_piece(h, e, n), k = 0;
		struct room *last = NULL, *r;
		struct batch batch;
		struct client *elsewhere;

		batch_make(h, e, piece, &batch); /* before the lock is taken; may fail (msg_slot) */
		pthread_mutex_lock(&h->lock);
		if (fault_active(FAULT_ROOM_HANG))
			fault_hang();
		reserve_piece_locked(h, e, piece);
		for (size_t i = 0; i < piece; i++) {
			if (!e[i].failed)
				h->last_msg_id = e[i].id;
			if (e[i].kind == HK_DELETE)
				tomb_remove(h, e[i].room);
			if (e[i].kind != HK_MSG)
				continue;
			r = dest_locked(h, &e[i], &last, &elsewhere);
			if (elsewhere != NULL)
				ack_elsewhere_locked(h, elsewhere, &e[i]);
			if (r != NULL && e[i].failed)
				ring_push_locked(h, r,
						 (struct ring_slot){ .kind = SLOT_FAILED,
								     .sender = e[i].sender });
			else if (r != NULL)
				ring_push_locked(h, r, msg_slot(h, &e[i], &batch, k));
			k += is_message(&e[i]);
		}
		room_unlock_and_cascade(h);
		batch_free(&batch);
		e += piece;
		n -= piece;
	}
}

/* ---- delivery ---- */

int
room_send_private(struct hub *h, const char *to, struct line *l)
{
	pthread_mutex_lock(&h->lock);
	struct client *c = online_find_locked(h, to);
	if (c == NULL) {
		pthread_mutex_unlock(&h->lock);
		line_unref(l);
		return -1;
	}
	int rc = outq_push_line(&c->room.inbox, l);
	target_add_locked(h, c);
	room_unlock_and_wake(h);
	return rc;
}

/* Moves every line others queued for c into its own output. */
static int
inbox_drain_locked(struct client *c)
{
	struct outq *in = &c->room.inbox;

	while (in->count > 0) {
		struct outq_item *it = &in->items[in->head];

		if (outq_push(&c->out, it->iov.iov_base, it->iov.iov_len, it->owner) < 0) {
			it->owner = NULL; /* outq_push released it */
			return -1;
		}
		in->bytes -= it->iov.iov_len;
		in->head = (in->head + 1) % in->cap;
		in->count--;
	}
	c->unacked -= c->room.inbox_acks;
	c->room.inbox_acks = 0;
	return 0;
}

/*
 * Overflow: what waits for c's socket passed its send queue limit.  Its
 * own messages in the rings do not count: they only come back to it as a
 * short OK.
 */
static bool
queue_overflowed(const struct client *c, int64_t limit)
{
	return c->out.bytes + c->room.inbox.bytes > (uint64_t)limit;
}

int
room_collect(struct hub *h, struct client *c, int64_t limit, enum part_reason *why, char *text,
	     size_t textlen)
{
	struct membership *m;
	bool over;

	pthread_mutex_lock(&h->lock);
	if (c->room.evicted) {
		*why = c->room.evict_reason;
		snprintf(text, textlen, "%s", c->room.evict_text);
		goto leave;
	}
	if (c->room.out_lost || inbox_drain_locked(c) < 0)
		goto nomem;
	over = ring_overflowed(c);
	/* At shutdown, everything said before it goes out ahead of BYE. */
	for (unsigned i = 0; !over && (i < COLLECT_BATCH || h->closing) && (m = next_pending(c));
	     i++) {
		if (deliver_slot(h, c, slot_at(m)) < 0)
			goto nomem;
		m->cursor++;
	}
	if (over || queue_overflowed(c, limit)) {
		*why = PART_OVERFLOW;
		snprintf(text, textlen, "%s", part_reason_text(PART_OVERFLOW));
		goto leave;
	}
	if (h->closing) {
		*why = PART_SHUTDOWN;
		snprintf(text, textlen, "%s", part_reason_text(PART_SHUTDOWN));
		goto leave;
	}
	bool more = next_pending(c) != NULL;
	backed_up_set_locked(h, c, queue_backed_up(c));
	room_unlock_and_cascade(h);
	return more;

nomem:
	*why = PART_OVERFLOW;
	snprintf(text, textlen, "out of memory");
leave:
	room_unlock_and_cascade(h);
	return -1;
}

bool
room_sleep(struct hub *h, struct client *c, bool write_through)
{
	pthread_mutex_lock(&h->lock);
	bool idle = !h->closing && !c->room.evicted && c->room.inbox.count == 0 &&
		    next_pending(c) == NULL;
	if (idle) {
		backed_up_set_locked(h, c, queue_backed_up(c));
		c->room.write_rights = write_through && c->room.member && outq_empty(&c->out);
		/* Still listed from a sleep that ended without a wake-up: the right list now. */
		if (c->room.sleeping && c->room.writer != c->room.write_rights)
			sleeper_remove_locked(h, c);
		sleeper_add_locked(h, c, c->room.write_rights);
	}
	pthread_mutex_unlock(&h->lock);
	return idle;
}

void
room_wake_up(struct hub *h, struct client *c)
{
	if (!c->room.write_rights) /* only c's thread changes it */
		return;
	pthread_mutex_lock(&h->lock);
	if (c->room.write_rights) {
		if (c->room.writer)
			sleeper_remove_locked(h, c);
		c->room.write_rights = false;
	}
	pthread_mutex_unlock(&h->lock);
}

/*
 * ---- for the control thread: the same, but never waiting long ----
 *
 * The control thread must stay responsive (signals, the watchdog, chatctl)
 * even when the room lock is stuck: these take the lock within timeout_ms
 * or fail with ETIMEDOUT, doing nothing.  A timeout of 0 only tries.
 */

bool
room_lock_probe(struct hub *h, int timeout_ms)
{
	if (!lock_within(h, timeout_ms))
		return false;
	pthread_mutex_unlock(&h->lock);
	return true;
}

int
room_counts_within(struct hub *h, int timeout_ms, size_t *members, size_t *conns)
{
	if (!lock_within(h, timeout_ms))
		return -1;
	*members = h->n_online;
	*conns = h->n_conns;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int
room_evict_within(struct hub *h, int timeout_ms, const char *name, enum part_reason why,
		  const char *text)
{
	if (!lock_within(h, timeout_ms))
		return -1;
	struct client *c = online_find_locked(h, name);
	if (c != NULL)
		evict_locked(h, c, why, text);
	room_unlock_and_wake(h);
	return c != NULL;
}

/* The operator's text to room, or to everyone (NULL). */
static struct wire_event
notice_event(const char *room, const char *text)
{
	return (struct wire_event){ .kind = WE_NOTICE,
				    .room = room,
				    .ms = time_now_ms(),
				    .text = text };
}

/*
 * To everyone online: once into the default room's ring (which most are
 * in, and get it written through), and to the inbox of those who left it.
 */
int
room_notice_within(struct hub *h, int timeout_ms, const char *text, size_t *members)
{
	struct wire_event ev = notice_event(NULL, text);

	if (!lock_within(h, timeout_ms))
		return -1;
	for (size_t i = 0; i < h->n_online; i++)
		if (membership_find(h->online[i], h->lobby) == NULL)
			send_alone_locked(h, h->online[i], &ev);
	ring_push_event_locked(h, h->lobby, &ev, 0);
	*members = h->n_online;
	room_unlock_and_wake(h);
	return 0;
}

/*
 * Locks the hub within timeout_ms and allocates *count + 1 zeroed items of
 * size bytes, *count read under the lock.  The lock is held on success; on
 * failure it is not, and NULL is returned with errno set.
 */
static void *
snapshot_begin(struct hub *h, int timeout_ms, const size_t *count, size_t size)
{
	void *items;

	if (!lock_within(h, timeout_ms))
		return NULL;
	items = calloc(*count + 1, size);
	if (items == NULL) {
		pthread_mutex_unlock(&h->lock);
		errno = ENOMEM;
	}
	return items;
}

int
room_members_snapshot_within(struct hub *h, int timeout_ms, struct room_member_info **out,
			     size_t *n)
{
	struct room_member_info *info = snapshot_begin(h, timeout_ms, &h->n_online, sizeof(*info));

	if (info == NULL)
		return -1;
	for (size_t i = 0; i < h->n_online; i++) {
		const struct client *c = h->online[i];

		memcpy(info[i].name, c->name, sizeof(info[i].name));
		memcpy(info[i].addr, c->addr_str, sizeof(info[i].addr));
		info[i].joined_ms = c->room.joined_ms;
	}
	*n = h->n_online;
	pthread_mutex_unlock(&h->lock);
	*out = info;
	return 0;
}

/* ---- rooms, for the control thread ---- */

int
rooms_count_within(struct hub *h, int timeout_ms, size_t *rooms)
{
	if (!lock_within(h, timeout_ms))
		return -1;
	*rooms = h->n_rooms;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int
rooms_snapshot_within(struct hub *h, int timeout_ms, struct room_info **out, size_t *n)
{
	struct room_info *info = snapshot_begin(h, timeout_ms, &h->n_rooms, sizeof(*info));

	if (info == NULL)
		return -1;
	for (size_t i = 0; i < h->n_rooms; i++) {
		const struct room *r = h->rooms[i];

		memcpy(info[i].name, r->name, sizeof(info[i].name));
		info[i].members = r->n_members;
		info[i].op_made = r->op_made;
		info[i].is_default = r->is_default;
		info[i].created_ms = r->created_ms;
		memcpy(info[i].topic, r->topic, sizeof(info[i].topic));
		info[i].topic_ms = r->topic_ms;
		memcpy(info[i].topic_by, r->topic_by, sizeof(info[i].topic_by));
	}
	*n = h->n_rooms;
	pthread_mutex_unlock(&h->lock);
	*out = info;
	return 0;
}

int
room_create_within(struct hub *h, int timeout_ms, const char *arg, const char *topic)
{
	char name[ROOM_NAME_MAX + 1];
	struct room *r;
	int rc = 1;

	if (!room_arg(arg, name)) {
		errno = EINVAL;
		return -1;
	}
	if (topic != NULL && strlen(topic) > topic_limit()) {
		errno = EMSGSIZE;
		return -1;
	}
	if (!lock_within(h, timeout_ms))
		return -1;
	if (room_find_locked(h, name) != NULL)
		rc = 0;
	else if (h->n_rooms >= (size_t)settings_get()->max_rooms) {
		errno = ENOSPC;
		rc = -1;
	} else if ((r = room_make_locked(h, name, true)) == NULL) {
		errno = ENOMEM;
		rc = -1;
	} else if (topic != NULL && *topic != '\0')
		topic_set_locked(h, r, OPERATOR_NAME, topic, NULL, NULL);
	room_unlock_and_wake(h);
	if (rc == 1 && topic != NULL && *topic != '\0')
		store_event(h, name, HK_TOPIC, OPERATOR_NAME, topic);
	rooms_save(h, timeout_ms);
	return rc;
}

/*
 * c is taken out of r by someone else (a kick, a deletion): what it had
 * not delivered from r goes with the membership, but the answers to its
 * own messages among it must not, or its count of unanswered messages
 * never comes down.  They go to its inbox, ahead of the PART, with what it
 * has pending in its other rooms from before them, so its replies keep
 * the order of its requests.
 */
static void
salvage_answers_locked(struct hub *h, struct client *c, struct room *r)
{
	struct membership *m = membership_find(c, r);

	if (m == NULL)
		return;
	if (m->cursor != r->head)
		inbox_catch_up_locked(h, c, r->ring[(r->head - 1) & (r->ring_cap - 1)].seq, r);
	m->cursor = r->head;
	target_add_locked(h, c);
}

/*
 * Deletes r: each member gets PART ROOM .. deleted (through its inbox, as
 * the ring goes with the room) and is put in the default room if not
 * there; the default room becomes current for those whose current room
 * it was.
 */
static void
room_delete_locked(struct hub *h, struct room *r)
{
	bool found;
	size_t i = room_search_locked(h, r->name, &found);

	while (r->n_members > 0) {
		struct client *c = r->members[r->n_members - 1];
		bool was_current = c->room.current == r;
		struct wire_event ev = room_event(r, WE_PART, c->name);

		ev.reason = part_reason_name(PART_DELETED);
		ev.text = part_reason_text(PART_DELETED);
		salvage_answers_locked(h, c, r);
		send_alone_locked(h, c, &ev);
		membership_remove_locked(h, r, c);
		if (membership_find(c, h->lobby) == NULL && membership_add_locked(h->lobby, c) == 0)
			publish_join_locked(h, h->lobby, c);
		if (was_current || c->room.current == NULL)
			c->room.current = membership_find(c, h->lobby) ? h->lobby : c->room.current;
	}
	dirty_remove_locked(h, r);
	tomb_add(h, r->name);
	if (found && h->rooms[i] == r) {
		memmove(&h->rooms[i], &h->rooms[i + 1], (h->n_rooms - i - 1) * sizeof(*h->rooms));
		h->n_rooms--;
	}
	room_free_one(r);
	h->rooms_dirty = true;
}

int
room_delete_within(struct hub *h, int timeout_ms, const char *arg)
{
	char name[ROOM_NAME_MAX + 1];
	struct room *r;

	if (!room_arg(arg, name))
		return 0;
	if (!lock_within(h, timeout_ms))
		return -1;
	if ((r = room_find_locked(h, name)) == NULL || r->is_default) {
		pthread_mutex_unlock(&h->lock);
		if (r == NULL)
			return 0;
		errno = EPERM;
		return -1;
	}
	snprintf(name, sizeof(name), "%s", r->name);
	room_delete_locked(h, r);
	room_unlock_and_wake(h);
	if (h->history != NULL)
		history_drop_room(h->history, name);
	rooms_save(h, timeout_ms);
	return 1;
}

int
room_topic_within(struct hub *h, int timeout_ms, const char *arg, const char *topic)
{
	char name[ROOM_NAME_MAX + 1];
	struct room *r;

	if (!room_arg(arg, name))
		return 0;
	if (strlen(topic) > topic_limit()) {
		errno = EMSGSIZE;
		return -1;
	}
	if (!lock_within(h, timeout_ms))
		return -1;
	if ((r = room_find_locked(h, name)) == NULL) {
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	snprintf(name, sizeof(name), "%s", r->name);
	topic_set_locked(h, r, OPERATOR_NAME, topic, NULL, NULL);
	room_unlock_and_wake(h);
	store_event(h, name, HK_TOPIC, OPERATOR_NAME, topic);
	rooms_save(h, timeout_ms);
	return 1;
}

int
room_kick_within(struct hub *h, int timeout_ms, const char *arg, const char *user,
		 const char *reason)
{
	char name[ROOM_NAME_MAX + 1], fields[32 + REASON_TEXT_MAX], who[NAME_MAX_LEN + 1];
	struct client *c = NULL;
	struct room *r;
	bool found;

	if (!room_arg(arg, name))
		return 0;
	if (!lock_within(h, timeout_ms))
		return -1;
	if ((r = room_find_locked(h, name)) != NULL) {
		size_t i = client_search(r->members, r->n_members, user, &found);
		c = found ? r->members[i] : NULL;
	}
	if (c == NULL) {
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	snprintf(name, sizeof(name), "%s", r->name);
	snprintf(who, sizeof(who), "%s", c->name);
	/* Still online: the server-wide kick's default text would say otherwise. */
	part_fields(fields, sizeof(fields), PART_KICKED,
		    reason && *reason ? reason : "taken out of the room by the operator");
	struct wire_event ev = room_event(r, WE_PART, c->name);
	ev.reason = part_reason_name(PART_KICKED);
	ev.text = fields + strlen(ev.reason) + 1;
	salvage_answers_locked(h, c, r);
	send_alone_locked(h, c, &ev);
	if (notices_wanted(r))
		ring_push_event_locked(h, r, &ev, c->id);
	membership_remove_locked(h, r, c);
	room_unlock_and_wake(h);
	store_event(h, name, HK_PART, who, fields);
	return 1;
}

int
room_notice_room_within(struct hub *h, int timeout_ms, const char *arg, const char *text,
			size_t *members)
{
	char name[ROOM_NAME_MAX + 1];
	struct room *r;

	if (!room_arg(arg, name))
		return 0;
	if (!lock_within(h, timeout_ms))
		return -1;
	if ((r = room_find_locked(h, name)) == NULL) {
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	struct wire_event ev = notice_event(r->name, text);
	ring_push_event_locked(h, r, &ev, 0);
	*members = r->n_members;
	room_unlock_and_wake(h);
	return 1;
}

static bool
expired(const struct room *r, int64_t now, int expiry_s)
{
	return !r->op_made && !r->is_default && r->n_members == 0 && expiry_s > 0 &&
	       now - r->empty_since_ms >= (int64_t)expiry_s * 1000;
}

int
room_expire_within(struct hub *h, int timeout_ms)
{
	int expiry = settings_get()->room_expiry;
	int64_t now = time_now_ms();
	char(*names)[ROOM_NAME_MAX + 1] = NULL;
	size_t n = 0;

	if (!lock_within(h, timeout_ms))
		return -1;
	for (size_t i = h->n_rooms; i-- > 0;) {
		struct room *r = h->rooms[i];

		if (!expired(r, now, expiry))
			continue;
		char(*nn)[ROOM_NAME_MAX + 1] = realloc(names, (n + 1) * sizeof(*names));
		if (nn == NULL)
			break;
		names = nn;
		snprintf(names[n++], sizeof(*names), "%s", r->name);
		room_delete_locked(h, r);
	}
	pthread_mutex_unlock(&h->lock);
	for (size_t i = 0; i < n; i++) {
		log_info("room %s expired (empty for %d s)", names[i], expiry);
		if (h->history != NULL)
			history_drop_room(h->history, names[i]);
	}
	free(names);
	if (n > 0)
		rooms_save(h, timeout_ms);
	return (int)n;
}
