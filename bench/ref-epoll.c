// SPDX-License-Identifier: MIT
/*
 * ref-epoll: the bar echod is held to. A bare echo loop with no features: N
 * threads, each with its own level-triggered epoll; one listening socket
 * shared with EPOLLEXCLUSIVE (or, with --reuseport, one SO_REUSEPORT socket
 * per thread); per event one recv of up to 64 KiB and a send of what came in.
 * The only bookkeeping is what a correct echo server cannot do without: a
 * reply the socket would not take whole is kept, and the connection stops
 * reading until it is sent. No counters, timeouts, logging or shutdown.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ref-common.h"

#define READ_SIZE    (64 * 1024)
#define EVENT_BATCH  256
#define ACCEPT_BATCH 64

struct rconn {
	int fd;
	char *pending;
	size_t off, len;
};

struct rthread {
	pthread_t thread;
	int listen_fd;
	int epfd;
	char buf[READ_SIZE];
};

static void drop(struct rthread *t, struct rconn *c)
{
	close(c->fd); /* also leaves the epoll set */
	free(c->pending);
	free(c);
}

static void watch(struct rthread *t, struct rconn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	(void) epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void accept_some(struct rthread *t)
{
	int one = 1;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or out of fds: the listener wakes us again */
		struct rconn *c = calloc(1, sizeof(*c));
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			drop(t, c);
	}
}

/* Sends p[0..n); keeps what the socket would not take. -1: drop the connection. */
static int send_or_keep(struct rthread *t, struct rconn *c, const char *p, size_t n)
{
	ssize_t s;

	do
		s = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (s < 0 && errno == EINTR);
	if (s < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return -1;
	if (s < 0)
		s = 0;
	if ((size_t) s == n)
		return 0;
	c->pending = malloc(n - (size_t) s);
	if (!c->pending)
		return -1;
	memcpy(c->pending, p + s, n - (size_t) s);
	c->off = 0;
	c->len = n - (size_t) s;
	watch(t, c, EPOLLOUT);
	return 0;
}

static int on_writable(struct rthread *t, struct rconn *c)
{
	ssize_t s = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (s < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	c->off += (size_t) s;
	if (c->off < c->len)
		return 0;
	free(c->pending);
	c->pending = NULL;
	watch(t, c, EPOLLIN);
	return 0;
}

static int on_readable(struct rthread *t, struct rconn *c)
{
	ssize_t n = recv(c->fd, t->buf, sizeof(t->buf), MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	return send_or_keep(t, c, t->buf, (size_t) n);
}

static void *thread_main(void *arg)
{
	struct rthread *t = arg;
	struct epoll_event ev[EVENT_BATCH];

	for (;;) {
		int n = epoll_wait(t->epfd, ev, EVENT_BATCH, -1);
		for (int i = 0; i < n; i++) {
			struct rconn *c = ev[i].data.ptr;
			int r;
			if (!c) {
				accept_some(t);
				continue;
			}
			r = c->pending ? on_writable(t, c) : on_readable(t, c);
			if (r < 0)
				drop(t, c);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct ref_opts o;
	int shared = -1;

	ref_parse(argc, argv, "ref-epoll", &o);
	ref_raise_fd_limit();
	if (!o.reuseport)
		shared = ref_listen(&o, false, true);
	for (int i = 0; i < o.threads; i++) {
		struct rthread *t = calloc(1, sizeof(*t));
		if (!t) {
			fprintf(stderr, "ref-epoll: out of memory\n");
			return 1;
		}
		t->epfd = ref_thread_epoll(&o, shared, &t->listen_fd);
		if (t->epfd < 0 || pthread_create(&t->thread, NULL, thread_main, t) != 0) {
			fprintf(stderr, "ref-epoll: cannot start thread %d\n", i);
			return 1;
		}
	}
	pause(); /* the threads serve until SIGTERM/SIGINT ends the process */
	return 0;
}
