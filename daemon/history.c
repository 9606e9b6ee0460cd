/*
 * history.c - the id sequence, the queue of appends and its group commit
 * (the commit thread), publication, each room's newest records kept in
 * memory, the deletions whose record could not be stored, appended
 * again before the next record, and the rooms deleted lately, whose late
 * events and messages are left out (history.h).  Where the records are stored is a backend's
 * business (histstore.h; histfile.c: the history file).
 *
 * In durable mode (history_sync_ms == 0) the commit thread hands each
 * batch to the store and syncs it, then publishes it; a failed write or
 * sync takes back what is not durable and refuses it.  In relaxed mode a
 * sender stores its record itself, under the lock (so the store gets
 * records in id order), and it is published at once; the commit thread
 * syncs every history_sync_ms.  The commit thread also asks the store to
 * compact, giving it the rooms' memory to keep.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "fault.h"
#include "histstore.h"
#include "history.h"
#include "log.h"
#include "names.h"
#include "siphash.h"
#include "timefmt.h"

#define DEFAULT_ROOM "lobby"
#define KIND_MAX_LEN 6                /* "delete" */
#define ID_MAX_DIGITS 19              /* the longest id the file reads back */
#define ID_MAX 9999999999999999999ULL /* the largest id of ID_MAX_DIGITS */
#define SLOW_SYNC_MS 100              /* a sync this long is worth a warning */
/*
 * How long a deletion is remembered for the late events and messages of
 * its room (history_append_event, history_append_live): far longer than
 * an event takes from the room lock to its append, as long as the hub keeps a deleted room's tomb.
 */
#define DROP_NOTE_MS 30000

struct entry_vec {
	struct history_entry *e;
	size_t n, cap;
};

/*
 * A record held in memory: an entry without its sender and room (the
 * ring's).  While the store loads, body is not made yet: src points at
 * the record's bytes, which the store keeps until it is done.
 */
struct held {
	uint64_t id;
	union {
		struct line *body;
		const char *src; /* loading only */
	};
	uint16_t time_off, room_off, room_len, name_off, name_len;
	uint8_t kind;
	bool guest;
	uint32_t text_off, text_len;
};

/*
 * One room's newest records, oldest first from head; ids strictly
 * increase.  cap grows (doubling) as records come, up to the history's
 * memory: a quiet room holds a few.  Chained in the table's bucket.
 */
struct ring {
	struct ring *next;
	char key[ROOM_NAME_MAX + 1]; /* the room's name in lower case */
	struct held *e;
	size_t cap, head, n;
};

/* The rooms' rings by case-folded name: a chained hash table under a secret key. */
struct ring_table {
	struct ring **bucket;
	size_t buckets; /* a power of two */
	size_t rooms;
	size_t held; /* records in all rings */
	unsigned char key[SIPHASH_KEY_LEN];
};

struct history {
	char *path; /* for the log */
	/*
	 * The default room as chatd.conf spells it now, and its key; "" when
	 * not given.  Its records read back in this spelling (load_done).
	 */
	char default_room[ROOM_NAME_MAX + 1], default_key[ROOM_NAME_MAX + 1];
	struct histstore *store;
	size_t memory;
	int sync_ms;
	history_publish_fn publish;
	void *ctx;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the commit thread waits here */
	bool stopping;
	bool publishing; /* a thread is in the publish callback */

	uint64_t next_id;
	uint64_t last_id;       /* the newest id published as stored */
	struct entry_vec queue; /* appended, waiting for the next sync (relaxed: to be published) */
	/*
	 * Messages appended and not yet handed to the publish callback (queue
	 * and batch), and the bytes of their bodies: the backlog a burst
	 * piles up.  Written under the lock, read without it (history_backlog).
	 */
	atomic_size_t backlog_msgs, backlog_bytes;
	struct entry_vec batch; /* being synced or published */
	struct ring_table rings;

	/*
	 * Rooms whose deletion record could not be stored: without it their
	 * older records would count again after a restart, so it is appended
	 * once more before the next record (and at close).
	 */
	struct {
		char (*room)[ROOM_NAME_MAX + 1];
		size_t n, cap;
	} undropped;

	/*
	 * The rooms deleted lately, by key, with the caller's number of the
	 * deletion (history_drop_room): an event of a room made before it
	 * that comes after it belongs to the room that is gone and is not
	 * stored (history_append_event).  Kept DROP_NOTE_MS.
	 */
	struct drop_note {
		char key[ROOM_NAME_MAX + 1];
		uint64_t drop;
		int64_t until_ms; /* monotonic */
	} * drops;
	size_t n_drops, cap_drops;

	struct log_gate io_warnings;   /* failed writes and syncs */
	struct log_gate slow_warnings; /* slow syncs */
	int64_t slow_longest_ms;       /* of the slow syncs held back */

	uint64_t appended, failed;
};

/* Lock held: only the writers of the counters hold it, so load and store do not race. */
static void
backlog_add(atomic_size_t *v, size_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void
backlog_sub(atomic_size_t *v, size_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) - n,
			      memory_order_relaxed);
}

/* --- the rooms' memory --- */

