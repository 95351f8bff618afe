// SPDX-License-Identifier: MIT
/*
 * Fuzzes the line framer against a reference model of its rules (framer.h):
 * a line ends at LF; the reply is prefix + line + LF, so a CR before the LF is
 * part of the line and "\r\n" comes back as "\r\n"; a line (CR included, LF
 * not) longer than max_line gets the too-long error and nothing more is
 * answered; an unterminated last line is answered at the end with LF.
 *
 * Input: max_line, prefix length, out_limit, number of chunks, the chunk
 * lengths, then the stream. The stream is fed once in one piece and once in
 * the chunks, with the caller draining `out` whenever the framer stops at
 * out_limit, as conn.c does; both outputs must equal the model's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "fuzz-framer: check failed at line %d: %s\n", __LINE__,    \
				#x);                                                               \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static const char prefix_text[] = "Received: \r\n";

struct model_result {
	struct buf out;
	uint64_t lines;
	bool too_long;
};

static void append(struct buf *b, const void *p, size_t n)
{
	CHECK(buf_append(b, p, n) == 0);
}

/* The rules, written out plainly: one pass over the whole stream. */
static void model(const char *s, size_t n, const struct framer_params *p, struct model_result *m)
{
	size_t pos = 0;
	char msg[96];

	*m = (struct model_result){0};
	while (pos < n) {
		const char *lf = memchr(s + pos, '\n', n - pos);
		size_t len = lf ? (size_t) (lf - (s + pos)) : n - pos;
		if (len > p->max_line) {
			int k = snprintf(msg, sizeof(msg), "ERROR line too long (max %zu bytes)\n",
					 p->max_line);
			append(&m->out, msg, (size_t) k);
			m->too_long = true;
			return;
		}
		append(&m->out, p->prefix, p->prefix_len);
		append(&m->out, s + pos, len);
		append(&m->out, "\n", 1);
		m->lines++;
		pos += len + (lf ? 1 : 0);
	}
}

/* Moves everything in out to total, as a worker flushes its reply batch. */
static void drain(struct buf *out, struct buf *total)
{
	append(total, buf_head(out), buf_size(out));
	buf_consume(out, buf_size(out));
}

/*
 * Feeds one chunk the way conn.c does: when the framer stops early (out
 * reached out_limit), the reply is flushed and the rest is fed again.
 * Returns true once the framer reported a too-long line.
 */
static bool feed_chunk(struct framer *f, const struct framer_params *p, const char *d, size_t n,
		       struct buf *out, size_t out_limit, struct buf *total)
{
	/* Largest single reply the framer may add on top of out_limit - 1 bytes. */
	size_t max_reply = p->prefix_len + p->max_line + 1;
	if (max_reply < 96)
		max_reply = 96;

	for (;;) {
		size_t consumed = 12345, before = buf_size(out);
		int r = framer_feed(f, p, d, n, out, out_limit, &consumed);
		CHECK(r == FRAMER_OK || r == FRAMER_TOO_LONG);
		CHECK(consumed <= n);
		CHECK(framer_pending(f) <= p->max_line);
		if (r == FRAMER_TOO_LONG) {
			CHECK(f->failed);
			CHECK(framer_pending(f) == 0);
			drain(out, total);
			return true;
		}
		/* The amplification bound out_limit exists for. */
		CHECK(out_limit == SIZE_MAX || buf_size(out) <= before ||
		      buf_size(out) < out_limit + max_reply);
		if (consumed == n)
			return false;
		/* Stopped early: only because out is full, and only at a line boundary. */
		CHECK(buf_size(out) >= out_limit);
		CHECK(consumed == 0 || d[consumed - 1] == '\n');
		/* With out flushed, at least one line goes through: no livelock. */
		CHECK(before > 0 || consumed > 0);
		drain(out, total);
		d += consumed;
		n -= consumed;
	}
}

static void check_against(const struct model_result *m, const struct buf *total,
			  const struct framer *f, bool too_long)
{
	CHECK(too_long == m->too_long);
	CHECK(f->lines == m->lines);
	CHECK(buf_size(total) == buf_size(&m->out));
	CHECK(buf_size(total) == 0 ||
	      memcmp(buf_head(total), buf_head(&m->out), buf_size(total)) == 0);
}

static void finish(struct framer *f, const struct framer_params *p, struct buf *out,
		   struct buf *total, bool too_long)
{
	CHECK(framer_finish(f, p, out) == 0);
	CHECK(framer_pending(f) == 0);
	drain(out, total);
	if (too_long) {
		/* A failed framer takes nothing more and answers nothing more. */
		size_t consumed = 1;
		CHECK(framer_feed(f, p, "x\n", 2, out, SIZE_MAX, &consumed) == FRAMER_TOO_LONG);
		CHECK(consumed == 0 && buf_empty(out));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4 || size > 65536)
		return -1;

	struct framer_params p = {
	    .prefix = prefix_text,
	    .prefix_len = data[1] % sizeof(prefix_text), /* 0..12 bytes, may hold CR LF */
	    .max_line = data[0] < 250 ? data[0] : (size_t) (data[0] - 249) * 1000,
	};
	size_t out_limit = data[2] == 0 ? SIZE_MAX : data[2];
	size_t nchunks = data[3] % 16;
	const uint8_t *lens = data + 4;
	if (size < 4 + nchunks)
		return -1;
	/* An exact-size heap copy of the stream, so ASan sees any over-read. */
	size_t n = size - 4 - nchunks;
	char *s = malloc(n ? n : 1);
	CHECK(s);
	if (n)
		memcpy(s, data + 4 + nchunks, n);

	struct model_result m;
	model(s, n, &p, &m);

	/* In one piece, with no output limit. */
	struct framer f = {0};
	struct buf out = {0}, total = {0};
	bool too_long = feed_chunk(&f, &p, s, n, &out, SIZE_MAX, &total);
	finish(&f, &p, &out, &total, too_long);
	check_against(&m, &total, &f, too_long);
	framer_done(&f);
	buf_free(&total);

	/* In fuzzer-chosen chunks (empty ones included), with out_limit. */
	f = (struct framer){0};
	too_long = false;
	size_t pos = 0;
	for (size_t i = 0; i <= nchunks && !too_long; i++) {
		size_t len = i < nchunks ? lens[i] : n - pos;
		if (len > n - pos)
			len = n - pos;
		too_long = feed_chunk(&f, &p, s + pos, len, &out, out_limit, &total);
		pos += len;
	}
	finish(&f, &p, &out, &total, too_long);
	check_against(&m, &total, &f, too_long);
	framer_done(&f);

	buf_free(&out);
	buf_free(&total);
	buf_free(&m.out);
	free(s);
	return 0;
}
