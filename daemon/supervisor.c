// SPDX-License-Identifier: MIT
#include "supervisor.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

static int push_fd(int **fds, size_t *n, int fd)
{
	int *p = realloc(*fds, (*n + 1) * sizeof(**fds));
	if (!p)
		return -ENOMEM;
	p[(*n)++] = fd;
	*fds = p;
	return 0;
}

static bool is_tcp_listener(int fd)
{
	return sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0;
}

static bool is_unix_listener(int fd)
{
	return sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0;
}

bool supervisor_is_tcp_connection(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	return sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 0) > 0 &&
	       getpeername(fd, (struct sockaddr *) &ss, &len) == 0 &&
	       (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

static bool is_regular_file(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static void refuse(int fd, const char *name, const char *expected)
{
	log_error("socket activation: fd %d named \"%s\" is not %s; closing it", fd, name,
		  expected);
	safe_close(fd);
}

static int take_one(struct activation *a, int fd, const char *name)
{
	/* systemd names unnamed fds "unknown"; systemd-socket-activate without --fdname too. */
	if (strcmp(name, "echo") == 0 || strcmp(name, "unknown") == 0 || *name == '\0') {
		if (!is_tcp_listener(fd)) {
			refuse(fd, name, "a listening TCP socket");
			return 0;
		}
		int r = listener_adopt(fd);
		if (r < 0)
			return log_errno(-r, "socket activation: fd %d", fd);
		return push_fd(&a->echo_fds, &a->necho, fd);
	}
	if (strcmp(name, "control") == 0) {
		if (!is_unix_listener(fd) || a->control_fd >= 0) {
			refuse(fd, name,
			       a->control_fd >= 0 ? "the only control socket"
						  : "a listening Unix stream socket");
			return 0;
		}
		a->control_fd = fd;
		return 0;
	}
	/* Connections a previous echod handed to the fd store; see handover.c. */
	if (strcmp(name, "conn") == 0) {
		if (!supervisor_is_tcp_connection(fd)) {
			log_warning("fd store: fd %d named \"conn\" is not a connected TCP socket; "
				    "closing it",
				    fd);
			safe_close(fd);
			return 0;
		}
		return push_fd(&a->conn_fds, &a->nconn, fd);
	}
	if (strcmp(name, "connq") == 0) {
		if (sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 0) <= 0) {
			log_warning("fd store: fd %d named \"connq\" is not a Unix stream socket; "
				    "closing it",
				    fd);
			safe_close(fd);
			return 0;
		}
		return push_fd(&a->queue_fds, &a->nqueue, fd);
	}
	if (strcmp(name, "connstate") == 0) {
		if (!is_regular_file(fd)) {
			log_warning("fd store: fd %d named \"connstate\" is not a file; closing it",
				    fd);
			safe_close(fd);
			return 0;
		}
		return push_fd(&a->state_fds, &a->nstate, fd);
	}
	log_warning("socket activation: fd %d has unknown name \"%s\"; closing it", fd, name);
	safe_close(fd);
	return 0;
}

int supervisor_take_fds(struct activation *a)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	int r = 0;

	*a = (struct activation){.control_fd = -1};
	if (n < 0)
		return log_errno(-n, "socket activation: cannot read passed fds");
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (r == 0)
			r = take_one(a, fd, names && names[i] ? names[i] : "");
		else
			safe_close(fd);
	}
	if (names)
		for (int i = 0; i < n; i++)
			free(names[i]);
	free(names);
	if (r < 0)
		activation_done(a);
	return r;
}

void activation_done(struct activation *a)
{
	for (size_t i = 0; i < a->necho; i++)
		safe_close(a->echo_fds[i]);
	safe_close(a->control_fd);
	for (size_t i = 0; i < a->nconn; i++)
		safe_close(a->conn_fds[i]);
	for (size_t i = 0; i < a->nstate; i++)
		safe_close(a->state_fds[i]);
	for (size_t i = 0; i < a->nqueue; i++)
		safe_close(a->queue_fds[i]);
	free(a->queue_fds);
	free(a->echo_fds);
	free(a->conn_fds);
	free(a->state_fds);
	*a = (struct activation){.control_fd = -1};
}

/*
 * sd_notify() opens a socket for every message, so once echod is out of file
 * descriptors every message, watchdog pings included, would fail, and systemd
 * would kill a daemon that is riding out EMFILE on purpose. One socket,
 * opened at start-up, serves every message instead.
 */
