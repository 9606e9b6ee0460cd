/*
 * test_room.c - the hub's rooms and their fan-out: a batch longer than a
 * ring goes in pieces, each written through to the idle members before
 * the next; each room's messages reach its members only; a member of two
 * rooms gets both merged in publication order, written through or
 * collected, so its acknowledgements keep request order; a ring grows for
 * a member behind; a member that does not read overflows; leaving,
 * replacing, kicking and deleting; the co-writer's half of a publisher's
 * pass; the write-through flusher: a member that wakes while a pass has it
 * claimed waits for the pass, and publishers, joins and a waking member
 * racing the flusher lose nothing.  Everything but the last two runs on
 * the test's thread (and the co-writer's, for its writes); no sleeps; a
 * member is a struct client on one end of a socketpair, the test reads
 * the other end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "history.h"
#include "hub.h"
#include "room.h"
#include "wire.h"
#include "session.h"
#include "room_fixture.h"

#define TS "2026-11-21T09:30:00.123Z"
/* send_queue_limit: the ring gets its least size, 1024 slots. */
#define LIMIT 8192
#define RING 1024
/* Longer than the ring. */
#define BATCH 1500

/* A logged-in member asleep with write-through; *peer is the test's end of its socket. */
static struct client *
member(struct hub *r, const char *name, uint64_t id, int *peer)
{
	struct client *c = member_login(r, name, id, peer);
	enum part_reason why;
	char text[128];

	/* Its own JOIN: nothing for itself, but the cursor moves past it. */
	assert_int_equal(room_collect(r, c, LIMIT, &why, text, sizeof(text)), 0);
	assert_true(outq_empty(&c->out));
	assert_true(room_sleep(r, c, true));
	return c;
}

/* A stored message "ID TIME ROOM msg NAME mN\n" as the history publishes it. */
static void
record(struct history_entry *e, uint64_t id, uint64_t sender, const char *room, const char *name,
       size_t n)
{
	int time_off, room_off, name_off, text_off;
	struct line *l = line_printf("%" PRIu64 " %n" TS " %n%s msg %n%s %nm%zu\n", id, &time_off,
				     &room_off, room, &name_off, name, &text_off, n);

	assert_non_null(l);
	*e = (struct history_entry){ .id = id, .sender = sender, .kind = HK_MSG, .body = l };
	e->time_off = (uint16_t)time_off;
	e->room_off = (uint16_t)room_off;
	e->room_len = (uint16_t)strlen(room);
	e->name_off = (uint16_t)name_off;
	e->name_len = (uint16_t)strlen(name);
	e->text_off = (uint32_t)text_off;
	e->text_len = (uint32_t)(l->len - (size_t)text_off - 1);
	snprintf(e->room, sizeof(e->room), "%s", room);
}

static struct history_entry *
batch(size_t n, uint64_t sender)
{
	struct history_entry *e = calloc(n, sizeof(*e));

	assert_non_null(e);
	for (size_t i = 0; i < n; i++) {
		e[i].id = i + 1;
		e[i].sender = sender;
		record(&e[i], i + 1, sender, "lobby", "ann", i + 1);
	}
	return e;
}

static void
batch_free(struct history_entry *e, size_t n)
{
	history_entries_release(e, n);
	free(e);
}

/*
 * One batch of BATCH messages, longer than the ring: written through in
 * pieces, the idle member gets every message, in order, without waking;
 * in one piece it would have been further behind than the ring reaches,
 * and overflowed.
 */
static void
test_long_batch_goes_in_pieces(void **state)
{
	struct hub *r = hub_new(wire_formats);
	struct history_entry *e = batch(BATCH, 99);
	int peer, sndbuf = 1 << 20;
	struct client *c;
	enum part_reason why;
	char text[128], *got, *p;
	size_t len, msgs, bytes;

	(void)state;
	assert_non_null(r);
	c = member(r, "bob", 1, &peer);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	room_backlog_limits(r, &msgs, &bytes);
	assert_int_equal(msgs, RING / 4);
	assert_int_equal(bytes, LIMIT / 2);

	room_publish_history(r, e, BATCH);
	/* Still asleep with nothing new: the room wrote it all. */
	assert_false(atomic_load(&c->wake_pending));
	room_wake_up(r, c);
	assert_int_equal(room_collect(r, c, LIMIT, &why, text, sizeof(text)), 0);
	assert_false(room_backed_up(r));

	got = read_all(peer, &len);
	p = got;
	for (size_t i = 0; i < BATCH; i++) {
		char want[64];
		int n = snprintf(want, sizeof(want), "MSG lobby %zu " TS " ann m%zu\n", i + 1,
				 i + 1);

		assert_true(strncmp(p, want, (size_t)n) == 0);
		p += n;
	}
	assert_int_equal(p - got, len);
	free(got);
	batch_free(e, BATCH);
	member_free(r, c, peer);
	hub_free(r);
}

