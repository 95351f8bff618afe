/* SPDX-License-Identifier: MIT */
/*
 * What the two reference servers share: their command line
 * (--host, --port, --threads) and opening the listening socket.
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
/* Raises the soft fd limit to the hard one, as echod does. */
void ref_raise_fd_limit(void);
