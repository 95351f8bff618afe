// SPDX-License-Identifier: MIT
/*
 * Connection I/O. Level-triggered epoll with one read per readiness event,
 * so a busy client cannot starve the others on the same worker.
 *
 * States: OPEN reads and answers. FLUSHING sends what is owed and reads no
 * more (the peer shut down its side, a line was too long, or echod is
 * draining). When nothing is owed, a FLUSHING connection whose peer already
 * sent FIN is closed; otherwise it half-closes (FIN) and LINGERs, reading and
 * discarding until the client's FIN, so that close() never turns unread
 * input into a RST that could destroy the reply in flight.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

/* Replies built per batch in line mode before they are written. */
#define REPLY_BATCH (64 * 1024)
/* The line-mode reply scratch is shrunk back after a very long line. */
#define WOUT_KEEP (1024 * 1024)

enum {
	KEEP = 0,
	CLOSE = 1,
};

void conn_list_append(struct conn_list *l, struct conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	l->count++;
}

void conn_list_remove(struct conn_list *l, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	l->count--;
}

static struct conn_list *list_of(struct worker *w, struct conn *c)
{
	if (c->state == CONN_PARKED)
		return &w->parked;
	return c->state == CONN_LINGERING ? &w->lingering : &w->active;
}

/* Marks progress: moves the connection to the young end of the idle order. */
static void touch(struct worker *w, struct conn *c)
{
	c->last_active_ms = w->now_ms;
	if (c->state != CONN_LINGERING && w->active.tail != c) {
		conn_list_remove(&w->active, c);
		conn_list_append(&w->active, c);
	}
}

static void set_events(struct worker *w, struct conn *c, uint32_t events)
{
	if (c->events == events)
		return;
	struct epoll_event ev = {.events = events, .data.ptr = c};
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		/* Only fails on a bug (bad fd) or ENOMEM; the old mask stays in force. */
		log_warning("connection %llu: epoll_ctl: %s", (unsigned long long) c->id,
			    strerror(errno));
		return;
	}
	c->events = events;
}

static struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer,
			     socklen_t peerlen, int *ret)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		safe_close(fd);
		*ret = -ENOMEM;
		return NULL;
	}
	c->tag = TAG_CONN;
	c->fd = fd;
	c->mode = w->params.mode;
	c->id = server_next_connection_id(w->srv);
	c->state = CONN_OPEN;
	if (peer && peerlen > 0)
		memcpy(&c->peer, peer, MIN((size_t) peerlen, sizeof(c->peer)));
	c->created_ms = c->last_active_ms = w->now_ms;

	/* Echo replies are written as soon as they exist: Nagle would hold the tail of
	 * a multi-segment reply until the client's delayed ACK (~40 ms). Not fatal. */
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		*ret = -errno;
		safe_close(fd);
		free(c);
		return NULL;
	}
	c->events = EPOLLIN;
	conn_list_append(&w->active, c);
	stat_add(&w->stats.connections_total, 1);
	stat_add(&w->stats.connections_active, 1);
	*ret = 0;
	return c;
}

int conn_add(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	int r;
	(void) conn_new(w, fd, peer, peerlen, &r);
	return r;
}

void conn_close(struct worker *w, struct conn *c)
{
	conn_list_remove(list_of(w, c), c);
	safe_close(c->fd); /* also removes it from epoll */
	buf_free(&c->out);
	buf_free(&c->in);
	framer_done(&c->framer);
	stat_sub(&w->stats.connections_active, 1);
	server_release_connection(w->srv);
	free(c);
}

static void count_out(struct worker *w, struct conn *c, size_t n)
{
	if (n == 0)
		return;
	c->bytes_out += n;
	stat_add(&w->stats.bytes_sent, n);
	touch(w, c);
}

static ssize_t send_some(int fd, const char *p, size_t n)
{
	ssize_t s;
	do
		s = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (s < 0 && errno == EINTR);
	if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return s < 0 ? -errno : s;
}

/* Sends what it can at once and keeps the rest as the pending reply. */
static int send_or_queue(struct worker *w, struct conn *c, const char *p, size_t n)
{
	ssize_t s = 0;

	if (n == 0)
		return KEEP;
	if (buf_empty(&c->out)) {
		s = send_some(c->fd, p, n);
		if (s < 0)
			return (int) s;
		count_out(w, c, (size_t) s);
	}
	if ((size_t) s < n && buf_append(&c->out, p + s, n - (size_t) s) < 0)
		return -ENOMEM;
	return KEEP;
}