#define RING_MIN_CAP 4
#define TABLE_MIN_BUCKETS 64

static int
table_init(struct ring_table *t)
{
	size_t got = 0;

	while (got < sizeof(t->key)) {
		ssize_t n = getrandom(t->key + got, sizeof(t->key) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* no random source: collisions can be chosen, nothing worse */
			uint64_t mix[2] = { (uint64_t)time_now_ms(), (uint64_t)(uintptr_t)t };

			memcpy(t->key, mix, sizeof(t->key));
			break;
		}
		got += (size_t)n;
	}
	t->buckets = TABLE_MIN_BUCKETS;
	t->bucket = calloc(t->buckets, sizeof(*t->bucket));
	return t->bucket ? 0 : -1;
}

static struct ring **
table_slot(const struct ring_table *t, const char *key)
{
	return &t->bucket[siphash24(t->key, key, strlen(key)) & (t->buckets - 1)];
}

/* The ring of the room whose folded name is key, or NULL. */
static struct ring *
table_find(const struct ring_table *t, const char *key)
{
	struct ring *r = *table_slot(t, key);

	while (r && strcmp(r->key, key) != 0)
		r = r->next;
	return r;
}

/* Doubles the buckets once there are more rooms than buckets (if memory allows). */
static void
table_grow(struct ring_table *t)
{
	size_t old = t->buckets;
	struct ring **b = calloc(2 * old, sizeof(*b)), **prev = t->bucket;

	if (!b)
		return;
	t->bucket = b;
	t->buckets = 2 * old;
	for (size_t i = 0; i < old; i++)
		for (struct ring *r = prev[i], *next; r; r = next) {
			struct ring **slot = table_slot(t, r->key);

			next = r->next;
			r->next = *slot;
			*slot = r;
		}
	free(prev);
}

/* The ring of the room whose folded name is key, made (empty) if missing; NULL without memory. */
static struct ring *
table_get(struct ring_table *t, const char *key)
{
	struct ring *r = table_find(t, key), **slot;

	if (r)
		return r;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	memcpy(r->key, key, strlen(key) + 1);
	if (t->rooms >= t->buckets)
		table_grow(t);
	slot = table_slot(t, key);
	r->next = *slot;
	*slot = r;
	t->rooms++;
	return r;
}

static struct held *
ring_at(const struct ring *r, size_t i)
{
	return &r->e[(r->head + i) % r->cap];
}

/* Frees the ring and the references it holds (none while loading). */
static void
ring_free(struct ring *r, bool loading)
{
	for (size_t i = 0; i < r->n && !loading; i++)
		line_unref(ring_at(r, i)->body);
	free(r->e);
	free(r);
}

/* Takes the ring of the folded key out of the table and frees it. */
static void
table_drop(struct ring_table *t, const char *key, bool loading)
{
	struct ring **p = table_slot(t, key);

	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	if (!*p)
		return;
	struct ring *r = *p;

	*p = r->next;
	t->rooms--;
	t->held -= r->n;
	ring_free(r, loading);
}

static void
table_free(struct ring_table *t, bool loading)
{
	for (size_t i = 0; i < t->buckets && t->bucket; i++)
		for (struct ring *r = t->bucket[i], *next; r; r = next) {
			next = r->next;
			ring_free(r, loading);
		}
	free(t->bucket);
	t->bucket = NULL;
	t->rooms = t->held = 0;
}

/* Room for one more record: the ring grows up to memory (false without memory). */
static bool
ring_make_room(struct ring *r, size_t memory)
{
	size_t cap;
	struct held *e;

	if (r->n < r->cap || r->cap >= memory)
		return true;
	cap = r->cap ? 2 * r->cap : RING_MIN_CAP;
	if (cap > memory)
		cap = memory;
	e = malloc(cap * sizeof(*e));
	if (!e)
		return false;
	for (size_t i = 0; i < r->n; i++)
		e[i] = *ring_at(r, i);
	free(r->e);
	r->e = e;
	r->cap = cap;
	r->head = 0;
	return true;
}

/*
 * The slot for a new newest record of r, the oldest falling out when the
 * ring is full at memory (*evicted then: its body is the caller's to
 * release), or full and without memory to grow: then the ring keeps its
 * size, so the newest records stay whole, with no hole a replay would
 * skip over.  NULL only for a ring without any memory yet.
 */
static struct held *
ring_next(struct ring_table *t, struct ring *r, size_t memory, bool *evicted)
{
	struct held *slot;

	if (!ring_make_room(r, memory) && r->cap == 0)
		return NULL;
	*evicted = r->n == r->cap;
	if (!*evicted) {
		t->held++;
		return ring_at(r, r->n++);
	}
	slot = ring_at(r, 0);
	r->head = (r->head + 1) % r->cap;
	return slot;
}

static struct held
held_of(const struct history_entry *e)
{
	return (struct held){ .id = e->id,
			      .time_off = e->time_off,
			      .room_off = e->room_off,
			      .room_len = e->room_len,
			      .name_off = e->name_off,
			      .name_len = e->name_len,
			      .kind = (uint8_t)e->kind,
			      .guest = e->guest,
			      .text_off = e->text_off,
			      .text_len = e->text_len };
}

