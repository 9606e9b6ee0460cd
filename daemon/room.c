/*
 * room.c - the hub's rooms: making, finding and freeing them, the tombs
 * of deleted ones, their names, memberships, joins and parts, /switch,
 * topics, /who and /rooms (a session's room commands), the rooms file
 * (rooms_save, room_save_within, hub_load_rooms) and the control thread's
 * room calls (chatctl room ...).  See room.h and hub.h.
 *
 * Threads: a client's thread (its room commands, its join at login
 * through hub.c), the control thread (the *_within calls, loading the
 * rooms file before clients), the publisher of stored messages (through
 * fanout.c: finding a room, tomb_remove); everything under the room lock but the
 * rooms file, which is written under the save lock alone, the events
 * stored in the history after the room lock is dropped, and the wait of
 * a /join for a deletion record (drop_lock, see the tombs).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "fault.h"
#include "hub.h"
#include "log.h"
#include "roomfile.h"
#include "timefmt.h"
#include "utf8.h"

/* ---- names ---- */

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

struct room *
room_find_locked(struct hub *h, const char *name)
{
	bool found;
	size_t i = room_search_locked(h, name, &found);

	return found ? h->rooms[i] : NULL;
}

static const char *
client_name_at(const void *v, size_t i)
{
	return ((struct client *const *)v)[i]->name;
}

/* Index of name in a sorted array of clients, or where it would go (*found false). */
size_t
client_search(struct client *const *v, size_t n, const char *name, bool *found)
{
	return name_search(v, n, client_name_at, name, found);
}

/* Inserts c in a sorted array of clients by name. */
int
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

void
client_remove(struct client **v, size_t *n, struct client *c)
{
	bool found;
	size_t i = client_search(v, *n, c->name, &found);

	if (found && v[i] == c) {
		memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
		(*n)--;
	}
}

/* ---- tombs ---- */

/*
 * Tombs.  A deleted room's history gets a deletion record
 * (history_drop_room), but messages stored for the room before it are
 * published before it too, possibly after a room of the same name was
 * made again: those belong to the deleted room and must not reach the new
 * one.  So the name keeps a tomb from the deletion until the record is
 * published (room_publish_history), and a room made meanwhile is stale:
 * the messages published for it are the old room's.
 *
 * The record is appended after the room lock is dropped (the history and
 * room locks are never held together), so until it is, a /join does not
 * make the name again but waits (room_find_settled): a message to the
 * new room would get an id below the record's and be dropped with the
 * old room's at the next start, though its sender got OK.  Each deletion
 * has a ticket; the control thread, which alone deletes rooms, one at a
 * time, sets drops_recorded to it once the record is appended
 * (room_drop_record) and wakes the joins waiting on `dropped`.
 *
 * The ticket also numbers the deletion for the history, and each room
 * keeps the number of tickets given out when it was made (made_after):
 * an event of the old room (a join, part, topic or quit), stored after
 * the room lock is dropped, may come after the deletion record, and the
 * history leaves it out (history_append_event), so it never counts for a
 * room made again, in memory or after a restart; so does a message sent
 * to the old room (room_target's made_after, history_append_live).
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

/* The ticket of name's deletion if its record is not appended yet, else 0. */
static uint64_t
tomb_pending(struct hub *h, const char *name)
{
	uint64_t recorded = atomic_load_explicit(&h->drops_recorded, memory_order_acquire);
	uint64_t ticket = 0;
	int64_t now = time_mono_ms();

	for (size_t i = 0; i < h->n_tombs; i++)
		if (h->tombs[i].ticket > recorded && h->tombs[i].until_ms > now &&
		    name_cmp(h->tombs[i].name, name) == 0 && h->tombs[i].ticket > ticket)
			ticket = h->tombs[i].ticket;
	return ticket;
}

/* Waits, no room lock held, until deletion ticket is recorded, at most TOMB_MS. */
static void
drop_wait(struct hub *h, uint64_t ticket)
{
	struct timespec until = time_after_ms(CLOCK_REALTIME, TOMB_MS);

	pthread_mutex_lock(&h->drop_lock);
	h->drop_waiters++;
	pthread_cond_broadcast(&h->dropped); /* for whoever watches drop_waiters */
	while (atomic_load_explicit(&h->drops_recorded, memory_order_acquire) < ticket)
		if (pthread_cond_timedwait(&h->dropped, &h->drop_lock, &until) == ETIMEDOUT)
			break;
	h->drop_waiters--;
	pthread_mutex_unlock(&h->drop_lock);
}

