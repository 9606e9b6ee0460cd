/*
 * test_room_restart.c - what the hub leaves on disk survives a restart:
 * a room made again while its namesake's deletion is being recorded
 * loses no message its sender got OK for, nor gets an event of the room
 * deleted that was stored after its deletion, and a topic whose rooms-file
 * save was put off (the room lock busy) is written by the retry.  A real
 * history in relaxed mode (history_sync_ms > 0), so every record is
 * published at once from the test's thread; a restart is the history or
 * the rooms file read again.  White-box: the test includes hub.h to step
 * through a deletion and to hold the room lock.  No sleeps: the one other
 * thread (a joiner) is awaited on the hub's own condition variable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "history.h"
#include "hub.h"
#include "room.h"
#include "roomfile.h"
#include "wire.h"
#include "room_fixture.h"

#define LIMIT 8192
#define MAX_OKS 8

/* The next publication leaves the room lock held (test_put_off_topic_save_is_retried). */
static bool hold_room_lock;

static void
publish_to_hub(void *ctx, const struct history_entry *e, size_t n)
{
	struct hub *h = ctx;

	room_publish_history(h, e, n);
	if (hold_room_lock) {
		hold_room_lock = false;
		pthread_mutex_lock(&h->lock);
	}
}

/*
 * roomfile_save() wrapped (-Wl,--wrap): while save_fails, it fails; with
 * lock_after_save set, another thread seems to take the room lock of
 * lock_after_save as the write ends (test_failed_save_is_retried).
 */
static bool save_fails;
static struct hub *lock_after_save;

int __real_roomfile_save(const char *path, const struct roomfile_room *v, size_t n, char *err,
			 size_t errlen);
int __wrap_roomfile_save(const char *path, const struct roomfile_room *v, size_t n, char *err,
			 size_t errlen);

int
__wrap_roomfile_save(const char *path, const struct roomfile_room *v, size_t n, char *err,
		     size_t errlen)
{
	int rc = save_fails ? (snprintf(err, errlen, "%s: cannot write (test)", path), -1)
			    : __real_roomfile_save(path, v, n, err, errlen);

	if (lock_after_save != NULL) {
		pthread_mutex_lock(&lock_after_save->lock);
		lock_after_save = NULL;
	}
	return rc;
}

static void
publish_nowhere(void *ctx, const struct history_entry *e, size_t n)
{
	(void)ctx, (void)e, (void)n;
}

/* The history at dir/history; relaxed mode: appends are published from the appending thread. */
static struct history *
history_at(const char *dir, history_publish_fn publish, void *ctx)
{
	char path[128], err[256];
	struct history_config cfg = { .path = path,
				      .memory = 64,
				      .max_size = 1 << 20,
				      .sync_ms = 1000 };
	struct history *hi;

	snprintf(path, sizeof(path), "%s/history", dir);
	if ((hi = history_open(&cfg, publish, ctx, err, sizeof(err))) == NULL)
		fail_msg("history_open: %s", err);
	return hi;
}

static void
remove_dir(const char *dir)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/history", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/rooms", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/* c says text in room, as client_post does. */
static void
post(struct history *hi, struct client *c, const char *room, const char *text)
{
	assert_int_equal(history_append(hi, c->id, room, HK_MSG, c->name, text, strlen(text)), 0);
	c->unacked++;
}

static enum room_result
join_room(struct hub *h, struct client *c, const char *room)
{
	struct room_join_reply rep;
	enum room_result res = room_join(h, c, room, &rep);

	room_join_reply_release(&rep);
	return res;
}

/* The ids of the "OK ID sent" lines in out, in order; how many. */
static size_t
acked_ids(const char *out, uint64_t *ids, size_t max)
{
	size_t n = 0;

	for (const char *p = out; (p = strstr(p, "OK ")) != NULL && n < max; p += 3) {
		char *end;
		uint64_t id = strtoull(p + 3, &end, 10);

		if (end > p + 3 && strncmp(end, " sent\n", 6) == 0)
			ids[n++] = id;
	}
	return n;
}

static bool
has_id(const struct history_entry *e, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].id == id)
			return true;
	return false;
}

/* A member's thread that joins "dev" and says "early" there, as soon as it may. */
struct joiner {
	struct hub *h;
	struct history *hi;
	struct client *c;
	enum room_result res;
	int posted; /* history_append's result */
	bool done;  /* under h->drop_lock */
};

static void *
joiner_main(void *arg)
{
	struct joiner *j = arg;

	j->res = join_room(j->h, j->c, "dev");
	if (j->res == ROOM_DONE) {
		j->posted = history_append(j->hi, j->c->id, "dev", HK_MSG, j->c->name, "early", 5);
		j->c->unacked++;
	}
	pthread_mutex_lock(&j->h->drop_lock);
	j->done = true;
	pthread_cond_broadcast(&j->h->dropped);
	pthread_mutex_unlock(&j->h->drop_lock);
	return NULL;
}