/* The entry for a held record, with a reference of its own on the body. */
static struct history_entry
entry_of(const struct held *k)
{
	struct history_entry e = { .id = k->id,
				   .kind = (enum history_kind)k->kind,
				   .guest = k->guest,
				   .body = line_ref(k->body),
				   .time_off = k->time_off,
				   .room_off = k->room_off,
				   .room_len = k->room_len,
				   .name_off = k->name_off,
				   .name_len = k->name_len,
				   .text_off = k->text_off,
				   .text_len = k->text_len };

	memcpy(e.room, k->body->data + k->room_off, k->room_len);
	e.room[k->room_len] = '\0';
	return e;
}

/*
 * A stored record into its room's memory (lock held); a deletion frees the
 * room's memory instead, stored or not: the room is gone either way.
 */
static void
remember(struct history *h, const struct history_entry *e)
{
	char key[ROOM_NAME_MAX + 1];
	struct ring *r;
	struct held *slot;
	bool evicted;

	histstore_room_key(e->room, strlen(e->room), key);
	if (e->kind == HK_DELETE) {
		table_drop(&h->rings, key, false);
		return;
	}
	if (e->failed)
		return;
	r = table_get(&h->rings, key);
	slot = r ? ring_next(&h->rings, r, h->memory, &evicted) : NULL;
	if (!slot) {
		log_warning("%s: out of memory, record %" PRIu64 " of room %s not kept in memory",
			    h->path, e->id, e->room);
		return;
	}
	if (evicted)
		line_unref(slot->body);
	*slot = held_of(e);
	slot->body = line_ref(e->body);
}

/* How many records in the ring have an id <= id. */
static size_t
ring_rank(const struct ring *r, uint64_t id)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ring_at(r, mid)->id <= id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Moves the stored entries of v into their rooms' memory, then hands v to the
 * publish callback with the history lock dropped (called and returns with
 * it held), and empties v.  The room writes a batch to a thousand members
 * in milliseconds: meanwhile senders go on appending.  The ring comes
 * first, so a member who joins meanwhile finds in it every message up to
 * the room's last id, and the room delivers the rest: nothing is missed or
 * seen twice.  Only one thread publishes at a time (the commit thread, or
 * in relaxed mode whichever sender finds nobody publishing), which keeps
 * the order; v is that thread's own while the lock is dropped.
 */
static void
publish_entries(struct history *h, struct entry_vec *v)
{
	struct history_entry *e = v->e;
	size_t n = v->n;

	if (n == 0)
		return;
	/*
	 * Out of the backlog before the room sees them: a sender held back by
	 * it (client.c) is woken by this publication and must find it smaller.
	 */
	backlog_sub(&h->backlog_msgs, n);
	for (size_t i = 0; i < n; i++) {
		if (e[i].failed) {
			h->failed++;
			remember(h, &e[i]); /* a deletion still frees the memory */
			continue;
		}
		backlog_sub(&h->backlog_bytes, e[i].body->len);
		h->appended++;
		h->last_id = e[i].id;
		remember(h, &e[i]);
	}
	h->publishing = true;
	pthread_mutex_unlock(&h->lock);
	h->publish(h->ctx, e, n);
	pthread_mutex_lock(&h->lock);
	h->publishing = false;
	for (size_t i = 0; i < n; i++) {
		line_unref(e[i].body);
		line_unref(e[i].live.label);
		line_unref(e[i].live.tags);
		e[i].live = (struct history_live){ 0 };
	}
	v->n = 0;
}

/* Takes the queue and publishes it; lock held.  Others may queue meanwhile. */
static void
publish_queued(struct history *h)
{
	struct entry_vec taken = h->queue;

	h->queue = h->batch;
	h->batch = taken;
	publish_entries(h, &h->batch);
}

/* Lock held: the deletion of room was refused; it is stored again (append_undropped). */
static void
note_undropped(struct history *h, const char *room)
{
	for (size_t i = 0; i < h->undropped.n; i++)
		if (name_cmp(h->undropped.room[i], room) == 0)
			return;
	if (h->undropped.n == h->undropped.cap) {
		size_t cap = h->undropped.cap ? 2 * h->undropped.cap : 4;
		char(*r)[ROOM_NAME_MAX + 1] = realloc(h->undropped.room, cap * sizeof(*r));

		if (r == NULL) {
			log_error("%s: out of memory: the deletion of room %s was not stored, and "
				  "its old records will come back at the next start",
				  h->path, room);
			return;
		}
		h->undropped.room = r;
		h->undropped.cap = cap;
	}
	snprintf(h->undropped.room[h->undropped.n++], ROOM_NAME_MAX + 1, "%s", room);
}

/* Lock held; e is in the backlog (queued or in the batch): it becomes a failed entry (ERR 507). */
static void
fail_entry(struct history *h, struct history_entry *e)
{
	if (e->kind == HK_DELETE)
		note_undropped(h, e->room);
	if (e->body)
		backlog_sub(&h->backlog_bytes, e->body->len);
	line_unref(e->body);
	e->body = NULL;
	e->id = 0;
	e->failed = true;
	e->time_off = e->room_off = e->room_len = e->name_off = e->name_len = 0;
	e->text_off = e->text_len = 0;
}

