// SPDX-License-Identifier: MIT
/* Unit tests for the line framer (daemon/framer.c): splitting, terminators, limits, memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "framer.h"

#define NO_LIMIT SIZE_MAX

static struct framer_params params(const char *prefix, size_t max_line)
{
	return (struct framer_params){
	    .prefix = prefix, .prefix_len = strlen(prefix), .max_line = max_line};
}

/* Small deterministic PRNG so a failure can be reproduced from the seed. */
static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) (*s >> 33);
}

/* What a reply stream must be: an independent model of the framing rules. */
struct expect {
	struct buf out;
	uint64_t lines;
	bool too_long;
};

static void model(const struct framer_params *p, const char *in, size_t n, bool eof,
		  struct expect *e)
{
	size_t start = 0;

	*e = (struct expect){0};
	for (size_t i = 0; i <= n; i++) {
		bool end = i == n;
		if (!end && in[i] != '\n')
			continue;
		size_t len = i - start;
		if (len > p->max_line) {
			framer_error_too_long(p, &e->out);
			e->too_long = true;
			return;
		}
		if (end && (len == 0 || !eof))
			return;
		assert_int_equal(buf_append(&e->out, p->prefix, p->prefix_len), 0);
		assert_int_equal(buf_append(&e->out, in + start, len), 0);
		assert_int_equal(buf_append(&e->out, "\n", 1), 0);
		e->lines++;
		start = i + 1;
	}
}

/* "Sends" what the framer wrote: appends it to the transcript and empties out. */
static void move(struct buf *transcript, struct buf *out)
{
	if (buf_empty(out))
		return;
	assert_int_equal(buf_append(transcript, buf_head(out), buf_size(out)), 0);
	buf_consume(out, buf_size(out));
}

struct run {
	struct buf out; /* everything the framer answered, in order */
	int result;	/* last framer_feed result */
	uint64_t lines;
	size_t pending; /* framer_pending() at the end (before finish) */
};

/*
 * Feeds `in` in chunks whose sizes come from `chunk` (0 = random 1..max_chunk,
 * from seed), like a connection: each read is offered to the framer, whose
 * output is "sent" (moved to run->out) whenever out_limit stops it, and the
 * unconsumed rest is offered again. Returns the number of partial feeds.
 */
static size_t run_framer(const struct framer_params *p, const char *in, size_t n, size_t chunk,
			 size_t max_chunk, uint64_t seed, size_t out_limit, bool finish,
			 struct run *run)
{
	struct framer f = {0};
	struct buf out = {0};
	size_t pos = 0, partial_feeds = 0;

	*run = (struct run){0};
	while (pos < n && run->result != FRAMER_TOO_LONG) {
		size_t len = chunk ? chunk : 1 + rnd(&seed) % max_chunk;
		len = len > n - pos ? n - pos : len;
		for (size_t off = 0; off < len && run->result != FRAMER_TOO_LONG;) {
			size_t used = 0;
			int r =
			    framer_feed(&f, p, in + pos + off, len - off, &out, out_limit, &used);
			assert_true(r >= 0);
			assert_true(used <= len - off);
			run->result = r;
			off += used;
			if (r == FRAMER_OK && off < len) {
				/* Stopped short: only the output limit may do that. */
				partial_feeds++;
				assert_true(buf_size(&out) >= out_limit);
			}
			move(&run->out, &out);
		}
		pos += len;
	}
	run->pending = framer_pending(&f);
	if (finish && run->result == FRAMER_OK) {
		assert_int_equal(framer_finish(&f, p, &out), 0);
		assert_int_equal(framer_pending(&f), 0);
		move(&run->out, &out);
	}
	run->lines = f.lines;
	if (run->result == FRAMER_TOO_LONG || finish) {
		/* Nothing is held once the framer is finished or has failed. */
		assert_null(f.partial.data);
	}
	framer_done(&f);
	buf_free(&out);
	return partial_feeds;
}