/*
 * Takes the room lock and finds name (NULL: no such room); if a room of
 * that name was deleted and its record is not appended yet, waits for it
 * first, so a room made again gets only records with higher ids.
 */
static struct room *
room_find_settled(struct hub *h, const char *name)
{
	struct room *r;
	uint64_t ticket;

	pthread_mutex_lock(&h->lock);
	while ((r = room_find_locked(h, name)) == NULL && (ticket = tomb_pending(h, name)) != 0) {
		pthread_mutex_unlock(&h->lock);
		drop_wait(h, ticket);
		pthread_mutex_lock(&h->lock);
	}
	return r;
}

/*
 * The deletion's ticket, and a tomb for name with it (none without
 * history, or without memory for it: a /join then does not wait).  The
 * ticket also numbers the deletion for the history (history_drop_room),
 * so an event or message of the room stored after its deletion record is
 * dropped.
 */
static uint64_t
tomb_add(struct hub *h, const char *name)
{
	uint64_t ticket = ++h->drops_begun;
	struct tomb *t;

	if (h->history == NULL) /* no history, no deletion record to wait for */
		return ticket;
	if (h->n_tombs == h->cap_tombs) {
		size_t ncap = h->cap_tombs ? h->cap_tombs * 2 : 4;
		struct tomb *n = realloc(h->tombs, ncap * sizeof(*n));

		if (n == NULL)
			return ticket;
		h->tombs = n;
		h->cap_tombs = ncap;
	}
	t = &h->tombs[h->n_tombs++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->until_ms = time_mono_ms() + TOMB_MS;
	t->ticket = ticket;
	return ticket;
}

/*
 * After the room lock is dropped: the deletion record of name, deleted
 * with ticket, then the name may be made again.  Set once the record is
 * appended (or could not be: that is logged), so a message to a room
 * made after it gets a higher id.
 */
void
room_drop_record(struct hub *h, const char *name, uint64_t ticket)
{
	if (h->history != NULL)
		history_drop_room(h->history, name, ticket);
	pthread_mutex_lock(&h->drop_lock);
	if (ticket > atomic_load_explicit(&h->drops_recorded, memory_order_relaxed))
		atomic_store_explicit(&h->drops_recorded, ticket, memory_order_release);
	pthread_cond_broadcast(&h->dropped);
	pthread_mutex_unlock(&h->drop_lock);
}

/* The deletion record of name was published: its (oldest) tomb goes, and with it the staleness. */
void
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

/* ---- making and freeing rooms ---- */

struct room *
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
	r->made_after = h->drops_begun;
	r->stale = tomb_of(h, name);
	memmove(&h->rooms[i + 1], &h->rooms[i], (h->n_rooms - i) * sizeof(*h->rooms));
	h->rooms[i] = r;
	h->n_rooms++;
	h->rooms_dirty = true;
	return r;
}

void
room_free_one(struct room *r)
{
	for (uint64_t i = 0; i < r->ring_cap; i++)
		slot_release(&r->ring[i]);
	free(r->ring);
	free(r->members);
	free(r);
}

/* ---- memberships, joins and parts ---- */

struct membership *
membership_find(struct client *c, const struct room *r)
{
	for (size_t i = 0; i < c->room.n_rooms; i++)
		if (c->room.rooms[i].room == r)
			return &c->room.rooms[i];
	return NULL;
}

/* c enters r, from its head on. */
int
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
	r->flush_from = 0; /* the members move: a pass under way looks at all again */
	if (client_insert(&r->members, &r->n_members, &r->cap_members, c) < 0)
		return -1;
	c->room.rooms[c->room.n_rooms++] = (struct membership){ .room = r, .cursor = r->head };
	moved_locked(c);
	return 0;
}

/*
 * c leaves r (what it had not delivered from r goes with it).  If r was
 * its current room, the current room becomes the default room if c is in
 * it, else the room of c it joined first, else none.
 */
