/* SPDX-License-Identifier: MIT */
/*
 * The server: the main thread's state and loop. It owns the config, the
 * listeners, the workers, signals, reload, shutdown, the watchdog and the
 * control socket; it never touches a connection (it asks the worker).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "stats.h"

struct server;
struct cli_options;

/* Runs echod with cfg (taken over) until it is told to stop. Returns the exit code. */
int server_run(const struct cli_options *opts, struct echod_config *cfg);

/* Shared with the workers; any thread. */
bool server_admit_connection(struct server *s);
void server_release_connection(struct server *s);
uint64_t server_next_connection_id(struct server *s);
void server_listen_fds(struct server *s, const int **fds, size_t *n);
/* The pool is fixed once the workers run; any worker may look up another. */
struct worker *server_worker(struct server *s, int index);

void server_worker_exited(struct server *s);
