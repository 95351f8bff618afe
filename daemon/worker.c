// SPDX-License-Identifier: MIT
/*
 * The worker loop. Each iteration: wait on epoll (at most 1 s, so the
 * heartbeat advances and timeouts fire even when idle), then either run the
 * queued messages or handle the connection and listener events, then timers.
 * Messages go first: a client's bytes that arrive after a reload was reported
 * done must meet the new settings. The rest of that batch is not handled,
 * because a message may have closed a connection it names; every registration
 * is level-triggered, so the next epoll_wait reports those events again.
 */
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "handover.h"
#include "log.h"
#include "server.h"

#define READ_SIZE	(64 * 1024)
#define EVENT_BATCH	256
#define ACCEPT_BATCH	64
#define ACCEPT_PAUSE_MS 100
#define LINGER_MS	2000

int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int arm_listener(struct worker *w, struct listen_slot *l)
{
	/* EPOLLEXCLUSIVE: one worker is woken per connection, not all of them. */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = l};
	if (l->armed)
		return 0;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0)
		return -errno;
	l->armed = true;
	return 0;
}

static void disarm_listener(struct worker *w, struct listen_slot *l)
{
	/* EPOLLEXCLUSIVE registrations cannot be modified, only removed. */
	if (l->armed && epoll_ctl(w->epfd, EPOLL_CTL_DEL, l->fd, NULL) < 0)
		log_warning("worker %d: cannot stop watching listener: %s", w->index,
			    strerror(errno));
	l->armed = false;
}

static void pause_accepting(struct worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++)
		disarm_listener(w, &w->listeners[i]);
	w->accept_paused_until = w->now_ms + ACCEPT_PAUSE_MS;
}

static void resume_accepting(struct worker *w)
{
	w->accept_paused_until = 0;
	for (size_t i = 0; i < w->nlisteners; i++) {
		int r = arm_listener(w, &w->listeners[i]);
		if (r < 0)
			log_error("worker %d: cannot watch listener: %s", w->index, strerror(-r));
	}
}

/* Errors after which the listener is fine and the next accept may succeed. */
static bool accept_error_is_transient(int e)
{
	return e == ECONNABORTED || e == EPROTO || e == EPERM || e == ENETDOWN ||
	       e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH ||
	       e == EOPNOTSUPP || e == ENETUNREACH || e == EINTR;
}

static void on_accept_failure(struct worker *w, int e)
{
	stat_add(&w->stats.accept_errors, 1);
	/*
	 * Out of fds or memory: accepting again at once would spin on a listener
	 * that stays readable. Leave the clients in the backlog and retry soon.
	 */
	log_ratelimited(LOG_LEVEL_WARNING, 10, "accept failed: %s; pausing accepts for %d ms",
			strerror(e), ACCEPT_PAUSE_MS);
	pause_accepting(w);
}

/*
 * The kernel wakes the first idle EPOLLEXCLUSIVE waiter in the listener's
 * wait queue, so an idle worker 0 would win every connection. Exclusive
 * waiters are added at the tail: re-adding ours after a batch passes the
 * next wakeup to another idle worker. Two epoll_ctl calls per accept batch.
 */
static void yield_listener(struct worker *w, struct listen_slot *l)
{
	if (w->nworkers < 2 || !l->armed)
		return;
	disarm_listener(w, l);
	int r = arm_listener(w, l);
	if (r < 0)
		log_error("worker %d: cannot watch listener: %s", w->index, strerror(-r));
}

struct given {
	int fd;
	socklen_t len;
	struct sockaddr_storage peer;
	bool adopted;
	size_t n;
	char partial[]; /* unfinished line from the previous echod */
};

static void take_connection(struct worker *w, void *arg)
{
	struct given *g = arg;
	int r;

	atomic_fetch_sub_explicit(&w->incoming, 1, memory_order_relaxed);
	if (w->draining) {
		safe_close(g->fd);
		r = -ESHUTDOWN;
	} else if (g->adopted) {
		r = conn_adopt(w, g->fd, (struct sockaddr *) &g->peer, g->len, g->partial, g->n);
	} else {
		r = conn_add(w, g->fd, (struct sockaddr *) &g->peer,
			     g->len); /* closes fd on failure */
	}
	if (r < 0) {
		if (r != -ESHUTDOWN)
			log_ratelimited(LOG_LEVEL_WARNING, 10,
					"worker %d: cannot take a connection: %s", w->index,
					strerror(-r));
		server_release_connection(w->srv);
	}
	free(g);
}

int worker_give_connection(struct worker *w, int fd, const struct sockaddr_storage *peer,
			   socklen_t len, bool adopted, const char *partial, size_t n)
{
	struct given *g = malloc(sizeof(*g) + n);

	if (!g)
		return -ENOMEM;
	*g = (struct given){.fd = fd, .len = len, .peer = *peer, .adopted = adopted, .n = n};
	if (n)
		memcpy(g->partial, partial, n);
	/* The target's gauge moves only when it takes the socket: count it now so a burst spreads.
	 */
	atomic_fetch_add_explicit(&w->incoming, 1, memory_order_relaxed);
	if (worker_call(w, take_connection, g) < 0) {
		atomic_fetch_sub_explicit(&w->incoming, 1, memory_order_relaxed);
		free(g);
		return -ENOMEM;
	}
	return 0;
}

