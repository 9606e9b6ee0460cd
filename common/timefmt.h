/*
 * timefmt.h - the one timestamp format chatd speaks: RFC 3339, UTC,
 * milliseconds ("2026-11-21T09:30:00.123Z"), in the protocol, the history
 * file and the service log.
 */
#ifndef CHATD_TIMEFMT_H
#define CHATD_TIMEFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TIME_RFC3339_LEN 24 /* without the NUL */

/* Milliseconds since the epoch, wall clock. */
int64_t time_now_ms(void);

/* Milliseconds on the monotonic clock, for timeouts and durations. */
int64_t time_mono_ms(void);

/* The time ms milliseconds from now on clock clk: a deadline for a timed wait. */
struct timespec time_after_ms(clockid_t clk, int ms);

/* Writes TIME_RFC3339_LEN characters and a NUL to out. */
void time_format_ms(char out[TIME_RFC3339_LEN + 1], int64_t epoch_ms);

/* Parses exactly the format above (len must be TIME_RFC3339_LEN). */
bool time_parse_ms(const char *s, size_t len, int64_t *epoch_ms);

#endif
