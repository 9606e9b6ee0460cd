/*
 * test_throttle.c - growing delays after failed logins, by address and by name.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "throttle.h"

#define BASE 1000
#define MAX 30000

static struct sockaddr_storage
addr(const char *text)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
		in6->sin6_family = AF_INET6;
	}
	return ss;
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
	struct sockaddr_storage a = addr("192.0.2.1");
	int64_t now = 1000000, expect = BASE;

	assert_int_equal(throttle_wait_ms(&a, "bob", now), 0);
	for (int i = 0; i < 8; i++) {
		int64_t d = throttle_failed(&a, "bob", now, BASE, MAX);

		assert_int_equal(d, expect);
		assert_int_equal(throttle_wait_ms(&a, "bob", now), d);
		assert_int_equal(throttle_wait_ms(&a, "bob", now + d), 0);
		now += d;
		expect = expect * 2 > MAX ? MAX : expect * 2;
	}
	assert_int_equal(expect, MAX);
}

static void
test_by_name_from_any_address(void **state)
{
	struct sockaddr_storage a = addr("192.0.2.1"), b = addr("198.51.100.7");
	int64_t now = 5000000;

	throttle_failed(&a, "Bob", now, BASE, MAX);
	/* Another address, the same user in another case: still waits. */
	assert_int_equal(throttle_wait_ms(&b, "bOB", now), BASE);
	/* The failures add up across addresses. */
	assert_int_equal(throttle_failed(&b, "bob", now + BASE, BASE, MAX), 2 * BASE);
	/* Another name from a third address is free. */
	struct sockaddr_storage c = addr("203.0.113.9");
	assert_int_equal(throttle_wait_ms(&c, "carol", now + BASE), 0);
}

static void
test_by_address_for_any_name(void **state)
{
	struct sockaddr_storage a = addr("192.0.2.1");
	int64_t now = 5000000;

	throttle_failed(&a, "n1", now, BASE, MAX);
	throttle_failed(&a, "n2", now + BASE, BASE, MAX);
	/* A guesser spreading over names is slowed all the same. */
	assert_int_equal(throttle_failed(&a, "n3", now + 3 * BASE, BASE, MAX), 4 * BASE);
	assert_int_equal(throttle_wait_ms(&a, "n4", now + 3 * BASE), 4 * BASE);
}

static void
test_ipv6_counts_by_64(void **state)
{
	struct sockaddr_storage a = addr("2001:db8:1:2::1"), b = addr("2001:db8:1:2:ffff::9");
	struct sockaddr_storage other = addr("2001:db8:1:3::1");
	int64_t now = 7000000;

	throttle_failed(&a, "x", now, BASE, MAX);
	assert_int_equal(throttle_wait_ms(&b, "y", now), BASE);
	assert_int_equal(throttle_wait_ms(&other, "y", now), 0);
	/* IPv4 through an IPv6 socket is the IPv4 address it is. */
	struct sockaddr_storage mapped = addr("::ffff:192.0.2.50"), v4 = addr("192.0.2.50");
	throttle_failed(&mapped, "z", now, BASE, MAX);
	assert_int_equal(throttle_wait_ms(&v4, "w", now), BASE);
}

static void
test_success_clears_the_name_only(void **state)
{
	struct sockaddr_storage a = addr("192.0.2.1"), b = addr("198.51.100.7");
	int64_t now = 9000000;

	throttle_failed(&a, "bob", now, BASE, MAX);
	throttle_failed(&a, "bob", now + BASE, BASE, MAX);
	throttle_succeeded("BOB", now + 3 * BASE);
	assert_int_equal(throttle_wait_ms(&b, "bob", now + 3 * BASE), 0);
	assert_int_equal(throttle_failed(&b, "bob", now + 3 * BASE, BASE, MAX), BASE);
	/* The address keeps its count: one good account does not launder it. */
	assert_int_equal(throttle_failed(&a, "eve", now + 10 * BASE, BASE, MAX), 4 * BASE);
}

static void
test_window_forgets(void **state)
{
	struct sockaddr_storage a = addr("192.0.2.1");
	int64_t now = 11000000;

	for (int i = 0; i < 5; i++)
		throttle_failed(&a, "bob", now, BASE, MAX);
	now += THROTTLE_WINDOW_MS + 1;
	assert_int_equal(throttle_wait_ms(&a, "bob", now), 0);
	assert_int_equal(throttle_failed(&a, "bob", now, BASE, MAX), BASE);
}

static void
test_a_flood_of_addresses_stays_bounded(void **state)
{
	int64_t now = 13000000;
	char text[32];

	/* Far more addresses than slots: the table recycles, the newest still count. */
	for (int i = 0; i < 100000; i++) {
		struct sockaddr_storage a;

		snprintf(text, sizeof(text), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		a = addr(text);
		throttle_failed(&a, "victim", now + i, BASE, MAX);
	}
	struct sockaddr_storage last = addr(text);
	assert_true(throttle_wait_ms(&last, "someone", now + 99999) > 0);
	struct sockaddr_storage fresh = addr("192.0.2.200");
	assert_int_equal(throttle_wait_ms(&fresh, "victim", now + 99999), MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_delays_double_up_to_the_cap, setup),
		cmocka_unit_test_setup(test_by_name_from_any_address, setup),
		cmocka_unit_test_setup(test_by_address_for_any_name, setup),
		cmocka_unit_test_setup(test_ipv6_counts_by_64, setup),
		cmocka_unit_test_setup(test_success_clears_the_name_only, setup),
		cmocka_unit_test_setup(test_window_forgets, setup),
		cmocka_unit_test_setup(test_a_flood_of_addresses_stays_bounded, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