static uint64_t load_of(struct worker *w)
{
	return atomic_load_explicit(&w->stats.connections_active, memory_order_relaxed) +
	       atomic_load_explicit(&w->incoming, memory_order_relaxed);
}

/*
 * Keeps the pool even when clients arrive in a burst, which one worker may
 * accept whole: while this worker holds more than one connection beyond the
 * least loaded one, the new socket goes to that worker. Returns true when
 * handed over.
 */
static bool hand_over(struct worker *w, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	struct worker *target = NULL;
	uint64_t mine = load_of(w), least = mine;

	for (int i = 0; i < w->nworkers; i++) {
		struct worker *o = server_worker(w->srv, i);
		if (o != w && load_of(o) < least) {
			least = load_of(o);
			target = o;
		}
	}
	if (!target || mine <= least + 1)
		return false;
	return worker_give_connection(target, fd, ss, len, false, NULL, 0) == 0;
}

static void accept_batch(struct worker *w, struct listen_slot *l)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {

		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd =
		    accept4(l->fd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINVAL) {
				/* Shut down by begin_shutdown(): we are draining. */
				disarm_listener(w, l);
				return;
			}
			if (accept_error_is_transient(errno))
				continue;
			on_accept_failure(w, errno);
			return;
		}
		if (!server_admit_connection(w->srv)) {
			stat_add(&w->stats.connections_rejected, 1);
			log_ratelimited(LOG_LEVEL_WARNING, 10,
					"max_connections reached; refusing new clients");
			safe_close(fd);
			continue;
		}
		if (hand_over(w, fd, &ss, len))
			continue;
		int r = conn_add(w, fd, (struct sockaddr *) &ss, len);
		if (r < 0) {

			server_release_connection(w->srv);
			on_accept_failure(w, -r);
			return;
		}
	}
}

static void accept_clients(struct worker *w, struct listen_slot *l)
{
	uint64_t before = atomic_load_explicit(&w->stats.connections_total, memory_order_relaxed);

	accept_batch(w, l);
	if (atomic_load_explicit(&w->stats.connections_total, memory_order_relaxed) != before)
		yield_listener(w, l);
}

static void run_messages(struct worker *w)
{
	uint64_t v;
	struct worker_msg *m;

	/* The counter only wakes us; a failed read just means nothing was pending. */
	(void) !read(w->wakeup_fd, &v, sizeof(v));
	pthread_mutex_lock(&w->queue_lock);
	m = w->queue_head;
	w->queue_head = w->queue_tail = NULL;
	pthread_mutex_unlock(&w->queue_lock);
	while (m) {
		struct worker_msg *next = m->next;
		m->fn(w, m->arg);
		free(m);
		m = next;
	}
}

int worker_call(struct worker *w, worker_fn fn, void *arg)
{
	struct worker_msg *m = malloc(sizeof(*m));
	uint64_t one = 1;

	if (!m)
		return -ENOMEM;
	*m = (struct worker_msg){.fn = fn, .arg = arg};
	pthread_mutex_lock(&w->queue_lock);
	if (w->queue_tail)
		w->queue_tail->next = m;
	else
		w->queue_head = m;
	w->queue_tail = m;
	pthread_mutex_unlock(&w->queue_lock);
	/* EAGAIN means the counter is already non-zero: the worker will wake anyway. */
	(void) !write(w->wakeup_fd, &one, sizeof(one));
	return 0;
}

static void expire(struct worker *w)
{
	int64_t idle = w->params.idle_timeout_ms;

	while (idle > 0 && w->active.head && w->now_ms - w->active.head->last_active_ms >= idle) {
		struct conn *c = w->active.head;
		stat_add(&w->stats.connections_timed_out, 1);
		log_debug("connection %llu: idle for %lld s, closing", (unsigned long long) c->id,
			  (long long) (idle / 1000));
		conn_close(w, c);
	}
	while (w->lingering.head && w->now_ms - w->lingering.head->last_active_ms >= LINGER_MS)
		conn_close(w, w->lingering.head);
}

/* Closes what is still flushing or lingering; parked connections stay for the fd store. */
static void close_unparked(struct worker *w)
{
	while (w->active.head)
		conn_close(w, w->active.head);
	while (w->lingering.head)
		conn_close(w, w->lingering.head);
}

void worker_close_all(struct worker *w, void *unused)
{
	close_unparked(w);
	while (w->parked.head)
		conn_close(w, w->parked.head);
}

void worker_begin_drain(struct worker *w, void *unused)
{
	if (w->draining)
		return;
	w->draining = true;
	w->drain_deadline_ms = w->now_ms + w->params.shutdown_timeout_ms;
	w->accept_paused_until = 0;
	for (size_t i = 0; i < w->nlisteners; i++)
		disarm_listener(w, &w->listeners[i]);
	for (struct conn *c = w->active.head, *next; c; c = next) {
		next = c->next;
		conn_begin_drain(w, c);
	}
}

