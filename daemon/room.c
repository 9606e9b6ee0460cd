/*
 * room.c - who is online, and the fan-out ring (see room.h).
 *
 * The ring holds the last ring_cap room events.  Slot i (a position that
 * only grows) lives at ring[i & (ring_cap - 1)].  Each member's cursor is
 * the next position it has to deliver; head is the next position to fill.
 * A member whose cursor falls more than ring_cap behind head, or whose
 * collected but unwritten bytes pass its send queue limit, has overflowed.
 * ring_cap is sized from the send queue limit and the shortest possible
 * event line, so a member that keeps collecting is never overrun.
 *
 * Everything below is guarded by r->lock, but for the count of backed-up
 * members (an atomic that senders read without it); see room.h for the
 * locking rules.
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
#include "timefmt.h"
#include "utf8.h"

/* The shortest event line ("MSG 1 <time> a x\n" is 36 bytes). */
#define RING_MIN_EVENT_BYTES 32
#define RING_MIN_CAP 1024
/* Ring slots one room_collect() moves, so no member holds the lock long. */
#define COLLECT_BATCH 256
/* Names per USERS line (/who pages). */
#define USERS_PAGE 100
/* Sleepers woken per pass with the lock dropped. */
#define WAKE_BATCH 64
/* Sleepers each thread wakes on its way through the room (a wake-up tree). */
#define WAKE_CASCADE 2
/* Pieces one write-through writev() carries, at most (IOV_MAX is 1024). */
#define WT_PIECES 512
/*
 * One publication puts at most 1/PUBLISH_SHARE of the ring and of the send
 * queue limit in the ring (a longer batch goes in pieces), and the history
 * backlog, which becomes the next batch, is held to the same (client.c):
 * a member that keeps collecting then never finds a batch it cannot take.
 */
#define PUBLISH_SHARE 4

enum slot_kind {
	SLOT_MSG,    /* a stored message: MSG to others, OK to its sender */
	SLOT_FAILED, /* a message that could not be stored: ERR to its sender */
	SLOT_EVENT,  /* a whole line (JOIN, PART, NOTICE) for all but `sender` */
};

struct ring_slot {
	enum slot_kind kind;
	uint64_t sender; /* session id; 0 for none */
	/*
	 * The slot's bytes are body->data[off, off + len).  SLOT_MSG:
	 * "MSG ID TIME NAME TEXT\n" in the line of its batch (batch_line),
	 * tag_len 4, or, when that copy could not be made, the whole stored
	 * "ID TIME NAME TEXT\n" with tag_len 0; SLOT_EVENT: a whole line.
	 */
	struct line *body;
	size_t off, len, tag_len;
};

/* What one slot puts on a member's wire: at most SLOT_PIECES runs of bytes. */
#define SLOT_PIECES 3
struct piece {
	const char *base;
	size_t len;
	struct line *owner; /* the line base points into; NULL for static bytes */
};

struct hub {
	pthread_mutex_t lock;
	pthread_cond_t empty; /* signalled when the last connection detaches */

	struct client *conns; /* every connection, doubly linked */
	size_t n_conns;

	struct client **members; /* logged in, sorted by name_cmp() */
	size_t n_members, cap_members;

	struct ring_slot *ring;
	uint64_t ring_cap; /* a power of two */
	uint64_t head;
	uint64_t last_msg_id;              /* newest stored message in the ring */
	char room_name[ROOM_NAME_MAX + 1]; /* default_room */
	char msg_tag[8 + ROOM_NAME_MAX];   /* "MSG ROOM " */
	size_t msg_tag_len;

	struct client *sleepers; /* doubly linked through room.sleep_* */
	struct client *writers;  /* asleep, write rights with the room (room.sleep_*) */
	uint64_t written_head;   /* head when the writers were last written */
	/* One member's write-through writev(), in the room to spare the stack. */
	struct piece wt_pieces[WT_PIECES];
	struct iovec wt_iov[WT_PIECES];
	/* Members with room.backed_up set; written under the lock, read without it. */
	atomic_size_t backed_up;
	struct client *targets; /* to wake though nothing was published */
	uint64_t woken_head;    /* head when the sleepers were last woken */
	bool closing;
};

static const char tag_ok[] = "OK ";
static const char ack_tail[] = "sent\n";
static const char err_not_stored[] =
	"ERR 507 message not stored (the server could not write it): nobody got it\n";