static void
fail_entries(struct history *h, struct entry_vec *v)
{
	for (size_t i = 0; i < v->n; i++)
		fail_entry(h, &v->e[i]);
}

/* Reserved before writing, so a message that was written is always queued. */
static bool
vec_reserve(struct entry_vec *v)
{
	size_t cap;
	struct history_entry *e;

	if (v->n < v->cap)
		return true;
	cap = v->cap ? 2 * v->cap : 64;
	e = realloc(v->e, cap * sizeof(*e));
	if (!e)
		return false;
	v->e = e;
	v->cap = cap;
	return true;
}

static const char *const kind_names[] = {
	[HK_MSG] = "msg",       [HK_JOIN] = "join",     [HK_PART] = "part", [HK_TOPIC] = "topic",
	[HK_DELETE] = "delete", [HK_NOTICE] = "notice", [HK_QUIT] = "quit",
};

const char *
history_kind_name(enum history_kind kind)
{
	return (unsigned)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "?";
}

/*
 * The record "ID TIME ROOM KIND NAME[ TEXT]\n" for e (id, kind, room and
 * guest set: then NAME is HISTSTORE_GUEST_MARK and the name), its fields
 * noted, name_off past the mark.
 */
static struct line *
format_body(struct history_entry *e, const char *name, const char *text, size_t text_len)
{
	char ts[TIME_RFC3339_LEN + 1];
	char head[ID_MAX_DIGITS + 1 + TIME_RFC3339_LEN + 1 + ROOM_NAME_MAX + 1 + KIND_MAX_LEN + 1 +
		  1 + NAME_MAX_LEN + 2];
	const char *kind = history_kind_name(e->kind);
	const char mark[2] = { HISTSTORE_GUEST_MARK, '\0' };
	size_t room_len = strlen(e->room), name_len = strlen(name), len;
	struct line *l;
	int n;

	time_format_ms(ts, time_now_ms());
	n = snprintf(head, sizeof(head), "%" PRIu64 " %s %s %s %s%s%s", e->id, ts, e->room, kind,
		     e->guest ? mark : "", name, text_len ? " " : "");
	if (n < 0 || (size_t)n >= sizeof(head) || text_len > UINT32_MAX - sizeof(head)) {
		errno = EINVAL;
		return NULL;
	}
	len = (size_t)n + text_len + 1;
	l = line_new(len);
	if (!l)
		return NULL;
	memcpy(l->data, head, (size_t)n);
	memcpy(l->data + n, text, text_len);
	l->data[len - 1] = '\n';
	e->time_off = (uint16_t)(strchr(head, ' ') - head + 1);
	e->room_off = (uint16_t)(e->time_off + TIME_RFC3339_LEN + 1);
	e->room_len = (uint16_t)room_len;
	e->name_off =
		(uint16_t)(e->room_off + room_len + 1 + strlen(kind) + 1 + (e->guest ? 1 : 0));
	e->name_len = (uint16_t)name_len;
	e->text_off = (uint32_t)n;
	e->text_len = (uint32_t)text_len;
	return l;
}

int
history_append(struct history *h, uint64_t sender, const char *room, enum history_kind kind,
	       const char *name, const char *text, size_t text_len)
{
	return history_append_live(h, sender, room, kind, name, false, text, text_len,
				   (struct history_live){ 0 }, HISTORY_ANY_ROOM);
}

/*
 * Lock held: e (room, kind, sender, live set) gets the next id and its
 * record, and is queued (failed if it could not be written, in relaxed
 * mode).  -1 with errno, e's live lines not released, if it cannot be
 * queued at all.
 */
static int
queue_locked(struct history *h, struct history_entry *e, const char *name, const char *text,
	     size_t text_len)
{
	if (!vec_reserve(&h->queue))
		return errno = ENOMEM, -1;
	e->id = h->next_id;
	e->body = format_body(e, name, text, text_len);
	if (!e->body)
		return -1;
	/*
	 * The loader skips an id longer than ID_MAX_DIGITS as damaged, so once
	 * the ids reach ID_MAX (a hand-edited file) no message can be stored:
	 * it would be lost at the next start and its id given out again.
	 */
	backlog_add(&h->backlog_msgs, 1);
	backlog_add(&h->backlog_bytes, e->body->len);
	if (e->id > ID_MAX) {
		log_gate_warn_io(&h->io_warnings, h->path, "no message ids left, message refused",
				 EOVERFLOW);
		fail_entry(h, e);
	} else if (h->sync_ms == 0) {
		h->next_id++; /* the commit thread writes it */
	} else if (h->store->ops->append(h->store, e, 1) == 0) {
		h->next_id++;
	} else {
		log_gate_warn_io(&h->io_warnings, h->path, "write failed, message refused", errno);
		fail_entry(h, e);
	}
	h->queue.e[h->queue.n++] = *e;
	return 0;
}