static void assert_run_matches(const struct run *run, const struct expect *e)
{
	if (buf_size(&run->out) != buf_size(&e->out) ||
	    memcmp(buf_head(&run->out), buf_head(&e->out), buf_size(&e->out)) != 0)
		fail_msg("framer output (%zu bytes) differs from the model (%zu bytes)",
			 buf_size(&run->out), buf_size(&e->out));
	assert_int_equal(run->lines, e->lines);
	assert_int_equal(run->result, e->too_long ? FRAMER_TOO_LONG : FRAMER_OK);
}

static void run_free(struct run *run)
{
	buf_free(&run->out);
}

static void expect_free(struct expect *e)
{
	buf_free(&e->out);
}

/* Feeds the whole text at once with no limit and returns the output as a C string. */
static char *frame(const char *prefix, size_t max_line, const char *in, bool finish)
{
	struct framer_params p = params(prefix, max_line);
	struct run run;

	run_framer(&p, in, strlen(in), strlen(in) ? strlen(in) : 1, 0, 0, NO_LIMIT, finish, &run);
	char *s = test_malloc(buf_size(&run.out) + 1);
	if (!buf_empty(&run.out))
		memcpy(s, buf_head(&run.out), buf_size(&run.out));
	s[buf_size(&run.out)] = '\0';
	run_free(&run);
	return s;
}

static void assert_framed(const char *prefix, size_t max_line, const char *in, bool finish,
			  const char *want)
{
	char *got = frame(prefix, max_line, in, finish);
	assert_string_equal(got, want);
	test_free(got);
}

static void test_basic_lines(void **state)
{
	assert_framed("Received: ", 64, "hello\nworld\n", false,
		      "Received: hello\nReceived: world\n");
	assert_framed("> ", 64, "", true, "");
}

static void test_lf_and_crlf_echo_terminator(void **state)
{
	assert_framed("R: ", 64, "a\r\nb\nc\r\n", false, "R: a\r\nR: b\nR: c\r\n");
	/* Only a CR right before the LF is part of the terminator; others are line bytes. */
	assert_framed("R: ", 64, "a\rb\n\r\r\n", false, "R: a\rb\nR: \r\r\n");
	/* A lone CR does not end a line. */
	assert_framed("R: ", 64, "a\rb", true, "R: a\rb\n");
}

static void test_empty_lines(void **state)
{
	assert_framed("P", 64, "\n\n\r\n\n", false, "P\nP\nP\r\nP\n");
	assert_framed("", 64, "\n", false, "\n");
}

