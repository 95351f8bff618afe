// SPDX-License-Identifier: MIT
/*
 * The control socket: creating or adopting it, accepting clients, reading
 * request lines, checking the peer's credentials, writing replies.
 */
#include "control.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "server-internal.h"

static int64_t now_ms(void)
{
	return monotonic_ms();
}

static int watch(struct server *s, int fd, uint32_t events, int op)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	return epoll_ctl(s->ep_fd, op, fd, &ev) < 0 ? -errno : 0;
}

/* A socket file left by a dead echod is removed; one that answers belongs to a live one. */
static int clear_stale_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
		return -EADDRINUSE;
	return unlink(path) < 0 ? -errno : 0;
}

static void make_parent_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *) 0)->sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		/* Only the last level: /run/echod when run by hand. EEXIST is the usual case. */
		(void) mkdir(dir, 0755);
	}
}

static int set_permissions(const struct echod_config *cfg)
{
	if (chmod(cfg->control_socket, (mode_t) cfg->control_socket_mode) < 0)
		return log_errno(errno, "cannot set mode %04o on %s", cfg->control_socket_mode,
				 cfg->control_socket);
	if (*cfg->control_socket_group) {
		struct group *g = getgrnam(cfg->control_socket_group);
		if (!g)
			return log_errno(ENOENT, "control_socket_group \"%s\"",
					 cfg->control_socket_group);
		if (chown(cfg->control_socket, (uid_t) -1, g->gr_gid) < 0)
			return log_errno(errno, "cannot give %s to group %s", cfg->control_socket,
					 cfg->control_socket_group);
	}
	return 0;
}

static int create_socket(struct server *s)
{
	const char *path = s->cfg.control_socket;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;

	make_parent_dir(path);
	int r = clear_stale_socket(path);
	if (r == -EADDRINUSE)
		return log_errno(EADDRINUSE,
				 "control socket %s is in use (is another echod running?)", path);
	if (r < 0)
		return log_errno(-r, "cannot replace %s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_errno(errno, "control socket");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	/* Created owner-only, then opened up to control_socket_mode: no window of wider access. */
	mode_t old = umask(0177);
	r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
	umask(old);
	if (r < 0)
		return log_errno(errno,
				 "cannot create control socket %s (set control_socket = \"\" "
				 "to run without one)",
				 path);
	if (listen(fd, 16) < 0)
		return log_errno(errno, "cannot listen on %s", path);
	s->control->path = strdup(path);
	if (!s->control->path)
		return log_errno(ENOMEM, "control socket");
	r = set_permissions(&s->cfg);
	if (r < 0)
		return r;
	return take_fd(&fd);
}

static void resolve_admin_group(struct server *s)
{
	struct control *ctl = s->control;
	ctl->has_admin_gid = false;
	if (*s->cfg.control_admin_group) {
		struct group *g = getgrnam(s->cfg.control_admin_group);
		if (g) {
			ctl->admin_gid = g->gr_gid;
			ctl->has_admin_gid = true;
		} else {
			log_warning("control_admin_group \"%s\" does not exist",
				    s->cfg.control_admin_group);
		}
	}
}

void control_apply_config(struct server *s)
{
	if (!s->control)
		return;
	resolve_admin_group(s);
	if (s->control->path && strcmp(s->control->path, s->cfg.control_socket) == 0)
		(void) set_permissions(&s->cfg);
}

int server_control_start(struct server *s)
{
	struct control *ctl;
	int fd;

	if (!*s->cfg.control_socket && s->act.control_fd < 0)
		return 0;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return log_errno(ENOMEM, "control socket");
	ctl->listen_fd = ctl->query_fd = -1;
	s->control = ctl;
	ctl->baseline = calloc((size_t) s->nworkers, sizeof(*ctl->baseline));
	ctl->query_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!ctl->baseline || ctl->query_fd < 0)
		return log_errno(ctl->query_fd < 0 ? errno : ENOMEM, "control socket");
	if (s->act.control_fd >= 0) {
		fd = take_fd(&s->act.control_fd);
		int r = listener_adopt(fd);
		if (r < 0) {
			safe_close(fd);
			return log_errno(-r, "socket activation: control fd");
		}
		log_info("control socket passed in by systemd; control_socket from the config is "
			 "not used");
	} else {
		fd = create_socket(s);
		if (fd < 0 && !s->cfg.control_socket_explicit) {
			/* Only the built-in default: e.g. run by hand without access to /run. */
			log_warning("running without a control socket; set control_socket in the "
				    "config to choose another path");
			return 0;
		}
		if (fd < 0)
			return fd;
	}

	ctl->listen_fd = fd;
	resolve_admin_group(s);
	int r = watch(s, ctl->listen_fd, EPOLLIN, EPOLL_CTL_ADD);
	if (r == 0)
		r = watch(s, ctl->query_fd, EPOLLIN, EPOLL_CTL_ADD);
	return r < 0 ? log_errno(-r, "control socket") : 0;
}