void
membership_remove_locked(struct hub *h, struct room *r, struct client *c)
{
	struct membership *m = membership_find(c, r);

	if (m == NULL)
		return;
	memmove(m, m + 1, (size_t)(&c->room.rooms[c->room.n_rooms] - (m + 1)) * sizeof(*m));
	c->room.n_rooms--;
	moved_locked(c);
	client_remove(r->members, &r->n_members, c);
	r->flush_from = 0;
	if (r->n_members == 0)
		r->empty_since_ms = time_now_ms();
	if (c->room.current == r) {
		if (membership_find(c, h->lobby) != NULL)
			current_set_locked(c, h->lobby);
		else
			current_set_locked(c, c->room.n_rooms > 0 ? c->room.rooms[0].room : NULL);
	}
}

/* Join and part notices stop above room_notice_limit members. */
static bool
notices_wanted(const struct room *r)
{
	return r->n_members <= (size_t)settings_get()->room_notice_limit;
}

/* An event of c in r, now: its name, and whether that is a guest's. */
static struct wire_event
room_event(const struct room *r, enum wire_event_kind kind, const struct client *c)
{
	return (struct wire_event){ .kind = kind,
				    .room = r->name,
				    .ms = time_now_ms(),
				    .name = c->name,
				    .guest = c->room.guest };
}

/* Everyone in r but c sees c's JOIN (unless r is too big for notices). */
void
publish_join_locked(struct hub *h, struct room *r, struct client *c)
{
	struct wire_event ev = room_event(r, WE_JOIN, c);

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
size_t
room_topic_limit(void)
{
	const struct settings *s = settings_get();

	return (size_t)(s->max_topic < s->max_line ? s->max_topic : s->max_line);
}

/*
 * The reason of a PART or BYE, or the default one, into a buffer of
 * REASON_TEXT_MAX + 1: a long reason is cut between characters, so what
 * everyone sees stays valid UTF-8.
 */
void
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
		    const char *text, bool offline)
{
	char reason[REASON_TEXT_MAX + 1];
	struct wire_event ev = room_event(r, WE_PART, c);

	if (!notices_wanted(r))
		return;
	reason_copy(reason, text, why);
	ev.reason = part_reason_name(why);
	ev.text = reason;
	ev.offline = offline;
	ring_push_event_locked(h, r, &ev, c->id);
}

/* c leaves every room it is in, and the rooms see why. */
void
part_all_locked(struct hub *h, struct client *c, enum part_reason why, const char *text)
{
	while (c->room.n_rooms > 0) {
		struct room *r = c->room.rooms[c->room.n_rooms - 1].room;

		publish_part_locked(h, r, c, why, text, true);
		membership_remove_locked(h, r, c);
	}
	current_set_locked(c, NULL);
}

/* ---- who and topic ---- */

/*
 * Names a USERS page lists: USERS_PAGE, or fewer when max_line is so short
 * that USERS_PAGE of the longest names (each with a guest's mark) would
 * not fit in max_line + PROTO_SERVER_OVERHEAD bytes (with a head of at
 * most 93: tag, room and three numbers).
 */
static size_t
users_page(void)
{
	size_t fits = ((size_t)settings_get()->max_line + PROTO_SERVER_OVERHEAD - 93) /
		      (NAME_MAX_LEN + 2);

	return fits < 1 ? 1 : fits > USERS_PAGE ? USERS_PAGE : fits;
}

/* The USERS line (in c's protocol) of page of r's members; page 0 when not listed. */
static struct line *
users_line_locked(const struct hub *h, const struct room *r, const struct client *c, unsigned page,
		  bool listed)
{
	unsigned wire = c->wire;
	const char *me = c->name;
	size_t per = users_page(), pages = (r->n_members + per - 1) / per, first, last;
	const char *names[USERS_PAGE];
	bool guests[USERS_PAGE];

	if (!listed || page < 1 || page > pages)
		page = 0;
	first = page ? (size_t)(page - 1) * per : 0;
	last = page ? first + per : 0;
	if (last > r->n_members)
		last = r->n_members;
	for (size_t i = first; i < last; i++) {
		names[i - first] = r->members[i]->name;
		guests[i - first] = r->members[i]->room.guest;
	}
	return h->formats[wire]->users(me, r->name, r->n_members, page, pages, names, guests,
				       last - first);
}

