// SPDX-License-Identifier: MIT
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

static void describe_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *) sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *) sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "(family %d)", sa->sa_family);
	}
}

void listener_describe(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *) &ss, &sl) < 0) {
		snprintf(buf, len, "(fd %d)", fd);
		return;
	}
	describe_addr((struct sockaddr *) &ss, buf, len);
}

static int resolve(const char *host, int port, struct addrinfo **ret, char *err, size_t errlen)
{
	struct addrinfo hints = {
	    .ai_flags = AI_PASSIVE,
	    .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM,
	    .ai_protocol = IPPROTO_TCP,
	};
	char service[16];

	snprintf(service, sizeof(service), "%d", port);
	int r = getaddrinfo(host, service, &hints, ret);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve host \"%s\": %s", host,
			 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	return 0;
}

int listener_resolve(const char *host, int port, char *err, size_t errlen)
{
	struct addrinfo *ai;
	int r = resolve(host, port, &ai, err, errlen);
	if (r == 0)
		freeaddrinfo(ai);
	return r;
}

static bool is_ipv6_any(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *in6 = (const void *) sa;
	return sa->sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
}

static int open_one(const struct addrinfo *ai, char *err, size_t errlen)
{
	char where[64];
	int one = 1;
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);

	describe_addr(ai->ai_addr, where, sizeof(where));
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (ai->ai_family == AF_INET6) {
		/* "::" means every address, IPv4 too; a specific IPv6 address means only itself. */
		int v6only = !is_ipv6_any(ai->ai_addr);
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
			goto fail;
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	snprintf(err, errlen, "cannot listen on %s: %s", where, strerror(e));
	safe_close(fd);
	return -e;
}

int listener_open(const char *host, int port, int **ret_fds, char *err, size_t errlen)
{
	struct addrinfo *list, *ai;
	int r = resolve(host, port, &list, err, errlen);
	int *fds = NULL;
	int n = 0, max = 0;

	if (r < 0)
		return r;
	for (ai = list; ai; ai = ai->ai_next)
		max++;
	fds = calloc((size_t) max, sizeof(*fds));
	if (!fds) {
		freeaddrinfo(list);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (ai = list; ai; ai = ai->ai_next) {
		char why[256];
		int fd = open_one(ai, why, sizeof(why));
		if (fd >= 0) {
			fds[n++] = fd;
			continue;
		}
		/* A name with an IPv6 address on a host without IPv6 still serves IPv4. */
		if ((fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT) && max > 1) {
			log_warning("%s; serving the other addresses", why);
			snprintf(err, errlen, "%s", why);
			continue;
		}
		snprintf(err, errlen, "%s", why);
		r = fd;
		break;
	}
	freeaddrinfo(list);
	if (r < 0 || n == 0) {
		for (int i = 0; i < n; i++)
			safe_close(fds[i]);
		free(fds);
		return r < 0 ? r : -EADDRNOTAVAIL;
	}
	*ret_fds = fds;
	return n;
}

int listener_adopt(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	int fdfl = fcntl(fd, F_GETFD);
	if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}