/*
 * Lock held: the deletions refused so far, queued again before anything
 * else, so every record of a room made again comes after its deletion.
 * One refused again is noted again (fail_entry).
 */
static void
append_undropped(struct history *h)
{
	size_t n = h->undropped.n;

	h->undropped.n = 0;
	for (size_t i = 0; i < n; i++) {
		struct history_entry e = { .kind = HK_DELETE, .again = true };

		snprintf(e.room, sizeof(e.room), "%s", h->undropped.room[i]);
		if (queue_locked(h, &e, "-", "", 0) < 0)
			note_undropped(h, e.room);
	}
}

/*
 * Lock held: room's deletion number drop is noted, and the notes past
 * their time go.  Without memory it is not: a late event of the room may
 * then be stored after its deletion (logged).
 */
static void
note_drop(struct history *h, const char *room, uint64_t drop)
{
	int64_t now = time_mono_ms();
	size_t j = 0;
	char key[ROOM_NAME_MAX + 1];

	histstore_room_key(room, strlen(room), key);
	for (size_t i = 0; i < h->n_drops; i++)
		if (h->drops[i].until_ms > now && strcmp(h->drops[i].key, key) != 0)
			h->drops[j++] = h->drops[i];
	h->n_drops = j;
	if (h->n_drops == h->cap_drops) {
		size_t cap = h->cap_drops ? 2 * h->cap_drops : 4;
		struct drop_note *d = realloc(h->drops, cap * sizeof(*d));

		if (d == NULL) {
			log_warning("%s: out of memory: an event of deleted room %s may yet be "
				    "stored after its deletion",
				    h->path, room);
			return;
		}
		h->drops = d;
		h->cap_drops = cap;
	}
	memcpy(h->drops[h->n_drops].key, key, sizeof(key));
	h->drops[h->n_drops].drop = drop;
	h->drops[h->n_drops++].until_ms = now + DROP_NOTE_MS;
}

/* Lock held: whether room was deleted (a deletion numbered above made_after) lately. */
static bool
room_gone(const struct history *h, const char *room, uint64_t made_after)
{
	int64_t now = time_mono_ms();
	char key[ROOM_NAME_MAX + 1];

	if (h->n_drops == 0)
		return false;
	histstore_room_key(room, strlen(room), key);
	for (size_t i = 0; i < h->n_drops; i++)
		if (h->drops[i].drop > made_after && h->drops[i].until_ms > now &&
		    strcmp(h->drops[i].key, key) == 0)
			return true;
	return false;
}

/*
 * history_append_live(), history_append_event() and history_drop_room():
 * a record (made_after != HISTORY_ANY_ROOM) of a room gone since is not
 * stored, and 1 is returned; a deletion (kind HK_DELETE) is noted with
 * its number drop under the same lock.
 */
static int
append_checked(struct history *h, uint64_t sender, const char *room, enum history_kind kind,
	       const char *name, bool guest, const char *text, size_t text_len,
	       struct history_live live, uint64_t made_after, uint64_t drop)
{
	struct history_entry e = { .sender = sender, .kind = kind, .live = live };
	size_t room_len = strlen(room);
	int err;

	if (room_len == 0 || room_len > ROOM_NAME_MAX) {
		line_unref(live.label);
		line_unref(live.tags);
		errno = EINVAL;
		return -1;
	}
	memcpy(e.room, room, room_len + 1);
	if (!name || !*name)
		name = "-";
	e.guest = guest && name_valid(name, strlen(name)); /* never "-" or "*" */
	pthread_mutex_lock(&h->lock);
	if (made_after != HISTORY_ANY_ROOM && room_gone(h, room, made_after)) {
		pthread_mutex_unlock(&h->lock);
		line_unref(live.label);
		line_unref(live.tags);
		return 1;
	}
	if (kind == HK_DELETE)
		note_drop(h, room, drop);
	append_undropped(h);
	if (queue_locked(h, &e, name, text, text_len) < 0) {
		err = errno;
		goto fail;
	}
	/*
	 * Relaxed mode publishes written messages at once, from the sender's
	 * thread, unless someone is publishing: then the message waits in the
	 * queue for the next batch.  A sender publishes one batch only and
	 * leaves what came meanwhile to the commit thread, or under steady
	 * load it would never get back to its own client.
	 */
	if (h->sync_ms > 0 && !h->publishing)
		publish_queued(h);
	if (h->queue.n > 0)
		pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	return 0;
fail:
	pthread_mutex_unlock(&h->lock);
	line_unref(live.label);
	line_unref(live.tags);
	errno = err;
	return -1;
}

int
history_append_live(struct history *h, uint64_t sender, const char *room, enum history_kind kind,
		    const char *name, bool guest, const char *text, size_t text_len,
		    struct history_live live, uint64_t made_after)
{
	return append_checked(h, sender, room, kind, name, guest, text, text_len, live, made_after,
			      0);
}

