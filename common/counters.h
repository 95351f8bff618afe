/* SPDX-License-Identifier: MIT */
/*
 * The per-worker counters, listed once: echod's stats blocks, the control
 * replies, and echoctl's Prometheus HELP lines all expand this list.
 * X(name, help): monotonically increasing counters.
 */
#pragma once

#define WORKER_COUNTERS(X)                                                                         \
	X(connections_total, "Client connections accepted and served")                             \
	X(connections_rejected, "Connections closed at once because max_connections was reached")  \
	X(connections_timed_out, "Connections closed after idle_timeout without traffic")          \
	X(connections_adopted, "Connections taken over from a previous echod process")             \
	X(bytes_received, "Bytes read from clients")                                               \
	X(bytes_sent, "Bytes written to clients")                                                  \
	X(lines, "Lines answered in line mode")                                                    \
	X(lines_too_long, "Connections closed because a line exceeded max_line")                   \
	X(accept_errors, "accept() failures, e.g. out of file descriptors")