/*
 * A room is deleted (room_delete_within: the room lock, then the deletion
 * record with the lock dropped), and in between a member joins its name
 * again and speaks there.  Every message alice gets OK for in the new
 * room is in its history after a restart: the record must not get an id
 * above one of them, or it drops them with the old room's.  The joiner
 * either waits for the record (the hub counts it in drop_waiters) or, if
 * it did not, has spoken before the record is appended.  The old room's
 * message goes with it.
 */
static void
test_namesake_of_a_deleted_room_keeps_its_messages(void **state)
{
	char dir[] = "/tmp/test_room_restart.XXXXXX";
	struct hub *h = hub_new(wire_formats);
	struct history *hi;
	struct history_entry got[16];
	uint64_t ticket, ids[MAX_OKS], first;
	size_t n_ids, n, len;
	struct joiner j;
	pthread_t tid;
	struct client *a;
	int pa;
	char *out;

	(void)state;
	assert_non_null(mkdtemp(dir));
	hi = history_at(dir, publish_to_hub, h);
	hub_set_history(h, hi);
	a = member_login(h, "alice", 1, &pa);
	assert_int_equal(join_room(h, a, "dev"), ROOM_DONE);
	post(hi, a, "dev", "old");

	pthread_mutex_lock(&h->lock);
	ticket = room_delete_locked(h, room_find_locked(h, "dev"));
	room_unlock_and_wake(h);
	/* The room lock is free, the deletion not recorded yet. */
	j = (struct joiner){ .h = h, .hi = hi, .c = a };
	assert_int_equal(pthread_create(&tid, NULL, joiner_main, &j), 0);
	pthread_mutex_lock(&h->drop_lock);
	while (!j.done && h->drop_waiters == 0)
		pthread_cond_wait(&h->dropped, &h->drop_lock);
	pthread_mutex_unlock(&h->drop_lock);
	room_drop_record(h, "dev", ticket);
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(j.res, ROOM_DONE);
	assert_int_equal(j.posted, 0);
	post(hi, a, "dev", "late");

	collect_all(h, a, LIMIT);
	assert_int_equal(a->unacked, 0);
	out = read_all(pa, &len);
	n_ids = acked_ids(out, ids, MAX_OKS);
	free(out);
	assert_int_equal(n_ids, 3);

	hub_set_history(h, NULL);
	history_close(hi);
	hi = history_at(dir, publish_nowhere, NULL);
	n = history_since(hi, "dev", 0, 16, false, got, &first);
	assert_false(has_id(got, n, ids[0])); /* "old": deleted with its room */
	for (size_t i = 1; i < n_ids; i++)
		if (!has_id(got, n, ids[i]))
			fail_msg("message %" PRIu64 " got OK but is gone after a restart", ids[i]);
	assert_int_equal(n, 2);
	history_entries_release(got, n);
	history_close(hi);
	member_free(h, a, pa);
	hub_free(h);
	remove_dir(dir);
}

/*
 * A message whose room alice's thread looked up (room_target) before an
 * operator deleted the room, stored after the deletion record, belongs to
 * the room that is gone: refused (1, ERR 404 for her), it never reaches
 * bob's new room of the same name, live or after a restart; bob's own is.
 */
static void
test_message_to_a_deleted_room_stays_out_of_its_namesake(void **state)
{
	char dir[] = "/tmp/test_room_restart.XXXXXX", spelled[ROOM_NAME_MAX + 1];
	struct hub *h = hub_new(wire_formats);
	struct history *hi;
	struct history_entry got[16];
	uint64_t ticket, made, first;
	struct client *a, *b;
	int pa, pb;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	hi = history_at(dir, publish_to_hub, h);
	hub_set_history(h, hi);
	a = member_login(h, "alice", 1, &pa);
	b = member_login(h, "bob", 2, &pb);
	assert_int_equal(join_room(h, a, "dev"), ROOM_DONE);
	assert_int_equal(room_target(h, a, "dev", spelled, &made), ROOM_DONE);

	pthread_mutex_lock(&h->lock);
	ticket = room_delete_locked(h, room_find_locked(h, "dev"));
	room_unlock_and_wake(h);
	room_drop_record(h, "dev", ticket);
	assert_int_equal(join_room(h, b, "dev"), ROOM_DONE);

	assert_int_equal(history_append_live(hi, a->id, spelled, HK_MSG, a->name, false, "late", 4,
					     (struct history_live){ 0 }, made),
			 1);
	assert_int_equal(room_target(h, b, "dev", spelled, &made), ROOM_DONE);
	assert_int_equal(history_append_live(hi, b->id, spelled, HK_MSG, b->name, false, "new", 3,
					     (struct history_live){ 0 }, made),
			 0);
	b->unacked++;
	collect_all(h, b, LIMIT);
	assert_int_equal(b->unacked, 0);

	hub_set_history(h, NULL);
	history_close(hi);
	hi = history_at(dir, publish_nowhere, NULL);
	n = history_since(hi, "dev", 0, 16, false, got, &first);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].sender, 0);
	assert_memory_equal(got[0].body->data + got[0].text_off, "new", 3);
	history_entries_release(got, n);
	history_close(hi);
	member_free(h, a, pa), member_free(h, b, pb);
	hub_free(h);
	remove_dir(dir);
}

