/* SPDX-License-Identifier: MIT */
/*
 * The line framer: turns a byte stream into "prefix + line + terminator"
 * replies. It is pure (no I/O), so unit tests and the fuzzer drive it directly.
 *
 * A line ends at LF. The terminator is echoed as the client sent it: "\r\n"
 * lines are answered with "\r\n", "\n" lines with "\n"; the CR is therefore
 * part of the line's bytes for max_line (which does not count the LF).
 * A partial line is kept in `partial` between reads (allocated only while one
 * exists). A line longer than max_line produces the error reply and makes the
 * framer refuse further input.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct framer_params {
	const char *prefix;
	size_t prefix_len;
	size_t max_line;
};

struct framer {
	struct buf partial;
	bool failed;	/* a line was too long; the connection must close */
	uint64_t lines; /* lines answered, for the counters */
};

enum framer_result {
	FRAMER_OK = 0,
	FRAMER_TOO_LONG = 1, /* error reply appended; close after flushing */
};

/*
 * Feeds up to n bytes. Complete lines are answered into out. Consumes at most
 * the bytes it can answer without out growing past out_limit (a long run of
 * empty lines could otherwise amplify input by the prefix length); returns the
 * number consumed in *consumed. Returns FRAMER_OK, FRAMER_TOO_LONG, or -ENOMEM.
 */
int framer_feed(struct framer *f, const struct framer_params *p, const char *data, size_t n,
		struct buf *out, size_t out_limit, size_t *consumed);
/* At end of input: answers a final unterminated line, if any, with "\n". */
int framer_finish(struct framer *f, const struct framer_params *p, struct buf *out);
/* Bytes held in an unfinished line. */
size_t framer_pending(const struct framer *f);
void framer_done(struct framer *f);
/* Writes the too-long error for max_line into out. */
int framer_error_too_long(const struct framer_params *p, struct buf *out);
