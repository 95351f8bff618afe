/* SPDX-License-Identifier: MIT */
/*
 * A client connection and its I/O. A connection holds no buffer while idle:
 * the pending reply (`out`) and the unprocessed input (`in`, line mode only)
 * are allocated while they hold bytes and freed when they drain. While a reply
 * is pending the connection does not read, so a client that never reads meets
 * TCP backpressure instead of growing our memory.
 *
 * Per connection, echod holds at most: a pending reply of one read (64 KiB) in
 * echo mode; in line mode, one batch of replies (64 KiB) plus one line
 * (max_line + prefix), one read of unprocessed input (64 KiB) and one partial
 * line (max_line).
 */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "framer.h"
#include "worker.h"

enum conn_state {
	CONN_OPEN,	/* reading and answering */
	CONN_FLUSHING,	/* peer finished or we gave up reading: send what is owed, then close */
	CONN_LINGERING, /* we sent FIN; discard input until the client's FIN (avoids RST) */
	CONN_HANDOVER,	/* stopping, fd store: read no more, send what is owed, then park */
	CONN_PARKED,	/* nothing owed, out of epoll, in worker->parked: ready for the fd store */
};

struct conn {
	enum epoll_tag tag; /* first, to dispatch epoll events */
	int fd;
	uint32_t events; /* epoll mask currently registered */
	enum conn_state state;
	enum echo_mode mode;
	bool peer_eof;	     /* the client shut down its sending side */
	bool final_answered; /* line mode: the unterminated last line was answered */
	uint64_t id;
	uint64_t bytes_in, bytes_out;
	int64_t created_ms, last_active_ms;
	struct conn *prev, *next; /* in worker->active or worker->lingering */
	struct buf out;
	struct buf in;
	struct framer framer;
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} peer;
};

/* Takes ownership of fd (a connected, non-blocking stream socket). */
int conn_add(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen);
void conn_on_event(struct worker *w, struct conn *c, uint32_t events);
void conn_close(struct worker *w, struct conn *c);
/*
 * Stop reading; send what is owed, then half-close and linger. While the
 * worker hands over (w->handover), an open connection is parked instead.
 */
void conn_begin_drain(struct worker *w, struct conn *c);
/*
 * Takes over fd, a connection a previous echod left in the fd store, with the
 * bytes of its unfinished line (line mode; n may be 0). Returns -errno only
 * when no connection could be made of it (fd closed); 0 otherwise, also when
 * the client turned out to be gone.
 */
int conn_adopt(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
	       const char *partial, size_t n);
/* A parked connection the fd store did not take: back to the normal drain. */
void conn_unpark(struct worker *w, struct conn *c);

void conn_list_append(struct conn_list *l, struct conn *c);
void conn_list_remove(struct conn_list *l, struct conn *c);
