// SPDX-License-Identifier: MIT
/*
 * DOC: the main thread.
 *
 * Start-up: take systemd's fds or bind from the config, start the workers,
 * open the control socket, then READY=1. The main loop waits on a signalfd
 * (SIGTERM/SIGINT stop, SIGHUP reloads), a 1 s timerfd (watchdog, STATUS) and
 * an eventfd the workers write when they exit. Signals are blocked in every
 * thread before the workers start, so only the signalfd sees them.
 *
 * Shutdown: STOPPING=1, each worker stops accepting and drains (see conn.c);
 * when the last worker has exited the process exits 0. A second SIGTERM or
 * SIGINT closes what is left at once.
 */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "daemon.h"
#include "handover.h"
#include "listener.h"
#include "log.h"
#include "server-internal.h"
#include "supervisor.h"
#include "worker.h"

bool server_admit_connection(struct server *s)
{
	int n = atomic_fetch_add_explicit(&s->active_connections, 1, memory_order_relaxed);
	if (n >= atomic_load_explicit(&s->max_connections, memory_order_relaxed)) {
		atomic_fetch_sub_explicit(&s->active_connections, 1, memory_order_relaxed);
		return false;
	}
	return true;
}

void server_release_connection(struct server *s)
{
	atomic_fetch_sub_explicit(&s->active_connections, 1, memory_order_relaxed);
}

uint64_t server_next_connection_id(struct server *s)
{
	return atomic_fetch_add_explicit(&s->next_connection_id, 1, memory_order_relaxed) + 1;
}

struct worker *server_worker(struct server *s, int index)
{
	return s->workers[index];
}

void server_listen_fds(struct server *s, const int **fds, size_t *n)

{
	*fds = s->act.echo_fds;
	*n = s->act.necho;
}

void server_worker_exited(struct server *s)
{
	uint64_t one = 1;
	/* Cannot fail short of a bug: the eventfd counter never gets near overflow. */
	(void) !write(s->done_fd, &one, sizeof(one));
}

void server_params_from_config(const struct server *s, struct worker_params *p)
{
	const struct echod_config *c = &s->cfg;
	/* The watchdog check runs every watchdog/2; beat at least twice as often. */
	int64_t tick = s->watchdog_usec ? (int64_t) (s->watchdog_usec / 1000 / 4) : 1000;

	*p = (struct worker_params){
	    .tick_ms = (int) MAX(10, MIN(tick, 1000)),
	    .mode = c->mode,
	    .max_line = (size_t) c->max_line,
	    .idle_timeout_ms = (int64_t) c->idle_timeout * 1000,
	    .shutdown_timeout_ms = (int64_t) c->shutdown_timeout * 1000,
	};
	p->prefix_len = MIN(strlen(c->line_prefix), sizeof(p->prefix) - 1);
	memcpy(p->prefix, c->line_prefix, p->prefix_len);
}

/* Serving 12 connections on 127.0.0.1:7007 with 2 threads */
void server_update_status(struct server *s, bool force)
{
	char status[512];
	int64_t now = monotonic_ms();
	int active = atomic_load_explicit(&s->active_connections, memory_order_relaxed);

	if (s->stopping)
		return;
	snprintf(status, sizeof(status), "Serving %d connection%s on %s with %d thread%s", active,
		 active == 1 ? "" : "s", s->listen_desc, s->nworkers, s->nworkers == 1 ? "" : "s");
	if (!force && (strcmp(status, s->last_status) == 0 || now - s->last_status_ms < 1000))
		return;
	snprintf(s->last_status, sizeof(s->last_status), "%s", status);
	s->last_status_ms = now;
	supervisor_status("%s", status);
}

static void describe_listeners(struct server *s)
{
	size_t used = 0;
	s->listen_desc[0] = '\0';
	for (size_t i = 0; i < s->act.necho && used < sizeof(s->listen_desc); i++) {
		char one[80];
		listener_describe(s->act.echo_fds[i], one, sizeof(one));
		used += (size_t) snprintf(s->listen_desc + used, sizeof(s->listen_desc) - used,
					  "%s%s", i ? ", " : "", one);
	}
}

static int open_listeners(struct server *s)
{
	char err[256];
	int *fds;

	if (s->act.necho > 0) {
		log_info("socket-activated with %zu listener%s; host and port from the config are "
			 "not used",
			 s->act.necho, s->act.necho == 1 ? "" : "s");
		s->activated = true;
		return 0;
	}
	int n = listener_open(s->cfg.host, s->cfg.port, &fds, err, sizeof(err));
	if (n < 0) {
		log_error("%s", err);
		return n;
	}
	s->act.echo_fds = fds;
	s->act.necho = (size_t) n;
	return 0;
}

