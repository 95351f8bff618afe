/* SPDX-License-Identifier: MIT */
/*
 * A log-linear latency histogram in nanoseconds: exact below 32 ns, then 16
 * buckets per power of two, so any reported percentile is within 6.25 % of
 * the true value. Fixed size, no allocation, cheap to record and to merge
 * (each load thread keeps its own and the main thread adds them up).
 */
#pragma once

#include <stdint.h>

#define HIST_BUCKETS 1024

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t bucket[HIST_BUCKETS];
};

void hist_record(struct hist *h, uint64_t ns);
void hist_merge(struct hist *into, const struct hist *from);
/* The value below which a fraction q (0..1) of the samples lie; 0 if empty. */
uint64_t hist_quantile(const struct hist *h, double q);
