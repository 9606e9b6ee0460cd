/*
 * test_room.c - the room's publication of stored messages: a batch longer
 * than the fan-out ring goes into it in pieces, each written through to
 * the idle members before the next, so one long batch puts nobody behind
 * the ring.  Everything runs on the test's thread; a member is a struct
 * client on one end of a socketpair, the test reads the other end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "history.h"
#include "room.h"
#include "session.h"

#define TS "2026-11-21T09:30:00.123Z"
/* send_queue_limit: the ring gets its least size, 1024 slots. */
#define LIMIT 8192
#define RING 1024
/* Longer than the ring. */
#define BATCH 1500

static void
publish_settings(int64_t send_queue_limit)
{
	char path[] = "/tmp/test_room.XXXXXX", err[256];
	int fd = mkstemp(path);
	struct settings *s = calloc(1, sizeof(*s));

	assert_true(fd >= 0);
	assert_non_null(s);
	dprintf(fd, "send_queue_limit = %" PRId64 ";\n", send_queue_limit);
	close(fd);
	if (settings_load(path, s, err, sizeof(err)) != 0)
		fail_msg("settings_load: %s", err);
	unlink(path);
	settings_publish(s);
}

/* A logged-in member asleep with write-through; *peer is the test's end of its socket. */
static struct client *
member(struct hub *r, const char *name, uint64_t id, int *peer)
{
	struct client *c = calloc(1, sizeof(*c));
	struct room_join_reply rep;
	enum part_reason why;
	char text[128];
	int sv[2];

	assert_non_null(c);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c->id = id;
	c->fd = sv[0];
	*peer = sv[1];
	atomic_init(&c->tid, 0);
	atomic_init(&c->wake_pending, false);
	atomic_init(&c->refs, 1);
	outq_init(&c->out);
	snprintf(c->name, sizeof(c->name), "%s", name);
	room_attach(r, c);
	assert_int_equal(room_login(r, c, &rep), 0);
	room_join_reply_release(&rep);
	/* Its own JOIN: nothing for itself, but the cursor moves past it. */
	assert_int_equal(room_collect(r, c, LIMIT, &why, text, sizeof(text)), 0);
	assert_true(outq_empty(&c->out));
	assert_true(room_sleep(r, c, true));
	return c;
}

static void
member_free(struct hub *r, struct client *c, int peer)
{
	room_wake_up(r, c);
	room_detach(r, c);
	close(c->fd);
	close(peer);
	client_unref(c);
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

/* Everything the peer end holds now. */
static char *
read_all(int fd, size_t *len)
{
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	*len = 0;
	while ((n = read(fd, buf + *len, cap - *len - 1)) > 0)
		*len += (size_t)n;
	buf[*len] = '\0';
	return buf;
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
	struct hub *r = hub_new();
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
	assert_int_equal(bytes, LIMIT / 4);

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_batch_goes_in_pieces),
	};
	int rc;

	publish_settings(LIMIT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	settings_release_all();
	return rc;
}
