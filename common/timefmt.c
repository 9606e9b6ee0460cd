/*
 * timefmt.c - the clocks and the one timestamp format chatd speaks:
 * "2026-11-21T09:30:00.123Z" (RFC 3339, UTC, milliseconds).
 *
 * Digits are written and read by hand: this runs for every message and
 * every log line, and the parser must refuse what strtol() or sscanf()
 * would quietly accept (signs, spaces, short fields).  No state: any
 * thread.
 */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "timefmt.h"

#define MS_PER_SEC 1000
#define SECS_PER_DAY 86400

/* The fixed-width format only covers years 0000-9999. */
#define EARLIEST_MS (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define LATEST_MS 253402300799999LL     /* 9999-12-31T23:59:59.999Z */

static int64_t
clock_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * MS_PER_SEC + ts.tv_nsec / 1000000;
}

int64_t
time_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t
time_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

struct timespec
time_after_ms(clockid_t clk, int ms)
{
	struct timespec t;

	clock_gettime(clk, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static void
put_digits(char *out, unsigned value, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = (char)('0' + value % 10);
		value /= 10;
	}
}

void
time_format_ms(char out[TIME_RFC3339_LEN + 1], int64_t epoch_ms)
{
	int64_t ms = epoch_ms < EARLIEST_MS ? EARLIEST_MS
		     : epoch_ms > LATEST_MS ? LATEST_MS
					    : epoch_ms;
	int64_t millis = ((ms % MS_PER_SEC) + MS_PER_SEC) % MS_PER_SEC;
	time_t secs = (time_t)((ms - millis) / MS_PER_SEC);
	struct tm tm;

	gmtime_r(&secs, &tm);
	put_digits(out, (unsigned)(tm.tm_year + 1900), 4);
	out[4] = '-';
	put_digits(out + 5, (unsigned)(tm.tm_mon + 1), 2);
	out[7] = '-';
	put_digits(out + 8, (unsigned)tm.tm_mday, 2);
	out[10] = 'T';
	put_digits(out + 11, (unsigned)tm.tm_hour, 2);
	out[13] = ':';
	put_digits(out + 14, (unsigned)tm.tm_min, 2);
	out[16] = ':';
	put_digits(out + 17, (unsigned)tm.tm_sec, 2);
	out[19] = '.';
	put_digits(out + 20, (unsigned)millis, 3);
	out[23] = 'Z';
	out[24] = '\0';
}

static bool
get_digits(const char *s, int width, int *value)
{
	*value = 0;
	for (int i = 0; i < width; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*value = *value * 10 + (s[i] - '0');
	}
	return true;
}

static bool
is_leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap_year(y) ? 29 : days[m - 1];
}

/*
 * Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): timegm() would silently normalise a 31st of April.
 */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t yy = m <= 2 ? y - 1 : y;
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static bool
separators_ok(const char *s)
{
	return s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
	       s[19] == '.' && s[23] == 'Z';
}

bool
time_parse_ms(const char *s, size_t len, int64_t *epoch_ms)
{
	int y, mo, d, h, mi, sec, ms;

	if (len != TIME_RFC3339_LEN || !separators_ok(s))
		return false;
	if (!get_digits(s, 4, &y) || !get_digits(s + 5, 2, &mo) || !get_digits(s + 8, 2, &d) ||
	    !get_digits(s + 11, 2, &h) || !get_digits(s + 14, 2, &mi) ||
	    !get_digits(s + 17, 2, &sec) || !get_digits(s + 20, 3, &ms))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
		return false;
	*epoch_ms = ((days_from_civil(y, mo, d) * SECS_PER_DAY + h * 3600 + mi * 60 + sec) *
		     MS_PER_SEC) +
		    ms;
	return true;
}