/* The peer's bytes, all of them, compared with want. */
static void
expect_lines(int peer, const char *want)
{
	size_t len;
	char *got = read_all(peer, &len);
	size_t i = 0;

	while (got[i] != '\0' && got[i] == want[i])
		i++;
	if (got[i] != want[i])
		fail_msg("at byte %zu of %zu (want %zu): got \"%.60s\", want \"%.60s\"", i, len,
			 strlen(want), got + i, want + i);
	free(got);
}

/*
 * The publisher's pass on a machine with 2 cores: the co-writer writes
 * half of it (the second half of the one pass of CROWD, just over
 * COWRITE_MIN: FLUSH_CHUNK is more) while the publisher writes the rest.  Every idle member
 * gets the batch, in order, without waking; the one whose peer is gone,
 * in the co-writer's half, is woken to find out.
 */
#define CROWD (COWRITE_MIN + 8)
#define GONE (CROWD * 3 / 4)
_Static_assert(CROWD <= FLUSH_CHUNK, "one pass");
static void
test_cowriter_writes_half_of_a_publishers_pass(void **state)
{
	struct hub *h = hub_new(wire_formats);
	struct history_entry *e = batch(3, 100000) /* no member's id */;
	struct client *c[CROWD];
	int peer[CROWD];

	(void)state;
	assert_non_null(h);
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
		assert_non_null(h->cowriter);
	for (size_t i = 0; i < CROWD; i++) {
		char name[16];

		snprintf(name, sizeof(name), "m%02zu", i);
		c[i] = member(h, name, i + 1, &peer[i]);
	}
	for (size_t i = 0; i < CROWD; i++) { /* the JOINs of those after it */
		size_t len;

		free(read_all(peer[i], &len));
	}
	close(peer[GONE]);
	room_publish_history(h, e, 3);
	for (size_t i = 0; i < CROWD; i++) {
		if (i == GONE) {
			assert_true(atomic_load(&c[i]->wake_pending));
			continue;
		}
		assert_false(atomic_load(&c[i]->wake_pending));
		expect_lines(peer[i], "MSG lobby 1 " TS " ann m1\n"
				      "MSG lobby 2 " TS " ann m2\n"
				      "MSG lobby 3 " TS " ann m3\n");
	}
	peer[GONE] = -1;
	batch_free(e, 3);
	for (size_t i = 0; i < CROWD; i++)
		member_free(h, c[i], peer[i]);
	hub_free(h);
}

/* c joins room, takes what is new (its own JOIN gives nothing) and goes back to sleep. */
static void
join(struct hub *h, struct client *c, const char *room)
{
	struct room_join_reply rep;

	room_wake_up(h, c);
	assert_int_equal(room_join(h, c, room, &rep), ROOM_DONE);
	room_join_reply_release(&rep);
	collect_all(h, c, LIMIT);
	assert_true(room_sleep(h, c, true));
}

/* A message of name in room with id, from session sender. */
static struct history_entry
msg(uint64_t id, uint64_t sender, const char *room, const char *name)
{
	struct history_entry e;

	record(&e, id, sender, room, name, id);
	return e;
}

#define M(id, room, name) "MSG " room " " #id " " TS " " name " m" #id "\n"

static void
test_each_room_reaches_its_members_in_order(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa, pb, pc;
	struct client *a, *b, *c;

	(void)state;
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	c = member(h, "carol", 3, &pc);
	join(h, a, "dev");
	join(h, c, "dev");
	drain(pa), drain(pb), drain(pc);
	a->unacked = 1, b->unacked = 1, c->unacked = 2;

	struct history_entry e[] = {
		msg(1, 2, "lobby", "bob"),
		msg(2, 3, "dev", "carol"),
		msg(3, 3, "lobby", "carol"),
		msg(4, 1, "dev", "alice"),
	};
	room_publish_history(h, e, 4);
	/* All asleep with write-through: written, nobody woken. */
	assert_false(atomic_load(&a->wake_pending) || atomic_load(&b->wake_pending) ||
		     atomic_load(&c->wake_pending));
	expect_lines(pa, M(1, "lobby", "bob") M(2, "dev", "carol")
				 M(3, "lobby", "carol") "OK 4 sent\n");
	expect_lines(pb, "OK 1 sent\n" M(3, "lobby", "carol"));
	expect_lines(pc, M(1, "lobby", "bob") "OK 2 sent\nOK 3 sent\n" M(4, "dev", "alice"));
	assert_int_equal(a->unacked + b->unacked + c->unacked, 0);

	history_entries_release(e, 4);
	member_free(h, a, pa), member_free(h, b, pb), member_free(h, c, pc);
	hub_free(h);
}