static void test_final_unterminated_line(void **state)
{
	struct framer_params p = params("> ", 64);
	struct framer f = {0};
	struct buf out = {0};
	size_t used;

	assert_int_equal(framer_feed(&f, &p, "one\ntwo", 7, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(used, 7);
	assert_int_equal(framer_pending(&f), 3);
	assert_int_equal(f.lines, 1);
	assert_int_equal(framer_finish(&f, &p, &out), 0);
	assert_int_equal(buf_size(&out), strlen("> one\n> two\n"));
	assert_memory_equal(buf_head(&out), "> one\n> two\n", buf_size(&out));
	assert_int_equal(f.lines, 2);
	assert_int_equal(framer_pending(&f), 0);
	assert_null(f.partial.data);
	/* Finishing again, or with nothing pending, adds nothing. */
	assert_int_equal(framer_finish(&f, &p, &out), 0);
	assert_int_equal(buf_size(&out), strlen("> one\n> two\n"));
	framer_done(&f);
	buf_free(&out);

	/* A final line ending in CR is answered with that CR and an LF. */
	assert_framed("> ", 64, "x\r", true, "> x\r\n");
	/* Without finish, an unterminated line is not answered. */
	assert_framed("> ", 64, "x\ny", false, "> x\n");
}

static void test_binary_bytes_in_lines(void **state)
{
	struct framer_params p = params("[", 64);
	const char in[] = {'a', '\0', 'b', '\n', (char) 0xff, '\0', '\n'};
	const char want[] = {'[', 'a', '\0', 'b', '\n', '[', (char) 0xff, '\0', '\n'};
	struct run run;

	run_framer(&p, in, sizeof(in), sizeof(in), 0, 0, NO_LIMIT, true, &run);
	assert_int_equal(buf_size(&run.out), sizeof(want));
	assert_memory_equal(buf_head(&run.out), want, sizeof(want));
	assert_int_equal(run.lines, 2);
	run_free(&run);
}

/* A stream of lines of many lengths, with CRLF, empty lines and a final partial line. */
static size_t make_stream(char *in, size_t cap, size_t max_len, uint64_t seed)
{
	size_t n = 0;

	while (n + max_len + 2 < cap) {
		size_t len = rnd(&seed) % (max_len + 1);
		if (rnd(&seed) % 8 == 0)
			len = 0;
		for (size_t i = 0; i < len; i++)
			in[n++] = (char) ('a' + rnd(&seed) % 26);
		if (rnd(&seed) % 3 == 0)
			in[n++] = '\r';
		in[n++] = '\n';
	}
	for (size_t i = 0; i < max_len / 2; i++)
		in[n++] = 'z';
	return n;
}

static void test_every_byte_boundary(void **state)
{
	struct framer_params p = params("Received: ", 40);
	char in[4096];
	size_t n = make_stream(in, sizeof(in), 38, 1);
	struct expect e;
	struct run whole, run;

	model(&p, in, n, true, &e);
	assert_false(e.too_long);
	run_framer(&p, in, n, n, 0, 0, NO_LIMIT, true, &whole);
	assert_run_matches(&whole, &e);

	/* One byte at a time: every split point at once. */
	run_framer(&p, in, n, 1, 0, 0, NO_LIMIT, true, &run);
	assert_run_matches(&run, &e);
	run_free(&run);

	/* Each single split point on its own: two feeds, [0, k) and [k, n). */
	for (size_t k = 1; k < n; k += 1) {
		struct framer f = {0};
		struct buf out = {0};
		size_t used;
		assert_int_equal(framer_feed(&f, &p, in, k, &out, NO_LIMIT, &used), FRAMER_OK);
		assert_int_equal(used, k);
		assert_int_equal(framer_feed(&f, &p, in + k, n - k, &out, NO_LIMIT, &used),
				 FRAMER_OK);
		assert_int_equal(used, n - k);
		assert_int_equal(framer_finish(&f, &p, &out), 0);
		if (buf_size(&out) != buf_size(&whole.out) ||
		    memcmp(buf_head(&out), buf_head(&whole.out), buf_size(&out)) != 0)
			fail_msg("output differs when split at byte %zu", k);
		framer_done(&f);
		buf_free(&out);
	}
	run_free(&whole);
	expect_free(&e);
}

static void test_random_chunks(void **state)
{
	struct framer_params p = params("> ", 100);
	char *in = test_malloc(64 * 1024);
	size_t n = make_stream(in, 64 * 1024, 100, 7);
	struct expect e;

	model(&p, in, n, true, &e);
	for (uint64_t seed = 1; seed <= 50; seed++) {
		struct run run;
		run_framer(&p, in, n, 0, 1 + (size_t) seed * 37, seed, NO_LIMIT, true, &run);
		assert_run_matches(&run, &e);
		run_free(&run);
	}
	expect_free(&e);
	test_free(in);
}

static void test_max_line_exactly_accepted(void **state)
{
	const size_t max = 16;
	struct framer_params p = params("", max);
	char line[64];

	memset(line, 'x', max);
	line[max] = '\n';
	/* With the LF in the same feed, in one-byte feeds, and split just before the LF. */
	for (size_t chunk = 1; chunk <= max + 1; chunk++) {
		struct run run;
		run_framer(&p, line, max + 1, chunk, 0, 0, NO_LIMIT, false, &run);
		assert_int_equal(run.result, FRAMER_OK);
		assert_int_equal(buf_size(&run.out), max + 1);
		assert_memory_equal(buf_head(&run.out), line, max + 1);
		run_free(&run);
	}
	/* Exactly max_line bytes without an LF are held, and answered at the end. */
	struct run run;
	run_framer(&p, line, max, 1, 0, 0, NO_LIMIT, false, &run);
	assert_int_equal(run.result, FRAMER_OK);
	assert_int_equal(run.pending, max);
	run_free(&run);
	run_framer(&p, line, max, max, 0, 0, NO_LIMIT, true, &run);
	assert_int_equal(buf_size(&run.out), max + 1);
	run_free(&run);
}

static void assert_too_long(const struct framer_params *p, const char *in, size_t n, size_t chunk,
			    const char *before)
{
	char want[256];
	struct run run;

	snprintf(want, sizeof(want), "%sERROR line too long (max %zu bytes)\n", before,
		 p->max_line);
	run_framer(p, in, n, chunk, 0, 0, NO_LIMIT, true, &run);
	assert_int_equal(run.result, FRAMER_TOO_LONG);
	assert_int_equal(buf_size(&run.out), strlen(want));
	assert_memory_equal(buf_head(&run.out), want, strlen(want));
	assert_int_equal(run.pending, 0);
	run_free(&run);
}

static void test_max_line_plus_one_rejected(void **state)
{
	const size_t max = 16;
	struct framer_params p = params("R: ", max);
	char in[64];

	memset(in, 'y', sizeof(in));
	in[max + 1] = '\n';
	for (size_t chunk = 1; chunk <= max + 2; chunk++) {
		/* With the LF seen (max+1 bytes then LF) ... */
		assert_too_long(&p, in, max + 2, chunk, "");
		/* ... and without it: rejected as soon as max+1 bytes are held. */
		assert_too_long(&p, in, max + 1, chunk, "");
	}
	/* A CR before the LF counts: max bytes + CRLF is one byte too many. */
	in[max] = '\r';
	assert_too_long(&p, in, max + 2, max + 2, "");
	in[max] = 'y';

	/* Lines before the long one are answered first. */
	char in2[128] = "ok\n";
	memset(in2 + 3, 'y', max + 1);
	assert_too_long(&p, in2, 3 + max + 1, 1, "R: ok\n");
	assert_too_long(&p, in2, 3 + max + 1, 3 + max + 1, "R: ok\n");
}

static void test_too_long_partial_across_feeds(void **state)
{
	struct framer_params p = params("", 20);
	struct framer f = {0};
	struct buf out = {0};
	size_t used;

	assert_int_equal(framer_feed(&f, &p, "0123456789", 10, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(framer_feed(&f, &p, "0123456789", 10, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(framer_pending(&f), 20);
	assert_true(buf_empty(&out));
	/* The 21st byte arrives, with an LF and more lines after it. */
	assert_int_equal(framer_feed(&f, &p, "x\nnext\n", 7, &out, NO_LIMIT, &used),
			 FRAMER_TOO_LONG);
	assert_int_equal(buf_size(&out), strlen("ERROR line too long (max 20 bytes)\n"));
	assert_memory_equal(buf_head(&out), "ERROR line too long (max 20 bytes)\n", buf_size(&out));
	assert_true(f.failed);
	assert_int_equal(framer_pending(&f), 0);
	assert_null(f.partial.data);
	assert_int_equal(f.lines, 0);
	/* After the failure: no more input accepted, no more output, finish adds nothing. */
	size_t before = buf_size(&out);
	assert_int_equal(framer_feed(&f, &p, "more\n", 5, &out, NO_LIMIT, &used), FRAMER_TOO_LONG);
	assert_int_equal(used, 0);
	assert_int_equal(framer_finish(&f, &p, &out), 0);
	assert_int_equal(buf_size(&out), before);
	framer_done(&f);
	buf_free(&out);
}

static void test_error_text(void **state)
{
	struct buf out = {0};
	struct framer_params p = params("x", 16777216);

	assert_int_equal(framer_error_too_long(&p, &out), 0);
	assert_int_equal(buf_size(&out), strlen("ERROR line too long (max 16777216 bytes)\n"));
	assert_memory_equal(buf_head(&out), "ERROR line too long (max 16777216 bytes)\n",
			    buf_size(&out));
	buf_free(&out);
}

static void test_out_limit_partial_consume(void **state)
{
	/* Empty lines amplify: each input byte becomes a whole prefix. */
	char prefix[200];
	memset(prefix, 'p', sizeof(prefix) - 1);
	prefix[sizeof(prefix) - 1] = '\0';
	struct framer_params p = params(prefix, 64);
	char in[1000];
	memset(in, '\n', sizeof(in));
	struct framer f = {0};
	struct buf out = {0};
	size_t used;

	assert_int_equal(framer_feed(&f, &p, in, sizeof(in), &out, 1000, &used), FRAMER_OK);
	assert_true(used > 0);
	assert_true(used < sizeof(in));
	/* It stops as soon as the limit is reached, not long after. */
	assert_true(buf_size(&out) >= 1000);
	assert_true(buf_size(&out) < 1000 + sizeof(prefix) + 1);
	assert_int_equal(buf_size(&out), used * sizeof(prefix));
	assert_int_equal(f.lines, used);
	/* A full output buffer takes nothing more until it drains. */
	size_t used2;
	assert_int_equal(framer_feed(&f, &p, in + used, sizeof(in) - used, &out, 1000, &used2),
			 FRAMER_OK);
	assert_int_equal(used2, 0);
	framer_done(&f);
	buf_free(&out);
}

static void test_out_limit_same_output(void **state)
{
	struct framer_params p = params("Received: ", 50);
	char *in = test_malloc(32 * 1024);
	size_t n = make_stream(in, 32 * 1024, 50, 3);
	struct expect e;

	model(&p, in, n, true, &e);
	for (size_t limit = 1; limit <= 4096; limit *= 3) {
		for (uint64_t seed = 1; seed <= 5; seed++) {
			struct run run;
			size_t partial = run_framer(&p, in, n, 0, 4096, seed, limit, true, &run);
			assert_run_matches(&run, &e);
			if (limit <= 243)
				assert_true(partial > 0); /* the limit really cut feeds short */
			run_free(&run);
		}
	}
	expect_free(&e);
	test_free(in);
}

static void test_long_prefix(void **state)
{
	char prefix[1025];
	memset(prefix, 'P', 1024);
	prefix[1024] = '\0';
	struct framer_params p = params(prefix, 64);
	struct run run;

	run_framer(&p, "a\n\nb", 4, 1, 0, 0, NO_LIMIT, true, &run);
	assert_int_equal(buf_size(&run.out), 3 * 1024 + strlen("a\n\nb\n"));
	const char *o = buf_head(&run.out);
	assert_memory_equal(o, prefix, 1024);
	assert_memory_equal(o + 1024, "a\n", 2);
	assert_memory_equal(o + 1026, prefix, 1024);
	assert_memory_equal(o + 2050, "\n", 1);
	assert_memory_equal(o + 2051, prefix, 1024);
	assert_memory_equal(o + 3075, "b\n", 2);
	assert_int_equal(run.lines, 3);
	run_free(&run);
}

static void test_empty_prefix(void **state)
{
	assert_framed("", 64, "abc\r\ndef\n\n", true, "abc\r\ndef\n\n");
	assert_framed("", 64, "tail", true, "tail\n");
}

static void test_lines_counter(void **state)
{
	struct framer_params p = params("> ", 64);
	struct framer f = {0};
	struct buf out = {0};
	size_t used;

	assert_int_equal(framer_feed(&f, &p, "a\nb\n\nc", 6, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(f.lines, 3);
	assert_int_equal(framer_feed(&f, &p, "d\n", 2, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(f.lines, 4); /* "cd" */
	assert_int_equal(framer_feed(&f, &p, "e", 1, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(f.lines, 4);
	assert_int_equal(framer_finish(&f, &p, &out), 0);
	assert_int_equal(f.lines, 5);
	framer_done(&f);
	buf_free(&out);
}

static void test_no_memory_held_between_lines(void **state)
{
	struct framer_params p = params("> ", 64);
	struct framer f = {0};
	struct buf out = {0};
	size_t used;

	assert_int_equal(framer_feed(&f, &p, "partial", 7, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(framer_pending(&f), 7);
	assert_non_null(f.partial.data);
	assert_int_equal(framer_feed(&f, &p, " line\n", 6, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(framer_pending(&f), 0);
	assert_null(f.partial.data);
	/* Complete lines fed whole never allocate a partial buffer. */
	assert_int_equal(framer_feed(&f, &p, "x\ny\n", 4, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_null(f.partial.data);
	/* Held again, then completed by a feed that also starts the next line. */
	assert_int_equal(framer_feed(&f, &p, "ab", 2, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(framer_feed(&f, &p, "c\nde", 4, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(framer_pending(&f), 2);
	assert_int_equal(framer_feed(&f, &p, "\n", 1, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(framer_pending(&f), 0);
	assert_null(f.partial.data);
	const char *want = "> partial line\n> x\n> y\n> abc\n> de\n";
	assert_int_equal(buf_size(&out), strlen(want));
	assert_memory_equal(buf_head(&out), want, strlen(want));
	framer_done(&f);
	buf_free(&out);
}

static void test_done_frees_partial(void **state)
{
	struct framer_params p = params("> ", 64);
	struct framer f = {0};
	struct buf out = {0};
	size_t used;

	assert_int_equal(framer_feed(&f, &p, "held", 4, &out, NO_LIMIT, &used), FRAMER_OK);
	framer_done(&f); /* valgrind/ASan would report the partial line otherwise */
	assert_null(f.partial.data);
	assert_int_equal(framer_pending(&f), 0);
	framer_done(&f);
	buf_free(&out);
}

static void test_zero_length_feed(void **state)
{
	struct framer_params p = params("> ", 64);
	struct framer f = {0};
	struct buf out = {0};
	size_t used = 99;

	assert_int_equal(framer_feed(&f, &p, "", 0, &out, NO_LIMIT, &used), FRAMER_OK);
	assert_int_equal(used, 0);
	assert_true(buf_empty(&out));
	assert_null(f.partial.data);
	framer_done(&f);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic_lines),
	    cmocka_unit_test(test_lf_and_crlf_echo_terminator),
	    cmocka_unit_test(test_empty_lines),
	    cmocka_unit_test(test_final_unterminated_line),
	    cmocka_unit_test(test_binary_bytes_in_lines),
	    cmocka_unit_test(test_every_byte_boundary),
	    cmocka_unit_test(test_random_chunks),
	    cmocka_unit_test(test_max_line_exactly_accepted),
	    cmocka_unit_test(test_max_line_plus_one_rejected),
	    cmocka_unit_test(test_too_long_partial_across_feeds),
	    cmocka_unit_test(test_error_text),
	    cmocka_unit_test(test_out_limit_partial_consume),
	    cmocka_unit_test(test_out_limit_same_output),
	    cmocka_unit_test(test_long_prefix),
	    cmocka_unit_test(test_empty_prefix),
	    cmocka_unit_test(test_lines_counter),
	    cmocka_unit_test(test_no_memory_held_between_lines),
	    cmocka_unit_test(test_done_frees_partial),
	    cmocka_unit_test(test_zero_length_feed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
