/* SPDX-License-Identifier: MIT */
/*
 * Everything echod says to or takes from systemd, in one place: socket
 * activation (fds by name), sd_notify state and status, and the watchdog.
 * Without systemd these are no-ops and no fds are passed, so the rest of the
 * daemon does not need to know whether systemd is there.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct activation {
	int *echo_fds; /* TCP listeners: named "echo", or unnamed */
	size_t necho;
	int control_fd; /* Unix stream listener named "control", or -1 */
	int *conn_fds;	/* connected TCP sockets from the fd store ("conn"), see handover.c */
	size_t nconn;
	int *state_fds; /* their unfinished lines ("connstate" memfds) */
	size_t nstate;
	int *queue_fds; /* Unix sockets with connections in flight ("connq") */
	size_t nqueue;
};

/* Takes the fds systemd passed, checks each against its name. Refused fds are closed. */
int supervisor_take_fds(struct activation *a);
void activation_done(struct activation *a);

/* Opens the notify socket once, before fds can run out. 0 or -errno. */
int supervisor_init(void);
void supervisor_done(void);

_printf_(1, 2) void supervisor_status(const char *fmt, ...);
void supervisor_ready(void);
void supervisor_reloading(void);
void supervisor_stopping(void);
/* The watchdog interval systemd asked for, or 0 when there is none. */
uint64_t supervisor_watchdog_usec(void);
void supervisor_watchdog_ping(void);

/*
 * Whether systemd's fd store can take fds: only in the process systemd started
 * (NOTIFY_SOCKET set, SYSTEMD_EXEC_PID our pid) and, on systemd 254 and later,
 * when $FDSTORE says the unit has one. *ret_max is its size, or SIZE_MAX when
 * systemd does not say (252). When not, *ret_why says why. Any thread.
 */
bool supervisor_fd_store(size_t *ret_max, const char **ret_why);
/*
 * FDSTORE=1 with FDNAME=name and FDPOLL=0 (systemd would drop a stored socket
 * whose peer is gone). Returns > 0 when sent, 0 without a notify socket, or -errno.
 */
int supervisor_store_fds(const char *name, const int *fds, size_t n);
/* A connected TCP socket (not a listener). */
bool supervisor_is_tcp_connection(int fd);
/* FDSTOREREMOVE=1: systemd closes its copies of the fds stored under name. */
void supervisor_forget_fds(const char *name);
