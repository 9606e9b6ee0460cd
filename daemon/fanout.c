/*
 * fanout.c - the hub's fan-out: the rooms' rings, what a member gets from
 * them, write-through to sleeping members, waking, the count of backed-up
 * members, publication of stored messages and delivery (room_collect,
 * room_sleep, room_wake_up, private lines through the inbox).  See room.h
 * and hub.h.
 *
 * Each room's ring holds its last ring_cap events.  Slot i (a position
 * that only grows) lives at ring[i & (ring_cap - 1)].  Each membership's
 * cursor is the next position it has to deliver; head is the next to
 * fill.  A ring starts at RING_START_CAP slots and doubles, before a push
 * would overwrite a slot some member still needs, up to the most the
 * current send_queue_limit needs (ring_max_cap: the limit over the
 * shortest event line), so a member that keeps collecting is never
 * overrun and a quiet room stays small.  A member collects up to half its
 * send queue limit of unwritten bytes (room_collect): the rest waits in
 * the ring, the member counted as backed up.  A membership whose cursor
 * falls more than ring_cap behind head, a session whose collected but
 * unwritten bytes pass its send queue limit, or whose unwritten bytes and
 * what waits for it in the rings (room.bytes, slot.at) pass twice the
 * limit, has overflowed.  Every slot
 * gets the next number of the hub's sequence (seq): a session in several
 * rooms takes their slots in that order (next_pending), so its
 * acknowledgements and the lines around them keep the order they were
 * published in.
 *
 * Threads: a client's thread (collecting, sleeping, waking, publishing
 * with history_sync_ms), the history's commit thread (publication), the
 * control thread (through room.c and hub.c); all under the room lock but
 * for room_backed_up() and room_backlog_limits(), which take none, and
 * the write-through's writev()s to the members a flusher claimed, which
 * it makes with the lock dropped unless it publishes stored messages
 * (flush_pass); the publisher's share of those with the co-writer thread
 * (cowriter.c), which runs flush_write() alone on the claimed members it
 * is handed and touches nothing else.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "config.h"
#include "cowriter.h"
#include "fault.h"
#include "hub.h"
#include "log.h"

static void dirty_add_locked(struct hub *h, struct room *r);

/* ---- waking sleeping members ---- */

