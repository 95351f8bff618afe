/* SPDX-License-Identifier: MIT */
/*
 * Restarting without dropping clients: on stop, live connections go to
 * systemd's fd store; on start, the ones found there are adopted. See the
 * DOC comment in handover.c.
 */
#pragma once

#include <stdbool.h>

struct server;
struct worker;

/*
 * Main thread, on SIGTERM: whether the connections can be handed over
 * (preserve_connections and an fd store). Logs why not when they cannot.
 */
bool handover_possible(const struct server *s);
/* Runs on each worker (worker_call): stop reading, flush, park open connections. */
void handover_begin(struct worker *w, void *unused);
/* Worker thread, once nothing but parked connections is left: stores them. */
void handover_store(struct worker *w);
/* Main thread, workers started: spreads the passed connections over them. */
void handover_adopt(struct server *s);
