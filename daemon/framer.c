// SPDX-License-Identifier: MIT
#include "framer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int emit(struct framer *f, const struct framer_params *p, struct buf *out, const char *a,
		size_t alen, const char *b, size_t blen)
{
	/* The terminator is either "\n" or "\r\n"; a trailing CR is already in the line bytes. */
	char *dst = buf_reserve(out, p->prefix_len + alen + blen + 1);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, p->prefix, p->prefix_len);
	dst += p->prefix_len;
	if (alen)
		memcpy(dst, a, alen);
	dst += alen;
	if (blen)
		memcpy(dst, b, blen);
	dst[blen] = '\n';
	out->len += p->prefix_len + alen + blen + 1;
	f->lines++;
	return 0;
}

int framer_error_too_long(const struct framer_params *p, struct buf *out)
{
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "ERROR line too long (max %zu bytes)\n", p->max_line);
	return buf_append(out, msg, (size_t) n);
}

static int too_long(struct framer *f, const struct framer_params *p, struct buf *out)
{
	int r = framer_error_too_long(p, out);
	if (r < 0)
		return r;
	f->failed = true;
	buf_free(&f->partial);
	return FRAMER_TOO_LONG;
}

int framer_feed(struct framer *f, const struct framer_params *p, const char *data, size_t n,
		struct buf *out, size_t out_limit, size_t *consumed)
{
	size_t pos = 0;
	int r;

	*consumed = 0;
	if (f->failed)
		return FRAMER_TOO_LONG;

	while (pos < n) {
		if (buf_size(out) >= out_limit)
			break;
		const char *start = data + pos;
		const char *lf = memchr(start, '\n', n - pos);
		size_t held = buf_size(&f->partial);

		if (!lf) {
			/* No end in sight: keep the bytes, unless the line is already too long. */
			size_t rest = n - pos;
			if (held + rest > p->max_line) {
				*consumed = n;
				return too_long(f, p, out);
			}
			r = buf_append(&f->partial, start, rest);
			if (r < 0)
				return r;
			pos = n;
			break;
		}
		size_t len = (size_t) (lf - start);
		if (held + len > p->max_line) {
			*consumed = pos + len + 1;
			return too_long(f, p, out);
		}
		r = emit(f, p, out, buf_head(&f->partial), held, start, len);
		if (r < 0)
			return r;
		if (held)
			buf_free(&f->partial); /* hold no memory between lines */
		pos += len + 1;
	}
	*consumed = pos;
	return FRAMER_OK;
}

int framer_finish(struct framer *f, const struct framer_params *p, struct buf *out)
{
	if (f->failed || buf_empty(&f->partial))
		return 0;
	int r = emit(f, p, out, buf_head(&f->partial), buf_size(&f->partial), NULL, 0);
	buf_free(&f->partial);
	return r;
}

size_t framer_pending(const struct framer *f)
{
	return buf_size(&f->partial);
}

void framer_done(struct framer *f)
{
	buf_free(&f->partial);
}