/*
 * A sleeping member is on one of two lists, linked through room.sleep_*:
 * sleepers (woken when a ring moves) or writers (the hub holds its write
 * rights and writes the rings to its socket itself, see flush_locked; a
 * writer whose thread took them back without the lock, room_wake_up,
 * stays listed, skipped by passes, until its next room_sleep).
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
void
target_add_locked(struct hub *h, struct client *c)
{
	if (c->room.targeted)
		return;
	sleeper_remove_locked(h, c);
	c->room.targeted = true;
	c->room.target_next = h->targets;
	h->targets = c;
}

/* c is going (room_detach): off the sleepers, the writers and the targets. */
void
wake_forget_locked(struct hub *h, struct client *c)
{
	sleeper_remove_locked(h, c);
	for (struct client **pp = &h->targets; c->room.targeted && *pp;
	     pp = &(*pp)->room.target_next)
		if (*pp == c) {
			*pp = c->room.target_next;
			c->room.targeted = false;
			break; /* *pp may be NULL now: no step past it */
		}
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
 * for its socket (and then collects no more from the rings): pipelining
 * senders then wait for it (room_backed_up).
 * Called when its queue may have changed: by its thread in room_collect()
 * and room_sleep(), by the publisher when write-through queues for it; and
 * by a write-through pass that finds it far behind in a ring
 * (lag_check_locked; room_collect counts the rings' bytes too).
 */
void
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
queue_past_half(const struct client *c, int64_t limit)
{
	return c->out.bytes + c->room.inbox.bytes > (uint64_t)limit / 2;
}

static bool
queue_backed_up(const struct client *c)
{
	return c->room.member && queue_past_half(c, settings_get()->send_queue_limit);
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
 * What waits for membership m in its ring, in bytes (each slot in its
 * longest line form: c's own messages count in full, not as their OKs);
 * one overrun (ring_overflowed) counts as the whole ring and more.
 */
static uint64_t
membership_lag_bytes(const struct membership *m)
{
	const struct room *r = m->room;

	if (m->cursor == r->head)
		return 0;
	if (r->head - m->cursor > r->ring_cap)
		return r->bytes + 1;
	return r->bytes - slot_at(m)->at;
}

/* What waits for c in all its rings: a subtraction per room c is in. */
static uint64_t
ring_lag_bytes(const struct client *c)
{
	uint64_t lag = 0;

	for (size_t i = 0; i < c->room.n_rooms; i++)
		lag += membership_lag_bytes(&c->room.rooms[i]);
	return lag;
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
 * An IRC echo that answers a labeled command: "@label=X", then ";" and
 * the line's own tags, or " " and the whole line when it has none.
 */
static size_t
labeled_pieces(struct line *label, const struct wire_bytes *w, struct piece *p)
{
	bool tags = w->len > 0 && w->body->data[w->off] == '@';

	piece_line(&p[0], label, 0, label->len);
	piece_static(&p[1], tags ? ";" : " ", 1);
	piece_line(&p[2], w->body, w->off + tags, w->len - tags);
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
			/* IRC: its own line with echo-message (labeled if asked), else nothing. */
			if (f->ack_head == NULL)
				return !c->room.echo ? 0
				       : s->label    ? labeled_pieces(s->label, w, p)
						     : piece_line(p, w->body, w->off, w->len);
			return ack_pieces(f, w, p);
		}
		return piece_line(p, w->body, w->off, w->len);
	case SLOT_FAILED:
		if (!own)
			return 0;
		(*answered)++;
		if (s->label != NULL && c->room.echo) {
			piece_line(p, s->label, 0, s->label->len);
			piece_static(p + 1, " ", 1);
			return 2 + piece_static(p + 2, f->not_stored, strlen(f->not_stored));
		}
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

	if (outq_reserve(&c->out, n) < 0) /* a line in pieces goes whole, or not at all */
		return -1;
	c->unacked -= answered;
	for (size_t i = 0; i < n; i++)
		piece_queue(&c->out, &p[i], 0);
	return 0;
}

/* ---- write-through ---- */

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
 * Claims c for this pass: gathers what is pending for it into the pass's
 * pieces, each line with a reference of the pass's own (the rings may
 * move on once the lock is dropped).  False when nothing was pending.
 */
static bool
flush_claim_locked(struct hub *h, struct client *c)
{
	struct piece *p = h->flush_pieces + h->flush_pieces_n;
	size_t np;

	if (!wt_gather(h, c, p, &np) || np == 0)
		return false;
	for (size_t i = 0; i < np; i++)
		if (p[i].owner != NULL)
			line_ref(p[i].owner);
	h->flush[h->flush_n++] =
		(struct flush_entry){ .c = c, .first = h->flush_pieces_n, .n = np };
	h->flush_pieces_n += np;
	return true;
}

/*
 * A member whose thread is awake (busy: a sender publishing itself) or
 * sleeps without write-through, so the pass does not write to it: if more
 * than half its limit waits for it in r's ring and its inbox, it counts
 * as backed up now, and senders are paced before it collects (its own
 * collect keeps the mark until it has caught up, room_collect).  Its
 * output queue is its thread's while the thread holds the write rights,
 * so it is not looked at here.  Only for members the pass passes by, one
 * membership_find() each: nothing per write-through delivery.
 */
static void
lag_check_locked(struct hub *h, struct client *c, struct room *r, uint64_t half)
{
	const struct membership *m;

	if (c->room.backed_up || !c->room.member || (m = membership_find(c, r)) == NULL)
		return;
	if (c->room.inbox.bytes + membership_lag_bytes(m) > half)
		backed_up_set_locked(h, c, true);
}

/*
 * Gathers the writers of the dirty rooms into the pass, room by room,
 * while the pass has room for another member's worth of pieces; a room
 * not finished goes back on the dirty list for the next pass.
 */
static void
flush_collect_locked(struct hub *h)
{
	uint64_t half = (uint64_t)settings_get()->send_queue_limit / 2;
	struct room *r;

	h->flush_n = h->flush_pieces_n = 0;
	while ((r = h->dirty) != NULL) {
		h->dirty = r->dirty_next;
		r->dirty = false;
		for (size_t i = r->flush_from; i < r->n_members; i++) {
			struct client *c = r->members[i];

			/* Not claimed by this pass already, nor taken back by its thread. */
			if (!c->room.sleeping || !c->room.writer ||
			    atomic_load_explicit(&c->room.rights, memory_order_relaxed) !=
				    RIGHTS_HUB) {
				lag_check_locked(h, c, r, half);
				continue;
			}
			if (ring_overflowed(c)) {
				target_add_locked(h, c);
				continue;
			}
			if (h->flush_n == FLUSH_CHUNK ||
			    h->flush_pieces_n + WT_PIECES > FLUSH_PIECES) {
				dirty_add_locked(h, r);
				r->flush_from = i; /* the next pass goes on from here */
				return;
			}
			int hub = RIGHTS_HUB;
			if (!atomic_compare_exchange_strong_explicit(&c->room.rights, &hub,
								     RIGHTS_CLAIMED,
								     memory_order_acquire,
								     memory_order_relaxed))
				continue; /* its thread took them back just now */
			if (!flush_claim_locked(h, c))
				atomic_store_explicit(&c->room.rights, RIGHTS_HUB,
						      memory_order_release);
		}
		r->flush_from = 0;
	}
}

/*
 * Entries [from, to) of the pass's writes, one writev() per member, through
 * iov (the flusher's or the co-writer's); with the room lock dropped, or
 * held by the publisher, whose claims keep everyone else off these sockets.
 */
static void
flush_write(struct hub *h, size_t from, size_t to, struct iovec *iov)
{
	for (size_t k = from; k < to; k++) {
		struct flush_entry *f = &h->flush[k];
		const struct piece *p = h->flush_pieces + f->first;

		for (size_t i = 0; i < f->n; i++) {
			iov[i].iov_base = (void *)p[i].base;
			iov[i].iov_len = p[i].len;
		}
		f->written = session_writev(f->c, iov, (int)f->n);
	}
}

/* The co-writer's share of a pass (cowriter.h); it never takes the room lock. */
static void
cowrite(void *arg, size_t from, size_t to)
{
	struct hub *h = arg;

	flush_write(h, from, to, h->cowriter_iov);
}

void
flush_cowriter_start(struct hub *h)
{
	h->cowriter = cowriter_start(cowrite, h);
}

void
flush_cowriter_stop(struct hub *h)
{
	cowriter_stop(h->cowriter);
	h->cowriter = NULL;
}

/*
 * The publisher's writes of [from, to), the room lock held: half by the
 * co-writer, on another core, while this thread writes the other half.
 * A handful of members is not worth the hand-over.
 */
static void
flush_write_locked(struct hub *h, size_t from, size_t to)
{
	size_t mid = from + (to - from) / 2;

	if (h->cowriter == NULL || to - from < COWRITE_MIN) {
		flush_write(h, from, to, h->wt_iov);
		return;
	}
	cowriter_begin(h->cowriter, mid, to);
	flush_write(h, from, mid, h->wt_iov);
	cowriter_wait(h->cowriter);
}

/* Whether the written bytes of pieces p end a line (or none were written). */
static bool
written_whole_lines(const struct piece *p, size_t np, size_t w)
{
	for (size_t i = 0; i < np && w > 0; i++) {
		if (w <= p[i].len)
			return p[i].base[w - 1] == '\n';
		w -= p[i].len;
	}
	return true;
}

/*
 * What c's socket did not take goes to c->out (with references of its
 * own); false if c has to be woken: its socket is full or broken, or
 * memory ran out.  Without memory nothing is queued, and out_cut says
 * whether the socket got half a line (then c's last line, BYE, would be
 * garbage: say_bye() leaves it out).
 */
static bool
flush_rest_locked(struct hub *h, struct client *c, const struct piece *p, size_t np,
		  ssize_t written)
{
	size_t total = 0, i, rest = 0;
	ssize_t w = written < 0 ? 0 : written;

	for (i = 0; i < np; i++)
		total += p[i].len;
	if (written == (ssize_t)total)
		return true;
	/* Short: the pieces not written in full, queued whole or not at all. */
	for (i = 0, total = 0; i < np; i++) {
		total += p[i].len;
		rest += total > (size_t)w;
	}
	if (outq_reserve(&c->out, rest) < 0) {
		c->room.out_lost = true;
		c->room.out_cut = !written_whole_lines(p, np, (size_t)w);
		return false;
	}
	for (i = 0; i < np; i++) {
		size_t skip = (size_t)w < p[i].len ? (size_t)w : p[i].len;

		w -= (ssize_t)skip;
		if (skip < p[i].len)
			piece_queue(&c->out, &p[i], skip);
	}
	backed_up_set_locked(h, c, queue_backed_up(c));
	return false;
}

/*
 * Ends entries [from, to) of the pass: the rest of a short write is
 * queued and its member woken to finish; a member written in full that
 * has more pending (it had more than one writev's worth) goes round
 * again.  Each member is let go (its thread, if it waits for that, is
 * signalled), and the pass's references dropped.
 */
static void
flush_finish_locked(struct hub *h, size_t from, size_t to)
{
	struct membership *m;

	for (size_t k = from; k < to; k++) {
		struct flush_entry *f = &h->flush[k];
		struct client *c = f->c;
		struct piece *p = h->flush_pieces + f->first;

		if (!flush_rest_locked(h, c, p, f->n, f->written))
			target_add_locked(h, c);
		else if (c->room.sleeping && c->room.writer && (m = next_pending(c)) != NULL)
			dirty_add_locked(h, m->room);
		/* What this thread wrote to c->out happens before c's thread takes it. */
		atomic_store_explicit(&c->room.rights, RIGHTS_HUB, memory_order_release);
		if (c->room.claim_waiting)
			pthread_cond_signal(&c->room.unclaimed);
		for (size_t i = 0; i < f->n; i++)
			line_unref(p[i].owner);
	}
}

void
claim_wait_locked(struct hub *h, struct client *c)
{
	/* A write-through pass is writing to it. */
	while (atomic_load_explicit(&c->room.rights, memory_order_acquire) == RIGHTS_CLAIMED) {
		c->room.claim_waiting = true;
		pthread_cond_wait(&c->room.unclaimed, &h->lock);
	}
	c->room.claim_waiting = false;
}

/*
 * A pass's writes go in chunks of FLUSH_CHUNK members (as many as
 * flush_collect_locked() claims for one pass), each let go under the lock
 * as soon as its chunk is written: a member whose thread wakes (a sender
 * answered by this pass) waits for its chunk.
 */
static void
flush_pass(struct hub *h, bool unlocked)
{
	for (size_t k = 0; k < h->flush_n; k += FLUSH_CHUNK) {
		size_t to = k + FLUSH_CHUNK < h->flush_n ? k + FLUSH_CHUNK : h->flush_n;

		if (unlocked) {
			pthread_mutex_unlock(&h->lock);
			if (k == 0 && h->flush_hook != NULL)
				h->flush_hook(h);
			flush_write(h, k, to, h->wt_iov);
			pthread_mutex_lock(&h->lock);
		} else {
			flush_write_locked(h, k, to);
		}
		flush_finish_locked(h, k, to);
	}
	h->flush_n = h->flush_pieces_n = 0;
}

/*
 * Write-through: every member on the writers list slept with an empty
 * output queue and handed its write rights to the hub (room_sleep); while
 * it has not taken them back (room.rights is RIGHTS_HUB, room_wake_up),
 * the hub may write the rings to its socket itself, instead of waking
 * its thread for one line.  For each room that moved, its members that
 * are writers get what is new in all their rooms (merged in publication
 * order).
 *
 * One thread at a time writes through, the flusher: whoever unlocks the
 * hub after a change while nobody else is at it (room_unlock_and_wake_some).
 * A pass claims its members and gathers their pieces under the lock, then
 * (unless `unlocked` is false) drops the lock for the writev()s
 * (non-blocking), so joins and collectors go on meanwhile; what they
 * publish in that time is gathered by the next pass, so under load a
 * member gets several events (joins, parts) in one writev().  The
 * publisher of stored messages keeps the lock while it writes: senders
 * that wait for it meanwhile bring more messages to the next batch, which
 * costs fewer writev()s per delivery than letting each go at once (10,000
 * members in rooms of 10: 7-9 against 11-17 µs of CPU per delivery;
 * bench/RESULTS.md, "Rooms after the write-through flusher").
 * The flusher passes until no room is dirty.  A claimed member's thread
 * that wakes waits for the pass to let it go (its chunk, flush_pass)
 * before it takes its rights back (room_wake_up).  What the socket does not take
 * stays in c->out, the member comes off the list and its thread is woken
 * to finish; a member too far behind, out of memory or with a broken
 * socket is woken the same way, and its thread finds out what happened.
 */
static void
flush_locked(struct hub *h, bool unlocked)
{
	if (h->flushing)
		return; /* the flusher's next pass takes what this thread published */
	h->flushing = true;
	while (h->dirty != NULL) {
		flush_collect_locked(h);
		flush_pass(h, unlocked);
	}
	h->flushing = false;
	if (h->flush_waiters > 0)
		pthread_cond_broadcast(&h->flushed);
}

/*
 * Drops the room lock and wakes the targets and, if something was
 * published since the last time, up to `sleepers` sleepers.  The wake-ups
 * (client_wake) happen unlocked, so a big idle room does not stall the
 * fan-out path; the reference taken under the lock keeps each client
 * alive meanwhile.
 */
static void
room_unlock_and_wake_some(struct hub *h, size_t sleepers, bool unlocked_writes)
{
	struct client *batch[WAKE_BATCH];

	flush_locked(h, unlocked_writes);
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
void
room_unlock_and_wake(struct hub *h)
{
	room_unlock_and_wake_some(h, SIZE_MAX, true);
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
void
room_unlock_and_cascade(struct hub *h)
{
	room_unlock_and_wake_some(h, WAKE_CASCADE, true);
}

/* The same for the publisher of stored messages, which writes through with the lock held. */
static void
room_unlock_and_publish(struct hub *h)
{
	room_unlock_and_wake_some(h, WAKE_CASCADE, false);
}

/* ---- the rings ---- */

void
slot_release(struct ring_slot *s)
{
	for (size_t w = 0; w < WIRE_MAX; w++) {
		line_unref(s->w[w].body);
		s->w[w].body = NULL;
	}
	line_unref(s->label);
	s->label = NULL;
}

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
	r->flush_from = 0; /* something new: every member is looked at again */
	if (r->dirty)
		return;
	r->dirty = true;
	r->dirty_next = h->dirty;
	h->dirty = r;
}

void
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

	size_t len = 0;

	for (size_t w = 0; w < WIRE_MAX; w++)
		if (slot.w[w].len > len)
			len = slot.w[w].len;
	slot_release(s);
	slot.seq = ++h->seq;
	slot.at = r->bytes;
	r->bytes += len;
	*s = slot;
	r->head++;
	dirty_add_locked(h, r);
}

/*
 * The members of r on line form w (WIRE_MAX: any) but `except` miss an
 * event or a message (no memory for its line): each is woken and ends,
 * told why (room_collect).
 */
static void
event_lost_locked(struct hub *h, struct room *r, size_t w, uint64_t except)
{
	for (size_t i = 0; i < r->n_members; i++) {
		struct client *m = r->members[i];

		if ((w == WIRE_MAX || m->wire == w) && m->id != except) {
			m->room.out_lost = true;
			target_add_locked(h, m);
		}
	}
}

/*
 * Event ev for every member of r but `except`: formatted once for each
 * line form some connection uses (form_users).
 */
void
ring_push_event_locked(struct hub *h, struct room *r, const struct wire_event *ev, uint64_t except)
{
	struct ring_slot slot = { .kind = SLOT_EVENT, .sender = except };

	for (size_t w = 0; w < WIRE_MAX; w++) {
		bool used = h->formats[w] != NULL && h->form_users[w] > 0;
		struct line *l = used ? h->formats[w]->event(ev) : NULL;

		if (used && l == NULL && ev->kind != WE_TAGMSG) {
			log_warning("room: out of memory, an event was not sent");
			event_lost_locked(h, r, w, except);
		}
		if (l != NULL)
			slot.w[w] = (struct wire_bytes){ .body = l, .len = l->len };
	}
	ring_reserve_locked(r, 1);
	ring_push_locked(h, r, slot);
}

/* ---- publication of stored messages ---- */

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
	return history_kind_message(e->kind) && !e->failed;
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

/*
 * Formats the messages of e[0..n) for the line forms in forms (a mask)
 * that b does not have yet (b zeroed first unless more); -1 without
 * memory.
 */
static int
batch_format(const struct hub *h, const struct history_entry *e, size_t n, struct batch *b,
	     unsigned forms, bool more)
{
	size_t msgs = 0;

	if (!more)
		memset(b, 0, sizeof(*b));
	for (size_t i = 0; i < n; i++)
		msgs += is_message(&e[i]);
	if (msgs == 0)
		return 0;
	if (b->at == NULL && (b->at = calloc(msgs * WIRE_MAX, sizeof(*b->at))) == NULL)
		return -1;
	for (size_t w = 0; w < WIRE_MAX; w++) {
		const struct wire_format *f = h->formats[w];
		size_t total = 0, off = 0, k = 0;

		if (f == NULL || !(forms & (1u << w)) || b->line[w] != NULL)
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

/* The forms in use now: exact under the room lock, a moment old without it. */
static unsigned
forms_in_use(struct hub *h)
{
	return atomic_load(&h->forms_in_use);
}

static int
batch_make(struct hub *h, const struct history_entry *e, size_t n, struct batch *b)
{
	return batch_format(h, e, n, b, forms_in_use(h), false);
}

/*
 * Message k of batch b, e: its slot, the bytes in the batch's lines (or,
 * when the batch could not be made, in lines of its own; without memory
 * for those either, kind SLOT_FAILED: see msg_lost_locked).
 */
static struct ring_slot
msg_slot(struct hub *h, const struct history_entry *e, const struct batch *b, size_t k)
{
	struct ring_slot s = { .kind = SLOT_MSG,
			       .sender = e->sender,
			       .label = e->live.label ? line_ref(e->live.label) : NULL };
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

/* A message's bytes in the largest of the line forms in use. */
static size_t
msg_bytes(const struct hub *h, const struct history_entry *e)
{
	size_t most = 0;

	for (size_t w = 0; w < WIRE_MAX; w++)
		if (h->formats[w] && (forms_in_use((struct hub *)h) & (1u << w)) &&
		    h->formats[w]->msg_len(e) > most)
			most = h->formats[w]->msg_len(e);
	return most;
}

void
room_backlog_limits(struct hub *h, size_t *msgs, size_t *bytes)
{
	(void)h;
	*msgs = (size_t)(ring_max_cap() / PUBLISH_SHARE);
	*bytes = (size_t)settings_get()->send_queue_limit / BACKLOG_SHARE;
}

/*
 * How many of the n entries from e go into the rings in one piece: at
 * most 1/PUBLISH_SHARE of the largest ring's slots and of send_queue_limit
 * in bytes, and at least one.
 */
static size_t
publish_piece(struct hub *h, const struct history_entry *e, size_t n)
{
	size_t max_msgs = (size_t)(ring_max_cap() / PUBLISH_SHARE),
	       max_bytes = (size_t)settings_get()->send_queue_limit / PUBLISH_SHARE, bytes = 0, i;

	for (i = 0; i < n && i < max_msgs; i++) {
		if (is_message(&e[i]))
			bytes += msg_bytes(h, &e[i]);
		if (i > 0 && bytes > max_bytes)
			break;
	}
	return i;
}

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

		if (outq_reserve(&c->room.inbox, n) < 0) /* whole lines or none */
			c->room.out_lost = true;
		else
			for (size_t i = 0; i < n; i++)
				piece_queue(&c->room.inbox, &p[i], 0);
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
	struct line *l = NULL;

	if (e->failed)
		l = line_printf("%s", f->not_stored);
	else if (f->ack_head != NULL)
		l = line_printf("%s%.*s%s", f->ack_head, (int)e->time_off, e->body->data,
				f->ack_tail);
	else if (c->room.echo && (l = line_new(f->msg_len(e))) != NULL) {
		uint32_t id_off, id_len;

		f->msg_put(e, l->data, &id_off, &id_len);
		if (e->live.label != NULL) { /* "@label=X" + ";" tags or " " line */
			struct line *whole = l;
			bool tags = whole->data[0] == '@';

			l = line_printf("%s%s%s", e->live.label->data, tags ? ";" : " ",
					whole->data + tags);
			line_unref(whole);
		}
	}
	inbox_catch_up_locked(h, c, h->seq, NULL);
	if (l != NULL ? outq_push_line(&c->room.inbox, l) < 0
		      : !e->failed && (f->ack_head != NULL || c->room.echo))
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
		if (!history_kind_message(e[i].kind) ||
		    (r = dest_locked(h, &e[i], &last, &elsewhere)) == NULL)
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
 * Message e of room r is stored, but no memory was left for its line: it
 * must not fail (ERR 507 says "not stored", and replay would show it),
 * and nobody may go on without it.  So r's members and its sender are
 * woken and end with BYE error; a member that comes back gets it in its
 * replay.  Releases slot, the failed one msg_slot() made.
 */
static void
msg_lost_locked(struct hub *h, struct room *r, const struct history_entry *e,
		struct ring_slot *slot)
{
	struct client *sender = sender_locked(h, e);

	slot_release(slot);
	log_error("room: out of memory, message %" PRIu64 " of %s is stored but not shown: "
		  "the members of the room are disconnected",
		  e->id, r->name);
	event_lost_locked(h, r, WIRE_MAX, 0);
	if (sender != NULL) {
		sender->room.out_lost = true;
		target_add_locked(h, sender);
	}
}

/*
 * A batch goes into the rings in pieces the rings and a member's send
 * queue can hold, each written through to the idle members before the
 * next (when another thread is the flusher, its pass is waited for): one
 * batch longer than a ring would put every member behind at
 * once, the sender, idle members and fast readers alike.  The history
 * backlog is held to one piece (client.c), so a batch is one piece but
 * for the one message each member may always have in flight.  Records
 * other than messages are not shown: the hub sent them live.
 */
void
room_publish_history(void *ctx, const struct history_entry *e, size_t n)
{
	struct hub *h = ctx;
	bool first = true;

	while (n > 0) {
		size_t piece = publish_piece(h, e, n), k = 0;
		struct room *last = NULL, *r;
		struct batch batch;
		struct client *elsewhere;

		batch_make(h, e, piece, &batch); /* before the lock is taken; may fail (msg_slot) */
		pthread_mutex_lock(&h->lock);
		if (fault_active(FAULT_ROOM_HANG))
			fault_hang();
		/* The piece before is written through first, by another flusher too. */
		while (!first && h->flushing) {
			h->flush_waiters++;
			pthread_cond_wait(&h->flushed, &h->lock);
			h->flush_waiters--;
		}
		first = false;
		/* A form that came into use meanwhile (rare): formatted now, under the lock. */
		if (batch.at != NULL &&
		    batch_format(h, e, piece, &batch, forms_in_use(h), true) < 0)
			batch_free(&batch);
		reserve_piece_locked(h, e, piece);
		for (size_t i = 0; i < piece; i++) {
			if (!e[i].failed)
				h->last_msg_id = e[i].id;
			if (e[i].kind == HK_DELETE && !e[i].again)
				tomb_remove(h, e[i].room);
			if (!history_kind_message(e[i].kind))
				continue;
			r = dest_locked(h, &e[i], &last, &elsewhere);
			if (elsewhere != NULL)
				ack_elsewhere_locked(h, elsewhere, &e[i]);
			if (r != NULL && e[i].failed)
				ring_push_locked(h, r,
						 (struct ring_slot){
							 .kind = SLOT_FAILED,
							 .sender = e[i].sender,
							 .label =
								 e[i].live.label
									 ? line_ref(e[i].live.label)
									 : NULL });
			else if (r != NULL) {
				struct ring_slot s = msg_slot(h, &e[i], &batch, k);

				if (s.kind == SLOT_FAILED)
					msg_lost_locked(h, r, &e[i], &s);
				else
					ring_push_locked(h, r, s);
			}
			k += is_message(&e[i]);
		}
		room_unlock_and_publish(h);
		batch_free(&batch);
		e += piece;
		n -= piece;
	}
}

/* ---- delivery ---- */

/* Event ev for c alone, through its inbox (the ring of a room it is not in, or of none). */
void
send_alone_locked(struct hub *h, struct client *c, const struct wire_event *ev)
{
	struct line *l = h->formats[c->wire]->event(ev);

	if (l == NULL || outq_push_line(&c->room.inbox, l) < 0) {
		log_warning("room: out of memory, a line to %s was not sent", c->name);
		c->room.out_lost = true; /* it ends, told why (room_collect) */
	}
	target_add_locked(h, c);
}

/*
 * c is taken out of r by someone else (a kick, a deletion): what it had
 * not delivered from r goes with the membership, but the answers to its
 * own messages among it must not, or its count of unanswered messages
 * never comes down.  They go to its inbox, ahead of the PART, with what it
 * has pending in its other rooms from before them, so its replies keep
 * the order of its requests.
 */
void
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
 * room_send_private(), and the recipient's name as others see it ("~NAME"
 * for a guest) in to (tolen 0: not wanted).  Its line names the recipient
 * as it spells itself, not as typed.
 */
static int
send_private(struct hub *h, const struct wire_private *pm, char *away, size_t awaylen, char *to,
	     size_t tolen)
{
	int rc = -1;

	if (awaylen > 0)
		away[0] = '\0';
	pthread_mutex_lock(&h->lock);
	struct client *c = online_find_locked(h, pm->to);
	if (c != NULL) {
		struct wire_private spelled = *pm;

		spelled.to = c->name;
		if (tolen > 0)
			snprintf(to, tolen, "%s%s", c->room.guest ? "~" : "", c->name);
		struct line *l = h->formats[c->wire]->priv(&spelled);

		if (l == NULL && pm->tagmsg) /* its form shows no tags alone */
			rc = 0;
		else
			rc = l != NULL && outq_push_line(&c->room.inbox, l) == 0 ? 0 : -2;
		if (c->room.away != NULL && awaylen > 0)
			snprintf(away, awaylen, "%s", c->room.away);
		target_add_locked(h, c);
	}
	room_unlock_and_wake(h);
	return rc;
}

int
room_send_private(struct hub *h, const struct wire_private *pm, char *away, size_t awaylen)
{
	return send_private(h, pm, away, awaylen, NULL, 0);
}

int
room_send_private_to(struct hub *h, const struct wire_private *pm, char *to, size_t tolen)
{
	return send_private(h, pm, NULL, 0, to, tolen);
}

/* Moves every line others queued for c into its own output. */
static int
inbox_drain_locked(struct client *c)
{
	struct outq *in = &c->room.inbox;

	if (outq_reserve(&c->out, in->count) < 0) /* whole lines or none */
		return -1;
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

/* room_collect(), and with `all` room_collect_all(). */
static int
collect_some(struct hub *h, struct client *c, int64_t limit, bool all, enum part_reason *why,
	     char *text, size_t textlen)
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
	/*
	 * Past half its limit, the rest stays in the ring until the socket
	 * took some (backed up meanwhile): a member behind by more than its
	 * queue holds, but not by more than the ring, takes it in turns.  At
	 * shutdown, everything said before it goes out ahead of BYE.
	 */
	for (unsigned i = 0;
	     !over && (h->closing || (i < COLLECT_BATCH && (all || !queue_past_half(c, limit)))) &&
	     (m = next_pending(c));
	     i++) {
		if (deliver_slot(h, c, slot_at(m)) < 0)
			goto nomem;
		m->cursor++;
	}
	/*
	 * A member that does not read: its queue passes the limit, or (room
	 * traffic stopping at half of it) the queue and what waits in the
	 * rings pass twice the limit, or a ring overruns it.
	 */
	if (over || queue_overflowed(c, limit) ||
	    c->out.bytes + c->room.inbox.bytes + ring_lag_bytes(c) > 2 * (uint64_t)limit) {
		*why = PART_OVERFLOW;
		snprintf(text, textlen, "%s", part_reason_text(PART_OVERFLOW));
		goto leave;
	}
	if (h->closing) {
		*why = PART_SHUTDOWN;
		snprintf(text, textlen, "%s", part_reason_text(PART_SHUTDOWN));
		goto leave;
	}
	bool capped = c->room.member && queue_past_half(c, limit);
	bool more = (all || !capped) && next_pending(c) != NULL;
	/* Backed up until what waits in the rings too is under half the limit. */
	bool backed_up = capped ||
			 (c->room.member && c->out.bytes + c->room.inbox.bytes + ring_lag_bytes(c) >
						    (uint64_t)limit / 2);
	backed_up_set_locked(h, c, backed_up);
	room_unlock_and_cascade(h);
	return more;

nomem:
	*why = PART_ERROR;
	snprintf(text, textlen, "out of memory");
leave:
	room_unlock_and_cascade(h);
	return -1;
}

int
room_collect(struct hub *h, struct client *c, int64_t limit, enum part_reason *why, char *text,
	     size_t textlen)
{
	return collect_some(h, c, limit, false, why, text, textlen);
}

int
room_collect_all(struct hub *h, struct client *c, int64_t limit, enum part_reason *why, char *text,
		 size_t textlen)
{
	return collect_some(h, c, limit, true, why, text, textlen);
}

bool
room_sleep(struct hub *h, struct client *c, bool write_through)
{
	pthread_mutex_lock(&h->lock);
	/* A member backed up with its queue unwritten waits for its socket, not the ring. */
	bool idle = !h->closing && !c->room.evicted && !c->room.out_lost &&
		    c->room.inbox.count == 0 &&
		    (next_pending(c) == NULL || (!outq_empty(&c->out) && queue_backed_up(c)));
	if (idle) {
		backed_up_set_locked(h, c, queue_backed_up(c));
		bool hand = write_through && c->room.member && outq_empty(&c->out);
		/*
		 * Still listed from a sleep that ended without a wake-up, or
		 * from a wake-up without the lock: the right list now.
		 */
		if (c->room.sleeping && c->room.writer != hand)
			sleeper_remove_locked(h, c);
		atomic_store_explicit(&c->room.rights, hand ? RIGHTS_HUB : RIGHTS_THREAD,
				      memory_order_release);
		sleeper_add_locked(h, c, hand);
	}
	pthread_mutex_unlock(&h->lock);
	return idle;
}

/*
 * With no pass claiming them, the rights come back without the room lock
 * (which the publisher may hold through a whole pass): c stays on the
 * writers list, where passes skip it, until its next room_sleep() puts it
 * on the right list.  Under a claim, it waits for the pass to let c go.
 */
void
room_wake_up(struct hub *h, struct client *c)
{
	int hub = RIGHTS_HUB;

	/* Only c's thread hands them over: RIGHTS_THREAD stays. */
	if (atomic_load_explicit(&c->room.rights, memory_order_relaxed) == RIGHTS_THREAD ||
	    atomic_compare_exchange_strong_explicit(&c->room.rights, &hub, RIGHTS_THREAD,
						    memory_order_acquire, memory_order_relaxed))
		return;
	pthread_mutex_lock(&h->lock);
	claim_wait_locked(h, c);
	if (c->room.writer)
		sleeper_remove_locked(h, c);
	atomic_store_explicit(&c->room.rights, RIGHTS_THREAD, memory_order_relaxed);
	pthread_mutex_unlock(&h->lock);
}
