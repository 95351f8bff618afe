// SPDX-License-Identifier: MIT
/*
 * ref-threaded: a C transcription of the design echod replaces. The main
 * thread accepts; each client gets a thread of its own (default stack) that
 * loops on a blocking recv of up to 1024 bytes and sends that back, until the
 * client closes. No TCP_NODELAY, as in the original: a reply of several
 * 1024-byte pieces meets Nagle and the client's delayed ACK.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ref-common.h"

static void *serve(void *arg)
{
	int fd = (int) (intptr_t) arg;
	char buf[1024];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t s = send(fd, buf + off, (size_t) (n - off), MSG_NOSIGNAL);
			if (s < 0 && errno == EINTR)
				continue;
			if (s < 0)
				goto out;
			off += s;
		}
	}
out:
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct ref_opts o;
	pthread_attr_t attr;
	int lfd;

	ref_parse(argc, argv, "ref-threaded", &o);
	ref_raise_fd_limit();
	lfd = ref_listen(&o, false, false);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pthread_t th;
		if (fd < 0) {
			/* Out of fds: back off instead of spinning on the listener. */
			struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
			if (errno != EINTR && errno != ECONNABORTED)
				nanosleep(&ts, NULL);
			continue;
		}
		int r = pthread_create(&th, &attr, serve, (void *) (intptr_t) fd);
		if (r != 0) {
			fprintf(stderr, "ref-threaded: pthread_create: %s\n", strerror(r));
			close(fd);
		}
	}
}
