/* SPDX-License-Identifier: MIT */
/* The server's state, shared by the main-thread modules (server, reload, control). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "daemon.h"
#include "stats.h"
#include "supervisor.h"
#include "worker.h"

struct control;

struct server {
	const struct cli_options *opts;
	struct echod_config cfg; /* in force; main thread only */

	struct activation act; /* act.echo_fds are the listeners, passed or bound */
	bool activated;
	char listen_desc[256];

	struct worker **workers;
	int nworkers;
	int workers_running;

	_Atomic int active_connections;
	_Atomic int max_connections;
	_Atomic uint64_t next_connection_id;

	int ep_fd, sig_fd, tick_fd, done_fd;
	bool stopping;
	int64_t started_ms;
	time_t started_wall;
	uint64_t reloads, reloads_failed;
	char last_status[512];
	int64_t last_status_ms;

	uint64_t watchdog_usec;
	uint64_t *last_heartbeat; /* per worker, at the last watchdog check */
	int64_t next_watchdog_ms;

	struct control *control;
};

/*
 * Reloads the config file. On success returns 0; on a rejected config returns
 * -EINVAL, keeps the old config and writes the first reason to reason.
 */
int server_reload(struct server *s, char *reason, size_t len);
void server_params_from_config(const struct server *s, struct worker_params *p);

void server_update_status(struct server *s, bool force);

/* The control socket (control.c). */
int server_control_start(struct server *s);
void server_control_stop(struct server *s);
void server_control_event(struct server *s, int fd, uint32_t events);
void server_control_tick(struct server *s);
/* After the workers are joined: frees what stop left for them. */
void server_control_free(struct server *s);
