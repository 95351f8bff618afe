// SPDX-License-Identifier: MIT
/*
 * Log-linear histogram (see hist.h). A value v >= 32 with highest set bit e
 * falls into bucket 32 + (e - 5) * 16 + the next four bits of v; a quantile is
 * reported as the upper edge of its bucket, so it never understates latency.
 */
#include "hist.h"

static unsigned bucket_of(uint64_t v)
{
	if (v < 32)
		return (unsigned) v;
	unsigned e = 63u - (unsigned) __builtin_clzll(v);
	return 32u + (e - 5u) * 16u + (unsigned) ((v >> (e - 4u)) & 15u);
}

static uint64_t upper_edge(unsigned b)
{
	if (b < 32)
		return b;
	unsigned e = (b - 32u) / 16u + 5u;
	uint64_t sub = (b - 32u) % 16u;
	uint64_t lo = (16u + sub) << (e - 4u);
	return lo + (1ull << (e - 4u)) - 1u;
}

void hist_record(struct hist *h, uint64_t ns)
{
	h->bucket[bucket_of(ns)]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t) (q * (double) h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen > rank) {
			uint64_t v = upper_edge(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}
