/*
 * rooms.c - the client's record of its rooms (rooms.h), kept from the
 * server's replies.  A few rooms per session (max_rooms_per_user): plain
 * arrays searched in order are enough.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rooms.h"

const char *
rooms_bare(const char *name)
{
	return name[0] == '#' ? name + 1 : name;
}

struct chat_room *
rooms_find(struct rooms *r, const char *name)
{
	name = rooms_bare(name);
	for (size_t i = 0; i < r->n; i++)
		if (name_cmp(r->list[i].name, name) == 0)
			return &r->list[i];
	return NULL;
}

bool
rooms_in(const struct rooms *r, const char *name)
{
	const struct chat_room *room = rooms_find((struct rooms *)r, name);

	return room != NULL && room->in;
}

const char *
rooms_current(const struct rooms *r)
{
	return r->current[0] ? r->current : NULL;
}

const char *
rooms_nth(const struct rooms *r, size_t i)
{
	for (size_t k = 0; k < r->n; k++)
		if (r->list[k].in && i-- == 0)
			return r->list[k].name;
	return NULL;
}

size_t
rooms_count(const struct rooms *r)
{
	size_t count = 0;

	for (size_t k = 0; k < r->n; k++)
		count += r->list[k].in;
	return count;
}

/*
 * Whether room (its '#' allowed) is a room name chatd could have: any other
 * bytes from the server never become a room of ours, the current room (the
 * prompt shows it) or a completion.
 */
static bool
is_room_name(const char *room)
{
	room = rooms_bare(room);
	return room_name_valid(room, strlen(room));
}

/* Drops the entry at e from the list. */
static void
drop(struct rooms *r, struct chat_room *e)
{
	memmove(e, e + 1, (size_t)(r->list + r->n - e - 1) * sizeof(*e));
	r->n--;
}

/*
 * An entry for room, not a member: the replay of a /join comes before its
 * OK.  At ROOMS_KEPT_MAX entries the oldest one we are not in is forgotten
 * (its last id with it).  NULL for a name that is not valid, a list of
 * rooms we are all in, or no memory.
 */
static struct chat_room *
remember(struct rooms *r, const char *room)
{
	struct chat_room *entry;

	if (!is_room_name(room))
		return NULL;
	if (r->n >= ROOMS_KEPT_MAX) {
		size_t i = 0;

		while (i < r->n && r->list[i].in)
			i++;
		if (i == r->n)
			return NULL;
		drop(r, &r->list[i]);
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct chat_room *p = realloc(r->list, cap * sizeof(*p));

		if (p == NULL)
			return NULL;
		r->list = p;
		r->cap = cap;
	}
	entry = &r->list[r->n++];
	memset(entry, 0, sizeof(*entry));
	snprintf(entry->name, sizeof(entry->name), "%s", rooms_bare(room));
	return entry;
}

static void
set_current(struct rooms *r, const char *room)
{
	snprintf(r->current, sizeof(r->current), "%s", room ? room : "");
	r->changes++;
}

/* Puts room at the end of the list, a member: the order of joining. */
static int
append(struct rooms *r, const char *room)
{
	struct chat_room *old = rooms_find(r, room), entry = { 0 };

	if (old != NULL) {
		entry = *old;
		drop(r, old);
	}
	if ((old = remember(r, room)) == NULL)
		return -1;
	entry.in = true;
	snprintf(entry.name, sizeof(entry.name), "%s", rooms_bare(room));
	*old = entry;
	r->changes++;
	return rooms_saw(r, room);
}

int
rooms_login(struct rooms *r, const char *home)
{
	for (size_t i = 0; i < r->n; i++)
		r->list[i].in = false;
	snprintf(r->home, sizeof(r->home), "%s", is_room_name(home) ? rooms_bare(home) : "");
	set_current(r, NULL);
	return rooms_joined(r, home);
}

int
rooms_joined(struct rooms *r, const char *room)
{
	struct chat_room *old = rooms_find(r, room);

	if (old == NULL || !old->in) {
		if (append(r, room) < 0)
			return -1;
	} else {
		snprintf(old->name, sizeof(old->name), "%s", rooms_bare(room));
	}
	set_current(r, rooms_find(r, room)->name);
	return 0;
}

