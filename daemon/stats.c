// SPDX-License-Identifier: MIT
#include "stats.h"

void stats_read(const struct worker_stats *s, struct stats_snapshot *out)
{
#define X(name, help) out->name = atomic_load_explicit(&s->name, memory_order_relaxed);
	WORKER_COUNTERS(X)
#undef X
	out->connections_active =
	    atomic_load_explicit(&s->connections_active, memory_order_relaxed);
}

void stats_accumulate(struct stats_snapshot *sum, const struct stats_snapshot *add)
{
#define X(name, help) sum->name += add->name;
	WORKER_COUNTERS(X)
#undef X
	sum->connections_active += add->connections_active;
}

void stats_subtract(struct stats_snapshot *a, const struct stats_snapshot *b)
{
#define X(name, help) a->name = a->name >= b->name ? a->name - b->name : 0;
	WORKER_COUNTERS(X)
#undef X
}
