/* SPDX-License-Identifier: MIT */
/* Opening the TCP listening sockets from host and port, and naming them. */
#pragma once

#include <stddef.h>

/*
 * Resolves host and listens on every address it names (e.g. "localhost" gives
 * 127.0.0.1 and ::1; "::" is one dual-stack socket). Returns the number of
 * sockets, or -errno with a reason in err.
 */
int listener_open(const char *host, int port, int **ret_fds, char *err, size_t errlen);
/* Checks that host resolves, without binding (for echod -t). */
int listener_resolve(const char *host, int port, char *err, size_t errlen);
/* "127.0.0.1:7007" or "[::1]:7007" for a bound socket. */
void listener_describe(int fd, char *buf, size_t len);
/* Makes an inherited listener usable by the workers (non-blocking, close-on-exec). */
int listener_adopt(int fd);