/* r's topic as an event: set by whom, when (0: never set). */
static struct wire_event
topic_event(const struct room *r)
{
	return (struct wire_event){ .kind = WE_TOPIC,
				    .room = r->name,
				    .ms = r->topic_ms,
				    .name = r->topic_by,
				    .guest = r->topic_guest,
				    .text = r->topic };
}

/* r's topic for c: as a reply to a join or a question (reply), or as the event others see. */
static struct line *
topic_line_locked(const struct hub *h, const struct room *r, const struct client *c, bool reply)
{
	struct wire_event ev = topic_event(r);
	const struct wire_format *f = h->formats[c->wire];

	if (reply && f->topic_reply != NULL)
		return f->topic_reply(c->name, &ev);
	return f->event(&ev);
}

/* The reply to c's joining r: USERS (page 1, or 0 above room_notice_limit) and TOPIC if any. */
int
join_reply_locked(struct hub *h, struct room *r, struct client *c, struct room_join_reply *rep)
{
	snprintf(rep->room, sizeof(rep->room), "%s", r->name);
	rep->first_id = r->first_id;
	rep->last_msg_id = h->last_msg_id;
	rep->users = users_line_locked(h, r, c, 1, notices_wanted(r));
	rep->topic = r->topic_ms != 0 ? topic_line_locked(h, r, c, true) : NULL;
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

/*
 * An event of room, made after deletion made_after (its made_after, read
 * under the room lock with the event): if the room was deleted since, and
 * its deletion record appended first, the history leaves it out (it is
 * the old room's, not a namesake's made since).  guest: name is a
 * guest's (the record says so: history_entry.guest).
 */
static void
store_event(struct hub *h, const char *room, uint64_t made_after, enum history_kind kind,
	    const char *name, bool guest, const char *text)
{
	if (h->event_hook != NULL)
		h->event_hook(h);
	if (h->history != NULL && history_append_event(h->history, room, kind, name, guest, text,
						       strlen(text), made_after) < 0)
		log_warning("room %s: an event could not be stored: %s", room, strerror(errno));
}

void
departure_note_locked(struct departure *d, const struct client *c, enum part_reason why,
		      const char *text)
{
	size_t n = c->room.n_rooms;

	*d = (struct departure){ .guest = c->room.guest };
	snprintf(d->name, sizeof(d->name), "%s", c->name);
	part_fields(d->fields, sizeof(d->fields), why, text);
	if (n > 0 && (d->rooms = calloc(n, sizeof(*d->rooms))) == NULL) {
		log_warning("%s left the server: out of memory, its rooms' history does not say so",
			    c->name);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(d->rooms[d->n].name, sizeof(d->rooms[0].name), "%s",
			 c->room.rooms[i].room->name);
		d->rooms[d->n++].made_after = c->room.rooms[i].room->made_after;
	}
}

void
departure_store(struct hub *h, struct departure *d)
{
	for (size_t i = 0; i < d->n; i++)
		store_event(h, d->rooms[i].name, d->rooms[i].made_after, HK_QUIT, d->name, d->guest,
			    d->fields);
	free(d->rooms);
	d->rooms = NULL;
	d->n = 0;
}

/*
 * The room lock for a save, as hub_lock().  The test fault room-save-busy
 * makes the control thread's first save of a change find it busy.
 */
static bool
save_lock_room(struct hub *h, int timeout_ms)
{
	if (!hub_lock(h, timeout_ms))
		return false;
	if (timeout_ms >= 0 && h->rooms_dirty && fault_once(FAULT_ROOM_SAVE_BUSY)) {
		pthread_mutex_unlock(&h->lock);
		errno = ETIMEDOUT;
		return false;
	}
	return true;
}

/*
 * Writes the rooms file if a room or a topic changed since it was last
 * written, or its last write failed.  timeout_ms < 0: waits for the room
 * lock (a client's thread); else the control thread's rule: a lock not
 * free in time leaves the change for the next save.
 */
static void
rooms_save(struct hub *h, int timeout_ms)
{
	struct roomfile_room *v;
	size_t n;
	char err[256];

	pthread_mutex_lock(&h->save_lock);
	if (!save_lock_room(h, timeout_ms)) {
		log_warning("rooms: the room lock was busy: %s is written at the next try",
			    h->rooms_path);
		pthread_mutex_unlock(&h->save_lock);
		return;
	}
	if ((!h->rooms_dirty && !h->rooms_unsaved) || h->rooms_path == NULL ||
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
		v[i].topic_guest = r->topic_guest;
		snprintf(v[i].topic, sizeof(v[i].topic), "%s", r->topic);
	}
	h->rooms_dirty = false;
	pthread_mutex_unlock(&h->lock);
	/* Failed: the next change or rooms tick tries again, the room lock free or not now. */
	h->rooms_unsaved = roomfile_save(h->rooms_path, v, n, err, sizeof(err)) < 0;
	if (h->rooms_unsaved)
		log_error("%s", err);
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

		/* Not a room less: the next save would write the file without it. */
		if (r == NULL) {
			pthread_mutex_unlock(&h->lock);
			free(v);
			snprintf(err, errlen, "%s: out of memory loading its rooms", path);
			return -1;
		}
		r->created_ms = v[i].created_ms;
		r->topic_ms = v[i].topic_ms;
		snprintf(r->topic_by, sizeof(r->topic_by), "%s", v[i].topic_by);
		r->topic_guest = v[i].topic_guest;
		snprintf(r->topic, sizeof(r->topic), "%s", v[i].topic);
	}
	/* Counted from now: a room's empty time before a restart is not known. */
	h->rooms_dirty = false;
	pthread_mutex_unlock(&h->lock);
	free(v);
	return 0;
}