static void tick(struct worker *w)
{
	if (w->accept_paused_until && w->now_ms >= w->accept_paused_until && !w->draining)
		resume_accepting(w);
	expire(w);
	if (w->draining) {
		if (w->now_ms >= w->drain_deadline_ms)
			close_unparked(w);
		/* Lingering ones need nothing from the parked: do not keep those waiting. */
		if (!w->active.head && w->parked.head)
			handover_store(w); /* what it cannot store goes back to active */
		if (!w->active.head && !w->lingering.head)
			w->exit = true;
	}
}

static bool has_wakeup(const struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++)
		if (*(const enum epoll_tag *) ev[i].data.ptr == TAG_WAKEUP)
			return true;
	return false;
}

static void dispatch(struct worker *w, struct epoll_event *ev)
{
	enum epoll_tag tag = *(enum epoll_tag *) ev->data.ptr;

	switch (tag) {
	case TAG_CONN:
		conn_on_event(w, ev->data.ptr, ev->events);
		break;
	case TAG_LISTENER:
		if (!w->draining && !w->accept_paused_until)
			accept_clients(w, ev->data.ptr);
		break;
	case TAG_WAKEUP:
		break; /* see has_wakeup() */
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event events[EVENT_BATCH];
	char name[16];

	snprintf(name, sizeof(name), "echod-w%d", w->index);
	(void) pthread_setname_np(pthread_self(), name);
	while (!w->exit) {
		int timeout =
		    w->accept_paused_until || w->draining ? ACCEPT_PAUSE_MS : w->params.tick_ms;

		int n = epoll_wait(w->epfd, events, EVENT_BATCH, timeout);

		if (n < 0 && errno != EINTR) {
			/* Only EBADF/EFAULT/EINVAL are left: a bug, not a condition to ride out. */
			log_error("worker %d: epoll_wait: %s", w->index, strerror(errno));
			abort();
		}
		w->now_ms = monotonic_ms();
		stat_add(&w->stats.heartbeat, 1);
		if (has_wakeup(events, n))
			run_messages(w); /* the other events come back at once */
		else
			for (int i = 0; i < n; i++)
				dispatch(w, &events[i]);
		tick(w);
	}
	server_worker_exited(w->srv);
	return NULL;
}

void worker_set_params(struct worker *w, const struct worker_params *p)
{
	w->params = *p;
}

static int add_wakeup(struct worker *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->wakeup_tag};

	w->wakeup_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wakeup_fd < 0)
		return -errno;
	w->wakeup_tag = TAG_WAKEUP;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakeup_fd, &ev) < 0)
		return -errno;
	return 0;
}

int worker_create(struct server *srv, int index, int nworkers, const struct worker_params *params,
		  struct worker **ret)
{
	struct worker *w =
	    aligned_alloc(CACHELINE, (sizeof(*w) + CACHELINE - 1) / CACHELINE * CACHELINE);
	const int *fds;
	size_t nfds;
	int r;

	if (!w)
		return -ENOMEM;
	memset(w, 0, sizeof(*w));
	w->index = index;
	w->nworkers = nworkers;
	w->srv = srv;
	w->params = *params;
	w->epfd = w->wakeup_fd = -1;
	pthread_mutex_init(&w->queue_lock, NULL);
	w->now_ms = monotonic_ms();
	w->rbuf_size = READ_SIZE;
	w->rbuf = malloc(w->rbuf_size);
	server_listen_fds(srv, &fds, &nfds);
	w->listeners = calloc(nfds ? nfds : 1, sizeof(*w->listeners));
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!w->rbuf || !w->listeners || w->epfd < 0) {
		r = w->epfd < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	r = add_wakeup(w);
	if (r < 0)
		goto fail;
	w->nlisteners = nfds;
	for (size_t i = 0; i < nfds; i++) {
		w->listeners[i] = (struct listen_slot){.tag = TAG_LISTENER, .fd = fds[i]};
		r = arm_listener(w, &w->listeners[i]);
		if (r < 0)
			goto fail;
	}
	*ret = w;
	return 0;
fail:
	worker_free(w);
	return r;
}

int worker_start(struct worker *w)
{
	int r = pthread_create(&w->thread, NULL, worker_main, w);
	if (r != 0)
		return -r;
	w->started = true;
	return 0;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->started)
		(void) pthread_join(w->thread, NULL);
	/* The thread is gone: what it left queued runs here, so every message's
	 * argument is consumed exactly once. */
	if (w->wakeup_fd >= 0)
		run_messages(w);
	worker_close_all(w, NULL);
	safe_close(w->wakeup_fd);
	safe_close(w->epfd);
	pthread_mutex_destroy(&w->queue_lock);
	buf_free(&w->wout);
	free(w->listeners);
	free(w->rbuf);
	free(w);
}