/*
 * The first room event stored after it is armed waits (no lock held, as
 * store_event calls it) until the test lets it go.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool armed, held, released;
} event_gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false };

static void
hold_event(struct hub *h)
{
	(void)h;
	pthread_mutex_lock(&event_gate.lock);
	if (event_gate.armed) {
		event_gate.armed = false;
		event_gate.held = true;
		pthread_cond_broadcast(&event_gate.cond);
		while (!event_gate.released)
			pthread_cond_wait(&event_gate.cond, &event_gate.lock);
	}
	pthread_mutex_unlock(&event_gate.lock);
}

/* A member's thread that leaves "dev" (its PART is the event held). */
struct parter {
	struct hub *h;
	struct client *c;
	enum room_result res;
};

static void *
parter_main(void *arg)
{
	struct parter *p = arg;
	char spelled[ROOM_NAME_MAX + 1];

	p->res = room_part(p->h, p->c, "dev", "bye", spelled);
	return NULL;
}

/* Fails unless room's records (events too) are exactly one join of name. */
static void
only_join_of(struct history *hi, const char *room, const char *name)
{
	struct history_entry got[16];
	uint64_t first;
	size_t n = history_since(hi, room, 0, 16, true, got, &first);

	for (size_t i = 0; i < n; i++)
		if (got[i].kind != HK_JOIN || got[i].name_len != strlen(name) ||
		    memcmp(got[i].body->data + got[i].name_off, name, got[i].name_len) != 0)
			fail_msg("room %s holds a %s record of %.*s, not its own", room,
				 history_kind_name(got[i].kind), (int)got[i].name_len,
				 got[i].body->data + got[i].name_off);
	assert_int_equal(n, 1);
	history_entries_release(got, n);
}

/*
 * An event of a room (bob's part) is stored after the room lock is
 * dropped; the room is deleted in between and its deletion record
 * appended first.  The event belongs to the deleted room: a room made
 * again under the name must not get it, in memory (IRC's event playback)
 * or after a restart.
 */
static void
test_event_of_a_deleted_room_stays_out_of_its_namesake(void **state)
{
	char dir[] = "/tmp/test_room_restart.XXXXXX";
	struct hub *h = hub_new(wire_formats);
	struct history *hi;
	struct parter p;
	uint64_t ticket;
	pthread_t tid;
	struct client *a, *b;
	int pa, pb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	hi = history_at(dir, publish_to_hub, h);
	hub_set_history(h, hi);
	a = member_login(h, "alice", 1, &pa);
	b = member_login(h, "bob", 2, &pb);
	assert_int_equal(join_room(h, a, "dev"), ROOM_DONE);
	assert_int_equal(join_room(h, b, "dev"), ROOM_DONE);

	h->event_hook = hold_event;
	event_gate.armed = true;
	p = (struct parter){ .h = h, .c = b };
	assert_int_equal(pthread_create(&tid, NULL, parter_main, &p), 0);
	pthread_mutex_lock(&event_gate.lock);
	while (!event_gate.held)
		pthread_cond_wait(&event_gate.cond, &event_gate.lock);
	pthread_mutex_unlock(&event_gate.lock);

	/* bob is out of the room, his PART not stored yet: the room goes, its record first. */
	pthread_mutex_lock(&h->lock);
	ticket = room_delete_locked(h, room_find_locked(h, "dev"));
	room_unlock_and_wake(h);
	room_drop_record(h, "dev", ticket);
	pthread_mutex_lock(&event_gate.lock);
	event_gate.released = true;
	pthread_cond_broadcast(&event_gate.cond);
	pthread_mutex_unlock(&event_gate.lock);
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(p.res, ROOM_DONE);
	h->event_hook = NULL;

	/* A new "dev": its history is alice's join alone. */
	assert_int_equal(join_room(h, a, "dev"), ROOM_DONE);
	only_join_of(hi, "dev", "alice");

	hub_set_history(h, NULL);
	history_close(hi);
	hi = history_at(dir, publish_nowhere, NULL);
	only_join_of(hi, "dev", "alice");
	history_close(hi);
	member_free(h, a, pa);
	member_free(h, b, pb);
	hub_free(h);
	remove_dir(dir);
}

