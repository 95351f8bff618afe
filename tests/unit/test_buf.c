// SPDX-License-Identifier: MIT
/* Unit tests for the growable byte buffer (common/buf.c): append, consume, reserve, grow, free. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void assert_contents(const struct buf *b, const char *s)
{
	assert_int_equal(buf_size(b), strlen(s));
	assert_memory_equal(buf_head(b), s, strlen(s));
}

static void test_zero_init_is_empty(void **state)
{
	struct buf b = {0};

	assert_true(buf_empty(&b));
	assert_int_equal(buf_size(&b), 0);
	buf_free(&b); /* freeing a never-used buffer is fine */
	assert_null(b.data);
}

static void test_append_and_consume(void **state)
{
	struct buf b = {0};

	assert_int_equal(buf_append(&b, "hello ", 6), 0);
	assert_int_equal(buf_append(&b, "world", 5), 0);
	assert_contents(&b, "hello world");
	buf_consume(&b, 6);
	assert_contents(&b, "world");
	assert_int_equal(b.off, 6);
	buf_consume(&b, 5);
	assert_true(buf_empty(&b));
	/* Consuming everything rewinds, so the memory is reused from the start. */
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	assert_non_null(b.data);
	buf_free(&b);
}

static void test_append_zero_bytes(void **state)
{
	struct buf b = {0};

	/* Zero bytes into a buffer without memory is not an allocation failure. */
	assert_int_equal(buf_append(&b, NULL, 0), 0);
	assert_true(buf_empty(&b));
	assert_int_equal(buf_append(&b, "x", 1), 0);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_contents(&b, "x");
	buf_free(&b);
}

static void test_reserve_zero_on_empty(void **state)
{
	struct buf b = {0};

	/* NULL means out of memory, so even a zero-byte reservation must succeed. */
	assert_non_null(buf_reserve(&b, 0));
	assert_true(buf_empty(&b));
	buf_free(&b);
}

static void test_reserve_then_commit(void **state)
{
	struct buf b = {0};
	char *p = buf_reserve(&b, 100);

	assert_non_null(p);
	assert_true(b.cap - b.len >= 100);
	assert_true(buf_empty(&b)); /* reserving does not add bytes */
	memset(p, 'a', 100);
	b.len += 100;
	assert_int_equal(buf_size(&b), 100);
	/* A reservation that fits returns the end without reallocating. */
	char *data = b.data;
	size_t spare = b.cap - b.len;
	if (spare > 0)
		assert_ptr_equal(buf_reserve(&b, spare), data + b.len);
	assert_ptr_equal(b.data, data);
	buf_free(&b);
}

static void test_grow_keeps_contents(void **state)
{
	struct buf b = {0};
	char chunk[1000];

	for (size_t i = 0; i < 1000; i++) {
		for (size_t j = 0; j < sizeof(chunk); j++)
			chunk[j] = (char) (i + j);
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
	}
	assert_int_equal(buf_size(&b), 1000 * sizeof(chunk));
	assert_true(b.cap >= b.len);
	for (size_t i = 0; i < 1000; i++) {
		for (size_t j = 0; j < sizeof(chunk); j++)
			chunk[j] = (char) (i + j);
		assert_memory_equal(b.data + i * sizeof(chunk), chunk, sizeof(chunk));
	}
	buf_free(&b);
}

static void test_large_single_append(void **state)
{
	struct buf b = {0};
	size_t n = 3 * 1024 * 1024 + 7;
	char *big = test_malloc(n);

	memset(big, 'z', n);
	big[n - 1] = '!';
	assert_int_equal(buf_append(&b, big, n), 0);
	assert_int_equal(buf_size(&b), n);
	assert_memory_equal(buf_head(&b), big, n);
	test_free(big);
	buf_free(&b);
}