/* ---- a session's room commands ---- */

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

/* Whether c may make a room by joining it: ROOM_DONE if so. */
static enum room_result
may_create_locked(struct hub *h, const struct client *c)
{
	const struct settings *s = settings_get();

	if (s->room_create == ROOM_CREATE_ADMIN ||
	    (s->room_create == ROOM_CREATE_REGISTERED && c->room.guest))
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
	uint64_t made_after;

	memset(rep, 0, sizeof(*rep));
	if (!room_arg(arg, name))
		return ROOM_BAD_NAME;
	r = room_find_settled(h, name);
	if (h->closing) {
		pthread_mutex_unlock(&h->lock);
		return ROOM_CLOSING;
	}
	if (r != NULL && membership_find(c, r) != NULL) {
		current_set_locked(c, r);
		snprintf(rep->room, sizeof(rep->room), "%s", r->name);
		pthread_mutex_unlock(&h->lock);
		return ROOM_ALREADY;
	}
	if (c->room.n_rooms >= (size_t)settings_get()->max_rooms_per_user)
		res = ROOM_MAX_PER_USER;
	else if (r == NULL && (res = may_create_locked(h, c)) == ROOM_DONE) {
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
	current_set_locked(c, r);
	publish_join_locked(h, r, c);
	if (join_reply_locked(h, r, c, rep) < 0)
		res = ROOM_NO_MEMORY;
	made_after = r->made_after;
	room_unlock_and_wake(h);
	store_event(h, rep->room, made_after, HK_JOIN, c->name, c->room.guest, "");
	if (rep->created)
		rooms_save(h, -1);
	return res;
}

/*
 * Takes the room lock and finds the room one of c's commands names (NULL:
 * c's current room), which c must be in; its spelling goes into spelled.
 * ROOM_DONE with the lock held and *r set, or why not with the lock dropped.
 */
static enum room_result
lock_member_room(struct hub *h, struct client *c, const char *arg, struct room **r, char *spelled)
{
	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, true, r);
	if (res != ROOM_DONE) {
		pthread_mutex_unlock(&h->lock);
		return res;
	}
	snprintf(spelled, ROOM_NAME_MAX + 1, "%s", (*r)->name);
	return ROOM_DONE;
}