static int start_workers(struct server *s)
{
	struct worker_params p;
	int r;

	server_params_from_config(s, &p);

	s->nworkers = config_worker_count(&s->cfg);
	s->workers = calloc((size_t) s->nworkers, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	/* All exist before any runs: workers hand connections to each other. */
	for (int i = 0; i < s->nworkers; i++) {
		r = worker_create(s, i, s->nworkers, &p, &s->workers[i]);
		if (r < 0)
			return log_errno(-r, "cannot create worker %d", i);
	}
	for (int i = 0; i < s->nworkers; i++) {
		r = worker_start(s->workers[i]);
		if (r < 0)
			return log_errno(-r, "cannot start worker %d", i);
		s->workers_running++;
	}
	return 0;
}

/* The soft fd limit is often 1024; a server with max_connections clients needs more. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rlim_t old = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warning("cannot raise the open file limit from %llu: %s",
			    (unsigned long long) old, strerror(errno));
	else
		log_info("raised the open file limit from %llu to %llu", (unsigned long long) old,
			 (unsigned long long) rl.rlim_max);
}

static int setup_signals(struct server *s)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
#if ECHOD_TEST_HOOKS
	sigaddset(&mask, SIGUSR2);
#endif
	/* Blocked before any thread starts, so every thread inherits the mask. */
	if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
		return -EINVAL;
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return -errno;
	s->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	return s->sig_fd < 0 ? -errno : 0;
}

static int epoll_watch(int epfd, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int setup_main_loop(struct server *s)
{
	struct itimerspec tick = {.it_interval = {.tv_sec = 1}, .it_value = {.tv_sec = 1}};
	uint64_t wd = supervisor_watchdog_usec();

	/* Tick every quarter watchdog interval at least; watchdog_check() pings every half. */
	if (wd > 0 && wd / 4 < 1000000) {
		tick.it_interval = (struct timespec){.tv_nsec = (long) (MAX(wd / 4, 1000) * 1000)};
		tick.it_value = tick.it_interval;
	}
	s->watchdog_usec = wd;
	/* The first check waits a half interval, so every worker has had time to turn. */
	s->next_watchdog_ms = monotonic_ms() + (int64_t) (wd / 2000);

	s->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	s->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->ep_fd < 0 || s->done_fd < 0 || s->tick_fd < 0)
		return -errno;
	if (timerfd_settime(s->tick_fd, 0, &tick, NULL) < 0)
		return -errno;
	int r = epoll_watch(s->ep_fd, s->sig_fd);
	if (r == 0)
		r = epoll_watch(s->ep_fd, s->done_fd);
	if (r == 0)
		r = epoll_watch(s->ep_fd, s->tick_fd);
	return r;
}

/*
 * A stopping echod refuses new clients at once instead of leaving them in the
 * backlog until it exits: shutting down a listening socket resets what is
 * queued and makes the kernel refuse new connections (a worker accepting
 * meanwhile gets EINVAL). Sockets systemd passed are left alone, so clients
 * keep queueing for the next instance.
 */
static void stop_listening(struct server *s)
{
	if (s->activated)
		return;
	for (size_t i = 0; i < s->act.necho; i++)
		if (shutdown(s->act.echo_fds[i], SHUT_RD) < 0 && errno != ENOTCONN)
			log_warning("cannot stop listening: %s", strerror(errno));
}

static void begin_shutdown(struct server *s, int signo)
{
	if (s->stopping) {
		log_notice("%s again: closing all connections now", strsignal(signo));
		for (int i = 0; i < s->nworkers; i++)
			(void) worker_call(s->workers[i], worker_close_all, NULL);
		return;
	}
	s->stopping = true;
	supervisor_stopping();
	stop_listening(s);
	bool handover = handover_possible(s);
	int active = atomic_load(&s->active_connections);
	if (handover)
		log_notice("%s: shutting down, handing %d connections to systemd's fd store once "
			   "their replies are sent (up to %d s)",
			   strsignal(signo), active, s->cfg.shutdown_timeout);
	else
		log_notice("%s: shutting down, draining %d connections for up to %d s",
			   strsignal(signo), active, s->cfg.shutdown_timeout);
	server_control_stop(s);
	for (int i = 0; i < s->nworkers; i++)
		if (worker_call(s->workers[i], handover ? handover_begin : worker_begin_drain,
				NULL) < 0)
			log_error("cannot tell worker %d to drain: out of memory", i);
}

#if ECHOD_TEST_HOOKS
/* Test hook: SIGUSR2 makes worker 0 stop making progress, to prove the watchdog notices. */
static void stall_forever(struct worker *w, void *unused)
{
	log_warning("test hook: worker %d stalls now", w->index);
	for (;;)
		sleep(3600);
}
#endif

static void on_signal(struct server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			if (!s->stopping)
				(void) server_reload(s, NULL, 0);
			break;
		case SIGTERM:
		case SIGINT:
			begin_shutdown(s, (int) si.ssi_signo);
			break;
#if ECHOD_TEST_HOOKS
		case SIGUSR2:
			(void) worker_call(s->workers[0], stall_forever, NULL);
			break;
#endif
		}
	}
}

