/* SPDX-License-Identifier: MIT */
/*
 * What the reference servers share: their command line
 * (--host, --port, --threads), the listening socket and an epoll thread's set-up.
 */
#pragma once

#include <stdbool.h>

struct ref_opts {
	const char *host;
	int port;
	int threads;
	bool reuseport; /* ref-epoll: one SO_REUSEPORT listener per thread */
};

/* Parses argv or exits with a usage message. */
void ref_parse(int argc, char **argv, const char *name, struct ref_opts *o);
/* A listening TCP socket on o->host:o->port (non-blocking if asked), or exits. */
int ref_listen(const struct ref_opts *o, bool reuseport, bool nonblock);
/*
 * The epoll of one thread of an epoll server, watching its listener (data.ptr
 * NULL): its own SO_REUSEPORT socket with --reuseport, else shared with
 * EPOLLEXCLUSIVE. Sets *listen_fd; returns the epoll fd, or -1 with errno.
 */
int ref_thread_epoll(const struct ref_opts *o, int shared, int *listen_fd);
/* Raises the soft fd limit to the hard one, as echod does. */
void ref_raise_fd_limit(void);