static int flush(struct worker *w, struct conn *c)
{
	while (!buf_empty(&c->out)) {
		ssize_t s = send_some(c->fd, buf_head(&c->out), buf_size(&c->out));
		if (s < 0)
			return (int) s;
		if (s == 0)
			return KEEP;
		count_out(w, c, (size_t) s);
		buf_consume(&c->out, (size_t) s);
	}
	buf_free(&c->out); /* idle connections hold no buffer */
	return KEEP;
}

static struct framer_params framer_params_of(const struct worker *w)
{
	return (struct framer_params){
	    .prefix = w->params.prefix,
	    .prefix_len = w->params.prefix_len,
	    .max_line = w->params.max_line,
	};
}

static void reset_wout(struct worker *w)
{
	if (w->wout.cap > WOUT_KEEP)
		buf_free(&w->wout);
	else
		w->wout.off = w->wout.len = 0;
}

/* Answers the complete lines in data; *used says how much of it was taken. */
static int answer_lines(struct worker *w, struct conn *c, const char *data, size_t n, size_t *used)
{
	struct framer_params fp = framer_params_of(w);
	uint64_t before = c->framer.lines;
	int r = framer_feed(&c->framer, &fp, data, n, &w->wout, REPLY_BATCH, used);

	stat_add(&w->stats.lines, c->framer.lines - before);
	if (r == FRAMER_TOO_LONG) {
		stat_add(&w->stats.lines_too_long, 1);
		log_debug("connection %llu: line longer than %zu bytes, closing",
			  (unsigned long long) c->id, fp.max_line);
		c->state = CONN_FLUSHING;
		buf_free(&c->in);
		*used = n;
	}
	if (r >= 0)
		r = send_or_queue(w, c, buf_head(&w->wout), buf_size(&w->wout));
	reset_wout(w);
	return r;
}

/* Works through input held back while a reply was pending. */
static int answer_held_input(struct worker *w, struct conn *c)
{
	while (buf_empty(&c->out) && !buf_empty(&c->in)) {
		size_t used;
		int r = answer_lines(w, c, buf_head(&c->in), buf_size(&c->in), &used);
		if (r < 0)
			return r;
		buf_consume(&c->in, used);
	}
	if (buf_empty(&c->in))
		buf_free(&c->in);
	return KEEP;
}

/* The final unterminated line is answered when no more input will be read. */
static int answer_final_line(struct worker *w, struct conn *c)
{
	struct framer_params fp = framer_params_of(w);
	uint64_t before = c->framer.lines;
	int r = framer_finish(&c->framer, &fp, &w->wout);

	stat_add(&w->stats.lines, c->framer.lines - before);
	if (r >= 0)
		r = send_or_queue(w, c, buf_head(&w->wout), buf_size(&w->wout));
	reset_wout(w);
	return r;
}

