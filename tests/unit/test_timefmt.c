/*
 * test_timefmt.c - RFC 3339 formatting and strict parsing, and the clocks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "timefmt.h"

static void
assert_formats_as(int64_t ms, const char *want)
{
	char out[TIME_RFC3339_LEN + 1];

	memset(out, '#', sizeof(out));
	time_format_ms(out, ms);
	assert_string_equal(out, want);
}

static int64_t
parse_ok(const char *s)
{
	int64_t ms = -42;

	if (!time_parse_ms(s, strlen(s), &ms))
		fail_msg("refused \"%s\"", s);
	return ms;
}

static void
test_known_values(void **state)
{
	assert_formats_as(0, "1970-01-01T00:00:00.000Z");
	assert_formats_as(1795253400123LL, "2026-11-21T09:30:00.123Z");
	assert_formats_as(1709251199999LL, "2024-02-29T23:59:59.999Z");
	assert_formats_as(951782400000LL, "2000-02-29T00:00:00.000Z");
	assert_formats_as(-1, "1969-12-31T23:59:59.999Z");
	assert_formats_as(-1001, "1969-12-31T23:59:58.999Z");
	assert_int_equal(parse_ok("1970-01-01T00:00:00.000Z"), 0);
	assert_int_equal(parse_ok("2026-11-21T09:30:00.123Z"), 1795253400123LL);
	assert_int_equal(parse_ok("2024-02-29T23:59:59.999Z"), 1709251199999LL);
	assert_int_equal(parse_ok("2000-02-29T00:00:00.000Z"), 951782400000LL);
	assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
}

static void
test_out_of_range_is_clamped_to_fixed_width(void **state)
{
	assert_formats_as(INT64_MAX, "9999-12-31T23:59:59.999Z");
	assert_formats_as(INT64_MIN, "0000-01-01T00:00:00.000Z");
	assert_int_equal(parse_ok("9999-12-31T23:59:59.999Z"), 253402300799999LL);
	assert_int_equal(parse_ok("0000-01-01T00:00:00.000Z"), -62167219200000LL);
}

static void
test_round_trip(void **state)
{
	char out[TIME_RFC3339_LEN + 1];
	uint64_t x = 88172645463325252ULL;

	for (int i = 0; i < 200000; i++) {
		int64_t ms, back;

		/* xorshift: dates spread over 0000..9999 */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		ms = (int64_t)(x % (253402300799999ULL + 62167219200000ULL)) - 62167219200000LL;
		time_format_ms(out, ms);
		assert_int_equal(strlen(out), TIME_RFC3339_LEN);
		assert_true(time_parse_ms(out, TIME_RFC3339_LEN, &back));
		assert_int_equal(back, ms);
	}
}

static void
test_leap_days(void **state)
{
	int64_t ms;

	assert_true(time_parse_ms("2024-02-29T00:00:00.000Z", 24, &ms));
	assert_true(time_parse_ms("2000-02-29T00:00:00.000Z", 24, &ms));
	assert_false(time_parse_ms("2023-02-29T00:00:00.000Z", 24, &ms));
	assert_false(time_parse_ms("2100-02-29T00:00:00.000Z", 24, &ms));
	assert_false(time_parse_ms("2024-02-30T00:00:00.000Z", 24, &ms));
	assert_true(time_parse_ms("2024-12-31T00:00:00.000Z", 24, &ms));
	assert_false(time_parse_ms("2024-04-31T00:00:00.000Z", 24, &ms));
	/* the day after the leap day */
	assert_int_equal(parse_ok("2024-03-01T00:00:00.000Z") -
				 parse_ok("2024-02-29T00:00:00.000Z"),
			 86400000);
}

static void
test_rejects_garbage(void **state)
{
	static const char *const bad[] = {
		"",
		"2026-11-21T09:30:00Z",
		"2026-11-21T09:30:00.123",
		"2026-11-21T09:30:00.1234Z",
		"2026-11-21 09:30:00.123Z",
		"2026-11-21t09:30:00.123Z",
		"2026-11-21T09:30:00.123z",
		"2026/11/21T09:30:00.123Z",
		"2026-11-21T09:30:00,123Z",
		"2026-11-21T09:30:00.123+",
		"+026-11-21T09:30:00.123Z",
		"-026-11-21T09:30:00.123Z",
		" 026-11-21T09:30:00.123Z",
		"2026-+1-21T09:30:00.123Z",
		"2026-11-21T09:30:0a.123Z",
		"2026-00-21T09:30:00.123Z",
		"2026-13-21T09:30:00.123Z",
		"2026-11-00T09:30:00.123Z",
		"2026-11-31T09:30:00.123Z",
		"2026-11-21T24:00:00.000Z",
		"2026-11-21T09:60:00.000Z",
		"2026-11-21T09:30:60.000Z",
		"2026-11-21T09:30:00.-12Z",
		"XXXX-XX-XXTXX:XX:XX.XXXZ",
	};
	int64_t ms = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (time_parse_ms(bad[i], strlen(bad[i]), &ms))
			fail_msg("accepted \"%s\"", bad[i]);
	/* The length is the caller's: a good prefix of a longer text is refused. */
	assert_false(time_parse_ms("2026-11-21T09:30:00.123Zjunk", 28, &ms));
	assert_false(time_parse_ms("2026-11-21T09:30:00.123Z", 23, &ms));
	assert_int_equal(ms, 7);
}

static void
test_clocks(void **state)
{
	int64_t now = time_now_ms();
	int64_t m1 = time_mono_ms();
	int64_t m2 = time_mono_ms();

	assert_true(now > parse_ok("2024-01-01T00:00:00.000Z"));
	assert_true(now < parse_ok("2200-01-01T00:00:00.000Z"));
	assert_true(m1 >= 0);
	assert_true(m2 >= m1);
}

static int64_t
ts_ns(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* A deadline lies ms ahead, with its nanoseconds carried into seconds. */
static void
test_deadline(void **state)
{
	for (int ms = 0; ms < 3000; ms += 499) {
		struct timespec before, after, d;

		clock_gettime(CLOCK_MONOTONIC, &before);
		d = time_after_ms(CLOCK_MONOTONIC, ms);
		clock_gettime(CLOCK_MONOTONIC, &after);
		assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		assert_true(ts_ns(d) >= ts_ns(before) + (int64_t)ms * 1000000);
		assert_true(ts_ns(d) <= ts_ns(after) + (int64_t)ms * 1000000);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_values),
		cmocka_unit_test(test_out_of_range_is_clamped_to_fixed_width),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_leap_days),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_rejects_garbage),
		cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
