// SPDX-License-Identifier: MIT
/* Unit tests for the per-worker counters (daemon/stats.c): read, sum, subtract baselines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "stats.h"

/* Gives every counter a distinct value so a field mixed up with another shows. */
static void fill(struct worker_stats *s, uint64_t base)
{
	uint64_t v = base;
	memset(s, 0, sizeof(*s));
#define X(name, help) atomic_store(&s->name, v++);
	WORKER_COUNTERS(X)
#undef X
	atomic_store(&s->connections_active, v);
}

static void test_alignment(void **state)
{
	/* Each worker's block is on its own cache lines. */
	assert_int_equal(_Alignof(struct worker_stats), CACHELINE);
	assert_int_equal(sizeof(struct worker_stats) % CACHELINE, 0);
}

static void test_read_copies_every_field(void **state)
{
	struct worker_stats s;
	struct stats_snapshot snap;
	uint64_t v = 100;

	fill(&s, 100);
	memset(&snap, 0xaa, sizeof(snap));
	stats_read(&s, &snap);
#define X(name, help) assert_int_equal(snap.name, v++);
	WORKER_COUNTERS(X)
#undef X
	assert_int_equal(snap.connections_active, v);
}

static void test_add_sub(void **state)
{
	struct worker_stats s = {0};

	stat_add(&s.bytes_sent, 10);
	stat_add(&s.bytes_sent, 5);
	stat_add(&s.connections_active, 3);
	stat_sub(&s.connections_active, 2);
	assert_int_equal(atomic_load(&s.bytes_sent), 15);
	assert_int_equal(atomic_load(&s.connections_active), 1);
}

static void test_accumulate(void **state)
{
	struct worker_stats a, b;
	struct stats_snapshot sa, sb, sum;

	fill(&a, 1);
	fill(&b, 1000);
	stats_read(&a, &sa);
	stats_read(&b, &sb);
	memset(&sum, 0, sizeof(sum));
	stats_accumulate(&sum, &sa);
	stats_accumulate(&sum, &sb);
#define X(name, help) assert_int_equal(sum.name, sa.name + sb.name);
	WORKER_COUNTERS(X)
#undef X
	assert_int_equal(sum.connections_active, sa.connections_active + sb.connections_active);
}

static void test_subtract_baseline(void **state)
{
	struct worker_stats now, then;
	struct stats_snapshot a, b;

	fill(&now, 500);
	fill(&then, 100);
	stats_read(&now, &a);
	stats_read(&then, &b);
	uint64_t active = a.connections_active;
	stats_subtract(&a, &b);
#define X(name, help) assert_int_equal(a.name, 400);
	WORKER_COUNTERS(X)
#undef X
	/* The gauge is the current value, not a difference. */
	assert_int_equal(a.connections_active, active);
}

static void test_subtract_never_wraps(void **state)
{
	struct worker_stats small, big;
	struct stats_snapshot a, b;

	/* A baseline taken before a worker restarted may exceed the current value. */
	fill(&small, 1);
	fill(&big, 50);
	stats_read(&small, &a);
	stats_read(&big, &b);
	stats_subtract(&a, &b);
#define X(name, help) assert_int_equal(a.name, 0);
	WORKER_COUNTERS(X)
#undef X
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alignment),
	    cmocka_unit_test(test_read_copies_every_field),
	    cmocka_unit_test(test_add_sub),
	    cmocka_unit_test(test_accumulate),
	    cmocka_unit_test(test_subtract_baseline),
	    cmocka_unit_test(test_subtract_never_wraps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
