/*
 * histogram.h - a fixed-size log-bucket latency histogram.
 *
 * Values (nanoseconds) fall into buckets of 1/16 of a power of two, so a
 * percentile is exact to about 6 %.  Recording is an index computation and
 * an increment: no allocation per value, whatever the range.
 */
#ifndef BENCH_HISTOGRAM_H
#define BENCH_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 4
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct histogram {
	uint64_t count;
	uint64_t max;
	uint64_t bucket[HIST_BUCKETS];
};

static inline unsigned
hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);

	return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

static inline void
hist_record(struct histogram *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* The value at quantile q (0..1): the upper end of its bucket, never above max. */
uint64_t hist_quantile(const struct histogram *h, double q);

/* The smallest and largest value bucket i holds (for tests and reports). */
uint64_t hist_bucket_low(unsigned i);
uint64_t hist_bucket_high(unsigned i);

#endif