int
history_append_event(struct history *h, const char *room, enum history_kind kind, const char *name,
		     bool guest, const char *text, size_t text_len, uint64_t made_after)
{
	int rc;

	if (made_after == HISTORY_ANY_ROOM)
		made_after--;
	rc = append_checked(h, 0, room, kind, name, guest, text, text_len,
			    (struct history_live){ 0 }, made_after, 0);
	return rc > 0 ? 0 : rc;
}

/*
 * In durable mode nobody sees a message before its sync, so a disk that
 * stalls stalls the room: the log says so, or the operator sees late
 * messages and a quiet daemon.
 */
static void
note_sync_time(struct history *h, int64_t ms)
{
	unsigned long held;

	if (ms < SLOW_SYNC_MS)
		return;
	if (!log_gate_pass(&h->slow_warnings, &held)) {
		if (ms > h->slow_longest_ms)
			h->slow_longest_ms = ms;
		return;
	}
	if (held)
		log_warning("%s: a disk sync took %" PRId64 " ms (and %lu more took %d ms or more "
			    "since the last warning, the longest %" PRId64 " ms)",
			    h->path, ms, held, SLOW_SYNC_MS, h->slow_longest_ms);
	else
		log_warning("%s: a disk sync took %" PRId64 " ms", h->path, ms);
	h->slow_longest_ms = 0;
}

/* Called and returns with the lock held; appends go on meanwhile: the group commit. */
static int
sync_unlocked(struct history *h, int *err)
{
	int64_t start = time_mono_ms();
	int rc;

	pthread_mutex_unlock(&h->lock);
	fault_slow_sync();
	rc = h->store->ops->sync(h->store);
	*err = errno;
	pthread_mutex_lock(&h->lock);
	note_sync_time(h, time_mono_ms() - start);
	return rc;
}

/*
 * Nothing appended after the last sync may be published any more once a
 * write or a sync has failed (the kernel may have dropped those pages), so
 * every record not yet durable is refused, in order, and its id given out
 * again.
 */
static void
refuse_undurable(struct history *h)
{
	fail_entries(h, &h->batch);
	/* The next commit publishes these, in order, before what comes after. */
	fail_entries(h, &h->queue);
	h->store->ops->cut_back(h->store);
	h->next_id = h->last_id + 1;
	publish_entries(h, &h->batch);
}

/*
 * Durable mode: the batch goes to the store at once, from the commit
 * thread (the only one that appends in this mode, so without the lock),
 * and is made durable with one sync.
 */
static void
commit_queue(struct history *h)
{
	struct entry_vec taken = h->queue;
	bool stored = false;
	int err = 0, rc;

	if (taken.n == 0)
		return;
	h->queue = h->batch;
	h->batch = taken;
	for (size_t i = 0; i < taken.n && !stored; i++)
		stored = !taken.e[i].failed;
	pthread_mutex_unlock(&h->lock);
	rc = stored ? h->store->ops->append(h->store, taken.e, taken.n) : 0;
	err = errno;
	pthread_mutex_lock(&h->lock);
	if (rc < 0) {
		log_gate_warn_io(&h->io_warnings, h->path,
				 "write failed, unsynced messages refused", err);
		refuse_undurable(h);
		return;
	}
	/* A batch of refusals only has nothing new to sync. */
	if (stored && sync_unlocked(h, &err) != 0) {
		log_gate_warn_io(&h->io_warnings, h->path,
				 "fdatasync failed, unsynced messages refused", err);
		refuse_undurable(h);
		return;
	}
	publish_entries(h, &h->batch);
}

/* Relaxed mode: every history_sync_ms, what was published meanwhile is made durable. */
static void
sync_written(struct history *h)
{
	int err;

	if (sync_unlocked(h, &err) != 0)
		log_gate_warn_io(&h->io_warnings, h->path,
				 "fdatasync failed, the last messages may not survive a crash",
				 err);
}

static int
mark_cmp(const void *a, const void *b)
{
	return strcmp(((const struct histstore_mark *)a)->key,
		      ((const struct histstore_mark *)b)->key);
}

/* Lock held: every room in memory and the oldest id it holds, sorted; NULL without memory. */
static struct histstore_mark *
keep_marks(const struct ring_table *t, size_t *n)
{
	struct histstore_mark *m = malloc((t->rooms ? t->rooms : 1) * sizeof(*m));

	*n = 0;
	if (!m)
		return NULL;
	for (size_t b = 0; b < t->buckets; b++)
		for (const struct ring *r = t->bucket[b]; r; r = r->next)
			if (r->n > 0) {
				memcpy(m[*n].key, r->key, sizeof(r->key));
				m[(*n)++].first_id = ring_at(r, 0)->id;
			}
	qsort(m, *n, sizeof(*m), mark_cmp);
	return m;
}

/*
 * Called with the lock held, by the commit thread: the store drops its
 * old records but those the rooms' memory still holds, with the lock
 * dropped (appends go on).  Without memory for the marks, it waits.
 */
static void
compact(struct history *h)
{
	size_t n;
	struct histstore_mark *m = keep_marks(&h->rings, &n);

	if (!m)
		return;
	pthread_mutex_unlock(&h->lock);
	h->store->ops->compact(h->store, m, n);
	pthread_mutex_lock(&h->lock);
	free(m);
}

