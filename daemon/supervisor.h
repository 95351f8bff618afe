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