enum room_result
room_part(struct hub *h, struct client *c, const char *arg, const char *reason, char *spelled)
{
	char fields[32 + REASON_TEXT_MAX];
	struct room *r;

	enum room_result res = lock_member_room(h, c, arg, &r, spelled);
	if (res != ROOM_DONE)
		return res;
	uint64_t made_after = r->made_after;
	publish_part_locked(h, r, c, PART_LEFT, reason, false);
	membership_remove_locked(h, r, c);
	room_unlock_and_wake(h);
	part_fields(fields, sizeof(fields), PART_LEFT, reason);
	store_event(h, spelled, made_after, HK_PART, c->name, c->room.guest, fields);
	return ROOM_DONE;
}

enum room_result
room_switch(struct hub *h, struct client *c, const char *arg, char *spelled)
{
	struct room *r;

	enum room_result res = lock_member_room(h, c, arg, &r, spelled);
	if (res != ROOM_DONE)
		return res;
	current_set_locked(c, r);
	pthread_mutex_unlock(&h->lock);
	return ROOM_DONE;
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

/*
 * A message's room costs no room lock while c's rooms stay as they were:
 * the answer is kept with the room.moves it was read at, and everything
 * that changes c's rooms or current room bumps room.moves under the lock
 * (moved_locked), so an equal count means the same answer.  A change that
 * races with the check is one the message could have come before anyway.
 */
enum room_result
room_target(struct hub *h, struct client *c, const char *arg, char *spelled, uint64_t *made_after)
{
	const char *key = arg != NULL ? arg : "";
	bool cacheable = strlen(key) < sizeof(c->target.arg);

	if (cacheable && c->target.valid && c->target.current == (arg == NULL) &&
	    strcmp(c->target.arg, key) == 0 &&
	    atomic_load_explicit(&c->room.moves, memory_order_acquire) == c->target.moves) {
		memcpy(spelled, c->target.spelled, sizeof(c->target.spelled));
		if (made_after != NULL)
			*made_after = c->target.made_after;
		return ROOM_DONE;
	}
	pthread_mutex_lock(&h->lock);
	unsigned moves = atomic_load_explicit(&c->room.moves, memory_order_relaxed);
	struct room *r;
	enum room_result res = room_of_locked(h, c, arg, true, &r);
	uint64_t made = 0;
	if (res == ROOM_DONE) {
		snprintf(spelled, ROOM_NAME_MAX + 1, "%s", r->name);
		made = r->made_after;
	}
	pthread_mutex_unlock(&h->lock);
	if (made_after != NULL)
		*made_after = made;
	c->target.valid = res == ROOM_DONE && cacheable;
	if (c->target.valid) {
		c->target.made_after = made;
		c->target.moves = moves;
		c->target.current = arg == NULL;
		snprintf(c->target.arg, sizeof(c->target.arg), "%s", key);
		memcpy(c->target.spelled, spelled, sizeof(c->target.spelled));
	}
	return res;
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
	if (res == ROOM_DONE && (*topic = topic_line_locked(h, r, c, true)) == NULL)
		res = ROOM_NO_MEMORY;
	pthread_mutex_unlock(&h->lock);
	return res;
}

/*
 * Sets r's topic and shows it to every member; the setter (NULL: the
 * operator, by OPERATOR_NAME) gets it in *shown instead, for its reply.
 */
static void
topic_set_locked(struct hub *h, struct room *r, const char *by, const char *text,
		 struct client *setter, struct line **shown)
{
	struct wire_event ev;

	snprintf(r->topic, sizeof(r->topic), "%s", text);
	snprintf(r->topic_by, sizeof(r->topic_by), "%s", by);
	r->topic_guest = setter != NULL && setter->room.guest;
	r->topic_ms = time_now_ms();
	h->rooms_dirty = true;
	ev = topic_event(r);
	if (setter != NULL)
		*shown = topic_line_locked(h, r, setter, false);
	ring_push_event_locked(h, r, &ev, setter ? setter->id : 0);
}

enum room_result
room_topic_set(struct hub *h, struct client *c, const char *arg, const char *text, char *spelled,
	       struct line **topic)
{
	struct room *r;

	if (strlen(text) > room_topic_limit())
		return ROOM_TOPIC_LONG;
	enum room_result res = lock_member_room(h, c, arg, &r, spelled);
	if (res != ROOM_DONE)
		return res;
	uint64_t made_after = r->made_after;
	topic_set_locked(h, r, c->name, text, c, topic);
	room_unlock_and_wake(h);
	store_event(h, spelled, made_after, HK_TOPIC, c->name, c->room.guest, text);
	rooms_save(h, -1);
	return ROOM_DONE;
}

enum room_result
room_tagmsg(struct hub *h, struct client *c, const char *arg, const char *tags, char *spelled)
{
	struct room *r;

	enum room_result res = lock_member_room(h, c, arg, &r, spelled);
	if (res != ROOM_DONE)
		return res;
	struct wire_event ev = room_event(r, WE_TAGMSG, c);
	ev.text = tags;
	ring_push_event_locked(h, r, &ev, c->id);
	room_unlock_and_wake(h);
	return ROOM_DONE;
}

size_t
room_memberships(struct hub *h, struct client *c, char (*names)[ROOM_NAME_MAX + 1], size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&h->lock);
	for (; n < c->room.n_rooms && n < max; n++)
		snprintf(names[n], ROOM_NAME_MAX + 1, "%s", c->room.rooms[n].room->name);
	pthread_mutex_unlock(&h->lock);
	return n;
}

