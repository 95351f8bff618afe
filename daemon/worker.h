/* SPDX-License-Identifier: MIT */
/*
 * A worker thread: one epoll loop that owns its connections, its scratch
 * buffers and its counters. The listening sockets are shared: every worker
 * waits on them with EPOLLEXCLUSIVE, so the kernel wakes one worker per
 * incoming connection and the single fd systemd passes works unchanged.
 *
 * Other threads never touch a worker's data. They hand it a closure with
 * worker_call(); the worker runs it on its own thread at the top of its next
 * loop iteration (woken through an eventfd).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "stats.h"

struct server;
struct conn;
struct worker;

enum epoll_tag {
	TAG_LISTENER = 1,
	TAG_WAKEUP,
	TAG_CONN,
};

/* What a worker needs from the config; copied in, so reload never races. */
struct worker_params {
	enum echo_mode mode;
	char prefix[1025];
	size_t prefix_len;
	size_t max_line;
	int64_t idle_timeout_ms; /* 0 = never */
	int64_t shutdown_timeout_ms;
	int tick_ms; /* longest epoll wait: the heartbeat must beat faster than the watchdog checks
		      */
};

struct listen_slot {
	enum epoll_tag tag;
	int fd;
	bool armed;
};

typedef void (*worker_fn)(struct worker *w, void *arg);

struct worker_msg {
	worker_fn fn;
	void *arg;
	struct worker_msg *next;
};

/* A doubly linked list of connections, oldest activity first. */
struct conn_list {
	struct conn *head, *tail;
	size_t count;
};

struct worker {
	struct worker_stats stats; /* first: cache-line aligned */
	int index;
	int nworkers;		   /* in the pool, this one included */
	_Atomic uint64_t incoming; /* connections handed to us, not yet adopted */

	struct server *srv;
	pthread_t thread;
	bool started;
	int epfd;
	int wakeup_fd;
	enum epoll_tag wakeup_tag;

	pthread_mutex_t queue_lock;
	struct worker_msg *queue_head, *queue_tail;

	struct worker_params params;
	struct listen_slot *listeners;
	size_t nlisteners;
	int64_t accept_paused_until; /* ms; 0 when accepting */

	struct conn_list active;    /* by last activity, for idle_timeout */
	struct conn_list lingering; /* half-closed by us, waiting for the client's FIN */
	struct conn_list parked;    /* flushed, waiting to go to the fd store (handover.c) */

	char *rbuf; /* read scratch */
	size_t rbuf_size;
	struct buf wout; /* line-mode reply scratch */

	int64_t now_ms; /* CLOCK_MONOTONIC, refreshed once per loop iteration */
	bool draining;
	bool handover; /* draining parks open connections for systemd's fd store */
	int64_t drain_deadline_ms;
	bool exit;
};

int worker_create(struct server *srv, int index, int nworkers, const struct worker_params *params,
		  struct worker **ret);
int worker_start(struct worker *w);
/* Joins (if started) and frees; NULL-safe. */
void worker_free(struct worker *w);
/*
 * Gives worker w a connected, non-blocking client socket (any thread). The
 * caller has admitted it (server_admit_connection). `adopted`: it comes from a
 * previous echod, with n bytes of an unfinished line. Returns 0 with fd taken,
 * or -ENOMEM with fd still the caller's.
 */
int worker_give_connection(struct worker *w, int fd, const struct sockaddr_storage *peer,
			   socklen_t len, bool adopted, const char *partial, size_t n);
/* Runs fn(w, arg) on the worker's thread. Returns -ENOMEM when the message cannot be queued. */
int worker_call(struct worker *w, worker_fn fn, void *arg);

/* These run on the worker thread (through worker_call). */
void worker_begin_drain(struct worker *w, void *unused);
void worker_close_all(struct worker *w, void *unused);
void worker_set_params(struct worker *w, const struct worker_params *p);

int64_t monotonic_ms(void);