static void test_reserve_reclaims_consumed_space(void **state)
{
	struct buf b = {0};
	char *first = buf_reserve(&b, 1);
	size_t cap = b.cap;

	assert_non_null(first);
	/* Fill to capacity, consume most of it, then ask for what only fits after compaction. */
	char *fill = test_malloc(cap);
	for (size_t i = 0; i < cap; i++)
		fill[i] = (char) ('a' + i % 26);
	assert_int_equal(buf_append(&b, fill, cap), 0);
	assert_int_equal(b.cap, cap);
	buf_consume(&b, cap - 10);
	assert_int_equal(buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(b.cap, cap); /* moved to the front instead of growing */
	assert_int_equal(b.off, 0);
	assert_int_equal(buf_size(&b), 20);
	assert_memory_equal(buf_head(&b), fill + cap - 10, 10);
	assert_memory_equal(buf_head(&b) + 10, "0123456789", 10);
	test_free(fill);
	buf_free(&b);
}

static void test_grow_after_partial_consume(void **state)
{
	struct buf b = {0};

	assert_int_equal(buf_append(&b, "abcdef", 6), 0);
	buf_consume(&b, 2);
	size_t need = b.cap * 4;
	char *more = test_malloc(need);
	memset(more, 'q', need);
	assert_int_equal(buf_append(&b, more, need), 0);
	assert_int_equal(buf_size(&b), 4 + need);
	assert_memory_equal(buf_head(&b), "cdef", 4);
	assert_memory_equal(buf_head(&b) + 4, more, need);
	test_free(more);
	buf_free(&b);
}

static void test_consume_more_than_size(void **state)
{
	struct buf b = {0};

	assert_int_equal(buf_append(&b, "abc", 3), 0);
	buf_consume(&b, 10);
	assert_true(buf_empty(&b));
	assert_int_equal(b.off, 0);
	assert_int_equal(buf_append(&b, "de", 2), 0);
	assert_contents(&b, "de");
	buf_free(&b);
}

static void test_consume_zero(void **state)
{
	struct buf b = {0};

	buf_consume(&b, 0); /* on an empty buffer */
	assert_true(buf_empty(&b));
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	buf_consume(&b, 0);
	assert_contents(&b, "abc");
	buf_free(&b);
}

static void test_impossible_reserve_fails_cleanly(void **state)
{
	struct buf b = {0};

	assert_null(buf_reserve(&b, SIZE_MAX));
	assert_null(buf_reserve(&b, SIZE_MAX / 2 + 1));
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	char *data = b.data;
	assert_null(buf_reserve(&b, SIZE_MAX - 1));
	assert_int_equal(buf_append(&b, "x", SIZE_MAX / 2), -ENOMEM);
	/* The buffer is untouched by the failures. */
	assert_ptr_equal(b.data, data);
	assert_contents(&b, "abc");
	buf_free(&b);
}

static void test_free_resets_and_reuse(void **state)
{
	struct buf b = {0};

	assert_int_equal(buf_append(&b, "abc", 3), 0);
	buf_consume(&b, 1);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	buf_free(&b); /* twice is fine */
	assert_int_equal(buf_append(&b, "xyz", 3), 0);
	assert_contents(&b, "xyz");
	buf_free(&b);
}

static void test_binary_data(void **state)
{
	struct buf b = {0};
	const char bin[] = {'\0', '\n', '\r', (char) 0xff, '\0'};

	assert_int_equal(buf_append(&b, bin, sizeof(bin)), 0);
	assert_int_equal(buf_size(&b), sizeof(bin));
	assert_memory_equal(buf_head(&b), bin, sizeof(bin));
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_zero_init_is_empty),
	    cmocka_unit_test(test_append_and_consume),
	    cmocka_unit_test(test_append_zero_bytes),
	    cmocka_unit_test(test_reserve_zero_on_empty),
	    cmocka_unit_test(test_reserve_then_commit),
	    cmocka_unit_test(test_grow_keeps_contents),
	    cmocka_unit_test(test_large_single_append),
	    cmocka_unit_test(test_reserve_reclaims_consumed_space),
	    cmocka_unit_test(test_grow_after_partial_consume),
	    cmocka_unit_test(test_consume_more_than_size),
	    cmocka_unit_test(test_consume_zero),
	    cmocka_unit_test(test_impossible_reserve_fails_cleanly),
	    cmocka_unit_test(test_free_resets_and_reuse),
	    cmocka_unit_test(test_binary_data),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