enum room_result
room_who(struct hub *h, struct client *c, const char *arg, struct room_who **out, size_t *n,
	 bool *listed, char *spelled)
{
	struct room *r;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, false, &r);
	if (res == ROOM_DONE) {
		*listed = notices_wanted(r);
		snprintf(spelled, ROOM_NAME_MAX + 1, "%s", r->name);
		if (r->n_members > 0 && (*out = calloc(r->n_members, sizeof(**out))) == NULL)
			res = ROOM_NO_MEMORY;
		for (size_t i = 0; res == ROOM_DONE && i < r->n_members; i++) {
			const struct client *m = r->members[i];

			snprintf((*out)[i].name, sizeof((*out)[i].name), "%s", m->name);
			(*out)[i].guest = m->room.guest;
			(*out)[i].away = m->room.away != NULL;
		}
		if (res == ROOM_DONE)
			*n = r->n_members;
	}
	pthread_mutex_unlock(&h->lock);
	return res;
}

enum room_result
room_users_line(struct hub *h, struct client *c, const char *arg, unsigned page,
		struct line **users)
{
	struct room *r;

	pthread_mutex_lock(&h->lock);
	enum room_result res = room_of_locked(h, c, arg, false, &r);
	if (res == ROOM_DONE && (*users = users_line_locked(h, r, c, page, true)) == NULL)
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
	l = h->formats[c->wire]->rooms(c->name, v, last - first);
	pthread_mutex_unlock(&h->lock);
	return l;
}

/*
 * ---- rooms, for the control thread ----
 *
 * As the control thread's calls in hub.c: each takes the room lock within
 * timeout_ms or fails with ETIMEDOUT, doing nothing.
 */

/* The operator's text to room, or to everyone (NULL). */
struct wire_event
notice_event(const char *room, const char *text)
{
	return (struct wire_event){ .kind = WE_NOTICE,
				    .room = room,
				    .ms = time_now_ms(),
				    .text = text };
}

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
room_exists_within(struct hub *h, int timeout_ms, const char *arg)
{
	char name[ROOM_NAME_MAX + 1];
	int found;

	if (!room_arg(arg, name))
		return 0;
	if (!lock_within(h, timeout_ms))
		return -1;
	found = room_find_locked(h, name) != NULL;
	pthread_mutex_unlock(&h->lock);
	return found;
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
	uint64_t made_after = 0;
	int rc = 1;

	if (!room_arg(arg, name)) {
		errno = EINVAL;
		return -1;
	}
	if (topic != NULL && strlen(topic) > room_topic_limit()) {
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
	} else {
		made_after = r->made_after;
		if (topic != NULL && *topic != '\0')
			topic_set_locked(h, r, OPERATOR_NAME, topic, NULL, NULL);
	}
	room_unlock_and_wake(h);
	if (rc == 1 && topic != NULL && *topic != '\0')
		store_event(h, name, made_after, HK_TOPIC, OPERATOR_NAME, false, topic);
	rooms_save(h, timeout_ms);
	return rc;
}

