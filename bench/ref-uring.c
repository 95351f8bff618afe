// SPDX-License-Identifier: MIT
/*
 * ref-uring: the io_uring counterpart of ref-epoll, to find out whether
 * io_uring beats the bare epoll loop on this machine. No features either:
 * N threads, each with its own ring; one listening socket shared by a
 * multishot accept on every ring (io_uring waits on it exclusively, as
 * EPOLLEXCLUSIVE does), or one SO_REUSEPORT socket per thread with
 * --reuseport. Every connection has one multishot recv that takes buffers
 * from the thread's provided-buffer ring; each filled buffer is queued on
 * its connection and sent in order, one send in flight per connection,
 * partial sends resumed; the buffer goes back to the ring once all of it
 * is sent. Backpressure: when a connection has more than QUEUE_HIGH bytes
 * queued its recv is cancelled and re-armed once the queue is empty (a
 * multishot recv cannot be paused); when the whole ring is used up the
 * kernel ends recvs with ENOBUFS and they are re-armed as buffers return.
 * One io_uring_enter per loop submits everything queued and waits.
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ref-common.h"

#define BUF_SIZE (64 * 1024) /* as ref-epoll's read size */
#ifndef NBUF
/* buffers per thread, a power of two; bench/README.md says why not 16 */
#define NBUF 256
#endif
#define BGID	   0
#define QUEUE_HIGH (256 * 1024)
#define SQ_ENTRIES 4096
#define CQ_ENTRIES 16384

enum op { OP_ACCEPT, OP_RECV, OP_SEND, OP_CANCEL };
#define OP_MASK 3u

struct uconn {
	int fd;
	bool recv_armed, sending, closing, throttled, starved;
	int head, tail; /* queue of buffer ids (linked through next[]), -1: empty */
	uint32_t off;	/* bytes of the head buffer already sent */
	size_t queued;	/* bytes received and not yet sent */
	struct uconn *next_starved;
};

struct uthread {
	pthread_t thread;
	int listen_fd;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	char *bufs;
	uint32_t len[NBUF]; /* bytes held by each buffer while queued */
	int next[NBUF];
	struct uconn *starved; /* recv ended with ENOBUFS: re-arm when buffers return */
};

static struct io_uring_sqe *sqe_get(struct uthread *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);

	while (!sqe) {
		(void) io_uring_submit(&t->ring);
		sqe = io_uring_get_sqe(&t->ring);
	}
	return sqe;
}

static void arm_accept(struct uthread *t)
{
	struct io_uring_sqe *sqe = sqe_get(t);

	io_uring_prep_multishot_accept(sqe, t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void arm_recv(struct uthread *t, struct uconn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recv_armed || c->closing || c->throttled || c->starved)
		return;
	sqe = sqe_get(t);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, (uintptr_t) c | OP_RECV);
	c->recv_armed = true;
}

static void cancel_recv(struct uthread *t, struct uconn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->recv_armed)
		return;
	sqe = sqe_get(t);
	io_uring_prep_cancel64(sqe, (uintptr_t) c | OP_RECV, 0);
	io_uring_sqe_set_data64(sqe, OP_CANCEL);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void send_head(struct uthread *t, struct uconn *c)
{
	struct io_uring_sqe *sqe = sqe_get(t);
	int bid = c->head;

	io_uring_prep_send(sqe, c->fd, t->bufs + (size_t) bid * BUF_SIZE + c->off,
			   t->len[bid] - c->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, (uintptr_t) c | OP_SEND);
	c->sending = true;
}

static void wake_starved(struct uthread *t);

/* Gives a buffer back to the kernel; a recv that found none is re-armed. */
static void buf_return(struct uthread *t, int bid)
{
	io_uring_buf_ring_add(t->br, t->bufs + (size_t) bid * BUF_SIZE, BUF_SIZE,
			      (unsigned short) bid, io_uring_buf_ring_mask(NBUF), 0);
	io_uring_buf_ring_advance(t->br, 1);
	if (t->starved)
		wake_starved(t);
}

/* Frees the connection once the kernel holds no request of it. */
static void maybe_free(struct uthread *t, struct uconn *c)
{
	if (!c->closing || c->recv_armed || c->sending || c->starved)
		return;
	for (int bid = c->head; bid >= 0; bid = t->next[bid])
		buf_return(t, bid);
	close(c->fd);
	free(c);
}

static void start_closing(struct uthread *t, struct uconn *c)
{
	if (!c->closing) {
		c->closing = true;
		cancel_recv(t, c);
	}
	maybe_free(t, c);
}

static void wake_starved(struct uthread *t)
{
	struct uconn *list = t->starved;

	t->starved = NULL;
	while (list) {
		struct uconn *c = list;
		list = c->next_starved;
		c->starved = false;
		if (c->closing)
			maybe_free(t, c);
		else
			arm_recv(t, c);
	}
}

static void on_accept(struct uthread *t, const struct io_uring_cqe *cqe)
{
	int one = 1;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_accept(t);
	if (cqe->res < 0)
		return; /* out of fds and the like: the next connection is tried again */
	struct uconn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cqe->res);
		return;
	}
	c->fd = cqe->res;
	c->head = c->tail = -1;
	(void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	arm_recv(t, c);
}

