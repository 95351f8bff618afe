/* SPDX-License-Identifier: MIT */
/*
 * A growable byte buffer with a read offset: bytes are appended at the end and
 * consumed from the front without moving memory on every consume.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t off; /* first unconsumed byte */
	size_t len; /* end of valid bytes */
	size_t cap;
};

static inline size_t buf_size(const struct buf *b)
{
	return b->len - b->off;
}

/* Never NULL: an empty buffer may have no memory, and NULL + 0 is undefined. */
static inline const char *buf_head(const struct buf *b)
{
	return b->data ? b->data + b->off : "";
}

static inline bool buf_empty(const struct buf *b)
{
	return b->len == b->off;
}

/* Makes room for n more bytes and returns where they go; NULL on out of memory. */
char *buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
