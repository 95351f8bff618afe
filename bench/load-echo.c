// SPDX-License-Identifier: MIT
/*
 * Closed-loop echo load. Each client thread owns a share of the connections
 * and its own epoll. A connection keeps `inflight` messages outstanding: when
 * the echo of one message is complete, the next is sent, until the
 * measurement window ends; then the thread waits for what is still owed (at
 * most drain_timeout) and closes. Every received byte is compared against the
 * pattern the connection sent. Latency is measured per message, from the
 * moment it was queued to the moment its last byte came back.
 */
#include "load.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define RECV_BUF     (256 * 1024)
#define EVENT_BATCH  128
#define WAIT_MS	     50
#define CONNECT_SECS 10

struct lconn {
	int fd;
	uint32_t seed;
	bool want_out;
	uint64_t tx_off, tx_target, rx_off;
	uint64_t sent, done;
	uint64_t *stamp; /* queue time of message k at stamp[k % inflight] */
};

struct lthread {
	pthread_t thread;
	const struct load_opts *o;
	pthread_barrier_t *barrier;
	const uint64_t *times; /* start, window begin, window end, drain deadline */
	struct lconn *conns;
	int first, nconns;
	int epfd;
	unsigned char *rbuf;
	struct hist hist;
	uint64_t requests, bytes, errors, mismatches;
};

enum { T_START, T_BEGIN, T_END, T_DEADLINE, T_COUNT };