static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addr_len;

int supervisor_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t len = e ? strlen(e) : 0;

	/* A path or an abstract "@name"; anything else is left to sd_notify(). */
	if (!e || (e[0] != '/' && e[0] != '@') || len < 2 || len >= sizeof(notify_addr.sun_path))
		return 0;
	notify_addr = (struct sockaddr_un){.sun_family = AF_UNIX};
	memcpy(notify_addr.sun_path, e, len);
	if (e[0] == '@')
		notify_addr.sun_path[0] = '\0';
	notify_addr_len =
	    (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (e[0] == '/' ? 1 : 0));
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0)
		return log_errno(errno, "cannot open a socket for NOTIFY_SOCKET");
	return 0;
}

void supervisor_done(void)
{
	safe_close(notify_fd);
	notify_fd = -1;
}

static void notify(const char *msg)
{
	int r;

	if (notify_fd >= 0) {
		ssize_t n;
		do
			n = sendto(notify_fd, msg, strlen(msg), MSG_NOSIGNAL,
				   (struct sockaddr *) &notify_addr, notify_addr_len);
		while (n < 0 && errno == EINTR);
		r = n < 0 ? -errno : 0;
	} else {
		r = sd_notify(0, msg);
	}
	if (r < 0)
		log_ratelimited(LOG_LEVEL_WARNING, 60, "sd_notify: %s", strerror(-r));
}

void supervisor_status(const char *fmt, ...)
{
	char msg[512] = "STATUS=";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
	va_end(ap);
	/* A newline would start another assignment in the notify datagram. */
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	notify(msg);
}

void supervisor_ready(void)
{
	notify("READY=1");
}

void supervisor_reloading(void)
{
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Both in one datagram: systemd 253+ requires MONOTONIC_USEC with RELOADING=1. */
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long) ts.tv_sec * 1000000ULL +
		     (unsigned long long) ts.tv_nsec / 1000);
	notify(msg);
}

void supervisor_stopping(void)
{
	notify("STOPPING=1");
}

uint64_t supervisor_watchdog_usec(void)
{
	uint64_t usec = 0;
	/* Keep WATCHDOG_USEC in the environment: nothing we exec needs it, and 0 unsets nothing. */
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}

void supervisor_watchdog_ping(void)
{
	notify("WATCHDOG=1");
}

/*
 * systemd (248+) sets SYSTEMD_EXEC_PID to the pid it started. A NOTIFY_SOCKET
 * alone may be a test's or be inherited; handing connections to a socket that
 * is not systemd's would lose them.
 */
static bool started_by_systemd(void)
{
	const char *v = getenv("SYSTEMD_EXEC_PID");
	char *end;

	if (!v)
		return false;
	errno = 0;
	long pid = strtol(v, &end, 10);
	return errno == 0 && end != v && *end == '\0' && pid == (long) getpid();
}

bool supervisor_fd_store(size_t *ret_max, const char **ret_why)
{
	const char *max = getenv("FDSTORE");

	*ret_max = 0;
	*ret_why = NULL;
	if (!getenv("NOTIFY_SOCKET")) {
		*ret_why = "not started by systemd (no NOTIFY_SOCKET)";
		return false;
	}
	if (max) {
		/* systemd 254+: the unit's FileDescriptorStoreMax=, set only when not 0. */
		char *end;
		errno = 0;
		unsigned long long v = strtoull(max, &end, 10);
		if (errno || end == max || *end || v == 0) {
			*ret_why = "the unit has no fd store (FDSTORE)";
			return false;
		}
		*ret_max = v > SIZE_MAX ? SIZE_MAX : (size_t) v;
		return true;
	}
	if (!started_by_systemd()) {
		*ret_why = "not a systemd service's main process (SYSTEMD_EXEC_PID)";
		return false;
	}
	*ret_max = SIZE_MAX; /* systemd 252 does not say: FileDescriptorStoreMax= must suffice */
	return true;
}

int supervisor_store_fds(const char *name, const int *fds, size_t n)
{
	char msg[128];

	/* FDPOLL=0: a connq's peer is closed, and systemd would drop it for that. */
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s\nFDPOLL=0", name);
	return sd_pid_notify_with_fds(0, 0, msg, fds, (unsigned) n);
}

void supervisor_forget_fds(const char *name)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	notify(msg);
}
