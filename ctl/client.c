// SPDX-License-Identifier: MIT
/* Talking to echod's control socket: connect, send one line, read one JSON line. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctl.h"
#include "macro.h"
#include "proto.h"

/* Replies are bounded: `connections` with a million clients stays well below this. */
#define MAX_REPLY (512u * 1024 * 1024)

int client_connect(struct ctl_client *c, const char *path, const struct ctl_options *o)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	c->fd = -1;
	c->path = path;
	c->opts = o;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "echoctl: socket path %s is too long\n", path);
		return EXIT_USAGE;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "echoctl: socket: %s\n", strerror(errno));
		return EXIT_NOT_RUNNING;
	}
	if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
		return EXIT_OK;
	int e = errno;
	safe_close(c->fd);
	c->fd = -1;
	if (e == EACCES || e == EPERM) {
		fprintf(stderr,
			"echoctl: cannot connect to %s: %s (run as root, or as a member of "
			"the socket's group)\n",
			path, strerror(e));
		return EXIT_DENIED;
	}
	fprintf(stderr, "echoctl: cannot connect to %s: %s (is echod running?)\n", path,
		strerror(e));
	return EXIT_NOT_RUNNING;
}

void client_close(struct ctl_client *c)
{
	safe_close(c->fd);
	c->fd = -1;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready until deadline; returns 0, or an exit code after saying why. */
static int wait_fd(struct ctl_client *c, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = events};
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			fprintf(stderr, "echoctl: %s did not answer within %d s\n", c->path,
				c->opts->timeout_s);
			return EXIT_NOT_RUNNING;
		}
		int r = poll(&p, 1, (int) MIN(left, 1000000));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "echoctl: poll: %s\n", strerror(errno));
			return EXIT_NOT_RUNNING;
		}
	}
}

static int send_line(struct ctl_client *c, const char *request, int64_t deadline)
{
	size_t len = strlen(request), off = 0;
	char line[PROTO_MAX_REQUEST + 1];

	if (len + 1 > PROTO_MAX_REQUEST) {
		fprintf(stderr, "echoctl: request too long\n");
		return EXIT_USAGE;
	}
	snprintf(line, sizeof(line), "%s\n", request);
	len++;
	while (off < len) {
		int r = wait_fd(c, POLLOUT, deadline);
		if (r)
			return r;
		ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EINTR && errno != EAGAIN) {
			fprintf(stderr, "echoctl: sending to %s: %s\n", c->path, strerror(errno));
			return EXIT_NOT_RUNNING;
		}
		if (n > 0)
			off += (size_t) n;
	}
	return 0;
}

static int read_line(struct ctl_client *c, struct buf *b, int64_t deadline)
{
	for (;;) {
		if (memchr(buf_head(b), '\n', buf_size(b)))
			return 0;
		if (buf_size(b) > MAX_REPLY) {
			fprintf(stderr, "echoctl: reply from %s is too large\n", c->path);
			return EXIT_ECHOD_ERROR;
		}
		int r = wait_fd(c, POLLIN, deadline);
		if (r)
			return r;
		char *p = buf_reserve(b, 65536);
		if (!p) {
			fprintf(stderr, "echoctl: out of memory\n");
			return EXIT_ECHOD_ERROR;
		}
		ssize_t n = recv(c->fd, p, 65536, MSG_DONTWAIT);
		if (n == 0) {
			fprintf(stderr, "echoctl: %s closed the connection without a reply\n",
				c->path);
			return EXIT_NOT_RUNNING;
		}
		if (n < 0 && errno != EINTR && errno != EAGAIN) {
			fprintf(stderr, "echoctl: reading from %s: %s\n", c->path, strerror(errno));
			return EXIT_NOT_RUNNING;
		}
		if (n > 0)
			b->len += (size_t) n;
	}
}

int client_request(struct ctl_client *c, const char *request, json_object **ret)
{
	int64_t deadline = now_ms() + (int64_t) c->opts->timeout_s * 1000;
	struct buf b = {0};
	int r = send_line(c, request, deadline);

	if (r == 0)
		r = read_line(c, &b, deadline);
	if (r == 0) {
		const char *nl = memchr(buf_head(&b), '\n', buf_size(&b));
		json_tokener *tok = json_tokener_new();
		*ret = tok ? json_tokener_parse_ex(tok, buf_head(&b), (int) (nl - buf_head(&b)))
			   : NULL;
		if (!*ret || !json_object_is_type(*ret, json_type_object)) {
			fprintf(stderr, "echoctl: %s sent a reply that is not a JSON object\n",
				c->path);
			json_object_put(*ret);
			*ret = NULL;
			r = EXIT_ECHOD_ERROR;
		}
		if (tok)
			json_tokener_free(tok);
	}
	buf_free(&b);
	return r;
}

int client_check_reply(json_object *reply)
{
	json_object *ok;
	if (json_object_object_get_ex(reply, "ok", &ok) && json_object_get_boolean(ok))
		return EXIT_OK;
	const char *err = json_str(reply, "error");
	const char *code = json_str(reply, "code");
	fprintf(stderr, "echoctl: %s\n", *err ? err : "echod reported an error");
	if (strcmp(code, PROTO_CODE_DENIED) == 0)
		return EXIT_DENIED;
	if (strcmp(code, PROTO_CODE_USAGE) == 0)
		return EXIT_USAGE;
	return EXIT_ECHOD_ERROR;
}
