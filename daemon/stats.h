/* SPDX-License-Identifier: MIT */
/*
 * Per-worker counters. Each block is written only by its worker, with relaxed
 * atomic load+store (no read-modify-write: there is one writer), and read by the
 * main thread for stats. Blocks are cache-line aligned so workers never share a
 * line. The fields are listed once, in WORKER_COUNTERS (common/counters.h), and every consumer
 * (summing, reset baselines, JSON, Prometheus) expands that list.
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "counters.h"
#include "macro.h"

struct worker_stats {
#define X(name, help) _Atomic uint64_t name;
	WORKER_COUNTERS(X)
#undef X
	_Atomic uint64_t connections_active; /* gauge */
	_Atomic uint64_t heartbeat;	     /* loop iterations, for the watchdog */
} __attribute__((aligned(CACHELINE)));

/* A plain copy, for summing and reporting. */
struct stats_snapshot {
#define X(name, help) uint64_t name;
	WORKER_COUNTERS(X)
#undef X
	uint64_t connections_active;
};

static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void stat_sub(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
			      memory_order_relaxed);
}

void stats_read(const struct worker_stats *s, struct stats_snapshot *out);
void stats_accumulate(struct stats_snapshot *sum, const struct stats_snapshot *add);
/* a - b for counters (for reset baselines); the gauge is taken from a. */
void stats_subtract(struct stats_snapshot *a, const struct stats_snapshot *b);