/* Pings only while every worker's loop has turned since the last ping. */
/*
 * Every half watchdog interval: ping only if every worker's loop has turned
 * since the last check. Workers wait at most a quarter interval (or 1 s) in
 * epoll, so a healthy idle worker turns at least twice between two checks.
 */
static void watchdog_check(struct server *s)
{
	bool alive = true;
	int64_t now = monotonic_ms();

	if (!s->watchdog_usec || now < s->next_watchdog_ms)
		return;
	s->next_watchdog_ms = now + (int64_t) (s->watchdog_usec / 2000);

	for (int i = 0; i < s->nworkers; i++) {
		uint64_t hb =
		    atomic_load_explicit(&s->workers[i]->stats.heartbeat, memory_order_relaxed);
		if (hb == s->last_heartbeat[i]) {
			alive = false;
			log_ratelimited(LOG_LEVEL_ERROR, 5,
					"worker %d made no progress; withholding the watchdog ping",
					i);
		}
		s->last_heartbeat[i] = hb;
	}
	if (alive)
		supervisor_watchdog_ping();
}

static void on_tick(struct server *s)
{
	uint64_t expirations;
	(void) !read(s->tick_fd, &expirations, sizeof(expirations));
	watchdog_check(s);
	server_update_status(s, false);
	server_control_tick(s);
}

static void on_worker_exit(struct server *s)
{
	uint64_t n = 0;
	if (read(s->done_fd, &n, sizeof(n)) == sizeof(n))
		s->workers_running -= (int) n;
}

static int main_loop(struct server *s)
{
	while (s->workers_running > 0) {
		struct epoll_event ev[8];
		int n = epoll_wait(s->ep_fd, ev, (int) ARRAY_SIZE(ev), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return log_errno(errno, "epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			if (fd == s->sig_fd)
				on_signal(s);
			else if (fd == s->tick_fd)
				on_tick(s);
			else if (fd == s->done_fd)
				on_worker_exit(s);
			else
				server_control_event(s, fd, ev[i].events);
		}
	}
	return 0;
}

static int server_start(struct server *s)
{
	int r = setup_signals(s);
	if (r < 0)
		return log_errno(-r, "cannot set up signal handling");
	raise_fd_limit();
	r = supervisor_init();
	if (r < 0)
		return r;
	r = supervisor_take_fds(&s->act);
	if (r < 0)
		return r;
	r = open_listeners(s);
	if (r < 0)
		return r;
	describe_listeners(s);
	r = setup_main_loop(s);
	if (r < 0)
		return log_errno(-r, "cannot set up the main loop");
	s->last_heartbeat = calloc((size_t) config_worker_count(&s->cfg), sizeof(uint64_t));
	if (!s->last_heartbeat)
		return log_errno(ENOMEM, "cannot start");
	r = start_workers(s);
	if (r < 0)
		return r;
	handover_adopt(s);
	return server_control_start(s);
}

static void server_free(struct server *s)
{
	for (int i = 0; i < s->nworkers; i++)
		worker_free(s->workers[i]);
	free(s->workers);
	free(s->last_heartbeat);
	server_control_free(s);
	activation_done(&s->act);
	safe_close(s->sig_fd);
	safe_close(s->tick_fd);
	safe_close(s->done_fd);
	safe_close(s->ep_fd);
	config_done(&s->cfg);
	supervisor_done();
}

int server_run(const struct cli_options *opts, struct echod_config *cfg)
{
	struct server s = {
	    .opts = opts,
	    .cfg = *cfg,
	    .sig_fd = -1,
	    .tick_fd = -1,
	    .done_fd = -1,
	    .ep_fd = -1,
	    .started_ms = monotonic_ms(),
	    .started_wall = time(NULL),
	};
	int r;

	*cfg = (struct echod_config){0}; /* taken over */
	atomic_init(&s.max_connections, s.cfg.max_connections);
	log_set_level(s.cfg.log_level);
	r = server_start(&s);
	if (r == 0) {
		log_notice("echod %s serving %s mode on %s with %d thread%s", ECHOD_VERSION,
			   config_mode_name(s.cfg.mode), s.listen_desc, s.nworkers,
			   s.nworkers == 1 ? "" : "s");
		server_update_status(&s, true);
		supervisor_ready();
		r = main_loop(&s);
	} else if (s.nworkers > 0) {
		/* Workers may have started: stop them before freeing what they use. */
		for (int i = 0; i < s.nworkers; i++)
			if (s.workers[i])
				(void) worker_call(s.workers[i], worker_begin_drain, NULL);
	}
	server_free(&s);
	if (r == 0)
		log_info("stopped");
	return r == 0 ? 0 : 1;
}
