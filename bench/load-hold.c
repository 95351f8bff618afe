// SPDX-License-Identifier: MIT
/*
 * Connect-and-hold: opens `hold` connections with at most WINDOW connects
 * outstanding, has each one echo an 8-byte token naming it (so every
 * connection is shown to be served, not merely accepted by the kernel), then
 * keeps them all open and idle for hold_time seconds while the server's RSS is
 * sampled, and closes them with a reset so no TIME_WAIT is left behind. More
 * connections than one source address has ephemeral ports are spread over
 * source addresses 127.0.0.2, 127.0.0.3, ... (the whole of 127/8 is local).
 */
#include "load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define WINDOW	    256
#define TOKEN_LEN   8
#define PER_ADDRESS 8192
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum hstate { H_CONNECTING, H_WAITING, H_SERVED, H_FAILED };

struct hconn {
	int fd;
	enum hstate state;
	unsigned got;
	unsigned char token[TOKEN_LEN];
};

struct hold {
	const struct load_opts *o;
	struct hconn *conns;
	int epfd;
	int started, finished, outstanding, spread;
	uint64_t errors;
	struct load_result *res;
};

static int bind_source(const struct hold *h, int fd, int i)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	int one = 1;

	if (h->spread <= 0)
		return 0;
	/* The kernel then picks the port at connect(), per 4-tuple. */
	(void) setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t) (i % h->spread));
	return bind(fd, (struct sockaddr *) &src, sizeof(src)) < 0 ? -errno : 0;
}

static void fail(struct hold *h, struct hconn *c, const char *what, int err)
{
	if (h->errors++ < 5)
		fprintf(stderr, "echo-load: hold connection %d: %s: %s\n", (int) (c - h->conns),
			what, err ? strerror(err) : "closed by the server");
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = H_FAILED;
	h->outstanding--;
	h->finished++;
}

static void start_one(struct hold *h, int i)
{
	struct hconn *c = &h->conns[i];
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	int r;

	h->started++;
	h->outstanding++;
	c->state = H_CONNECTING;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail(h, c, "socket", errno);
		return;
	}
	r = bind_source(h, c->fd, i);
	if (r < 0) {
		fail(h, c, "bind", -r);
		return;
	}
	if (connect(c->fd, (const struct sockaddr *) &h->o->addr, sizeof(h->o->addr)) < 0 &&
	    errno != EINPROGRESS) {
		fail(h, c, "connect", errno);
		return;
	}
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		fail(h, c, "epoll_ctl", errno);
}

static void on_connected(struct hold *h, struct hconn *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	int err = 0;
	socklen_t len = sizeof(err);
	uint64_t id = (uint64_t) (c - h->conns) * 0x9e3779b97f4a7c15ull;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		fail(h, c, "connect", err);
		return;
	}
	memcpy(c->token, &id, TOKEN_LEN);
	/* 8 bytes into an empty socket buffer: sent whole or not at all. */
	if (send(c->fd, c->token, TOKEN_LEN, MSG_NOSIGNAL | MSG_DONTWAIT) != TOKEN_LEN) {
		fail(h, c, "send", errno);
		return;
	}
	c->state = H_WAITING;
	if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		fail(h, c, "epoll_ctl", errno);
}

static void on_reply(struct hold *h, struct hconn *c)
{
	unsigned char buf[TOKEN_LEN];
	ssize_t n = recv(c->fd, buf, TOKEN_LEN - c->got, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		fail(h, c, "recv", n < 0 ? errno : 0);
		return;
	}
	if (memcmp(buf, c->token + c->got, (size_t) n) != 0) {
		fprintf(stderr, "echo-load: MISMATCH hold connection %d: wrong echo\n",
			(int) (c - h->conns));
		h->res->mismatches++;
		fail(h, c, "verify", EPROTO);
		return;
	}
	c->got += (unsigned) n;
	if (c->got < TOKEN_LEN)
		return;
	/* Served: stays open but leaves epoll, so holding costs the client nothing. */
	(void) epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->state = H_SERVED;
	h->res->served++;
	h->outstanding--;
	h->finished++;
}

static void open_all(struct hold *h)
{
	struct epoll_event ev[WINDOW];
	uint64_t deadline = now_ns() + (uint64_t) (h->o->connect_timeout * 1e9);

	while (h->finished < h->o->hold && !atomic_load(&load_stop)) {
		while (h->started < h->o->hold && h->outstanding < WINDOW)
			start_one(h, h->started);
		if (now_ns() >= deadline) {
			fprintf(stderr, "echo-load: %d connections not served within %.0f s\n",
				h->o->hold - h->finished, h->o->connect_timeout);
			h->errors += (uint64_t) (h->o->hold - h->finished);
			return;
		}
		int n = epoll_wait(h->epfd, ev, WINDOW, 100);
		for (int i = 0; i < n; i++) {
			struct hconn *c = ev[i].data.ptr;
			if (c->state == H_CONNECTING)
				on_connected(h, c);
			else if (c->state == H_WAITING)
				on_reply(h, c);
		}
	}
}

static void close_all(struct hold *h)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	for (int i = 0; i < h->started; i++) {
		if (h->conns[i].fd < 0)
			continue;
		(void) setsockopt(h->conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(h->conns[i].fd);
	}
}

int load_run_hold(const struct load_opts *o, struct load_result *res)
{
	struct hold h = {.o = o, .res = res, .spread = o->spread};
	uint64_t t0;

	if (h.spread == 0 && o->hold > PER_ADDRESS)
		h.spread = (o->hold + PER_ADDRESS - 1) / PER_ADDRESS;
	h.conns = calloc((size_t) o->hold, sizeof(*h.conns));
	h.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!h.conns || h.epfd < 0) {
		free(h.conns);
		return -ENOMEM;
	}
	proc_sample(o->pid, &res->before);
	t0 = now_ns();
	open_all(&h);
	res->connect_s = (double) (now_ns() - t0) / 1e9;
	sleep_until_ns(now_ns() + (uint64_t) (o->hold_time * 1e9));
	proc_sample(o->pid, &res->held);
	res->after = res->held;
	close_all(&h);
	close(h.epfd);
	free(h.conns);
	res->errors += h.errors;
	return 0;
}