/*
 * Deletes r: each member gets PART ROOM .. deleted (through its inbox, as
 * the ring goes with the room) and is put in the default room if not
 * there; the default room becomes current for those whose current room
 * it was.  Returns the deletion's ticket, for room_drop_record() once the
 * room lock is dropped.
 */
uint64_t
room_delete_locked(struct hub *h, struct room *r)
{
	uint64_t ticket;
	bool found;
	size_t i = room_search_locked(h, r->name, &found);

	while (r->n_members > 0) {
		struct client *c = r->members[r->n_members - 1];
		bool was_current = c->room.current == r;
		struct wire_event ev = room_event(r, WE_PART, c);

		ev.reason = part_reason_name(PART_DELETED);
		ev.text = part_reason_text(PART_DELETED);
		salvage_answers_locked(h, c, r);
		send_alone_locked(h, c, &ev);
		membership_remove_locked(h, r, c);
		if (membership_find(c, h->lobby) == NULL && membership_add_locked(h->lobby, c) == 0)
			publish_join_locked(h, h->lobby, c);
		if ((was_current || c->room.current == NULL) && membership_find(c, h->lobby))
			current_set_locked(c, h->lobby);
	}
	dirty_remove_locked(h, r);
	ticket = tomb_add(h, r->name);
	if (found && h->rooms[i] == r) {
		memmove(&h->rooms[i], &h->rooms[i + 1], (h->n_rooms - i - 1) * sizeof(*h->rooms));
		h->n_rooms--;
	}
	room_free_one(r);
	h->rooms_dirty = true;
	return ticket;
}

int
room_delete_within(struct hub *h, int timeout_ms, const char *arg)
{
	char name[ROOM_NAME_MAX + 1];
	struct room *r;
	uint64_t ticket;

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
	ticket = room_delete_locked(h, r);
	room_unlock_and_wake(h);
	room_drop_record(h, name, ticket);
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
	if (strlen(topic) > room_topic_limit()) {
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
	uint64_t made_after = r->made_after;
	topic_set_locked(h, r, OPERATOR_NAME, topic, NULL, NULL);
	room_unlock_and_wake(h);
	store_event(h, name, made_after, HK_TOPIC, OPERATOR_NAME, false, topic);
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
	bool found, guest;

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
	guest = c->room.guest;
	uint64_t made_after = r->made_after;
	/* Still online: the server-wide kick's default text would say otherwise. */
	part_fields(fields, sizeof(fields), PART_KICKED,
		    reason && *reason ? reason : "taken out of the room by the operator");
	struct wire_event ev = room_event(r, WE_PART, c);
	ev.reason = part_reason_name(PART_KICKED);
	ev.text = fields + strlen(ev.reason) + 1;
	salvage_answers_locked(h, c, r);
	send_alone_locked(h, c, &ev);
	if (notices_wanted(r))
		ring_push_event_locked(h, r, &ev, c->id);
	membership_remove_locked(h, r, c);
	room_unlock_and_wake(h);
	store_event(h, name, made_after, HK_PART, who, guest, fields);
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
	struct gone {
		char name[ROOM_NAME_MAX + 1];
		uint64_t ticket;
	} *gone = NULL;
	size_t n = 0;

	if (!lock_within(h, timeout_ms))
		return -1;
	for (size_t i = h->n_rooms; i-- > 0;) {
		struct room *r = h->rooms[i];

		if (!expired(r, now, expiry))
			continue;
		struct gone *ng = realloc(gone, (n + 1) * sizeof(*gone));
		if (ng == NULL)
			break;
		gone = ng;
		snprintf(gone[n].name, sizeof(gone[n].name), "%s", r->name);
		gone[n++].ticket = room_delete_locked(h, r);
	}
	pthread_mutex_unlock(&h->lock);
	for (size_t i = 0; i < n; i++) {
		log_info("room %s expired (empty for %d s)", gone[i].name, expiry);
		room_drop_record(h, gone[i].name, gone[i].ticket);
	}
	free(gone);
	if (n > 0)
		rooms_save(h, timeout_ms);
	return (int)n;
}
