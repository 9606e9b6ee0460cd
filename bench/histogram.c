/*
 * histogram.c - percentiles from the log-bucket histogram (see histogram.h).
 */
#include "histogram.h"

uint64_t
hist_bucket_low(unsigned i)
{
	if (i < HIST_SUB)
		return i;
	unsigned e = i / HIST_SUB + HIST_SUB_BITS - 1;

	return (uint64_t)(HIST_SUB + i % HIST_SUB) << (e - HIST_SUB_BITS);
}

uint64_t
hist_bucket_high(unsigned i)
{
	if (i < HIST_SUB)
		return i;
	unsigned e = i / HIST_SUB + HIST_SUB_BITS - 1;

	return hist_bucket_low(i) + ((uint64_t)1 << (e - HIST_SUB_BITS)) - 1;
}

uint64_t
hist_quantile(const struct histogram *h, double q)
{
	if (h->count == 0)
		return 0;
	/* The rank of the value asked for, 1-based: p99 of 100 values is the 99th. */
	uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
	uint64_t seen = 0;

	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t hi = hist_bucket_high(i);
			return hi < h->max ? hi : h->max;
		}
	}
	return h->max;
}
