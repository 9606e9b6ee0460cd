/*
 * test_backoff.c - chat's reconnect backoff (client/conn.c,
 * conn_backoff_next()): doubling from 1 s to 30 s, each wait a random
 * 50..150 % of that, so the clients of a restarted server come back
 * spread out rather than all at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "conn.h"

static void
test_the_base_doubles_up_to_the_cap(void **state)
{
	int backoff = 0;
	int want[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000 };

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int delay = conn_backoff_next(&backoff);

		assert_int_equal(backoff, want[i]);
		assert_in_range(delay, want[i] / 2, want[i] * 3 / 2);
	}
}

/* 10,000 clients dropped at once: their first tries spread over a second, not an instant. */
static void
test_first_tries_are_spread(void **state)
{
	int buckets[10] = { 0 };

	srandom(1);
	for (int i = 0; i < 10000; i++) {
		int backoff = 0, delay = conn_backoff_next(&backoff);

		assert_in_range(delay, 500, 1500);
		buckets[(delay - 500) / 100 < 10 ? (delay - 500) / 100 : 9]++;
	}
	for (int b = 0; b < 10; b++) /* about 1,000 in each tenth of the span */
		assert_in_range(buckets[b], 700, 1300);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_base_doubles_up_to_the_cap),
		cmocka_unit_test(test_first_tries_are_spread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
