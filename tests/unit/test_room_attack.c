/*
 * test_room_attack.c - the answers a sender is owed when it is taken out of
 * a room: messages of alice's already published into the rooms' rings but
 * not yet delivered to her (her thread awake, so not written through) when
 * an operator kicks her from a room or deletes it.  Each acknowledgement
 * must still reach her, in the order of her lines whatever room each went
 * to, and her count of unanswered messages come down, or her session holds
 * her next line for good.  (membership_remove_locked once dropped the
 * slots a member had not delivered, its own answers among them.)
 *
 * Everything runs on the test's thread, no sleeps;
 * a member is a struct client on one end of a socketpair
 * (room_fixture.h, shared with test_room.c).
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
#include "wire.h"
#include "room_fixture.h"

#define TS "2026-11-21T09:30:00.123Z"
#define LIMIT 8192

/* A logged-in member asleep with write-through; *peer is the test's end of its socket. */
static struct client *
member(struct hub *h, const char *name, uint64_t id, int *peer)
{
	struct client *c = member_login(h, name, id, peer);

	collect_all(h, c, LIMIT);
	assert_true(room_sleep(h, c, true));
	return c;
}

static void
join(struct hub *h, struct client *c, const char *room, int peer)
{
	struct room_join_reply rep;

	room_wake_up(h, c);
	assert_int_equal(room_join(h, c, room, &rep), ROOM_DONE);
	room_join_reply_release(&rep);
	collect_all(h, c, LIMIT);
	drain(peer);
	assert_true(room_sleep(h, c, true));
}

/* "ID TIME ROOM msg NAME text\n" from session sender, as the history publishes it. */
static struct history_entry
msg(uint64_t id, uint64_t sender, const char *room, const char *name)
{
	int time_off, room_off, name_off, text_off;
	struct line *l = line_printf("%" PRIu64 " %n" TS " %n%s msg %n%s %nhello\n", id, &time_off,
				     &room_off, room, &name_off, name, &text_off);
	struct history_entry e;

	assert_non_null(l);
	e = (struct history_entry){ .id = id, .sender = sender, .kind = HK_MSG, .body = l };
	e.time_off = (uint16_t)time_off;
	e.room_off = (uint16_t)room_off;
	e.room_len = (uint16_t)strlen(room);
	e.name_off = (uint16_t)name_off;
	e.name_len = (uint16_t)strlen(name);
	e.text_off = (uint32_t)text_off;
	e.text_len = (uint32_t)(l->len - (size_t)text_off - 1);
	snprintf(e.room, sizeof(e.room), "%s", room);
	return e;
}

/* alice's message 7 sits in dev's ring, undelivered to her, when take_out runs. */
static void
answer_survives(int (*take_out)(struct hub *))
{
	struct hub *h = hub_new(wire_formats);
	struct history_entry e = msg(7, 1, "dev", "alice");
	struct client *a, *b;
	int pa, pb;
	char *got;
	size_t len;

	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	join(h, a, "dev", pa);
	join(h, b, "dev", pb);
	room_wake_up(h, a); /* her thread is busy: nothing is written through to her */
	a->unacked = 1;
	room_publish_history(h, &e, 1);
	assert_int_equal(take_out(h), 1);
	collect_all(h, a, LIMIT);
	got = read_all(pa, &len);
	assert_non_null(strstr(got, "PART dev "));
	if (strstr(got, "OK 7 sent\n") == NULL)
		fail_msg("alice never got the answer to her message 7; she got:\n%s", got);
	free(got);
	assert_int_equal(a->unacked, 0);
	history_entries_release(&e, 1);
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

static int
kick_alice(struct hub *h)
{
	return room_kick_within(h, 100, "dev", "alice", "go");
}

static int
delete_dev(struct hub *h)
{
	return room_delete_within(h, 100, "dev");
}

static void
test_answer_survives_a_kick_after_publication(void **state)
{
	(void)state;
	answer_survives(kick_alice);
}

static void
test_answer_survives_a_deletion_after_publication(void **state)
{
	(void)state;
	answer_survives(delete_dev);
}

/*
 * alice's messages 7 (dev), 8 (lobby), 9 (dev) all wait in the rings when
 * she is taken out of dev: her answers still come in the order she sent.
 */
static void
answers_keep_order(int (*take_out)(struct hub *))
{
	struct hub *h = hub_new(wire_formats);
	struct history_entry e[3] = { msg(7, 1, "dev", "alice"), msg(8, 1, "lobby", "alice"),
				      msg(9, 1, "dev", "alice") };
	struct client *a, *b;
	int pa, pb;
	char *got, *k7, *k8, *k9;
	size_t len;

	a = member(h, "alice", 1, &pa);
	b = member(h, "bob", 2, &pb);
	join(h, a, "dev", pa);
	join(h, b, "dev", pb);
	room_wake_up(h, a);
	a->unacked = 3;
	room_publish_history(h, e, 3);
	assert_int_equal(take_out(h), 1);
	collect_all(h, a, LIMIT);
	got = read_all(pa, &len);
	k7 = strstr(got, "OK 7 sent\n");
	k8 = strstr(got, "OK 8 sent\n");
	k9 = strstr(got, "OK 9 sent\n");
	if (k7 == NULL || k8 == NULL || k9 == NULL || !(k7 < k8 && k8 < k9))
		fail_msg("alice's answers are missing or out of order:\n%s", got);
	free(got);
	assert_int_equal(a->unacked, 0);
	history_entries_release(e, 3);
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
}

static void
test_answers_keep_order_across_rooms_after_a_kick(void **state)
{
	(void)state;
	answers_keep_order(kick_alice);
}

static void
test_answers_keep_order_across_rooms_after_a_deletion(void **state)
{
	(void)state;
	answers_keep_order(delete_dev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer_survives_a_kick_after_publication),
		cmocka_unit_test(test_answer_survives_a_deletion_after_publication),
		cmocka_unit_test(test_answers_keep_order_across_rooms_after_a_kick),
		cmocka_unit_test(test_answers_keep_order_across_rooms_after_a_deletion),
	};
	int rc;

	publish_send_queue_limit(LIMIT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	settings_release_all();
	return rc;
}