static int connect_one(const struct load_opts *o)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = CONNECT_SECS};
	int one = 1;

	if (fd < 0)
		return -errno;
	/* connect() honours the send timeout: no connect can hang the run. */
	(void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (o->nodelay)
		(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int r;
	do
		r = connect(fd, (const struct sockaddr *) &o->addr, sizeof(o->addr));
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static void conn_fail(struct lthread *t, struct lconn *c, const char *what, int err)
{
	fprintf(stderr, "echo-load: connection %d: %s: %s\n", (int) (c - t->conns) + t->first, what,
		err ? strerror(err) : "unexpected end of stream");
	t->errors++;
	(void) epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
}

static void set_out(struct lthread *t, struct lconn *c, bool want)
{
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = c};

	if (c->want_out == want)
		return;
	if (epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->want_out = want;
}

static void pump_out(struct lthread *t, struct lconn *c)
{
	for (int i = 0; i < 64 && c->tx_off < c->tx_target; i++) {
		uint64_t left = c->tx_target - c->tx_off;
		size_t n = left < SEND_CHUNK ? (size_t) left : SEND_CHUNK;
		ssize_t s =
		    send(c->fd, load_expected(c->seed, c->tx_off), n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (s < 0 && errno == EINTR)
			continue;
		if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (s < 0) {
			conn_fail(t, c, "send", errno);
			return;
		}
		c->tx_off += (uint64_t) s;
	}
	set_out(t, c, c->tx_off < c->tx_target);
}

static void queue_message(struct lthread *t, struct lconn *c, uint64_t now)
{
	c->stamp[c->sent % (uint64_t) t->o->inflight] = now;
	c->sent++;
	c->tx_target += t->o->size;
}

static void complete_messages(struct lthread *t, struct lconn *c, uint64_t now)
{
	const uint64_t size = t->o->size, inflight = (uint64_t) t->o->inflight;

	while (c->done < c->sent && c->rx_off >= (c->done + 1) * size) {
		uint64_t lat = now - c->stamp[c->done % inflight];
		if (now >= t->times[T_BEGIN] && now < t->times[T_END]) {
			hist_record(&t->hist, lat);
			t->requests++;
			t->bytes += size;
		}
		c->done++;
		if (now < t->times[T_END] &&
		    !atomic_load_explicit(&load_stop, memory_order_relaxed))
			queue_message(t, c, now);
	}
}

static void on_readable(struct lthread *t, struct lconn *c, uint64_t now)
{
	ssize_t n;

	do
		n = recv(c->fd, t->rbuf, RECV_BUF, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_fail(t, c, "recv", n < 0 ? errno : 0);
		return;
	}
	if (c->rx_off + (uint64_t) n > c->tx_off) {
		fprintf(stderr,
			"echo-load: MISMATCH connection %d: received %llu bytes, sent %llu\n",
			(int) (c - t->conns) + t->first,
			(unsigned long long) (c->rx_off + (uint64_t) n),
			(unsigned long long) c->tx_off);
		t->mismatches++;
		atomic_store(&load_stop, true);
		return;
	}
	ssize_t bad = load_verify(c->seed, c->rx_off, t->rbuf, (size_t) n);
	if (bad >= 0) {
		fprintf(stderr,
			"echo-load: MISMATCH connection %d at stream offset %llu: "
			"expected 0x%02x, got 0x%02x\n",
			(int) (c - t->conns) + t->first,
			(unsigned long long) (c->rx_off + (uint64_t) bad),
			*load_expected(c->seed, c->rx_off + (uint64_t) bad), t->rbuf[bad]);
		t->mismatches++;
		atomic_store(&load_stop, true);
		return;
	}
	c->rx_off += (uint64_t) n;
	complete_messages(t, c, now);
	pump_out(t, c);
}

static bool all_answered(const struct lthread *t)
{
	for (int i = 0; i < t->nconns; i++)
		if (t->conns[i].fd >= 0 && t->conns[i].done < t->conns[i].sent)
			return false;
	return true;
}

static int setup(struct lthread *t)
{
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd < 0)
		return -errno;
	for (int i = 0; i < t->nconns; i++) {
		struct lconn *c = &t->conns[i];
		int fd = connect_one(t->o);
		if (fd < 0) {
			fprintf(stderr, "echo-load: connect %d: %s\n", t->first + i, strerror(-fd));
			return fd;
		}
		c->fd = fd;
		c->seed = (uint32_t) (t->first + i) * 7919u % PATTERN_LEN;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
	}
	return 0;
}

static void run(struct lthread *t)
{
	struct epoll_event ev[EVENT_BATCH];
	uint64_t now = now_ns();

	for (int i = 0; i < t->nconns; i++) {
		for (int k = 0; k < t->o->inflight; k++)
			queue_message(t, &t->conns[i], now);
		pump_out(t, &t->conns[i]);
	}
	for (;;) {
		if (atomic_load_explicit(&load_stop, memory_order_relaxed))
			return;
		if (now >= t->times[T_END] && all_answered(t))
			return;
		if (now >= t->times[T_DEADLINE]) {
			fprintf(stderr, "echo-load: echoes still missing %.1f s after the end\n",
				t->o->drain_timeout);
			t->errors++;
			return;
		}
		int n = epoll_wait(t->epfd, ev, EVENT_BATCH, WAIT_MS);
		now = now_ns();
		for (int i = 0; i < n; i++) {
			struct lconn *c = ev[i].data.ptr;
			if (c->fd < 0)
				continue;
			if (ev[i].events & EPOLLOUT)
				pump_out(t, c);
			if (c->fd >= 0 && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				on_readable(t, c, now);
		}
	}
}

static void *thread_main(void *arg)
{
	struct lthread *t = arg;
	int r = setup(t);

	if (r < 0) {
		t->errors++;
		atomic_store(&load_stop, true);
	}
	pthread_barrier_wait(t->barrier); /* all connected */
	pthread_barrier_wait(t->barrier); /* times are set */
	if (r == 0)
		run(t);
	for (int i = 0; i < t->nconns; i++)
		if (t->conns[i].fd >= 0)
			close(t->conns[i].fd);
	if (t->epfd >= 0)
		close(t->epfd);
	return NULL;
}

static void collect(struct lthread *ts, int n, struct load_result *res)
{
	for (int i = 0; i < n; i++) {
		hist_merge(&res->hist, &ts[i].hist);
		res->requests += ts[i].requests;
		res->bytes += ts[i].bytes;
		res->errors += ts[i].errors;
		res->mismatches += ts[i].mismatches;
	}
}

static int alloc_threads(const struct load_opts *o, struct lthread **ret_ts,
			 struct lconn **ret_conns, uint64_t **ret_stamps)
{
	*ret_ts = calloc((size_t) o->threads, sizeof(**ret_ts));
	*ret_conns = calloc((size_t) o->connections, sizeof(**ret_conns));
	*ret_stamps = calloc((size_t) o->connections * (size_t) o->inflight, sizeof(uint64_t));
	if (!*ret_ts || !*ret_conns || !*ret_stamps)
		return -ENOMEM;
	for (int i = 0; i < o->connections; i++) {
		(*ret_conns)[i].fd = -1;
		(*ret_conns)[i].stamp = *ret_stamps + (size_t) i * (size_t) o->inflight;
	}
	return 0;
}

int load_run_echo(const struct load_opts *o, struct load_result *res)
{
	struct lthread *ts = NULL;
	struct lconn *conns = NULL;
	uint64_t *stamps = NULL, times[T_COUNT] = {0};
	pthread_barrier_t barrier;
	int started = 0, r = alloc_threads(o, &ts, &conns, &stamps);

	if (r < 0)
		goto out;
	pthread_barrier_init(&barrier, NULL, (unsigned) o->threads + 1u);
	for (int i = 0; i < o->threads; i++) {
		struct lthread *t = &ts[i];
		int lo = (int) ((long) o->connections * i / o->threads);
		int hi = (int) ((long) o->connections * (i + 1) / o->threads);
		*t = (struct lthread){.o = o,
				      .barrier = &barrier,
				      .times = times,
				      .conns = conns + lo,
				      .first = lo,
				      .nconns = hi - lo,
				      .epfd = -1,
				      .rbuf = malloc(RECV_BUF)};
		if (!t->rbuf || pthread_create(&t->thread, NULL, thread_main, t) != 0) {
			fprintf(stderr, "echo-load: cannot start client thread %d\n", i);
			exit(1); /* the barrier would wait forever for the missing thread */
		}
		started++;
	}
	pthread_barrier_wait(&barrier);
	times[T_START] = now_ns();
	times[T_BEGIN] = times[T_START] + (uint64_t) (o->warmup * 1e9);
	times[T_END] = times[T_BEGIN] + (uint64_t) (o->duration * 1e9);
	times[T_DEADLINE] = times[T_END] + (uint64_t) (o->drain_timeout * 1e9);
	pthread_barrier_wait(&barrier);
	if (!atomic_load(&load_stop)) {
		sleep_until_ns(times[T_BEGIN]);
		proc_sample(o->pid, &res->before);
		uint64_t cpu0 = self_cpu_us();
		sleep_until_ns(times[T_END]);
		proc_sample(o->pid, &res->after);
		res->client_cpu_us = self_cpu_us() - cpu0;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(ts[i].thread, NULL);
		free(ts[i].rbuf);
	}
	pthread_barrier_destroy(&barrier);
	collect(ts, started, res);
	res->elapsed = o->duration;
out:
	free(ts);
	free(conns);
	free(stamps);
	return r;
}