struct hub *
room_new(int64_t send_queue_limit)
{
	struct hub *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->ring_cap = RING_MIN_CAP;
	while (r->ring_cap < (uint64_t)send_queue_limit / RING_MIN_EVENT_BYTES)
		r->ring_cap *= 2;
	r->ring = calloc(r->ring_cap, sizeof(*r->ring));
	if (r->ring == NULL) {
		free(r);
		return NULL;
	}
	snprintf(r->room_name, sizeof(r->room_name), "%s", settings_get()->default_room);
	r->msg_tag_len = (size_t)snprintf(r->msg_tag, sizeof(r->msg_tag), "MSG %s ", r->room_name);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->empty, NULL);
	return r;
}

void
room_free(struct hub *r)
{
	if (r == NULL)
		return;
	for (uint64_t i = 0; i < r->ring_cap; i++)
		line_unref(r->ring[i].body);
	free(r->ring);
	free(r->members);
	pthread_cond_destroy(&r->empty);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* ---- waking sleeping members ---- */

/*
 * A sleeping member is on one of two lists, linked through room.sleep_*:
 * sleepers (woken when the ring moves) or writers (the room holds its
 * write rights and writes the ring to its socket itself, see
 * write_through_locked).
 */
static void
sleeper_remove_locked(struct hub *r, struct client *c)
{
	if (!c->room.sleeping)
		return;
	struct client **head = c->room.writer ? &r->writers : &r->sleepers;
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
sleeper_add_locked(struct hub *r, struct client *c, bool writer)
{
	if (c->room.sleeping)
		return;
	struct client **head = writer ? &r->writers : &r->sleepers;
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
target_add_locked(struct hub *r, struct client *c)
{
	if (c->room.targeted)
		return;
	sleeper_remove_locked(r, c);
	c->room.targeted = true;
	c->room.target_next = r->targets;
	r->targets = c;
}

/*
 * The next client to wake: a target, or, if the ring moved, a sleeper
 * (while *sleepers_left allows).  Once no sleeper is left, everyone is
 * awake for what the ring holds: woken_head catches up.
 */
static struct client *
wake_next_locked(struct hub *r, size_t *sleepers_left)
{
	struct client *c = r->targets;

	if (c != NULL) {
		r->targets = c->room.target_next;
		c->room.targeted = false;
		return c;
	}
	if (r->woken_head == r->head || *sleepers_left == 0)
		return NULL;
	if ((c = r->sleepers) == NULL) {
		r->woken_head = r->head;
		return NULL;
	}
	sleeper_remove_locked(r, c);
	(*sleepers_left)--;
	return c;
}

static size_t slot_pieces(struct hub *r, struct client *c, const struct ring_slot *s,
			  struct piece *p);

/*
 * A member is backed up while more than half its send queue limit waits
 * for its socket: pipelining senders then wait for it (room_backed_up).
 * Called when its queue may have changed: by its thread in room_collect()
 * and room_sleep(), by the publisher when write-through queues for it.
 */
static void
backed_up_set_locked(struct hub *r, struct client *c, bool now)
{
	if (now == c->room.backed_up)
		return;
	c->room.backed_up = now;
	if (now)
		atomic_fetch_add_explicit(&r->backed_up, 1, memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(&r->backed_up, 1, memory_order_relaxed);
}

static bool
queue_backed_up(const struct client *c)
{
	return c->room.member &&
	       c->out.bytes + c->room.inbox.bytes > (uint64_t)settings_get()->send_queue_limit / 2;
}

bool
room_backed_up(struct hub *r)
{
	return atomic_load_explicit(&r->backed_up, memory_order_relaxed) > 0;
}

/* Queues what follows the first `skip` bytes of p, with a reference of its own. */
static int
piece_queue(struct outq *q, const struct piece *p, size_t skip)
{
	return outq_push(q, p->base + skip, p->len - skip, p->owner ? line_ref(p->owner) : NULL);
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
 * The pieces of up to n ring slots from c's cursor, while they fit in
 * WT_PIECES: how many slots they cover.  The messages of a batch touch
 * in memory, so a batch usually takes one piece.
 */
static uint64_t
wt_gather(struct hub *r, struct client *c, uint64_t n, struct piece *p, size_t *np)
{
	uint64_t i;

	*np = 0;
	for (i = 0; i < n && *np + SLOT_PIECES <= WT_PIECES; i++) {
		const struct ring_slot *s = &r->ring[(c->room.cursor + i) & (r->ring_cap - 1)];

		*np = pieces_merge(p, *np, slot_pieces(r, c, s, p + *np));
	}
	return i;
}

/*
 * Writes the gathered pieces with one writev(); what the socket does not
 * take goes to c->out (with references of its own).  False if c has to be
 * woken: its socket is full or broken, or memory ran out.
 */
static bool
wt_write(struct hub *r, struct client *c, const struct piece *p, size_t np)
{
	struct iovec *iov = r->wt_iov;
	size_t total = 0, i;
	ssize_t w;

	for (i = 0; i < np; i++) {
		iov[i].iov_base = (void *)p[i].base;
		iov[i].iov_len = p[i].len;
		total += p[i].len;
	}
	w = np ? writev(c->fd, iov, (int)np) : 0;
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
	backed_up_set_locked(r, c, queue_backed_up(c));
	return false;
}

/*
 * Write-through: every member on the writers list sleeps with an empty
 * output queue and has handed its write rights to the room (room_sleep),
 * so whoever holds the room lock may write the ring to its socket itself,
 * instead of waking its thread for one line.  The pieces point into the
 * ring's own lines, which stay put while the lock is held: no reference
 * and no queue per delivery.  What the socket does not take stays in
 * c->out, the member comes off the list and its thread is woken to finish
 * (it takes its rights back first, room_wake_up).  A member too far
 * behind, out of memory or with a broken socket is woken the same way,
 * and its thread finds out what happened.
 */
static void
write_through_locked(struct hub *r)
{
	struct client *next;
	struct piece *p = r->wt_pieces;

	for (struct client *c = r->writers; c != NULL; c = next) {
		uint64_t n = r->head - c->room.cursor, done;
		size_t np;
		bool ok = n <= r->ring_cap;

		next = c->room.sleep_next;
		while (ok && n > 0) {
			done = wt_gather(r, c, n, p, &np);
			c->room.cursor += done;
			n -= done;
			ok = wt_write(r, c, p, np);
		}
		if (!ok)
			target_add_locked(r, c);
	}
	r->written_head = r->head;
}

/*
 * Drops the room lock and wakes the targets and, if something was
 * published since the last time, up to `sleepers` sleepers.  The wake-ups
 * (client_wake) happen unlocked, so a big idle room does not stall the
 * fan-out path; the reference taken under the lock keeps each client
 * alive meanwhile.
 */
static void
room_unlock_and_wake_some(struct hub *r, size_t sleepers)
{
	struct client *batch[WAKE_BATCH];

	if (r->written_head != r->head)
		write_through_locked(r);
	for (;;) {
		size_t n = 0;
		struct client *c;

		while (n < WAKE_BATCH && (c = wake_next_locked(r, &sleepers)) != NULL) {
			client_ref(c);
			batch[n++] = c;
		}
		pthread_mutex_unlock(&r->lock);
		for (size_t i = 0; i < n; i++) {
			client_wake(batch[i]);
			client_unref(batch[i]);
		}
		if (n < WAKE_BATCH)
			return;
		pthread_mutex_lock(&r->lock);
	}
}

/* Wakes every sleeper: for events that are rare (joins, evictions, shutdown). */
static void
room_unlock_and_wake(struct hub *r)
{
	room_unlock_and_wake_some(r, SIZE_MAX);
}

/*
 * Room messages wake sleepers as a cascade: the publisher wakes
 * WAKE_CASCADE of them, and every member thread that passes through the
 * room afterwards (room_collect, room_leave) wakes
 * WAKE_CASCADE more, until none is left.  Waking a thousand sleepers costs
 * a thousand wake-ups either way; spread like this, they run on
 * every core at once instead of keeping the publisher (the history's
 * only one) from the next batch: a single waker stalled every sender.
 */
static void
room_unlock_and_cascade(struct hub *r)
{
	room_unlock_and_wake_some(r, WAKE_CASCADE);
}

/* ---- the ring ---- */

/* Takes over slot.body's reference. */
static void
ring_push_locked(struct hub *r, struct ring_slot slot)
{
	struct ring_slot *s = &r->ring[r->head & (r->ring_cap - 1)];

	line_unref(s->body);
	*s = slot;
	r->head++;
}

/* An event line for everyone but `except`; takes over the reference. */
static void
ring_push_event_locked(struct hub *r, struct line *l, uint64_t except)
{
	if (l == NULL) {
		log_warning("room: out of memory, an event was not sent");
		return;
	}
	ring_push_locked(r, (struct ring_slot){ .kind = SLOT_EVENT,
						.sender = except,
						.body = l,
						.len = l->len });
}

void
room_set_last_msg_id(struct hub *r, uint64_t id)
{
	pthread_mutex_lock(&r->lock);
	r->last_msg_id = id;
	pthread_mutex_unlock(&r->lock);
}

/*
 * What everyone else gets, "MSG ID TIME NAME TEXT\n", for a whole batch
 * in one piece of memory that its slots share.  Consecutive slots' bytes
 * then touch, and touching pieces are merged (wt_gather, outq_push): a
 * member that gets the batch gets one iovec, not one per message, and per
 * iovec is where the kernel's copy in writev() spent.  A member pins at
 * most the batches at the ends of what it has queued, since it collects
 * slots in order.  NULL if the batch holds no message or without memory.
 */
static struct line *
batch_line(struct hub *r, const struct history_entry *e, size_t n)
{
	const size_t tag = r->msg_tag_len;
	size_t total = 0, off = 0;
	struct line *l;

	for (size_t i = 0; i < n; i++)
		if (!e[i].failed)
			total += tag + e[i].body->len;
	if (total == 0 || (l = line_new(total)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (e[i].failed)
			continue;
		memcpy(l->data + off, r->msg_tag, tag);
		memcpy(l->data + off + tag, e[i].body->data, e[i].body->len);
		off += tag + e[i].body->len;
	}
	return l;
}

/* A message's slot: its bytes in the batch's line, or (no line) the stored body. */
static struct ring_slot
msg_slot(struct hub *r, const struct history_entry *e, struct line *batch, size_t *off)
{
	struct ring_slot s = { .kind = SLOT_MSG, .sender = e->sender };

	if (batch == NULL) {
		s.body = line_ref(e->body);
		s.len = e->body->len;
		return s;
	}
	s.body = line_ref(batch);
	s.off = *off;
	s.tag_len = r->msg_tag_len;
	s.len = s.tag_len + e->body->len;
	*off += s.len;
	return s;
}

void
room_backlog_limits(struct hub *r, size_t *msgs, size_t *bytes)
{
	/* ring_cap never changes after room_new(): no lock. */
	*msgs = (size_t)(r->ring_cap / PUBLISH_SHARE);
	*bytes = (size_t)settings_get()->send_queue_limit / PUBLISH_SHARE;
}

/*
 * How many of the n entries from e go into the ring in one piece: at most
 * the backlog limits' worth of slots and bytes, and at least one.
 */
static size_t
publish_piece(struct hub *r, const struct history_entry *e, size_t n)
{
	size_t max_msgs, max_bytes, bytes = 0, i;

	room_backlog_limits(r, &max_msgs, &max_bytes);
	for (i = 0; i < n && i < max_msgs; i++) {
		if (!e[i].failed)
			bytes += r->msg_tag_len + e[i].body->len;
		if (i > 0 && bytes > max_bytes)
			break;
	}
	return i;
}

/*
 * A batch goes into the ring in pieces the ring and a member's send queue
 * can hold, each written through to the idle members before the next:
 * one batch longer than the ring would put every member behind at once,
 * the sender, idle members and fast readers alike.  The history backlog
 * is held to one piece (client.c), so a batch is one piece but for the
 * one message each member may always have in flight.
 */
void
room_publish_history(void *ctx, const struct history_entry *e, size_t n)
{
	struct hub *r = ctx;

	while (n > 0) {
		size_t piece = publish_piece(r, e, n), off = 0;
		struct line *batch = batch_line(r, e, piece); /* made before the lock is taken */

		pthread_mutex_lock(&r->lock);
		if (fault_active(FAULT_ROOM_HANG))
			fault_hang();
		for (size_t i = 0; i < piece; i++) {
			if (e[i].failed) {
				ring_push_locked(r, (struct ring_slot){ .kind = SLOT_FAILED,
									.sender = e[i].sender });
				continue;
			}
			ring_push_locked(r, msg_slot(r, &e[i], batch, &off));
			r->last_msg_id = e[i].id;
		}
		room_unlock_and_cascade(r);
		line_unref(batch);
		e += piece;
		n -= piece;
	}
}

/* ---- members ---- */

/* Index of name in members, or where it would go (*found false). */
static size_t
member_search_locked(struct hub *r, const char *name, bool *found)
{
	size_t lo = 0, hi = r->n_members;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = name_cmp(r->members[mid]->name, name);

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

static struct client *
member_find_locked(struct hub *r, const char *name)
{
	bool found;
	size_t i = member_search_locked(r, name, &found);

	return found ? r->members[i] : NULL;
}

static int
member_insert_locked(struct hub *r, struct client *c)
{
	bool found;
	size_t i = member_search_locked(r, c->name, &found);

	if (r->n_members == r->cap_members) {
		size_t ncap = r->cap_members ? r->cap_members * 2 : 64;
		struct client **n = realloc(r->members, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		r->members = n;
		r->cap_members = ncap;
	}
	memmove(&r->members[i + 1], &r->members[i], (r->n_members - i) * sizeof(*r->members));
	r->members[i] = c;
	r->n_members++;
	c->room.member = true;
	return 0;
}

static void
member_remove_locked(struct hub *r, struct client *c)
{
	bool found;
	size_t i;

	if (!c->room.member)
		return;
	backed_up_set_locked(r, c, false);
	i = member_search_locked(r, c->name, &found);
	if (found && r->members[i] == c) {
		memmove(&r->members[i], &r->members[i + 1],
			(r->n_members - i - 1) * sizeof(*r->members));
		r->n_members--;
	}
	c->room.member = false;
}

/* Join and part notices stop above room_notice_limit members. */
static bool
notices_wanted_locked(struct hub *r)
{
	return r->n_members <= (size_t)settings_get()->room_notice_limit;
}

static struct line *
event_line(struct hub *r, const char *tag, const char *name, const char *fields)
{
	char now[TIME_RFC3339_LEN + 1];

	time_format_ms(now, time_now_ms());
	if (fields == NULL)
		return line_printf("%s %s %s %s\n", tag, r->room_name, now, name);
	return line_printf("%s %s %s %s %s\n", tag, r->room_name, now, name, fields);
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
	size_t n = text_fit(src, strlen(src), REASON_TEXT_MAX);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
publish_part_locked(struct hub *r, struct client *c, enum part_reason why, const char *text)
{
	char fields[32 + REASON_TEXT_MAX];
	int n;

	if (!notices_wanted_locked(r))
		return;
	n = snprintf(fields, sizeof(fields), "%s ", part_reason_name(why));
	reason_copy(fields + n, text, why);
	ring_push_event_locked(r, event_line(r, "PART", c->name, fields), c->id);
}

/* Takes c out of the room on someone else's behalf and wakes it to leave. */
static void
evict_locked(struct hub *r, struct client *c, enum part_reason why, const char *text)
{
	publish_part_locked(r, c, why, text);
	member_remove_locked(r, c);
	c->room.evicted = true;
	c->room.evict_reason = why;
	reason_copy(c->room.evict_text, text, why);
	target_add_locked(r, c);
}

static struct line *
users_line_locked(struct hub *r, unsigned page, bool listed)
{
	size_t pages = (r->n_members + USERS_PAGE - 1) / USERS_PAGE;
	size_t first, last, len = 0;
	char head[96 + ROOM_NAME_MAX];
	int hlen;

	if (!listed || page < 1 || page > pages)
		page = 0;
	first = page ? (size_t)(page - 1) * USERS_PAGE : 0;
	last = page ? first + USERS_PAGE : 0;
	if (last > r->n_members)
		last = r->n_members;
	hlen = snprintf(head, sizeof(head), "USERS %s %zu %u %zu ", r->room_name, r->n_members,
			page, pages);
	for (size_t i = first; i < last; i++)
		len += strlen(r->members[i]->name) + 1;

	struct line *l = line_new((size_t)hlen + len + (len == 0));
	if (l == NULL)
		return NULL;
	char *p = l->data;
	memcpy(p, head, (size_t)hlen);
	p += hlen;
	for (size_t i = first; i < last; i++) {
		size_t nl = strlen(r->members[i]->name);

		memcpy(p, r->members[i]->name, nl);
		p += nl;
		*p++ = i + 1 < last ? ' ' : '\n';
	}
	if (len == 0)
		*p++ = '\n';
	*p = '\0';
	return l;
}

struct line *
room_users_line(struct hub *r, unsigned page)
{
	pthread_mutex_lock(&r->lock);
	struct line *l = users_line_locked(r, page, true);
	pthread_mutex_unlock(&r->lock);
	return l;
}

int
room_join(struct hub *r, struct client *c, uint64_t *last_msg_id, struct line **users_line)
{
	pthread_mutex_lock(&r->lock);
	if (r->closing) {
		pthread_mutex_unlock(&r->lock);
		errno = ESHUTDOWN;
		return -1;
	}
	struct client *old = member_find_locked(r, c->name);
	if (old != NULL)
		evict_locked(r, old, PART_REPLACED, NULL);
	if (member_insert_locked(r, c) < 0) {
		room_unlock_and_wake(r);
		errno = ENOMEM;
		return -1;
	}
	c->room.cursor = r->head;
	c->room.joined_ms = time_now_ms();
	*last_msg_id = r->last_msg_id;
	if (notices_wanted_locked(r))
		ring_push_event_locked(r, event_line(r, "JOIN", c->name, NULL), c->id);
	*users_line = users_line_locked(r, 1, notices_wanted_locked(r));
	room_unlock_and_wake(r);
	return *users_line ? 0 : -1;
}

void
room_leave(struct hub *r, struct client *c, enum part_reason why, const char *text)
{
	pthread_mutex_lock(&r->lock);
	/* At shutdown everyone goes at once: spare the survivors the notices. */
	if (!c->room.member || c->room.evicted || r->closing) {
		room_unlock_and_cascade(r);
		return;
	}
	publish_part_locked(r, c, why, text);
	member_remove_locked(r, c);
	room_unlock_and_wake(r);
}

/* ---- connections ---- */

void
room_attach(struct hub *r, struct client *c)
{
	pthread_mutex_lock(&r->lock);
	outq_init(&c->room.inbox);
	c->room.prev = NULL;
	c->room.next = r->conns;
	if (r->conns)
		r->conns->room.prev = c;
	r->conns = c;
	r->n_conns++;
	pthread_mutex_unlock(&r->lock);
}

void
room_detach(struct hub *r, struct client *c)
{
	pthread_mutex_lock(&r->lock);
	member_remove_locked(r, c);
	sleeper_remove_locked(r, c);
	for (struct client **pp = &r->targets; c->room.targeted && *pp;
	     pp = &(*pp)->room.target_next)
		if (*pp == c) {
			*pp = c->room.target_next;
			c->room.targeted = false;
		}
	if (c->room.prev)
		c->room.prev->room.next = c->room.next;
	else
		r->conns = c->room.next;
	if (c->room.next)
		c->room.next->room.prev = c->room.prev;
	outq_free(&c->room.inbox);
	if (--r->n_conns == 0)
		pthread_cond_broadcast(&r->empty);
	pthread_mutex_unlock(&r->lock);
}

size_t
room_connections(struct hub *r)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->n_conns;
	pthread_mutex_unlock(&r->lock);
	return n;
}

bool
room_closing(struct hub *r)
{
	pthread_mutex_lock(&r->lock);
	bool closing = r->closing;
	pthread_mutex_unlock(&r->lock);
	return closing;
}

bool
room_wait_empty(struct hub *r, int64_t deadline_mono_ms)
{
	struct timespec ts;

	/* The condition variable runs on CLOCK_REALTIME; convert the deadline. */
	int64_t wall = time_now_ms() + (deadline_mono_ms - time_mono_ms());
	ts.tv_sec = wall / 1000;
	ts.tv_nsec = (wall % 1000) * 1000000;
	pthread_mutex_lock(&r->lock);
	while (r->n_conns > 0)
		if (pthread_cond_timedwait(&r->empty, &r->lock, &ts) == ETIMEDOUT)
			break;
	bool empty = r->n_conns == 0;
	pthread_mutex_unlock(&r->lock);
	return empty;
}

void
room_shutdown(struct hub *r)
{
	pthread_mutex_lock(&r->lock);
	r->closing = true;
	for (struct client *c = r->conns; c != NULL; c = c->room.next)
		target_add_locked(r, c);
	room_unlock_and_wake(r);
}

/* ---- delivery ---- */

int
room_send_private(struct hub *r, const char *to, struct line *l)
{
	pthread_mutex_lock(&r->lock);
	struct client *c = member_find_locked(r, to);
	if (c == NULL) {
		pthread_mutex_unlock(&r->lock);
		line_unref(l);
		return -1;
	}
	int rc = outq_push_line(&c->room.inbox, l);
	target_add_locked(r, c);
	room_unlock_and_wake(r);
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
	return 0;
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
 * "OK ID sent": the id is the first field of the stored body, so the
 * acknowledgement shares the body instead of formatting a line of its own.
 */
static size_t
ack_pieces(const struct ring_slot *s, struct piece *p)
{
	const char *id = s->body->data + s->off + s->tag_len;
	const char *sp = memchr(id, ' ', s->len - s->tag_len);
	size_t idlen = sp ? (size_t)(sp - id) + 1 : 0;

	piece_static(&p[0], tag_ok, sizeof(tag_ok) - 1);
	piece_line(&p[1], s->body, s->off + s->tag_len, idlen);
	piece_static(&p[2], ack_tail, sizeof(ack_tail) - 1);
	return 3;
}

/*
 * What slot s puts on c's wire, as at most SLOT_PIECES pieces pointing
 * into the slot's line or static text; counts c's own messages as
 * answered.  Shared by room_collect (which queues the pieces) and
 * write-through (which writes them).
 */
static size_t
slot_pieces(struct hub *r, struct client *c, const struct ring_slot *s, struct piece *p)
{
	bool own = s->sender == c->id;

	switch (s->kind) {
	case SLOT_MSG:
		if (own) {
			c->unacked--;
			return ack_pieces(s, p);
		}
		if (s->tag_len == 0)
			return piece_static(&p[0], r->msg_tag, r->msg_tag_len) +
			       piece_line(&p[1], s->body, s->off, s->len);
		return piece_line(p, s->body, s->off, s->len);
	case SLOT_FAILED:
		if (!own)
			return 0;
		c->unacked--;
		return piece_static(p, err_not_stored, sizeof(err_not_stored) - 1);
	case SLOT_EVENT:
		return own ? 0 : piece_line(p, s->body, s->off, s->len);
	}
	return 0;
}

/* Queues slot s for c (each piece with a reference of its own). */
static int
deliver_slot(struct hub *r, struct client *c, const struct ring_slot *s)
{
	struct piece p[SLOT_PIECES];
	size_t n = slot_pieces(r, c, s, p);

	for (size_t i = 0; i < n; i++)
		if (piece_queue(&c->out, &p[i], 0) < 0)
			return -1;
	return 0;
}

/*
 * Overflow: the member is further behind than the ring reaches, or what
 * waits for its socket passed its send queue limit.  Its own messages in
 * the ring do not count: they only come back to it as a short OK.
 */
static bool
overflowed_locked(struct hub *r, struct client *c, int64_t limit)
{
	return r->head - c->room.cursor > r->ring_cap ||
	       c->out.bytes + c->room.inbox.bytes > (uint64_t)limit;
}

int
room_collect(struct hub *r, struct client *c, int64_t limit, enum part_reason *why, char *text,
	     size_t textlen)
{
	uint64_t n = 0;

	pthread_mutex_lock(&r->lock);
	if (c->room.evicted) {
		*why = c->room.evict_reason;
		snprintf(text, textlen, "%s", c->room.evict_text);
		goto leave;
	}
	if (c->room.out_lost || inbox_drain_locked(c) < 0)
		goto nomem;
	if (c->room.member && r->head - c->room.cursor <= r->ring_cap) {
		n = r->head - c->room.cursor;
		/* At shutdown, everything said before it goes out ahead of BYE. */
		if (n > COLLECT_BATCH && !r->closing)
			n = COLLECT_BATCH;
		for (uint64_t i = 0; i < n; i++) {
			const struct ring_slot *s =
				&r->ring[(c->room.cursor + i) & (r->ring_cap - 1)];

			if (deliver_slot(r, c, s) < 0)
				goto nomem;
		}
		c->room.cursor += n;
	}
	if (overflowed_locked(r, c, limit)) {
		*why = PART_OVERFLOW;
		snprintf(text, textlen, "%s", part_reason_text(PART_OVERFLOW));
		goto leave;
	}
	if (r->closing) {
		*why = PART_SHUTDOWN;
		snprintf(text, textlen, "%s", part_reason_text(PART_SHUTDOWN));
		goto leave;
	}
	bool more = c->room.member && c->room.cursor != r->head;
	backed_up_set_locked(r, c, queue_backed_up(c));
	room_unlock_and_cascade(r);
	return more;

nomem:
	*why = PART_OVERFLOW;
	snprintf(text, textlen, "out of memory");
leave:
	room_unlock_and_cascade(r);
	return -1;
}

bool
room_sleep(struct hub *r, struct client *c, bool write_through)
{
	pthread_mutex_lock(&r->lock);
	bool idle = !r->closing && !c->room.evicted && c->room.inbox.count == 0 &&
		    (!c->room.member || c->room.cursor == r->head);
	if (idle) {
		backed_up_set_locked(r, c, queue_backed_up(c));
		c->room.write_rights = write_through && c->room.member && outq_empty(&c->out);
		/* Still listed from a sleep that ended without a wake-up: the right list now. */
		if (c->room.sleeping && c->room.writer != c->room.write_rights)
			sleeper_remove_locked(r, c);
		sleeper_add_locked(r, c, c->room.write_rights);
	}
	pthread_mutex_unlock(&r->lock);
	return idle;
}

void
room_wake_up(struct hub *r, struct client *c)
{
	if (!c->room.write_rights) /* only c's thread changes it */
		return;
	pthread_mutex_lock(&r->lock);
	if (c->room.write_rights) {
		if (c->room.writer)
			sleeper_remove_locked(r, c);
		c->room.write_rights = false;
	}
	pthread_mutex_unlock(&r->lock);
}

/*
 * ---- for the control thread: the same, but never waiting long ----
 *
 * The control thread must stay responsive (signals, the watchdog, chatctl)
 * even when the room lock is stuck: these take the lock within timeout_ms
 * or fail with ETIMEDOUT, doing nothing.  A timeout of 0 only tries.
 */

static bool
lock_within(struct hub *r, int timeout_ms)
{
	struct timespec until = time_after_ms(CLOCK_REALTIME, timeout_ms);
	int err = timeout_ms > 0 ? pthread_mutex_timedlock(&r->lock, &until)
				 : pthread_mutex_trylock(&r->lock);

	if (err != 0) {
		errno = ETIMEDOUT;
		return false;
	}
	return true;
}

bool
room_lock_probe(struct hub *r, int timeout_ms)
{
	if (!lock_within(r, timeout_ms))
		return false;
	pthread_mutex_unlock(&r->lock);
	return true;
}

int
room_counts_within(struct hub *r, int timeout_ms, size_t *members, size_t *conns)
{
	if (!lock_within(r, timeout_ms))
		return -1;
	*members = r->n_members;
	*conns = r->n_conns;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int
room_evict_within(struct hub *r, int timeout_ms, const char *name, enum part_reason why,
		  const char *text)
{
	if (!lock_within(r, timeout_ms))
		return -1;
	struct client *c = member_find_locked(r, name);
	if (c != NULL)
		evict_locked(r, c, why, text);
	room_unlock_and_wake(r);
	return c != NULL;
}

int
room_notice_within(struct hub *r, int timeout_ms, const char *text, size_t *members)
{
	char now[TIME_RFC3339_LEN + 1];

	time_format_ms(now, time_now_ms());
	struct line *l = line_printf("NOTICE * %s %s\n", now, text);
	if (l == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (!lock_within(r, timeout_ms)) {
		line_unref(l);
		return -1;
	}
	ring_push_event_locked(r, l, 0);
	*members = r->n_members;
	room_unlock_and_wake(r);
	return 0;
}

int
room_members_snapshot_within(struct hub *r, int timeout_ms, struct room_member_info **out,
			     size_t *n)
{
	if (!lock_within(r, timeout_ms))
		return -1;
	struct room_member_info *info = calloc(r->n_members + 1, sizeof(*info));
	if (info == NULL) {
		pthread_mutex_unlock(&r->lock);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < r->n_members; i++) {
		const struct client *c = r->members[i];

		memcpy(info[i].name, c->name, sizeof(info[i].name));
		memcpy(info[i].addr, c->addr_str, sizeof(info[i].addr));
		info[i].joined_ms = c->room.joined_ms;
	}
	*n = r->n_members;
	pthread_mutex_unlock(&r->lock);
	*out = info;
	return 0;
}

/* ---- rooms (not yet named: every call but the snapshot is refused) ---- */

int
rooms_snapshot_within(struct hub *r, int timeout_ms, struct room_info **out, size_t *n)
{
	if (!lock_within(r, timeout_ms))
		return -1;
	struct room_info *info = calloc(1, sizeof(*info));
	if (info == NULL) {
		pthread_mutex_unlock(&r->lock);
		errno = ENOMEM;
		return -1;
	}
	memcpy(info->name, r->room_name, sizeof(info->name));
	info->members = r->n_members;
	info->op_made = info->is_default = true;
	pthread_mutex_unlock(&r->lock);
	*out = info;
	*n = 1;
	return 0;
}

static int
not_yet(void)
{
	errno = ENOSYS;
	return -1;
}

int
room_create_within(struct hub *h, int timeout_ms, const char *name, const char *topic)
{
	(void)h, (void)timeout_ms, (void)name, (void)topic;
	return not_yet();
}

int
room_delete_within(struct hub *h, int timeout_ms, const char *name)
{
	(void)h, (void)timeout_ms, (void)name;
	return not_yet();
}

int
room_topic_within(struct hub *h, int timeout_ms, const char *name, const char *topic)
{
	(void)h, (void)timeout_ms, (void)name, (void)topic;
	return not_yet();
}

int
room_kick_within(struct hub *h, int timeout_ms, const char *room, const char *user,
		 const char *reason)
{
	(void)h, (void)timeout_ms, (void)room, (void)user, (void)reason;
	return not_yet();
}

int
room_notice_room_within(struct hub *h, int timeout_ms, const char *room, const char *text,
			size_t *members)
{
	(void)h, (void)timeout_ms, (void)room, (void)text, (void)members;
	return not_yet();
}

int
room_expire_within(struct hub *h, int timeout_ms)
{
	(void)h, (void)timeout_ms;
	return 0;
}
