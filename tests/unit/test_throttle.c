/*
 * test_throttle.c - growing delays after failed logins, by address and by
 * name; one check at a time; known addresses; a table that forgets nobody
 * who is made to wait.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "test_addr.h"
#include "throttle.h"
#include "timefmt.h"

#define BASE 1000
#define MAX 30000

/* A wrong password for name from a at now: the delay; -1 if it was not checked. */
static int64_t
fail_max(const struct sockaddr_storage *a, const char *name, int64_t now, int64_t max)
{
	struct throttle_ticket t;
	int64_t wait;

	if (throttle_begin(&t, a, name, now, &wait) != THROTTLE_GO)
		return -1;
	return throttle_failed(&t, now, BASE, max);
}

static int64_t
fail_at(const struct sockaddr_storage *a, const char *name, int64_t now)
{
	return fail_max(a, name, now, MAX);
}

/* The right password for name from a at now. */
static void
succeed(const struct sockaddr_storage *a, const char *name, int64_t now)
{
	struct throttle_ticket t;
	int64_t wait;

	assert_int_equal(throttle_begin(&t, a, name, now, &wait), THROTTLE_GO);
	throttle_succeeded(&t, now);
}

/* How long a try for name from a must wait at now (a try that may go now is not counted). */
static int64_t
wait_for(const struct sockaddr_storage *a, const char *name, int64_t now)
{
	struct throttle_ticket t;
	int64_t wait;

	switch (throttle_begin(&t, a, name, now, &wait)) {
	case THROTTLE_GO:
		throttle_abandon(&t);
		return 0;
	case THROTTLE_WAIT:
		assert_true(wait > 0);
		return wait;
	case THROTTLE_CHECKING:
		return -2;
	case THROTTLE_FULL:
		return -3;
	}
	return -4;
}

static int
setup(void **state)
{
	throttle_reset();
	return 0;
}

static void
test_delays_double_up_to_the_cap(void **state)
{
	struct sockaddr_storage a = test_addr("192.0.2.1");
	int64_t now = 1000000, expect = BASE;

	assert_int_equal(wait_for(&a, "bob", now), 0);
	for (int i = 0; i < 8; i++) {
		int64_t d = fail_at(&a, "bob", now);

		assert_int_equal(d, expect);
		assert_int_equal(wait_for(&a, "bob", now), d);
		assert_int_equal(wait_for(&a, "bob", now + d), 0);
		now += d;
		expect = expect * 2 > MAX ? MAX : expect * 2;
	}
	assert_int_equal(expect, MAX);
}

static void
test_by_name_from_any_address(void **state)
{
	struct sockaddr_storage a = test_addr("192.0.2.1"), b = test_addr("198.51.100.7");
	int64_t now = 5000000;

	fail_at(&a, "Bob", now);
	/* Another address, the same user in another case: still waits. */
	assert_int_equal(wait_for(&b, "bOB", now), BASE);
	/* The failures add up across addresses. */
	assert_int_equal(fail_at(&b, "bob", now + BASE), 2 * BASE);
	/* Another name from a third address is free. */
	struct sockaddr_storage c = test_addr("203.0.113.9");
	assert_int_equal(wait_for(&c, "carol", now + BASE), 0);
}

static void
test_by_address_for_any_name(void **state)
{
	struct sockaddr_storage a = test_addr("192.0.2.1");
	int64_t now = 5000000;

	fail_at(&a, "n1", now);
	fail_at(&a, "n2", now + BASE);
	/* A guesser spreading over names is slowed all the same. */
	assert_int_equal(fail_at(&a, "n3", now + 3 * BASE), 4 * BASE);
	assert_int_equal(wait_for(&a, "n4", now + 3 * BASE), 4 * BASE);
}

static void
test_ipv6_counts_by_64(void **state)
{
	struct sockaddr_storage a = test_addr("2001:db8:1:2::1"),
				b = test_addr("2001:db8:1:2:ffff::9");
	struct sockaddr_storage other = test_addr("2001:db8:1:3::1");
	int64_t now = 7000000;

	fail_at(&a, "x", now);
	assert_int_equal(wait_for(&b, "y", now), BASE);
	assert_int_equal(wait_for(&other, "y", now), 0);
	/* IPv4 through an IPv6 socket is the IPv4 address it is. */
	struct sockaddr_storage mapped = test_addr("::ffff:192.0.2.50"),
				v4 = test_addr("192.0.2.50");
	fail_at(&mapped, "z", now);
	assert_int_equal(wait_for(&v4, "w", now), BASE);
}

static void
test_window_forgets(void **state)
{
	struct sockaddr_storage a = test_addr("192.0.2.1");
	int64_t now = 11000000;

	for (int i = 0; i < 5; i++)
		now += fail_at(&a, "bob", now);
	now += THROTTLE_WINDOW_MS + 1;
	assert_int_equal(wait_for(&a, "bob", now), 0);
	assert_int_equal(fail_at(&a, "bob", now), BASE);
}