/* Queued messages a publisher can take: in relaxed mode, once nobody is publishing. */
static bool
queue_ready(const struct history *h)
{
	return h->queue.n > 0 && (h->sync_ms == 0 || !h->publishing);
}

static bool
time_reached(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/*
 * Waits for queued messages or, in relaxed mode, for the time of the next
 * sync; returns whether history_close() asked the thread to stop.
 */
static bool
wait_for_work(struct history *h, const struct timespec *sync_at)
{
	while (!h->stopping && !queue_ready(h)) {
		if (h->sync_ms == 0)
			pthread_cond_wait(&h->wake, &h->lock);
		else if (pthread_cond_timedwait(&h->wake, &h->lock, sync_at) == ETIMEDOUT)
			break;
	}
	return h->stopping;
}

static void *
commit_thread(void *arg)
{
	struct history *h = arg;
	struct timespec sync_at = time_after_ms(CLOCK_MONOTONIC, h->sync_ms);

	pthread_mutex_lock(&h->lock);
	for (;;) {
		bool stopping = wait_for_work(h, &sync_at);

		if (h->sync_ms == 0) {
			commit_queue(h);
		} else {
			while (queue_ready(h))
				publish_queued(h);
			if (stopping || time_reached(&sync_at)) {
				sync_written(h);
				sync_at = time_after_ms(CLOCK_MONOTONIC, h->sync_ms);
			}
		}
		if (stopping && h->queue.n == 0)
			break;
		if (h->store->ops->compact_due(h->store))
			compact(h);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* --- loading --- */

struct loading {
	struct history *h;
	struct ring *last; /* the ring of the record before: rooms come in runs */
	bool bodies;       /* load_done() ran: bodies (or NULL), no more src */
};

/* A record the store read into its room's ring; a deletion empties the room's. */
static bool
load_record(void *ctx, const struct history_entry *e, const char *bytes)
{
	struct loading *ld = ctx;
	struct ring_table *t = &ld->h->rings;
	char key[ROOM_NAME_MAX + 1];
	struct ring *r;
	struct held *slot;
	bool evicted;

	histstore_room_key(e->room, e->room_len, key);
	if (e->kind == HK_DELETE) {
		table_drop(t, key, true);
		ld->last = NULL;
		return true;
	}
	r = ld->last && strcmp(ld->last->key, key) == 0 ? ld->last : table_get(t, key);
	ld->last = r;
	slot = r ? ring_next(t, r, ld->h->memory, &evicted) : NULL;
	if (!slot)
		return false;
	*slot = held_of(e);
	slot->src = bytes;
	return true;
}

/*
 * The records the rings point at in the store's buffer become lines of
 * their own.  Without memory, the rest get no body (NULL) and false is
 * returned.  The default room's records take the spelling it has now
 * (default_room in chatd.conf may have changed in case only: the same
 * room), so a replay names it as the live lines do.
 */
static bool
load_done(void *ctx)
{
	struct history *h = ((struct loading *)ctx)->h;
	struct ring_table *t = &h->rings;
	size_t default_len = strlen(h->default_room);
	bool ok = true;

	((struct loading *)ctx)->bodies = true;
	for (size_t b = 0; b < t->buckets; b++)
		for (struct ring *r = t->bucket[b]; r; r = r->next) {
			bool respell = default_len > 0 && strcmp(r->key, h->default_key) == 0;

			for (size_t i = 0; i < r->n; i++) {
				struct held *k = ring_at(r, i);
				size_t len = (size_t)k->text_off + k->text_len + 1;
				struct line *l = ok ? line_new(len) : NULL;

				if (l)
					memcpy(l->data, k->src, len);
				if (l && respell && k->room_len == default_len)
					memcpy(l->data + k->room_off, h->default_room, default_len);
				ok = l != NULL;
				k->body = l;
			}
		}
	return ok;
}

/* The store's records into the rooms' memory. */
static int
load(struct history *h, char *err, size_t errlen)
{
	struct loading ld = { .h = h };
	const struct histstore_loader to = { load_record, load_done, &ld };

	if (h->store->ops->load(h->store, &to, &h->last_id, err, errlen) == 0)
		return 0;
	/* Until load_done() made them lines, rings point into the store's buffer. */
	table_free(&h->rings, !ld.bodies);
	return -1;
}

static bool
config_valid(const struct history_config *cfg, char *err, size_t errlen)
{
	const char *why = NULL;

	if (!cfg->path || !*cfg->path)
		why = "no history file given";
	else if (cfg->memory < 1)
		why = "history memory must be at least 1";
	else if (cfg->sync_ms < 0)
		why = "history sync interval must not be negative";
	if (why)
		snprintf(err, errlen, "%s", why);
	return !why;
}

static void
history_free(struct history *h)
{
	table_free(&h->rings, false);
	if (h->store)
		h->store->ops->close(h->store);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	free(h->queue.e);
	free(h->batch.e);
	free(h->undropped.room);
	free(h->drops);
	free(h->path);
	free(h);
}

static int
init_sync(struct history *h)
{
	pthread_condattr_t attr;
	int rc;

	if (pthread_condattr_init(&attr) != 0)
		return -1;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(&h->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (rc != 0)
		return -1;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		pthread_cond_destroy(&h->wake);
		return -1;
	}
	return 0;
}

struct history *
history_open(const struct history_config *cfg, history_publish_fn publish, void *ctx, char *err,
	     size_t errlen)
{
	const struct histfile_config fc = {
		.path = cfg->path,
		.default_room = cfg->default_room ? cfg->default_room : DEFAULT_ROOM,
		.max_size = cfg->max_size,
		.relaxed = cfg->sync_ms > 0,
		.io = cfg->io,
	};
	struct history *h;
	int rc;

	if (!config_valid(cfg, err, errlen))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h || init_sync(h) < 0) {
		free(h);
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		return NULL;
	}
	h->memory = cfg->memory;
	h->sync_ms = cfg->sync_ms;
	if (cfg->default_room && strlen(cfg->default_room) <= ROOM_NAME_MAX) {
		memcpy(h->default_room, cfg->default_room, strlen(cfg->default_room) + 1);
		histstore_room_key(h->default_room, strlen(h->default_room), h->default_key);
	}
	h->publish = publish;
	h->ctx = ctx;
	h->path = strdup(cfg->path);
	if (table_init(&h->rings) < 0)
		h->rings.bucket = NULL;
	if (!h->path || !h->rings.bucket) {
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		goto fail;
	}
	h->store = histfile_open(&fc, err, errlen);
	if (!h->store || load(h, err, errlen) < 0)
		goto fail;
	h->next_id = h->last_id + 1;
	rc = pthread_create(&h->thread, NULL, commit_thread, h);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot start the commit thread: %s", h->path,
			 strerror(rc));
		goto fail;
	}
	return h;
fail:
	history_free(h);
	return NULL;
}