static void enqueue(struct uthread *t, struct uconn *c, int bid, uint32_t n)
{
	t->len[bid] = n;
	t->next[bid] = -1;
	if (c->tail >= 0)
		t->next[c->tail] = bid;
	else
		c->head = bid;
	c->tail = bid;
	c->queued += n;
	if (!c->sending)
		send_head(t, c);
	if (c->queued > QUEUE_HIGH && !c->throttled) {
		c->throttled = true;
		cancel_recv(t, c);
	}
}

static void on_recv(struct uthread *t, struct uconn *c, const struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		int bid = (int) (cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if (cqe->res > 0 && !c->closing)
			enqueue(t, c, bid, (uint32_t) cqe->res);
		else
			buf_return(t, bid);
	}
	if (more)
		return;
	c->recv_armed = false;
	if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED)) {
		start_closing(t, c); /* EOF or error: drop it, as ref-epoll does */
	} else if (cqe->res == -ENOBUFS && !c->closing) {
		c->starved = true;
		c->next_starved = t->starved;
		t->starved = c;
	} else if (c->closing) {
		maybe_free(t, c);
	} else {
		arm_recv(t, c); /* ended early (overflow) or cancelled: arm_recv knows which */
	}
}

static void on_send(struct uthread *t, struct uconn *c, const struct io_uring_cqe *cqe)
{
	c->sending = false;
	if (cqe->res < 0) {
		start_closing(t, c);
		return;
	}
	c->off += (uint32_t) cqe->res;
	c->queued -= (size_t) cqe->res;
	if (c->off == t->len[c->head]) {
		int bid = c->head;
		c->head = t->next[bid];
		if (c->head < 0)
			c->tail = -1;
		c->off = 0;
		buf_return(t, bid);
	}
	if (c->closing) {
		maybe_free(t, c);
		return;
	}
	if (c->head >= 0) {
		send_head(t, c); /* the next buffer, or the rest of a partial send */
		return;
	}
	if (c->throttled) {
		c->throttled = false;
		arm_recv(t, c);
	}
}

/* The fastest setup this kernel takes; DEFER_TASKRUN needs 6.1. */
static int ring_init(struct io_uring *ring)
{
	static const unsigned tries[] = {
	    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	    IORING_SETUP_COOP_TASKRUN,
	    0,
	};
	int r = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = {.flags = tries[i] | IORING_SETUP_CQSIZE,
					    .cq_entries = CQ_ENTRIES};
		r = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
		if (r == 0)
			return 0;
	}
	return r;
}

static int bufs_init(struct uthread *t)
{
	size_t ring_size = NBUF * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg = {.ring_entries = NBUF, .bgid = BGID};
	void *br =
	    mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	void *bufs = mmap(NULL, (size_t) NBUF * BUF_SIZE, PROT_READ | PROT_WRITE,
			  MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	int r;

	if (br == MAP_FAILED || bufs == MAP_FAILED)
		return -ENOMEM;
	t->br = br;
	t->bufs = bufs;
	reg.ring_addr = (uintptr_t) br;
	r = io_uring_register_buf_ring(&t->ring, &reg, 0);
	if (r < 0)
		return r;
	io_uring_buf_ring_init(t->br);
	for (int bid = 0; bid < NBUF; bid++)
		buf_return(t, bid);
	return 0;
}

static void *thread_main(void *arg)
{
	struct uthread *t = arg;
	/* here, not in main(): SINGLE_ISSUER binds the ring to the creating thread */
	int r = ring_init(&t->ring);

	if (r == 0)
		r = bufs_init(t);
	if (r < 0) {
		fprintf(stderr, "ref-uring: cannot set up a ring: %s\n", strerror(-r));
		exit(1);
	}
	arm_accept(t);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		r = io_uring_submit_and_wait(&t->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			fprintf(stderr, "ref-uring: io_uring_enter: %s\n", strerror(-r));
			exit(1);
		}
		io_uring_for_each_cqe(&t->ring, head, cqe)
		{
			struct uconn *c =
			    (struct uconn *) (uintptr_t) (cqe->user_data & ~(uint64_t) OP_MASK);
			switch (cqe->user_data & OP_MASK) {
			case OP_ACCEPT:
				on_accept(t, cqe);
				break;
			case OP_RECV:
				on_recv(t, c, cqe);
				break;
			case OP_SEND:
				on_send(t, c, cqe);
				break;
			default:
				break; /* a cancel that found nothing: the recv had ended */
			}
			n++;
		}
		io_uring_cq_advance(&t->ring, n);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct ref_opts o;
	int shared = -1;

	ref_parse(argc, argv, "ref-uring", &o);
	ref_raise_fd_limit();
	if (!o.reuseport)
		shared = ref_listen(&o, false, false);
	for (int i = 0; i < o.threads; i++) {
		struct uthread *t = calloc(1, sizeof(*t));
		if (!t) {
			fprintf(stderr, "ref-uring: out of memory\n");
			return 1;
		}
		t->listen_fd = o.reuseport ? ref_listen(&o, true, false) : shared;
		if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
			fprintf(stderr, "ref-uring: cannot start thread %d\n", i);
			return 1;
		}
	}
	pause(); /* the threads serve until SIGTERM/SIGINT ends the process */
	return 0;
}