/* A member that is busy (not asleep) collects its rooms merged the same way. */
static void
test_collect_merges_rooms_in_publication_order(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa, pb;
	struct client *a, *b;

	(void)state;
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	join(h, a, "dev");
	join(h, b, "dev");
	room_wake_up(h, a); /* busy: nothing is written for it */
	drain(pa), drain(pb);
	a->unacked = 4;

	/* Alternating rooms, published one by one: each its own batch. */
	for (uint64_t id = 1; id <= 6; id++) {
		struct history_entry e = msg(id, id % 3 == 0 ? 2 : 1, id % 2 ? "dev" : "lobby",
					     id % 3 == 0 ? "bob" : "alice");

		room_publish_history(h, &e, 1);
		history_entries_release(&e, 1);
	}
	expect_lines(pa, "");
	collect_all(h, a, LIMIT);
	expect_lines(pa, "OK 1 sent\nOK 2 sent\n" M(3, "dev",
						    "bob") "OK 4 sent\nOK 5 sent\n" M(6, "lobby",
										      "bob"));
	assert_int_equal(a->unacked, 0);
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

/* A new room's ring is small; it grows rather than overrun a member behind. */
static void
test_ring_grows_for_a_member_behind(void **state)
{
	struct hub *h = hub_new(wire_formats);
	struct history_entry *e = calloc(150, sizeof(*e));
	int pa;
	struct client *a;
	char want[150 * 64], *p = want;

	(void)state;
	assert_non_null(e);
	a = member(h, "alice", 1, &pa);
	join(h, a, "quiet");
	room_wake_up(h, a);
	drain(pa);
	for (size_t i = 0; i < 150; i++) {
		record(&e[i], i + 1, 9, "quiet", "zed", i + 1);
		p += sprintf(p, "MSG quiet %zu " TS " zed m%zu\n", i + 1, i + 1);
	}
	for (size_t i = 0; i < 150; i += 30)
		room_publish_history(h, e + i, 30);
	collect_all(h, a, LIMIT);
	expect_lines(pa, want);
	history_entries_release(e, 150);
	free(e);
	member_free(h, a, pa);
	hub_free(h);
}

/*
 * A member whose thread is awake but busy (a sender, publishing itself)
 * while others burst falls behind in the ring by more than its send queue
 * limit (the socket already holding much of it, say), though not twice
 * it: the publisher counts it as backed up (senders paced) as soon as
 * more than half its limit waits in the ring, it takes what waits in
 * turns, at most about half its limit at a time, backed up until it has
 * caught up, and is not dropped for overflow.
 */
static void
test_busy_member_behind_takes_the_burst_in_turns(void **state)
{
	const size_t n = 320; /* fewer than RING slots, between LIMIT and twice it in bytes */
	struct hub *h = hub_new(wire_formats);
	struct history_entry *e = batch(n, 99);
	int pa;
	struct client *a;
	enum part_reason why;
	char text[128], *want = malloc(n * 64), *p = want, *got = malloc(n * 64);
	size_t len = 0, turns = 0, max_msgs, max_bytes;
	int rc;

	(void)state;
	assert_non_null(want), assert_non_null(got);
	a = member(h, "alice", 1, &pa);
	room_wake_up(h, a); /* awake and busy: write-through passes it by */
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "MSG lobby %zu " TS " ann m%zu\n", i + 1, i + 1);
	assert_true((size_t)(p - want) > LIMIT && (size_t)(p - want) < 2 * LIMIT);
	/* In batches as long as the history's backlog may grow (room_backlog_limits). */
	room_backlog_limits(h, &max_msgs, &max_bytes);
	for (size_t i = 0, k, bytes; i < n; i += k) {
		for (k = 0, bytes = 0; i + k < n && k < max_msgs; k++)
			if ((bytes += e[i + k].body->len) > max_bytes)
				break;
		assert_true(k >= 50);
		room_publish_history(h, e + i, k);
	}
	/* Marked by the publisher, before its thread collected anything: senders are paced now. */
	assert_true(room_backed_up(h));
	do {
		rc = room_collect(h, a, LIMIT, &why, text, sizeof(text));
		if (rc < 0)
			fail_msg("dropped after %zu turns: %s", turns, text);
		assert_true(a->out.bytes <= LIMIT / 2 + 64);
		if (turns++ == 0) {
			/* Behind: senders are paced, and it waits for its socket, not spinning. */
			assert_true(room_backed_up(h));
			assert_true(room_sleep(h, a, false));
			room_wake_up(h, a);
		}
		assert_int_equal(outq_flush(&a->out, a->fd), 0);
		ssize_t r;
		while ((r = recv(pa, got + len, n * 64 - len, MSG_DONTWAIT)) > 0)
			len += (size_t)r;
	} while (rc > 0 || room_backed_up(h));
	assert_true(turns > 2);
	assert_int_equal(len, (size_t)(p - want));
	assert_memory_equal(got, want, len);
	free(want), free(got);
	batch_free(e, n);
	member_free(h, a, pa);
	hub_free(h);
}