static bool
wanted(const struct held *k, bool events)
{
	return events || history_kind_message(k->kind);
}

/* The ring of room (lock held), or NULL. */
static struct ring *
room_ring(struct history *h, const char *room)
{
	char key[ROOM_NAME_MAX + 1];
	size_t len = strlen(room);

	if (len > ROOM_NAME_MAX)
		return NULL;
	histstore_room_key(room, len, key);
	return table_find(&h->rings, key);
}

size_t
history_recent(struct history *h, const char *room, size_t max, uint64_t max_id, bool events,
	       struct history_entry *out)
{
	struct ring *r;
	size_t n = 0;

	pthread_mutex_lock(&h->lock);
	if ((r = room_ring(h, room)) != NULL) {
		size_t end = ring_rank(r, max_id), start = end, found = 0;

		/* Back from the newest for max wanted records, then copied oldest first. */
		while (start > 0 && found < max)
			found += wanted(ring_at(r, --start), events);
		for (size_t i = start; i < end; i++)
			if (wanted(ring_at(r, i), events))
				out[n++] = entry_of(ring_at(r, i));
	}
	pthread_mutex_unlock(&h->lock);
	return n;
}

size_t
history_since(struct history *h, const char *room, uint64_t after_id, size_t max, bool events,
	      struct history_entry *out, uint64_t *first_held)
{
	struct ring *r;
	size_t n = 0;

	pthread_mutex_lock(&h->lock);
	r = room_ring(h, room);
	*first_held = r && r->n ? ring_at(r, 0)->id : 0;
	for (size_t i = r ? ring_rank(r, after_id) : 0; r && i < r->n && n < max; i++)
		if (wanted(ring_at(r, i), events))
			out[n++] = entry_of(ring_at(r, i));
	pthread_mutex_unlock(&h->lock);
	return n;
}

void
history_drop_room(struct history *h, const char *room, uint64_t drop)
{
	if (append_checked(h, 0, room, HK_DELETE, NULL, false, "", 0, (struct history_live){ 0 },
			   HISTORY_ANY_ROOM, drop) < 0)
		log_warning("%s: room %s deleted, but its deletion could not be recorded: %s",
			    h->path, room, strerror(errno));
}

void
history_backlog(struct history *h, size_t *msgs, size_t *bytes)
{
	*msgs = atomic_load_explicit(&h->backlog_msgs, memory_order_relaxed);
	*bytes = atomic_load_explicit(&h->backlog_bytes, memory_order_relaxed);
}

void
history_get_stats(struct history *h, struct history_stats *st)
{
	struct histstore_stats ss;

	pthread_mutex_lock(&h->lock);
	h->store->ops->stats(h->store, &ss);
	*st = (struct history_stats){
		.last_id = h->last_id,
		.appended = h->appended,
		.failed = h->failed,
		.in_memory = h->rings.held,
		.rooms = h->rings.rooms,
		.file_size = ss.size,
		.compactions = ss.compactions,
	};
	pthread_mutex_unlock(&h->lock);
}

void
history_entries_release(struct history_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		line_unref(e[i].body);
		e[i].body = NULL;
	}
}

void
history_close(struct history *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	append_undropped(h); /* a last try: the commit thread stores the queue before it ends */
	h->stopping = true;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	history_free(h);
}