/* Room name's topic as the rooms file at path has it; fails if the room is not there. */
static void
file_topic(const char *path, const char *name, char *topic, size_t len)
{
	struct roomfile_room *v;
	size_t n;
	char err[256];
	bool found = false;

	if (roomfile_load(path, &v, &n, err, sizeof(err)) < 0)
		fail_msg("roomfile_load: %s", err);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0) {
			snprintf(topic, len, "%s", v[i].topic);
			found = true;
		}
	free(v);
	assert_true(found);
}

/*
 * An operator sets a topic (chatctl room topic) and the room lock is busy
 * by the time the rooms file is to be written: the save is put off, and
 * the retry (the control thread's next rooms tick, or shutdown) writes
 * it; a restart finds it.
 */
static void
test_put_off_topic_save_is_retried(void **state)
{
	char dir[] = "/tmp/test_room_restart.XXXXXX", path[128], err[256],
	     topic[MAX_TOPIC_BYTES + 1];
	struct hub *h = hub_new(wire_formats);
	struct history *hi;
	struct room_info *info;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/rooms", dir);
	hi = history_at(dir, publish_to_hub, h);
	hub_set_history(h, hi);
	assert_int_equal(hub_load_rooms(h, path, err, sizeof(err)), 0);
	assert_int_equal(room_create_within(h, 0, "ops", NULL), 1);
	file_topic(path, "ops", topic, sizeof(topic));
	assert_string_equal(topic, "");

	/* The topic's event is published (at once) before the save: it leaves the lock held. */
	hold_room_lock = true;
	assert_int_equal(room_topic_within(h, 0, "ops", "put off"), 1);
	assert_false(hold_room_lock);
	file_topic(path, "ops", topic, sizeof(topic));
	assert_string_equal(topic, ""); /* put off */
	room_save_within(h, 0);         /* still busy: stays for the next call */
	file_topic(path, "ops", topic, sizeof(topic));
	assert_string_equal(topic, "");
	pthread_mutex_unlock(&h->lock);
	room_save_within(h, 0);
	file_topic(path, "ops", topic, sizeof(topic));
	assert_string_equal(topic, "put off");

	hub_set_history(h, NULL);
	history_close(hi);
	hub_free(h);
	h = hub_new(wire_formats);
	assert_int_equal(hub_load_rooms(h, path, err, sizeof(err)), 0);
	assert_int_equal(rooms_snapshot_within(h, 0, &info, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(info[1].name, "ops");
	assert_string_equal(info[1].topic, "put off");
	assert_string_equal(info[1].topic_by, "*");
	free(info);
	hub_free(h);
	remove_dir(dir);
}

/*
 * A save whose write fails while the room lock has become busy is tried
 * again at the next save all the same (the rooms tick's), with nothing
 * changed since.  Before, the change was forgotten: its mark was set again
 * only when the lock was free in time.
 */
static void
test_failed_save_is_retried(void **state)
{
	char dir[] = "/tmp/test_room_restart.XXXXXX", path[128], err[256],
	     topic[MAX_TOPIC_BYTES + 1];
	struct hub *h = hub_new(wire_formats);
	struct history *hi;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/rooms", dir);
	hi = history_at(dir, publish_nowhere, NULL);
	hub_set_history(h, hi);
	assert_int_equal(hub_load_rooms(h, path, err, sizeof(err)), 0);
	assert_int_equal(room_create_within(h, 0, "ops", NULL), 1);

	save_fails = true;
	lock_after_save = h;
	assert_int_equal(room_topic_within(h, 0, "ops", "kept"), 1); /* its save fails */
	assert_null(lock_after_save);
	pthread_mutex_unlock(&h->lock);
	save_fails = false;
	file_topic(path, "ops", topic, sizeof(topic));
	assert_string_equal(topic, "");
	room_save_within(h, 0); /* the rooms tick's */
	file_topic(path, "ops", topic, sizeof(topic));
	assert_string_equal(topic, "kept");

	hub_set_history(h, NULL);
	history_close(hi);
	hub_free(h);
	remove_dir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_namesake_of_a_deleted_room_keeps_its_messages),
		cmocka_unit_test(test_message_to_a_deleted_room_stays_out_of_its_namesake),
		cmocka_unit_test(test_event_of_a_deleted_room_stays_out_of_its_namesake),
		cmocka_unit_test(test_put_off_topic_save_is_retried),
		cmocka_unit_test(test_failed_save_is_retried),
	};
	int rc;

	publish_send_queue_limit(LIMIT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	settings_release_all();
	return rc;
}