/* A JOIN of our own name: a member, the current room only if there was none. */
static void
joined_quietly(struct rooms *r, const char *room)
{
	if (rooms_in(r, room))
		return;
	if (append(r, room) == 0 && r->current[0] == '\0')
		set_current(r, rooms_find(r, room)->name);
}

void
rooms_left(struct rooms *r, const char *room)
{
	struct chat_room *old = rooms_find(r, room);
	bool was_current = r->current[0] && name_cmp(r->current, rooms_bare(room)) == 0;

	if (old != NULL) {
		drop(r, old);
		r->changes++;
	}
	if (!was_current)
		return;
	/* The server's rule: the default room if still in it, else the first joined, else none. */
	if (r->home[0] && rooms_in(r, r->home))
		set_current(r, rooms_find(r, r->home)->name);
	else
		set_current(r, rooms_nth(r, 0));
}

void
rooms_switched(struct rooms *r, const char *room)
{
	struct chat_room *old = rooms_find(r, room);

	if (old != NULL && old->in)
		set_current(r, old->name);
}

int
rooms_saw(struct rooms *r, const char *room)
{
	if (!is_room_name(room))
		return 0;
	room = rooms_bare(room);
	return wordset_add(&r->seen, room, strlen(room));
}

/* The room of an OK text "PREFIX ROOM", copied to room; false if text is not one. */
static bool
ok_room(const char *text, const char *prefix, char room[ROOM_NAME_MAX + 1])
{
	size_t n = strlen(prefix), len;

	if (strncmp(text, prefix, n) != 0)
		return false;
	text = rooms_bare(text + n);
	len = strcspn(text, " ");
	if (len == 0 || len > ROOM_NAME_MAX)
		return false;
	memcpy(room, text, len);
	room[len] = '\0';
	return true;
}

static void
follow_ok(struct rooms *r, const struct srv_line *l)
{
	char room[ROOM_NAME_MAX + 1];
	const char *text = srv_text(l);

	if (strcmp(l->f[0], "-") != 0)
		return;
	if (ok_room(text, "joined ", room) || ok_room(text, "already in ", room))
		rooms_joined(r, room);
	else if (ok_room(text, "talking in ", room))
		rooms_switched(r, room);
	else if (ok_room(text, "left ", room))
		rooms_left(r, room);
}

bool
rooms_ok_answers(const struct srv_line *l, const char *request)
{
	char room[ROOM_NAME_MAX + 1];
	const char *text = srv_text(l);
	bool done;

	if (l->tag != SRV_OK || strcmp(l->f[0], "-") != 0)
		return false;
	if (strncmp(request, "/join ", 6) == 0) {
		request += 6;
		done = ok_room(text, "joined ", room) || ok_room(text, "already in ", room);
	} else if (strncmp(request, "/switch ", 8) == 0) {
		request += 8;
		done = ok_room(text, "talking in ", room);
	} else {
		return false;
	}
	return done && name_cmp(room, rooms_bare(request)) == 0;
}

void
rooms_follow(struct rooms *r, const struct srv_line *l, const char *self)
{
	switch (l->tag) {
	case SRV_OK:
		follow_ok(r, l);
		return;
	case SRV_JOIN:
		if (name_cmp(l->f[2], self) == 0)
			joined_quietly(r, l->f[0]);
		break;
	case SRV_PART:
		if (name_cmp(l->f[2], self) != 0)
			break;
		/* An operator deleted the room: its members are put in the default room. */
		if (strcmp(l->f[3], "deleted") == 0 && r->home[0])
			joined_quietly(r, r->home);
		rooms_left(r, l->f[0]);
		break;
	case SRV_USERS:
	case SRV_HIST:
	case SRV_MSG:
	case SRV_TOPIC:
	case SRV_ROOM:
		break;
	default:
		return;
	}
	rooms_saw(r, l->f[0]);
}

bool
rooms_note_id(struct rooms *r, const char *room, int64_t id)
{
	struct chat_room *entry = rooms_find(r, room);

	if (entry == NULL && (entry = remember(r, room)) == NULL)
		return true;
	if (id <= entry->last_id)
		return false;
	entry->last_id = id;
	return true;
}

int64_t
rooms_last_id(struct rooms *r, const char *room)
{
	struct chat_room *entry = rooms_find(r, room);

	return entry ? entry->last_id : 0;
}

void
rooms_free(struct rooms *r)
{
	wordset_free(&r->seen);
	free(r->list);
	memset(r, 0, sizeof(*r));
}