/* A member whose peer does not read: its queue passes the limit, it overflows alone. */
static void
test_member_that_does_not_read_overflows(void **state)
{
	struct hub *h = hub_new(wire_formats);
	struct history_entry *e = batch(BATCH, 99);
	int pa, pb, small = 4096;
	struct client *a, *b;
	enum part_reason why;
	char text[128];
	size_t n, len;

	(void)state;
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	drain(pa), drain(pb);
	setsockopt(a->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	int big = 1 << 20;
	setsockopt(b->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	for (n = 0; n < BATCH && !atomic_load(&a->wake_pending); n += 100)
		room_publish_history(h, e + n, 100);
	/* Its socket took what it could; the rest waits in its queue, and it was woken. */
	assert_true(atomic_load(&a->wake_pending));
	assert_false(outq_empty(&a->out));
	for (; n < BATCH; n += 100)
		room_publish_history(h, e + n, 100);
	room_wake_up(h, a);
	assert_int_equal(room_collect(h, a, LIMIT, &why, text, sizeof(text)), -1);
	assert_int_equal(why, PART_OVERFLOW);
	/* bob, who reads, got everything and was never woken. */
	assert_false(atomic_load(&b->wake_pending));
	free(read_all(pb, &len));
	assert_true(len > BATCH * 40);
	room_logout(h, a, why, text);
	outq_free(&a->out);
	outq_init(&a->out);
	batch_free(e, BATCH);
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

static void
test_leave_and_current_room(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa, pb;
	struct client *a, *b;
	char spelled[ROOM_NAME_MAX + 1];

	(void)state;
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	join(h, a, "Dev");
	join(h, b, "#dev");
	join(h, a, "ops");
	drain(pa), drain(pb);
	room_wake_up(h, a);
	assert_int_equal(room_target(h, a, NULL, spelled, NULL), ROOM_DONE);
	assert_string_equal(spelled, "ops");
	assert_int_equal(room_part(h, a, "lobby", "", spelled), ROOM_DONE);
	assert_int_equal(room_part(h, a, NULL, "bye", spelled), ROOM_DONE);
	assert_string_equal(spelled, "ops");
	/* Not in the default room: the room joined first of those left. */
	assert_int_equal(room_target(h, a, NULL, spelled, NULL), ROOM_DONE);
	assert_string_equal(spelled, "Dev");
	assert_int_equal(room_target(h, a, "lobby", spelled, NULL), ROOM_NOT_MEMBER);
	assert_int_equal(room_target(h, a, "nosuch", spelled, NULL), ROOM_NO_SUCH);
	assert_int_equal(room_target(h, a, "no such", spelled, NULL), ROOM_BAD_NAME);
	assert_int_equal(room_part(h, a, "dev", "", spelled), ROOM_DONE);
	assert_int_equal(room_target(h, a, NULL, spelled, NULL), ROOM_IN_NONE);
	collect_all(h, b, LIMIT);
	{
		size_t len;
		char *got = read_all(pb, &len);

		/* bob is in lobby and Dev: alice's two departures, with their reasons. */
		assert_non_null(strstr(got, "PART lobby "));
		assert_non_null(strstr(got, " alice left left the room\n"));
		assert_non_null(strstr(got, "PART Dev "));
		assert_null(strstr(got, "PART ops"));
		free(got);
	}
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

static void
test_replaced_session_parts_every_room(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa, pb, pa2;
	struct client *a, *b, *a2;
	enum part_reason why;
	char text[128];

	(void)state;
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	join(h, a, "dev");
	join(h, b, "dev");
	drain(pa), drain(pb);
	a2 = member(h, "Alice", 3, &pa2);
	room_wake_up(h, a);
	assert_int_equal(room_collect(h, a, LIMIT, &why, text, sizeof(text)), -1);
	assert_int_equal(why, PART_REPLACED);
	collect_all(h, b, LIMIT);
	{
		size_t len;
		char *got = read_all(pb, &len);

		assert_non_null(strstr(got, "PART dev "));
		assert_non_null(strstr(got, "PART lobby "));
		assert_non_null(strstr(got, " alice replaced logged in from elsewhere\n"));
		assert_non_null(strstr(got, "JOIN lobby "));
		free(got);
	}
	member_free(h, a, pa), member_free(h, b, pb), member_free(h, a2, pa2);
	hub_free(h);
}

/*
 * A guest replaces nobody: its login under a name online (any case, a
 * guest's or an account's) is refused with EEXIST and the session online
 * stays; an account's login still replaces a guest.
 */
static void
test_guest_replaces_nobody(void **state)
{
	struct hub *h = hub_new(wire_formats);
	struct room_join_reply rep;
	int pa, pg, pb, sv[2];
	struct client *a, *g = NULL, *b, *late = calloc(1, sizeof(*late));
	enum part_reason why;
	char text[128], canonical[NAME_MAX_LEN + 1], away[8];
	bool guest;

	(void)state;
	a = member(h, "alice", 1, &pa);
	assert_non_null(late);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	late->id = 2;
	late->fd = sv[0];
	atomic_init(&late->refs, 1);
	outq_init(&late->out);
	room_attach(h, late);
	late->room.guest = true;
	for (int i = 0; i < 2; i++) {
		snprintf(late->name, sizeof(late->name), "%s", i ? "Visitor" : "ALICE");
		if (i == 1) { /* a guest online under the name this time */
			g = member_login(h, "visitor", 3, &pg);
			g->room.guest = true;
		}
		errno = 0;
		assert_int_equal(room_login(h, late, &rep), -1);
		assert_int_equal(errno, EEXIST);
		room_join_reply_release(&rep);
		assert_false(late->room.member);
	}
	assert_true(room_presence(h, "alice", canonical, away, sizeof(away), &guest));
	assert_string_equal(canonical, "alice");
	assert_false(guest);
	room_wake_up(h, a);
	assert_int_equal(room_collect(h, a, LIMIT, &why, text, sizeof(text)), 0);
	assert_true(room_presence(h, "visitor", canonical, away, sizeof(away), &guest));
	assert_true(guest);
	/* An account of the guest's name (registered since) replaces the guest. */
	b = member_login(h, "VISITOR", 4, &pb);
	assert_true(room_presence(h, "visitor", canonical, away, sizeof(away), &guest));
	assert_string_equal(canonical, "VISITOR");
	assert_false(guest);
	room_wake_up(h, g);
	assert_int_equal(room_collect(h, g, LIMIT, &why, text, sizeof(text)), -1);
	assert_int_equal(why, PART_REPLACED);
	member_free(h, a, pa), member_free(h, g, pg), member_free(h, b, pb);
	member_free(h, late, sv[1]);
	hub_free(h);
}

/* A message sent just before its sender was taken out of the room is still answered. */
static void
test_kicked_sender_still_gets_its_answer(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa, pb;
	struct client *a, *b;
	struct history_entry e = msg(7, 1, "dev", "alice");

	(void)state;
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	join(h, a, "dev");
	join(h, b, "dev");
	drain(pa), drain(pb);
	a->unacked = 1;
	assert_int_equal(room_kick_within(h, 100, "#DEV", "ALICE", "go"), 1);
	assert_int_equal(room_kick_within(h, 100, "dev", "alice", "go"), 0);
	room_publish_history(h, &e, 1);
	collect_all(h, a, LIMIT);
	{
		size_t len;
		char *got = read_all(pa, &len);

		assert_non_null(strstr(got, "PART dev "));
		assert_non_null(strstr(got, " alice kicked go\nOK 7 sent\n"));
		free(got);
	}
	assert_int_equal(a->unacked, 0);
	/* bob saw the kick, and the message: it was stored, so it reached the room. */
	collect_all(h, b, LIMIT);
	{
		size_t len;
		char *got = read_all(pb, &len);

		assert_non_null(strstr(got, " alice kicked go\nMSG dev 7 "));
		free(got);
	}
	history_entries_release(&e, 1);
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

/*
 * A busy member's answers already in a room's ring when an operator takes
 * it out of the room (or deletes the room) still reach it, ahead of the PART.
 */
static void
test_answers_in_the_ring_survive_a_kick_and_a_deletion(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa, pb;
	struct client *a, *b;
	struct history_entry e[] = { msg(1, 1, "dev", "alice"), msg(2, 1, "ops", "alice") };

	(void)state;
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	join(h, a, "dev");
	join(h, a, "ops");
	join(h, b, "dev");
	room_wake_up(h, a); /* busy: the answers stay in the rings */
	drain(pa), drain(pb);
	a->unacked = 2;
	room_publish_history(h, e, 2);
	assert_int_equal(room_kick_within(h, 100, "dev", "alice", ""), 1);
	assert_int_equal(room_delete_within(h, 100, "ops"), 1);
	collect_all(h, a, LIMIT);
	{
		size_t len;
		char *got = read_all(pa, &len);
		char *ok1 = strstr(got, "OK 1 sent\n"), *kick = strstr(got, "PART dev ");
		char *ok2 = strstr(got, "OK 2 sent\n"), *del = strstr(got, "PART ops ");

		assert_true(ok1 && kick && ok1 < kick);
		assert_true(ok2 && del && ok2 < del);
		assert_non_null(
			strstr(got, " alice kicked taken out of the room by the operator\n"));
		free(got);
	}
	assert_int_equal(a->unacked, 0);
	history_entries_release(e, 2);
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

static void
test_admin_rooms(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa;
	struct client *a;
	struct room_info *info;
	size_t n, members;
	char spelled[ROOM_NAME_MAX + 1];

	(void)state;
	a = member(h, "alice", 1, &pa);
	assert_int_equal(room_create_within(h, 100, "#Ops", "by the book"), 1);
	assert_int_equal(room_create_within(h, 100, "ops", NULL), 0);
	assert_int_equal(room_create_within(h, 100, "9x", NULL), -1);
	assert_int_equal(errno, EINVAL);
	join(h, a, "ops");
	room_wake_up(h, a);
	assert_int_equal(room_part(h, a, "lobby", "", spelled), ROOM_DONE);
	drain(pa);
	assert_int_equal(room_notice_room_within(h, 100, "ops", "hello ops", &members), 1);
	assert_int_equal(members, 1);
	assert_int_equal(rooms_snapshot_within(h, 100, &info, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(info[0].name, "lobby");
	assert_true(info[0].is_default);
	assert_string_equal(info[1].name, "Ops");
	assert_true(info[1].op_made);
	assert_int_equal(info[1].members, 1);
	assert_string_equal(info[1].topic, "by the book");
	assert_string_equal(info[1].topic_by, "*");
	free(info);
	collect_all(h, a, LIMIT);
	{
		size_t len;
		char *got = read_all(pa, &len);

		assert_non_null(strstr(got, "NOTICE Ops "));
		assert_non_null(strstr(got, " hello ops\n"));
		free(got);
	}
	assert_true(room_sleep(h, a, true));
	assert_int_equal(room_delete_within(h, 100, "lobby"), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(room_delete_within(h, 100, "ops"), 1);
	assert_int_equal(room_delete_within(h, 100, "ops"), 0);
	/* alice was put in the default room, now her current one. */
	assert_int_equal(room_target(h, a, NULL, spelled, NULL), ROOM_DONE);
	assert_string_equal(spelled, "lobby");
	collect_all(h, a, LIMIT);
	{
		size_t len;
		char *got = read_all(pa, &len);

		assert_non_null(strstr(got, "PART Ops "));
		assert_non_null(strstr(got, " alice deleted the room was deleted\n"));
		free(got);
	}
	assert_int_equal(rooms_count_within(h, 100, &n), 0);
	assert_int_equal(n, 1);
	member_free(h, a, pa);
	hub_free(h);
}

/*
 * A member's thread that wakes while a write-through pass has it claimed
 * (its pieces gathered, the lock dropped for the writev) waits for the
 * pass before it takes its write rights back: otherwise it would collect
 * what came next and could write it ahead of what the pass is about to
 * write.  zed's login publishes a JOIN, written through with the lock
 * dropped; the flush hook runs in that window: it publishes m1 (left for
 * the flusher's next pass: this thread is the flusher) and starts bob's
 * "thread", which must block until the pass has written the JOIN.
 */
static struct client *claimed_member;
static atomic_bool claimed_woke;

static void *
claimed_member_wakes(void *arg)
{
	struct hub *h = arg;

	collect_all(h, claimed_member, LIMIT);
	atomic_store(&claimed_woke, true);
	return NULL;
}

static void
claim_window(struct hub *h)
{
	struct history_entry e;
	pthread_t t;
	bool waiting = false;
	bool claimed;

	h->flush_hook = NULL; /* the first pass only */
	pthread_mutex_lock(&h->lock);
	claimed = atomic_load(&claimed_member->room.rights) == RIGHTS_CLAIMED;
	pthread_mutex_unlock(&h->lock);
	assert_true(claimed);
	record(&e, 1, 99, "lobby", "ann", 1);
	room_publish_history(h, &e, 1);
	history_entries_release(&e, 1);
	assert_int_equal(pthread_create(&t, NULL, claimed_member_wakes, h), 0);
	/* Until it waits for the pass, or (wrongly) got through without. */
	while (!waiting && !atomic_load(&claimed_woke)) {
		pthread_mutex_lock(&h->lock);
		waiting = claimed_member->room.claim_waiting;
		pthread_mutex_unlock(&h->lock);
		sched_yield();
	}
	assert_false(atomic_load(&claimed_woke));
	assert_int_equal(pthread_detach(t), 0);
}

/*
 * A member's thread that wakes while nothing has it claimed takes its
 * write rights back without the room lock (which a publisher may hold
 * through a whole pass); a pass after that leaves its socket alone, and
 * the thread collects what came itself.
 */
static atomic_bool unlocked_woke;
static struct client *waking;

static void *
wakes_up(void *arg)
{
	room_wake_up(arg, waking);
	atomic_store(&unlocked_woke, true);
	return NULL;
}

static void
test_waking_member_needs_no_room_lock(void **state)
{
	struct hub *h = hub_new(wire_formats);
	struct timespec now, deadline;
	pthread_t t;
	int pa, pb;
	struct client *a, *b;

	(void)state;
	atomic_init(&unlocked_woke, false);
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	drain(pa), drain(pb);
	assert_int_equal(atomic_load(&a->room.rights), RIGHTS_HUB);
	waking = a;
	pthread_mutex_lock(&h->lock);
	assert_int_equal(pthread_create(&t, NULL, wakes_up, h), 0);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 5;
	do {
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!atomic_load(&unlocked_woke) && now.tv_sec < deadline.tv_sec);
	bool woke = atomic_load(&unlocked_woke);
	pthread_mutex_unlock(&h->lock);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(woke);
	assert_int_equal(atomic_load(&a->room.rights), RIGHTS_THREAD);

	struct history_entry e = msg(1, 2, "lobby", "bob");
	room_publish_history(h, &e, 1);
	history_entries_release(&e, 1);
	expect_lines(pb, "OK 1 sent\n");
	expect_lines(pa, ""); /* busy now: the pass wrote nothing for it */
	collect_all(h, a, LIMIT);
	expect_lines(pa, M(1, "lobby", "bob"));
	/* Asleep again, on the writers list once: the next pass writes for it. */
	assert_true(room_sleep(h, a, true));
	e = msg(2, 2, "lobby", "bob");
	room_publish_history(h, &e, 1);
	history_entries_release(&e, 1);
	expect_lines(pa, M(2, "lobby", "bob"));
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

/*
 * A client that goes while it is the last of the clients to wake comes
 * off that list without a step past its end (UBSan: member access
 * within a null pointer, in the ASan+UBSan build), and the list holds
 * the rest.
 */
static void
test_a_going_client_leaves_the_targets_list_intact(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa, pb;
	struct client *a, *b;

	(void)state;
	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	pthread_mutex_lock(&h->lock);
	target_add_locked(h, a);
	target_add_locked(h, b); /* b, then a: a is last */
	wake_forget_locked(h, a);
	assert_false(a->room.targeted);
	assert_ptr_equal(h->targets, b);
	assert_null(b->room.target_next);
	wake_forget_locked(h, b);
	assert_null(h->targets);
	pthread_mutex_unlock(&h->lock);
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

static void
test_waking_member_waits_for_the_pass_that_claimed_it(void **state)
{
	struct hub *h = hub_new(wire_formats);
	struct client *zed;
	int peer, zed_peer;
	size_t len;
	char *got, *msg;

	(void)state;
	assert_non_null(h);
	atomic_init(&claimed_woke, false);
	claimed_member = member(h, "bob", 1, &peer);
	h->flush_hook = claim_window;
	zed = member_login(h, "zed", 2, &zed_peer);
	while (!atomic_load(&claimed_woke))
		sched_yield();
	got = read_all(peer, &len);
	msg = strstr(got, "MSG lobby 1 " TS " ann m1\n");
	assert_true(strncmp(got, "JOIN lobby ", 11) == 0 && strstr(got, " zed\n") != NULL);
	assert_non_null(msg);
	assert_true(msg > strstr(got, " zed\n")); /* the JOIN first, as published */
	free(got);
	member_free(h, zed, zed_peer);
	member_free(h, claimed_member, peer);
	hub_free(h);
}

/*
 * The flusher races everyone: one thread publishes messages (as the
 * history does, one publisher), one logs sessions in and out (JOIN and
 * PART events in the same room, published by that thread), and one acts
 * as a member's own thread, waking (which waits while a pass has it
 * claimed), collecting, writing and going back to sleep.  Whoever unlocks
 * while a pass runs only leaves its rooms dirty for the flusher's next
 * pass.  However they interleave, every member gets every message once,
 * in order, and no line is torn; TSan checks the hand-overs.
 */
#define RACE_MEMBERS 16
#define RACE_BATCHES 200
#define RACE_BATCH 5
#define RACE_ROUNDS 10
#define RACE_LIMIT (1 << 20)

struct race {
	struct hub *h;
	struct client *m[RACE_MEMBERS];
	int peer[RACE_MEMBERS];
	atomic_bool done;
};

static void *
race_publisher(void *arg)
{
	struct race *rc = arg;

	for (size_t b = 0; b < RACE_BATCHES; b++) {
		struct history_entry e[RACE_BATCH];

		for (size_t i = 0; i < RACE_BATCH; i++) {
			size_t n = b * RACE_BATCH + i + 1;

			record(&e[i], n, 99, "lobby", "ann", n);
		}
		room_publish_history(rc->h, e, RACE_BATCH);
		history_entries_release(e, RACE_BATCH);
	}
	atomic_store(&rc->done, true);
	return NULL;
}

static void *
race_visitor(void *arg)
{
	struct race *rc = arg;

	for (uint64_t id = 1000; !atomic_load(&rc->done); id++) {
		int peer;
		struct client *c = member_login(rc->h, "zed", id, &peer);

		room_logout(rc->h, c, PART_QUIT, "bye");
		member_free(rc->h, c, peer);
	}
	return NULL;
}

static void *
race_waker(void *arg)
{
	struct race *rc = arg;
	struct client *c = rc->m[0];

	while (!atomic_load(&rc->done)) {
		collect_all(rc->h, c, RACE_LIMIT);
		(void)room_sleep(rc->h, c, true);
	}
	return NULL;
}

/* The messages m1..mN in peer's bytes, in order, once each, whatever else is there. */
static void
expect_messages_in_order(char *got, size_t total)
{
	size_t next = 1;

	for (char *line = strtok(got, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		char want[64];

		if (strncmp(line, "MSG ", 4) != 0)
			continue;
		snprintf(want, sizeof(want), "MSG lobby %zu " TS " ann m%zu", next, next);
		assert_string_equal(line, want);
		next++;
	}
	assert_int_equal(next - 1, total);
}

static void
race_once(void)
{
	struct race rc = { .h = hub_new(wire_formats) };
	pthread_t pub, vis, wak;
	int sndbuf = 1 << 20;

	assert_non_null(rc.h);
	atomic_init(&rc.done, false);
	for (size_t i = 0; i < RACE_MEMBERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "m%zu", i);
		rc.m[i] = member(rc.h, name, i + 1, &rc.peer[i]);
		setsockopt(rc.m[i]->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	}
	assert_int_equal(pthread_create(&vis, NULL, race_visitor, &rc), 0);
	assert_int_equal(pthread_create(&wak, NULL, race_waker, &rc), 0);
	assert_int_equal(pthread_create(&pub, NULL, race_publisher, &rc), 0);
	assert_int_equal(pthread_join(pub, NULL), 0);
	assert_int_equal(pthread_join(vis, NULL), 0);
	assert_int_equal(pthread_join(wak, NULL), 0);
	for (size_t i = 0; i < RACE_MEMBERS; i++) {
		size_t len;
		char *got;

		collect_all(rc.h, rc.m[i], RACE_LIMIT);
		got = read_all(rc.peer[i], &len);
		expect_messages_in_order(got, RACE_BATCHES * RACE_BATCH);
		free(got);
		member_free(rc.h, rc.m[i], rc.peer[i]);
	}
	hub_free(rc.h);
}

static void
test_publishers_and_wakers_race_the_flusher(void **state)
{
	(void)state;
	/* Room for the waker to fall behind the publisher without overflowing. */
	publish_send_queue_limit(RACE_LIMIT);
	for (int round = 0; round < RACE_ROUNDS; round++)
		race_once();
	publish_send_queue_limit(LIMIT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_batch_goes_in_pieces),
		cmocka_unit_test(test_each_room_reaches_its_members_in_order),
		cmocka_unit_test(test_cowriter_writes_half_of_a_publishers_pass),
		cmocka_unit_test(test_collect_merges_rooms_in_publication_order),
		cmocka_unit_test(test_ring_grows_for_a_member_behind),
		cmocka_unit_test(test_member_that_does_not_read_overflows),
		cmocka_unit_test(test_busy_member_behind_takes_the_burst_in_turns),
		cmocka_unit_test(test_leave_and_current_room),
		cmocka_unit_test(test_replaced_session_parts_every_room),
		cmocka_unit_test(test_guest_replaces_nobody),
		cmocka_unit_test(test_kicked_sender_still_gets_its_answer),
		cmocka_unit_test(test_answers_in_the_ring_survive_a_kick_and_a_deletion),
		cmocka_unit_test(test_admin_rooms),
		cmocka_unit_test(test_waking_member_waits_for_the_pass_that_claimed_it),
		cmocka_unit_test(test_waking_member_needs_no_room_lock),
		cmocka_unit_test(test_a_going_client_leaves_the_targets_list_intact),
		cmocka_unit_test(test_publishers_and_wakers_race_the_flusher),
	};
	int rc;

	signal(SIGPIPE, SIG_IGN); /* a member whose peer is gone: EPIPE, as in chatd */
	publish_send_queue_limit(LIMIT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	settings_release_all();
	return rc;
}