/* Issue 13 item 4: a second try while the first is being checked is not checked. */
static void
test_a_check_holds_back_others_for_the_name_and_the_address(void **state)
{
	struct sockaddr_storage a = test_addr("192.0.2.1"), b = test_addr("198.51.100.7");
	struct sockaddr_storage c = test_addr("203.0.113.9");
	struct throttle_ticket first, t;
	int64_t now = 15000000, wait;

	assert_int_equal(throttle_begin(&first, &a, "bob", now, &wait), THROTTLE_GO);
	/* Hashing: the same name from elsewhere, or the same address for another name, waits. */
	assert_int_equal(throttle_begin(&t, &b, "BOB", now, &wait), THROTTLE_CHECKING);
	assert_int_equal(throttle_begin(&t, &a, "carol", now, &wait), THROTTLE_CHECKING);
	/* Others are not held back. */
	assert_int_equal(throttle_begin(&t, &c, "carol", now, &wait), THROTTLE_GO);
	throttle_abandon(&t);
	/* The check failed: what waited now gets the delay, unchecked. */
	assert_int_equal(throttle_failed(&first, now + 20, BASE, MAX), BASE);
	assert_int_equal(wait_for(&b, "bob", now + 20), BASE);
	assert_int_equal(wait_for(&a, "carol", now + 20), BASE);
}

static void
test_abandon_counts_nothing(void **state)
{
	struct sockaddr_storage a = test_addr("192.0.2.1");
	struct throttle_ticket t;
	int64_t now = 17000000, wait;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(throttle_begin(&t, &a, "bob", now, &wait), THROTTLE_GO);
		throttle_abandon(&t);
	}
	assert_int_equal(fail_at(&a, "bob", now), BASE);
}

struct ender {
	struct throttle_ticket t;
	atomic_bool started;
};

static void *
end_later(void *arg)
{
	struct ender *e = arg;
	struct timespec ts = { .tv_nsec = 50 * 1000000 };

	atomic_store(&e->started, true);
	nanosleep(&ts, NULL);
	throttle_abandon(&e->t);
	return NULL;
}

static void
test_await_returns_when_the_check_ends(void **state)
{
	struct sockaddr_storage a = test_addr("192.0.2.1");
	struct ender e = { .started = false };
	struct throttle_ticket t;
	int64_t wait, start = time_mono_ms();
	pthread_t tid;

	assert_int_equal(throttle_begin(&e.t, &a, "bob", start, &wait), THROTTLE_GO);
	assert_int_equal(throttle_begin(&t, &a, "bob", start, &wait), THROTTLE_CHECKING);
	/* Nothing ends: the wait ends at its limit. */
	throttle_await(&t, time_mono_ms() + 30);
	assert_true(time_mono_ms() - start >= 30);
	assert_int_equal(pthread_create(&tid, NULL, end_later, &e), 0);
	throttle_await(&t, time_mono_ms() + 10000);
	assert_true(time_mono_ms() - start < 5000);
	pthread_join(tid, NULL);
	assert_int_equal(throttle_begin(&t, &a, "bob", time_mono_ms(), &wait), THROTTLE_GO);
	throttle_abandon(&t);
}

/*
 * Issue 13 item 4, the owner: an address the name logged in from waits only
 * for its own delay, not for the name's, nor behind others' checks.
 */
static void
test_a_known_address_skips_the_name_delay(void **state)
{
	struct sockaddr_storage home = test_addr("192.0.2.1"), home6 = test_addr("2001:db8:1:2::1");
	struct sockaddr_storage home6b = test_addr("2001:db8:1:2::77"),
				guesser = test_addr("198.51.100.7");
	struct sockaddr_storage stranger = test_addr("203.0.113.9");
	struct throttle_ticket held;
	int64_t now = 19000000, wait;

	throttle_registered(&home, "bob", now); /* registered from home */
	succeed(&home6, "bob", now);
	for (int i = 0; i < 6; i++)
		now += fail_at(&guesser, "bob", now);
	now += fail_at(&guesser, "bob", now) / 2; /* in the middle of the longest delay */
	assert_true(wait_for(&stranger, "bob", now) > 0);
	assert_int_equal(wait_for(&home, "BOB", now), 0);
	assert_int_equal(wait_for(&home6b, "bob", now), 0); /* the same /64 */
	/* The address still pays for its own failures. */
	assert_int_equal(fail_at(&home, "bob", now), BASE);
	assert_int_equal(wait_for(&home, "bob", now), BASE);
	/* A success does not clear the name's count for the others. */
	succeed(&home, "bob", now + BASE);
	assert_true(wait_for(&stranger, "bob", now + BASE) > 0);

	/* Nor does a guess being checked hold the owner back. */
	struct throttle_ticket guess, owner;

	now += 2 * MAX;
	assert_int_equal(throttle_begin(&guess, &guesser, "bob", now, &wait), THROTTLE_GO);
	assert_int_equal(throttle_begin(&held, &stranger, "bob", now, &wait), THROTTLE_CHECKING);
	assert_int_equal(throttle_begin(&owner, &home, "bob", now, &wait), THROTTLE_GO);
	throttle_abandon(&owner);
	throttle_abandon(&guess);
}

