/*
 * hub.c - the hub itself: making and freeing it, the room lock
 * (lock_within, hub_lock), every connection (attach, detach, waiting for
 * the last, shutdown), the sessions online (log in and out, the table by
 * name, eviction) and the control thread's calls that are not about one
 * room (health probe, counts, kicks, server notices, the member list, the
 * wake-up after a reload).
 * See room.h and hub.h.
 *
 * Threads: a client's thread (attach, log in and out, detach), the
 * listener (attach), the control thread (the hub's life, the *_within
 * calls, shutdown); everything under the room lock.
 */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "config.h"
#include "hub.h"
#include "timefmt.h"

/* ---- the hub ---- */

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
	pthread_mutex_init(&h->drop_lock, NULL);
	pthread_cond_init(&h->empty, NULL);
	pthread_cond_init(&h->dropped, NULL);
	pthread_cond_init(&h->flushed, NULL);
	h->lobby = room_make_locked(h, settings_get()->default_room, true);
	if (h->lobby == NULL) {
		hub_free(h);
		return NULL;
	}
	h->lobby->is_default = true;
	h->rooms_dirty = false;
	flush_cowriter_start(h);
	return h;
}

void
hub_free(struct hub *h)
{
	if (h == NULL)
		return;
	flush_cowriter_stop(h);
	for (size_t i = 0; i < h->n_rooms; i++)
		room_free_one(h->rooms[i]);
	free(h->rooms);
	free(h->online);
	free(h->tombs);
	free(h->rooms_path);
	pthread_cond_destroy(&h->dropped);
	pthread_cond_destroy(&h->empty);
	pthread_cond_destroy(&h->flushed);
	pthread_mutex_destroy(&h->drop_lock);
	pthread_mutex_destroy(&h->save_lock);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void
hub_set_history(struct hub *h, struct history *history)
{
	h->history = history;
}

/* ---- the room lock ---- */

bool
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
bool
hub_lock(struct hub *h, int timeout_ms)
{
	if (timeout_ms >= 0)
		return lock_within(h, timeout_ms);
	pthread_mutex_lock(&h->lock);
	return true;
}

/* ---- sessions online ---- */

struct client *
online_find_locked(struct hub *h, const char *name)
{
	bool found;
	size_t i = client_search(h->online, h->n_online, name, &found);

	return found ? h->online[i] : NULL;
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
	/*
	 * A guest holds no account: it replaces nobody.  Its front-end found
	 * the name free, but another login of it may have come online since.
	 */
	if (old != NULL && c->room.guest) {
		pthread_mutex_unlock(&h->lock);
		errno = EEXIST;
		return -1;
	}
	if (old != NULL)
		evict_locked(h, old, PART_REPLACED, NULL);
	if (client_insert(&h->online, &h->n_online, &h->cap_online, c) < 0)
		goto nomem;
	c->room.member = true;
	if (membership_add_locked(h->lobby, c) < 0) {
		offline_locked(h, c);
		goto nomem;
	}
	current_set_locked(c, h->lobby);
	c->room.joined_ms = time_now_ms();
	publish_join_locked(h, h->lobby, c);
	int rc = join_reply_locked(h, h->lobby, c, rep);
	room_unlock_and_wake(h);
	if (rc < 0) /* online, but its reply could not be made */
		errno = ENOMEM;
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

void
form_count_locked(struct hub *h, const struct client *c, int delta)
{
	unsigned w = c->wire;

	h->form_users[w] += (size_t)delta;
	if (h->form_users[w] > 0)
		atomic_fetch_or(&h->forms_in_use, 1u << w);
	else
		atomic_fetch_and(&h->forms_in_use, ~(1u << w));
}

void
room_set_form(struct hub *h, struct client *c, unsigned wire, bool echo)
{
	pthread_mutex_lock(&h->lock);
	form_count_locked(h, c, -1);
	c->wire = wire;
	form_count_locked(h, c, +1);
	c->room.echo = echo;
	pthread_mutex_unlock(&h->lock);
}

int
room_set_away(struct hub *h, struct client *c, const char *text)
{
	char *copy = text != NULL ? strdup(text) : NULL;

	if (text != NULL && copy == NULL)
		return -1;
	pthread_mutex_lock(&h->lock);
	free(c->room.away);
	c->room.away = copy;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

void
room_set_account(struct hub *h, struct client *c)
{
	pthread_mutex_lock(&h->lock);
	c->room.guest = false;
	pthread_mutex_unlock(&h->lock);
}

bool
room_presence(struct hub *h, const char *name, char *canonical, char *away, size_t awaylen,
	      bool *guest)
{
	pthread_mutex_lock(&h->lock);
	struct client *c = online_find_locked(h, name);
	if (c != NULL) {
		snprintf(canonical, NAME_MAX_LEN + 1, "%s", c->name);
		snprintf(away, awaylen, "%s", c->room.away != NULL ? c->room.away : "");
		*guest = c->room.guest;
	}
	pthread_mutex_unlock(&h->lock);
	return c != NULL;
}

/* ---- connections ---- */

void
room_attach(struct hub *h, struct client *c)
{
	pthread_cond_init(&c->room.unclaimed, NULL);
	pthread_mutex_lock(&h->lock);
	form_count_locked(h, c, +1);
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
	claim_wait_locked(h, c);
	/* In rooms still only at shutdown, which spares the survivors the notices. */
	while (c->room.n_rooms > 0)
		membership_remove_locked(h, c->room.rooms[0].room, c);
	offline_locked(h, c);
	wake_forget_locked(h, c);
	if (c->room.prev)
		c->room.prev->room.next = c->room.next;
	else
		h->conns = c->room.next;
	if (c->room.next)
		c->room.next->room.prev = c->room.prev;
	form_count_locked(h, c, -1);
	outq_free(&c->room.inbox);
	free(c->room.away);
	c->room.away = NULL;
	free(c->room.rooms);
	c->room.rooms = NULL;
	c->room.cap_rooms = 0;
	if (--h->n_conns == 0)
		pthread_cond_broadcast(&h->empty);
	pthread_mutex_unlock(&h->lock);
	pthread_cond_destroy(&c->room.unclaimed);
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

/*
 * ---- for the control thread: never waiting long ----
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
	return room_irc_counts_within(h, timeout_ms, members, conns, NULL);
}

int
room_irc_counts_within(struct hub *h, int timeout_ms, size_t *members, size_t *conns, size_t *irc)
{
	if (!lock_within(h, timeout_ms))
		return -1;
	*members = h->n_online;
	*conns = h->n_conns;
	if (irc != NULL) { /* every connection in a form other than the native one */
		*irc = 0;
		for (size_t w = WIRE_LINE + 1; w < WIRE_MAX; w++)
			*irc += h->form_users[w];
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int
room_evict_within(struct hub *h, int timeout_ms, const char *name, enum part_reason why,
		  const char *text)
{
	struct departure d = { 0 };

	if (!lock_within(h, timeout_ms))
		return -1;
	struct client *c = online_find_locked(h, name);
	if (c != NULL) {
		departure_note_locked(&d, c, why, text);
		evict_locked(h, c, why, text);
	}
	room_unlock_and_wake(h);
	departure_store(h, &d); /* c may be gone already: d holds copies */
	return c != NULL;
}

/*
 * Every session online wakes once, though nothing was published: a reload
 * changed settings a front-end may have to tell its client about
 * (irc_caps.c: CAP NEW and DEL).  Nothing is written here.
 */
int
room_wake_all_within(struct hub *h, int timeout_ms)
{
	if (!lock_within(h, timeout_ms))
		return -1;
	for (size_t i = 0; i < h->n_online; i++)
		target_add_locked(h, h->online[i]);
	room_unlock_and_wake(h);
	return 0;
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
void *
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
		info[i].protocol = c->fe != NULL ? c->fe->name : "line";
		info[i].tls = c->is_tls;
		info[i].guest = c->room.guest;
	}
	*n = h->n_online;
	pthread_mutex_unlock(&h->lock);
	*out = info;
	return 0;
}