static void client_free(struct server *s, struct control_client *c)
{
	struct control *ctl = s->control;

	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->nclients--;
	if (c->pending)
		control_query_orphan(c->pending);
	safe_close(c->fd); /* leaves the epoll set with it */
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

/* Stops serving clients; the query eventfd stays until workers are gone (server_control_free). */
void server_control_stop(struct server *s)
{
	struct control *ctl = s->control;
	if (!ctl)
		return;
	while (ctl->clients)
		client_free(s, ctl->clients);
	if (ctl->listen_fd >= 0) {
		safe_close(ctl->listen_fd);
		ctl->listen_fd = -1;
	}
	if (ctl->path) {
		if (unlink(ctl->path) < 0 && errno != ENOENT)
			log_warning("cannot remove %s: %s", ctl->path, strerror(errno));
		free(ctl->path);
		ctl->path = NULL;
	}
}

void server_control_free(struct server *s)
{
	if (!s->control)
		return;
	server_control_stop(s);
	control_queries_free(s);
	safe_close(s->control->query_fd);
	free(s->control->baseline);
	free(s->control);
	s->control = NULL;
}

static bool in_groups(int fd, gid_t gid)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == gid)
			return true;
	return false;
}

static void identify_peer(struct server *s, struct control_client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	c->uid = (uid_t) -1;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->admin = cred.uid == 0 || cred.uid == geteuid() ||
		   (s->control->has_admin_gid &&
		    (cred.gid == s->control->admin_gid || in_groups(c->fd, s->control->admin_gid)));
}

static void refuse_busy(int fd)
{
	static const char msg[] = "{\"ok\":false,\"protocol\":1,\"code\":\"busy\","
				  "\"error\":\"too many control clients\"}\n";
	/* Best effort: the client is dropped either way. */
	(void) !send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	safe_close(fd);
}

/*
 * Out of fds or memory: the listener stays readable, and level-triggered
 * epoll would wake the main loop at once, again and again. Stop watching it;
 * the next tick (1 s) watches it again and the client waits in the backlog.
 */
static void pause_accepting(struct server *s, int err)
{
	struct control *ctl = s->control;

	log_ratelimited(LOG_LEVEL_WARNING, 10, "control socket: accept: %s; pausing for 1 s",
			strerror(err));
	if (!ctl->accept_paused && watch(s, ctl->listen_fd, 0, EPOLL_CTL_DEL) == 0)
		ctl->accept_paused = true;
}

static void resume_accepting(struct server *s)
{
	struct control *ctl = s->control;

	if (ctl->accept_paused && ctl->listen_fd >= 0 &&
	    watch(s, ctl->listen_fd, EPOLLIN, EPOLL_CTL_ADD) == 0)
		ctl->accept_paused = false;
}

static void accept_client(struct server *s)
{
	struct control *ctl = s->control;

	for (;;) {
		int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0) {
			if (errno != EAGAIN)
				pause_accepting(s, errno);
			return;
		}
		if (ctl->nclients >= PROTO_MAX_CLIENTS) {
			ctl->errors++;
			log_ratelimited(LOG_LEVEL_WARNING, 10,
					"control socket: more than %d clients; "
					"refusing",
					PROTO_MAX_CLIENTS);
			refuse_busy(fd);
			continue;
		}
		struct control_client *c = calloc(1, sizeof(*c));
		if (!c || watch(s, fd, EPOLLIN, EPOLL_CTL_ADD) < 0) {
			free(c);
			safe_close(fd);
			continue;
		}
		c->fd = fd;
		c->deadline_ms = now_ms() + PROTO_TIMEOUT_MS;
		identify_peer(s, c);
		c->next = ctl->clients;
		if (ctl->clients)
			ctl->clients->prev = c;
		ctl->clients = c;
		ctl->nclients++;
	}
}

static void update_events(struct server *s, struct control_client *c)
{
	uint32_t ev = 0;
	/* One request at a time: read the next only when the last reply is out. */
	if (!buf_empty(&c->out))
		ev = EPOLLOUT;
	else if (!c->pending && !c->eof)
		ev = EPOLLIN;
	(void) watch(s, c->fd, ev, EPOLL_CTL_MOD);
}

