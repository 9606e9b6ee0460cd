/*
 * room_fixture.h - the set-up test_room.c and test_room_attack.c share:
 * settings with a given send_queue_limit, and a member, a struct client
 * on one end of a socketpair whose other end the test reads, and what
 * the test reads there.  Everything
 * runs on the test's thread.  Include after cmocka.h.
 */
#ifndef CHATD_ROOM_FIXTURE_H
#define CHATD_ROOM_FIXTURE_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "room.h"
#include "session.h"

/* Publishes settings whose send_queue_limit is limit, the rest defaults. */
static inline void
publish_send_queue_limit(int64_t limit)
{
	char path[] = "/tmp/room_fixture.XXXXXX", err[256];
	int fd = mkstemp(path);
	struct settings *s = calloc(1, sizeof(*s));

	assert_true(fd >= 0);
	assert_non_null(s);
	dprintf(fd, "send_queue_limit = %" PRId64 ";\n", limit);
	close(fd);
	if (settings_load(path, s, err, sizeof(err)) != 0)
		fail_msg("settings_load: %s", err);
	unlink(path);
	settings_publish(s);
}

/*
 * A member logged in to the hub, awake, its own JOIN not yet collected;
 * *peer is the test's end of its socket.
 */
static inline struct client *
member_login(struct hub *h, const char *name, uint64_t id, int *peer)
{
	struct client *c = calloc(1, sizeof(*c));
	struct room_join_reply rep;
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
	room_attach(h, c);
	assert_int_equal(room_login(h, c, &rep), 0);
	room_join_reply_release(&rep);
	return c;
}

static inline void
member_free(struct hub *h, struct client *c, int peer)
{
	room_wake_up(h, c);
	room_detach(h, c);
	close(c->fd);
	close(peer);
	client_unref(c);
}

/* Everything the peer end holds now. */
static inline char *
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

static inline void
drain(int peer)
{
	size_t len;

	free(read_all(peer, &len));
}

/*
 * What c collects now (it must stay), written to its socket whole: in
 * turns while it is backed up (more than half the limit was waiting).
 */
static inline void
collect_all(struct hub *h, struct client *c, size_t limit)
{
	enum part_reason why;
	char text[128];
	int rc;

	room_wake_up(h, c);
	do {
		rc = room_collect(h, c, limit, &why, text, sizeof(text));
		assert_true(rc >= 0);
		assert_int_equal(outq_flush(&c->out, c->fd), 0);
		assert_true(outq_empty(&c->out));
	} while (rc > 0 || c->room.backed_up);
}

#endif