static int on_readable(struct worker *w, struct conn *c)
{
	ssize_t n;

	do
		n = recv(c->fd, w->rbuf, w->rbuf_size, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? KEEP : -errno;
	if (n == 0) {
		c->peer_eof = true;
		c->state = CONN_FLUSHING;
		return KEEP;
	}
	c->bytes_in += (size_t) n;
	stat_add(&w->stats.bytes_received, (uint64_t) n);
	touch(w, c);
	if (c->mode == MODE_ECHO)
		return send_or_queue(w, c, w->rbuf, (size_t) n);

	size_t used;
	int r = answer_lines(w, c, w->rbuf, (size_t) n, &used);
	if (r >= 0 && used < (size_t) n &&
	    buf_append(&c->in, w->rbuf + used, (size_t) n - used) < 0)
		return -ENOMEM;
	return r;
}

/* Reads and drops input while lingering; CLOSE on the client's FIN. */
static int discard_input(struct worker *w, struct conn *c)
{
	for (int i = 0; i < 4; i++) {
		ssize_t n = recv(c->fd, w->rbuf, w->rbuf_size, MSG_DONTWAIT);
		if (n == 0)
			return CLOSE;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? KEEP : -errno;
	}
	return KEEP;
}

static int begin_linger(struct worker *w, struct conn *c)
{
	if (shutdown(c->fd, SHUT_WR) < 0)
		return -errno;
	conn_list_remove(&w->active, c);
	c->state = CONN_LINGERING;
	c->last_active_ms = w->now_ms;
	conn_list_append(&w->lingering, c);
	set_events(w, c, EPOLLIN);
	return KEEP;
}

/* Nothing is owed: out of epoll until the worker stores it (handover.c). */
static int park(struct worker *w, struct conn *c)
{
	if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
		return -errno;
	c->events = 0;
	conn_list_remove(&w->active, c);
	c->state = CONN_PARKED;
	conn_list_append(&w->parked, c);
	return KEEP;
}

/* Decides what the connection waits for next, after any event. */
static int advance(struct worker *w, struct conn *c)
{
	int r;

	if (c->state == CONN_LINGERING || c->state == CONN_PARKED)
		return KEEP;
	r = answer_held_input(w, c);
	if (r < 0)
		return r;
	if (c->state == CONN_FLUSHING && c->mode == MODE_LINE && buf_empty(&c->in) &&
	    buf_empty(&c->out) && !c->final_answered) {
		c->final_answered = true;
		r = answer_final_line(w, c);
		if (r < 0)
			return r;
	}
	if (!buf_empty(&c->out)) {
		set_events(w, c, EPOLLOUT);
		return KEEP;
	}
	if (c->state == CONN_OPEN) {
		set_events(w, c, EPOLLIN);
		return KEEP;
	}
	if (c->state == CONN_HANDOVER)
		return park(w, c);
	/* FLUSHING with nothing left to send. */
	return c->peer_eof ? CLOSE : begin_linger(w, c);
}

void conn_on_event(struct worker *w, struct conn *c, uint32_t events)
{
	int r = KEEP;

	if (events & EPOLLERR) {
		r = CLOSE; /* reset by the peer: nothing more can be delivered */
	} else if (c->state == CONN_LINGERING) {
		r = discard_input(w, c);
	} else {
		if (events & EPOLLOUT)
			r = flush(w, c);
		if (r == KEEP && (events & (EPOLLIN | EPOLLHUP)) && (c->events & EPOLLIN))
			r = on_readable(w, c);
		if (r == KEEP && (events & EPOLLHUP) && !(c->events & EPOLLIN))
			r = flush(w, c); /* hung up while we wait to write: find out now */
	}
	if (r == KEEP)
		r = advance(w, c);
	if (r != KEEP) {
		if (r < 0 && r != -ECONNRESET && r != -EPIPE)
			log_debug("connection %llu: %s", (unsigned long long) c->id, strerror(-r));
		conn_close(w, c);
	}
}

void conn_begin_drain(struct worker *w, struct conn *c)
{
	if (c->state == CONN_OPEN)
		c->state = w->handover ? CONN_HANDOVER : CONN_FLUSHING;
	int r = advance(w, c);
	if (r != KEEP)
		conn_close(w, c);
}

int conn_adopt(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
	       const char *partial, size_t n)
{
	int r;
	struct conn *c = conn_new(w, fd, peer, peerlen, &r);

	if (!c)
		return r;
	stat_add(&w->stats.connections_adopted, 1);
	/* The unfinished line goes back into the framer, as if just read. */
	if (n > 0 && c->mode == MODE_LINE) {
		size_t used;
		r = answer_lines(w, c, partial, n, &used);
		if (r >= 0 && used < n && buf_append(&c->in, partial + used, n - used) < 0)
			r = -ENOMEM;
	} else if (n > 0) {
		r = send_or_queue(w, c, partial, n); /* mode changed to echo: echo them */
	}
	if (r >= 0)
		r = advance(w, c);
	if (r != KEEP)
		conn_close(w, c); /* adopted, then gone: the client left meanwhile */
	return 0;
}

void conn_unpark(struct worker *w, struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

	conn_list_remove(&w->parked, c);
	c->state = CONN_FLUSHING;
	conn_list_append(&w->active, c);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		log_warning("connection %llu: epoll_ctl: %s", (unsigned long long) c->id,
			    strerror(errno));
		conn_close(w, c);
		return;
	}
	c->events = EPOLLIN;
	if (advance(w, c) != KEEP)
		conn_close(w, c);
}