static void
test_a_name_remembers_its_latest_addresses(void **state)
{
	struct sockaddr_storage places[THROTTLE_KNOWN + 1], guesser = test_addr("198.51.100.7");
	char text[32];
	int64_t now = 21000000;

	for (int i = 0; i <= THROTTLE_KNOWN; i++) {
		snprintf(text, sizeof(text), "192.0.2.%d", i + 1);
		places[i] = test_addr(text);
		succeed(&places[i], "bob", now + i);
	}
	now += fail_at(&guesser, "bob", now + 100) + 100;
	fail_at(&guesser, "bob", now);
	/* The oldest was pushed out; the latest THROTTLE_KNOWN go on. */
	assert_true(wait_for(&places[0], "bob", now) > 0);
	for (int i = 1; i <= THROTTLE_KNOWN; i++)
		assert_int_equal(wait_for(&places[i], "bob", now), 0);
}

/* Issue 13 item 5: a flood never evicts an entry that makes someone wait. */
static void
test_a_waiting_entry_is_never_evicted(void **state)
{
	struct sockaddr_storage victim_guesser = test_addr("192.0.2.1"),
				fresh = test_addr("192.0.2.200");
	int64_t now = 23000000, max = 600000, d;
	char text[32], name[32];

	/* The victim's name waits ten minutes. */
	while ((d = fail_max(&victim_guesser, "victim", now, max)) < max)
		now += d;
	/* Far more entries than slots, each waiting a second: the table recycles. */
	for (int i = 0; i < 100000; i++) {
		struct sockaddr_storage a;

		snprintf(text, sizeof(text), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		snprintf(name, sizeof(name), "flood%d", i);
		a = test_addr(text);
		fail_at(&a, name, now + i);
	}
	assert_int_equal(wait_for(&fresh, "victim", now + 100000), max - 100000);
	/* The newest still count. */
	struct sockaddr_storage last = test_addr(text);
	assert_int_equal(wait_for(&last, "someone", now + 99999), BASE);
}

/* ... and when every slot an entry could take is pinned, the try is refused. */
static void
test_a_full_table_refuses_new_tries(void **state)
{
	struct sockaddr_storage victim_guesser = test_addr("192.0.2.1"),
				fresh = test_addr("192.0.2.200");
	int64_t now = 25000000, wait;
	int full = 0, i;
	char text[32], name[32];

	fail_at(&victim_guesser, "victim", now);
	for (i = 0; i < 30000 && full == 0; i++) {
		struct sockaddr_storage a;
		struct throttle_ticket t;

		snprintf(text, sizeof(text), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		snprintf(name, sizeof(name), "flood%d", i);
		a = test_addr(text);
		if (throttle_begin(&t, &a, name, now, &wait) == THROTTLE_FULL)
			full++;
		else
			throttle_failed(&t, now, BASE, MAX);
	}
	assert_int_equal(full, 1);
	assert_int_equal(wait_for(&fresh, "victim", now), BASE);
	/* Once the delays are over, the slots are free for new tries again. */
	struct sockaddr_storage a = test_addr(text);
	assert_int_equal(wait_for(&a, name, now + BASE), 0);
}

static void
test_the_hash_key_differs_between_inits(void **state)
{
	uint64_t first = throttle_key_hash("n:bob");

	assert_true(first == throttle_key_hash("n:bob"));
	throttle_reset();
	assert_true(first != throttle_key_hash("n:bob"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_delays_double_up_to_the_cap, setup),
		cmocka_unit_test_setup(test_by_name_from_any_address, setup),
		cmocka_unit_test_setup(test_by_address_for_any_name, setup),
		cmocka_unit_test_setup(test_ipv6_counts_by_64, setup),
		cmocka_unit_test_setup(test_window_forgets, setup),
		cmocka_unit_test_setup(test_a_check_holds_back_others_for_the_name_and_the_address,
				       setup),
		cmocka_unit_test_setup(test_abandon_counts_nothing, setup),
		cmocka_unit_test_setup(test_await_returns_when_the_check_ends, setup),
		cmocka_unit_test_setup(test_a_known_address_skips_the_name_delay, setup),
		cmocka_unit_test_setup(test_a_name_remembers_its_latest_addresses, setup),
		cmocka_unit_test_setup(test_a_waiting_entry_is_never_evicted, setup),
		cmocka_unit_test_setup(test_a_full_table_refuses_new_tries, setup),
		cmocka_unit_test_setup(test_the_hash_key_differs_between_inits, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