static int flush_client(struct control_client *c)
{
	while (!buf_empty(&c->out)) {
		ssize_t n =
		    send(c->fd, buf_head(&c->out), buf_size(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		buf_consume(&c->out, (size_t) n);
	}
	buf_free(&c->out);
	return 0;
}

void control_reply(struct server *s, struct control_client *c, json_object *reply)
{
	size_t len;
	const char *text;

	json_object_object_add(reply, "protocol", json_object_new_int(PROTO_VERSION));
	text = json_object_to_json_string_length(reply, JSON_C_TO_STRING_PLAIN, &len);
	if (!text || buf_append(&c->out, text, len) < 0 || buf_append(&c->out, "\n", 1) < 0)
		c->closing = true;
	json_object_put(reply);
	c->deadline_ms = now_ms() + PROTO_TIMEOUT_MS;
}

void control_reply_error(struct server *s, struct control_client *c, const char *code,
			 const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_object *o = json_object_new_object();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->control->errors++;
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "code", json_object_new_string(code));
	json_object_object_add(o, "error", json_object_new_string(msg));
	control_reply(s, c, o);
}

static bool permitted(struct server *s, struct control_client *c, const struct proto_request *r)
{
	bool needs_admin = r->cmd->access == PROTO_ADMIN ||
			   (strcmp(r->cmd->name, "log-level") == 0 && r->argc > 0);
	if (!needs_admin || c->admin)
		return true;
	s->control->denied++;
	log_notice("control: denied \"%s\" to uid %ld (pid %ld): not root, echod's user or "
		   "control_admin_group",
		   r->cmd->name, (long) c->uid, (long) c->pid);
	control_reply_error(s, c, PROTO_CODE_DENIED,
			    "permission denied: \"%s\" needs root, echod's own user or a member of "
			    "control_admin_group",
			    r->cmd->name);
	return false;
}

/* Handles complete lines in c->in, one at a time (the next waits for this reply). */
static void handle_requests(struct server *s, struct control_client *c)
{
	while (!c->pending && !c->closing && buf_empty(&c->out)) {
		const char *head = buf_head(&c->in);
		const char *nl = memchr(head, '\n', buf_size(&c->in));
		if (!nl) {
			if (buf_size(&c->in) >= PROTO_MAX_REQUEST) {
				control_reply_error(s, c, PROTO_CODE_USAGE,
						    "request longer than %d bytes",
						    PROTO_MAX_REQUEST);
				c->closing = true;
			}
			return;
		}
		struct proto_request req;
		char err[256];
		size_t len = (size_t) (nl - head);

		s->control->requests++;
		int r = proto_parse_request(head, len, &req, err, sizeof(err));
		if (r == -EPROTO) {
			/* Binary junk: not a control client; answer once and hang up. */
			control_reply_error(s, c, PROTO_CODE_USAGE, "%s", err);
			c->closing = true;
		} else if (r < 0)
			control_reply_error(s, c, PROTO_CODE_USAGE, "%s", err);

		else if (permitted(s, c, &req))
			control_dispatch(s, c, &req);
		buf_consume(&c->in, len + 1);
	}
}

static int read_client(struct control_client *c)
{
	char *p = buf_reserve(&c->in, PROTO_MAX_REQUEST);
	if (!p)
		return -ENOMEM;
	/* Read no more than completes one maximal request: the buffer stays bounded. */
	size_t room = PROTO_MAX_REQUEST - MIN(buf_size(&c->in), (size_t) PROTO_MAX_REQUEST);
	if (room == 0)
		return 0;
	ssize_t n = recv(c->fd, p, room, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		c->eof = true; /* requests already read are still answered */
	c->in.len += (size_t) n;
	return 0;
}

static bool has_request(const struct control_client *c)
{
	return memchr(buf_head(&c->in), '\n', buf_size(&c->in)) != NULL;
}

/* After any progress: answer what can be answered, send, then decide whether the client lives on.
 */
void control_client_progress(struct server *s, struct control_client *c)
{
	for (;;) {
		handle_requests(s, c);
		if (flush_client(c) < 0) {
			client_free(s, c);
			return;
		}
		if (c->pending || c->closing || !buf_empty(&c->out) || !has_request(c))
			break;
	}
	bool done = c->closing || (c->eof && !has_request(c));
	if (done && !c->pending && buf_empty(&c->out)) {
		client_free(s, c);
		return;
	}
	update_events(s, c);
}

static struct control_client *find_client(struct server *s, int fd)
{
	for (struct control_client *c = s->control->clients; c; c = c->next)
		if (c->fd == fd)
			return c;
	return NULL;
}

void server_control_event(struct server *s, int fd, uint32_t events)
{
	struct control *ctl = s->control;
	struct control_client *c;

	if (!ctl)
		return;
	if (fd == ctl->listen_fd) {
		accept_client(s);
		return;
	}
	if (fd == ctl->query_fd) {
		control_queries_done(s);
		return;
	}
	c = find_client(s, fd);
	if (!c)
		return;
	if ((events & EPOLLIN) && read_client(c) < 0) {
		client_free(s, c);
		return;
	}
	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
		client_free(s, c);
		return;
	}
	control_client_progress(s, c);
}

/* From the 1 s tick: drop clients that sent nothing complete, or read nothing, in time. */
void server_control_tick(struct server *s)
{
	int64_t now = now_ms();
	if (!s->control)
		return;
	resume_accepting(s);

	for (struct control_client *c = s->control->clients, *next; c; c = next) {
		next = c->next;
		if (c->pending || now < c->deadline_ms)
			continue;
		log_debug("control: client pid %ld timed out", (long) c->pid);
		if (buf_empty(&c->out) && !c->closing) {
			control_reply_error(s, c, PROTO_CODE_USAGE,
					    "timed out waiting for a request");
			c->closing = true;
			control_client_progress(s, c);
		} else {
			client_free(s, c);
		}
	}
}
