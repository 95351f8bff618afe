// SPDX-License-Identifier: MIT
/*
 * ref-splice: ref-epoll with the copies taken out, to find out whether
 * splice(2) through a pipe beats recv/send for echo. Same loop as ref-epoll
 * (N threads, level-triggered epoll each, one listener shared with
 * EPOLLEXCLUSIVE or one SO_REUSEPORT listener per thread with --reuseport),
 * but every connection owns a pipe: per readiness event one splice of up to
 * 64 KiB from the socket into the pipe and one splice from the pipe back to
 * the socket, so the payload moves as page references and never reaches user
 * space. The backpressure rule is ref-epoll's: while the pipe holds bytes
 * the socket would not take, the connection waits for EPOLLOUT and reads
 * nothing. Every connection is spliced, small messages too, so the table
 * shows what the extra pipe costs where splice cannot win.
 */
#include <errno.h>
#include <fcntl.h>
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
#define PIPE_SIZE    (256 * 1024) /* a 64 KiB read can take more than 16 pipe slots */
#define EVENT_BATCH  256
#define ACCEPT_BATCH 64
#define SPLICE_FLAGS (SPLICE_F_MOVE | SPLICE_F_NONBLOCK)

struct sconn {
	int fd;
	int pipe[2];	/* [0] read end, [1] write end */
	size_t pending; /* bytes in the pipe not yet sent */
};

struct sthread {
	pthread_t thread;
	int listen_fd;
	int epfd;
};

static void drop(struct sconn *c)
{
	close(c->fd); /* also leaves the epoll set */
	close(c->pipe[0]);
	close(c->pipe[1]);
	free(c);
}

static void watch(struct sthread *t, struct sconn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	(void) epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void accept_some(struct sthread *t)
{
	int one = 1;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or out of fds: the listener wakes us again */
		struct sconn *c = calloc(1, sizeof(*c));
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (!c || pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		(void) fcntl(c->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
		(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			drop(c);
	}
}

/* One splice of what the pipe holds to the socket (one send, as ref-epoll).
 * 1: some is left, 0: all sent, -1: drop. */
static int flush_pipe(struct sconn *c)
{
	ssize_t s = splice(c->pipe[0], NULL, c->fd, NULL, c->pending, SPLICE_FLAGS);

	if (s < 0)
		return errno == EAGAIN || errno == EINTR ? 1 : -1;
	c->pending -= (size_t) s;
	return c->pending > 0;
}

static int on_writable(struct sthread *t, struct sconn *c)
{
	int r = flush_pipe(c);

	if (r == 0)
		watch(t, c, EPOLLIN);
	return r < 0 ? -1 : 0;
}

static int on_readable(struct sthread *t, struct sconn *c)
{
	ssize_t n = splice(c->fd, NULL, c->pipe[1], NULL, READ_SIZE, SPLICE_FLAGS);
	int r;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	c->pending = (size_t) n;
	r = flush_pipe(c);
	if (r > 0)
		watch(t, c, EPOLLOUT);
	return r < 0 ? -1 : 0;
}

static void *thread_main(void *arg)
{
	struct sthread *t = arg;
	struct epoll_event ev[EVENT_BATCH];

	for (;;) {
		int n = epoll_wait(t->epfd, ev, EVENT_BATCH, -1);
		for (int i = 0; i < n; i++) {
			struct sconn *c = ev[i].data.ptr;
			int r;
			if (!c) {
				accept_some(t);
				continue;
			}
			r = c->pending ? on_writable(t, c) : on_readable(t, c);
			if (r < 0)
				drop(c);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct ref_opts o;
	int shared = -1;

	ref_parse(argc, argv, "ref-splice", &o);
	ref_raise_fd_limit();
	if (!o.reuseport)
		shared = ref_listen(&o, false, true);
	for (int i = 0; i < o.threads; i++) {
		struct sthread *t = calloc(1, sizeof(*t));
		if (!t) {
			fprintf(stderr, "ref-splice: out of memory\n");
			return 1;
		}
		t->epfd = ref_thread_epoll(&o, shared, &t->listen_fd);
		if (t->epfd < 0 || pthread_create(&t->thread, NULL, thread_main, t) != 0) {
			fprintf(stderr, "ref-splice: cannot start thread %d\n", i);
			return 1;
		}
	}
	pause(); /* the threads serve until SIGTERM/SIGINT ends the process */
	return 0;
}
