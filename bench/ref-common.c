// SPDX-License-Identifier: MIT
/*
 * Command line and listening socket for the reference servers. Both listen
 * with the largest backlog the kernel allows, as echod does, so that a burst
 * of connects measures the server and not the queue length.
 */
#include "ref-common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

void ref_parse(int argc, char **argv, const char *name, struct ref_opts *o)
{
	static const struct option longopts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"threads", required_argument, NULL, 't'},
	    {"reuseport", no_argument, NULL, 'r'},
	    {0},
	};
	int opt;

	*o = (struct ref_opts){.host = "127.0.0.1", .threads = 2};
	while ((opt = getopt_long(argc, argv, "H:p:t:r", longopts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			o->host = optarg;
			break;
		case 'p':
			o->port = atoi(optarg);
			break;
		case 't':
			o->threads = atoi(optarg);
			break;
		case 'r':
			o->reuseport = true;
			break;
		default:
			goto usage;
		}
	}
	if (optind == argc && o->port > 0 && o->port < 65536 && o->threads > 0 && o->threads <= 256)
		return;
usage:
	fprintf(stderr, "usage: %s --port PORT [--host ADDR] [--threads N] [--reuseport]\n", name);
	exit(1);
}

int ref_thread_epoll(const struct ref_opts *o, int shared, int *listen_fd)
{
	struct epoll_event ev = {.events = EPOLLIN | (o->reuseport ? 0u : EPOLLEXCLUSIVE),
				 .data.ptr = NULL};
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	*listen_fd = o->reuseport ? ref_listen(o, true, true) : shared;
	if (epfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, *listen_fd, &ev) < 0) {
		close(epfd);
		return -1;
	}
	return epfd;
}

int ref_listen(const struct ref_opts *o, bool reuseport, bool nonblock)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t) o->port)};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0 || inet_pton(AF_INET, o->host, &sin.sin_addr) != 1) {
		fprintf(stderr, "cannot listen on %s:%d\n", o->host, o->port);
		exit(1);
	}
	(void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		(void) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0 || listen(fd, SOMAXCONN) < 0) {
		fprintf(stderr, "cannot listen on %s:%d: %s\n", o->host, o->port, strerror(errno));
		exit(1);
	}
	return fd;
}

void ref_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
}
