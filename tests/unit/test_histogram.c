/*
 * test_histogram.c - chatbench's log-bucket latency histogram: every value
 * lands in a bucket that holds it, buckets are narrow (1/16 of a power of
 * two), and percentiles come out within that precision.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "../../bench/histogram.h"

static void
test_every_value_lands_in_a_bucket_that_holds_it(void **state)
{
	uint64_t v = 0;

	while (v < ((uint64_t)1 << 62)) {
		unsigned i = hist_index(v);

		assert_true(i < HIST_BUCKETS);
		assert_true(hist_bucket_low(i) <= v);
		assert_true(v <= hist_bucket_high(i));
		/* A bucket is at most 1/16 of its values wide. */
		assert_true(hist_bucket_high(i) - hist_bucket_low(i) <=
			    hist_bucket_low(i) / HIST_SUB);
		v = v < 1000 ? v + 1 : v + v / 7 + 1;
	}
	assert_true(hist_index(UINT64_MAX) < HIST_BUCKETS);
}

static void
test_buckets_tile_the_range(void **state)
{
	for (unsigned i = 0; i + 1 < hist_index(UINT64_MAX); i++)
		assert_true(hist_bucket_high(i) + 1 == hist_bucket_low(i + 1));
}

static void
test_percentiles_of_a_uniform_spread(void **state)
{
	static struct histogram h;

	memset(&h, 0, sizeof(h));
	for (uint64_t v = 1; v <= 100000; v++)
		hist_record(&h, v * 1000); /* 1 us .. 100 ms */
	assert_int_equal(h.count, 100000);
	assert_int_equal(h.max, 100000000);

	const double q[] = { 0.5, 0.9, 0.99, 0.999 };
	for (size_t k = 0; k < sizeof(q) / sizeof(q[0]); k++) {
		double exact = q[k] * 100000 * 1000;
		double got = (double)hist_quantile(&h, q[k]);

		assert_true(got >= exact);
		assert_true(got <= exact * (1.0 + 1.0 / HIST_SUB));
	}
	assert_int_equal(hist_quantile(&h, 1.0), h.max);
}

static void
test_empty_and_single(void **state)
{
	static struct histogram h;

	memset(&h, 0, sizeof(h));
	assert_int_equal(hist_quantile(&h, 0.99), 0);
	hist_record(&h, 12345);
	assert_int_equal(hist_quantile(&h, 0.5), 12345); /* capped at max */
	assert_int_equal(hist_quantile(&h, 0.999), 12345);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_value_lands_in_a_bucket_that_holds_it),
		cmocka_unit_test(test_buckets_tile_the_range),
		cmocka_unit_test(test_percentiles_of_a_uniform_spread),
		cmocka_unit_test(test_empty_and_single),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
