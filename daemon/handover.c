// SPDX-License-Identifier: MIT
/*
 * DOC: handing live connections over across a restart.
 *
 * Stop (SIGTERM, preserve_connections, and systemd's fd store is there; see
 * supervisor_fd_store()): each worker stops accepting and reading, sends every
 * client what it is owed (bounded by shutdown_timeout; a client that does not
 * take its bytes is closed), and parks the connection. When nothing but parked
 * connections is left, the worker sends them over a socket pair of its own,
 * STORE_BATCH fds per message (the kernel passes at most 253), and stores the
 * receiving end with FDSTORE=1, FDNAME=connq, FDPOLL=0: the clients stay in
 * flight in that socket's queue, held by systemd, until the next echod reads
 * them. One stored fd per worker, not one per client: systemd 252 compares
 * each new fd with every stored one (same_fd()), which took PID 1 over a
 * minute for 10,000 fds stored one by one. What clients send meanwhile waits
 * in the kernel's socket buffers, which live on with the sockets.
 *
 * Unfinished lines (line mode): the bytes of a line that has no LF yet are in
 * the worker's framer, not in the socket. The worker writes them to a memfd,
 * stored first under FDNAME=connstate: a header, then per connection the
 * socket's device and inode number (the same socket in any process) and the
 * bytes. Layout, native byte order (it never leaves the machine):
 *   struct state_header, then per entry struct state_entry and len bytes.
 * A new version bumps STATE_VERSION; an unknown one is ignored with a warning
 * (its lines lose their first part).
 *
 * Start: supervisor.c takes the fds named connq, connstate and conn (a
 * connection stored on its own, as a tool may); handover_adopt() empties the
 * queues, reads the memfds, spreads the connections over the workers round-robin
 * (each continues with its unfinished line and reads what arrived meanwhile)
 * and sends FDSTOREREMOVE=1 for the names it was passed, so systemd closes
 * its copies: a client that leaves later really is closed, and the next start
 * is not passed stale sockets.
 *
 * When the queue cannot be filled or stored, the connections not handed over
 * are drained as usual (replies flushed, FIN, linger). systemd 252 gives no
 * answer when its store is full (FileDescriptorStoreMax=): it closes what does
 * not fit. echod needs two slots per worker (connq, connstate); systemd 254+
 * says the store's size in $FDSTORE, and echod stores no more than that.
 */
#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "server-internal.h"
#include "server.h"
#include "supervisor.h"
#include "worker.h"

#define STORE_BATCH   250 /* fds per FDSTORE message; SCM_MAX_FD is 253 */
#define STATE_MAGIC   "echodcs"
#define STATE_VERSION 1
#define STATE_MAX     (256u << 20) /* larger memfds are not ours */

struct state_header {
	char magic[8];
	uint32_t version;
	uint32_t count;
};

struct state_entry {
	uint64_t dev, ino;
	uint32_t len, reserved;
};

/* One unfinished line found in a connstate memfd; bytes point into its copy. */
struct partial {
	uint64_t dev, ino;
	const char *bytes;
	size_t len;
};

/* Slots left in the fd store, shared by the workers; SIZE_MAX when unknown. */
static _Atomic size_t store_budget;

bool handover_possible(const struct server *s)
{
	size_t max;
	const char *why;

	if (!s->cfg.preserve_connections)
		return false;
	if (!supervisor_fd_store(&max, &why)) {
		log_notice("connections are not preserved across the restart: %s", why);
		return false;
	}
	atomic_store(&store_budget, max);
	return true;
}

void handover_begin(struct worker *w, void *unused)
{
	w->handover = true;
	worker_begin_drain(w, unused);
}

/* Reserves up to want slots in the store; returns how many were granted. */
static size_t reserve_slots(size_t want)
{
	size_t have = atomic_load(&store_budget), take;

	do {
		if (have == SIZE_MAX)
			return want;
		take = MIN(have, want);
	} while (!atomic_compare_exchange_weak(&store_budget, &have, have - take));
	return take;
}

static int append_entry(struct buf *b, int fd, const struct framer *f)
{
	struct stat st;
	struct state_entry e = {.len = (uint32_t) framer_pending(f)};

	if (fstat(fd, &st) < 0)
		return -errno;
	e.dev = (uint64_t) st.st_dev;
	e.ino = (uint64_t) st.st_ino;
	if (buf_append(b, &e, sizeof(e)) < 0 || buf_append(b, buf_head(&f->partial), e.len) < 0)
		return -ENOMEM;
	return 1;
}

/* Fills b with the connstate image of the first n parked connections; 0 when none has a partial. */
static int build_state(struct worker *w, size_t n, struct buf *b)
{
	struct state_header h = {.magic = STATE_MAGIC, .version = STATE_VERSION};
	struct conn *c = w->parked.head;

	if (buf_append(b, &h, sizeof(h)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n && c; i++, c = c->next) {
		if (framer_pending(&c->framer) == 0)
			continue;
		int r = append_entry(b, c->fd, &c->framer);
		if (r < 0)
			return r;
		h.count++;
	}
	memcpy(b->data + b->off, &h, sizeof(h));
	return h.count > 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t) k;
	}
	return 0;
}

/* Stores the unfinished lines of the first n parked connections. */
static int store_state(struct worker *w, size_t n)
{
	struct buf b = {0};
	int r = build_state(w, n, &b);

	if (r <= 0) {
		buf_free(&b);
		return r;
	}
	_cleanup_close_ int fd = memfd_create("echod-connstate", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	r = fd < 0 ? -errno : write_all(fd, buf_head(&b), buf_size(&b));
	buf_free(&b);
	if (r < 0)
		return r;
	/* Sealed: the next echod reads exactly what was written. Not fatal. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		log_debug("connstate memfd: cannot seal: %s", strerror(errno));
	r = supervisor_store_fds("connstate", &fd, 1);
	return r < 0 ? r : r == 0 ? -ENOTCONN : 0;
}

static bool any_partial(const struct worker *w)
{
	for (const struct conn *c = w->parked.head; c; c = c->next)
		if (framer_pending(&c->framer) > 0)
			return true;
	return false;
}

/* One message: a byte, and n fds as SCM_RIGHTS. */
static int send_fds(int sock, const int *fds, size_t n)
{
	char byte = 'c';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * STORE_BATCH)];
	} u;
	struct msghdr mh = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = u.buf,
	    .msg_controllen = CMSG_SPACE(sizeof(int) * n),
	};
	ssize_t r;

	memset(&u, 0, sizeof(u));
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

/*
 * Puts the first n parked connections in flight on a new socket pair, in
 * messages of STORE_BATCH fds, and stores its receiving end: one fd in the
 * store however many clients. Returns how many were handed over; ours are
 * closed only once the store has the queue, so the rest can still drain.
 */
static size_t store_conns(struct worker *w, size_t n)
{
	int sp[2];
	size_t sent = 0;
	struct conn *c = w->parked.head;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		log_error("worker %d: socketpair: %s", w->index, strerror(errno));
		return 0;
	}
	while (sent < n && c) {
		int fds[STORE_BATCH];
		size_t k = 0;
		for (; c && k < STORE_BATCH && sent + k < n; c = c->next)
			fds[k++] = c->fd;
		int r = send_fds(sp[1], fds, k);
		if (r < 0) {
			log_error("worker %d: cannot queue %zu connections for the fd store: %s",
				  w->index, n - sent, strerror(-r));
			break;
		}
		sent += k;
	}
	safe_close(sp[1]);
	int r = sent > 0 ? supervisor_store_fds("connq", &sp[0], 1) : 1;
	safe_close(sp[0]); /* systemd has its own copy, or the queued fds go with it */
	if (r <= 0) {
		log_error("worker %d: cannot hand %zu connections to the fd store: %s", w->index,
			  sent, r < 0 ? strerror(-r) : "no notify socket");
		return 0;
	}
	/* systemd holds the sockets now; ours are closed without a FIN. */
	for (size_t i = 0; i < sent; i++)
		conn_close(w, w->parked.head);
	return sent;
}

void handover_store(struct worker *w)
{
	size_t total = w->parked.count, stored = 0;
	bool state = any_partial(w);

	w->handover = false; /* whatever is left drains as usual */
	if (reserve_slots(1 + state) < 1 + (size_t) state) {
		log_error("worker %d: the fd store is full; draining %zu connections", w->index,
			  total);
	} else {
		int r = state ? store_state(w, total) : 0;
		if (r < 0)
			log_error("worker %d: cannot store unfinished lines: %s; draining instead",
				  w->index, strerror(-r));
		else
			stored = store_conns(w, total);
	}
	if (stored < total) {
		log_warning("worker %d: %zu connections not handed over; draining them", w->index,
			    total - stored);
		/* A fallback linger needs time even past the deadline. */
		w->drain_deadline_ms = MAX(w->drain_deadline_ms, w->now_ms + 2000);
	}
	while (w->parked.head)
		conn_unpark(w, w->parked.head);
	log_info("worker %d: handed %zu connections to systemd's fd store", w->index, stored);
}

/* ---- start: adoption ---- */

static int cmp_partial(const void *a, const void *b)
{
	const struct partial *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* Reads one connstate memfd whole into *ret_data; appends its entries to *p. */
static int read_state(int fd, char **ret_data, struct partial **p, size_t *np)
{
	struct stat st;
	struct state_header h;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < (off_t) sizeof(h) || st.st_size > (off_t) STATE_MAX)
		return -EBADMSG;
	size_t size = (size_t) st.st_size;
	char *d = malloc(size);
	if (!d)
		return -ENOMEM;
	*ret_data = d;
	ssize_t k = pread(fd, d, size, 0);
	if (k != (ssize_t) size)
		return k < 0 ? -errno : -EBADMSG;
	memcpy(&h, d, sizeof(h));
	if (memcmp(h.magic, STATE_MAGIC, sizeof(h.magic)) != 0 || h.version != STATE_VERSION)
		return -EPROTONOSUPPORT;
	struct partial *grown = realloc(*p, (*np + h.count) * sizeof(**p));
	if (!grown)
		return -ENOMEM;
	*p = grown;
	for (size_t off = sizeof(h), i = 0; i < h.count; i++) {
		struct state_entry e;
		if (size - off < sizeof(e))
			return -EBADMSG;
		memcpy(&e, d + off, sizeof(e));
		off += sizeof(e);
		if (size - off < e.len)
			return -EBADMSG;
		(*p)[(*np)++] = (struct partial){e.dev, e.ino, d + off, e.len};
		off += e.len;
	}
	return 0;
}

static const struct partial *find_partial(const struct partial *p, size_t n, int fd)
{
	struct stat st;
	if (n == 0 || fstat(fd, &st) < 0)
		return NULL;
	struct partial key = {.dev = (uint64_t) st.st_dev, .ino = (uint64_t) st.st_ino};
	return bsearch(&key, p, n, sizeof(*p), cmp_partial);
}

/* Hands fd to worker w; takes fd in every case. */
static int adopt_one(struct server *s, struct worker *w, int fd, const struct partial *p)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int flags = fcntl(fd, F_GETFL);
	int r = 0;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		r = -errno;
	else if (!server_admit_connection(s))
		r = -EMFILE;
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	if (getpeername(fd, (struct sockaddr *) &peer, &len) < 0)
		len = 0; /* reset meanwhile: the worker finds out */
	r = worker_give_connection(w, fd, &peer, len, true, p ? p->bytes : NULL, p ? p->len : 0);
	if (r < 0) {
		server_release_connection(s);
		safe_close(fd);
	}
	return r;
}

static size_t load_states(const struct activation *act, char **data, struct partial **p)
{
	size_t np = 0;

	for (size_t i = 0; i < act->nstate; i++) {
		int r = read_state(act->state_fds[i], &data[i], p, &np);
		if (r < 0)
			log_warning("fd store: ignoring a connstate memfd: %s", strerror(-r));
	}
	if (np > 1)
		qsort(*p, np, sizeof(**p), cmp_partial);
	return np;
}

/* Appends fd to the connections to adopt, or closes it. */
static void take_conn(struct activation *act, int fd)
{
	int *p = realloc(act->conn_fds, (act->nconn + 1) * sizeof(*p));

	if (!p || !supervisor_is_tcp_connection(fd)) {
		log_warning("fd store: a queued fd is %s; closing it",
			    p ? "not a connected TCP socket" : "beyond memory");
		safe_close(fd);
	} else {
		p[act->nconn++] = fd;
	}
	if (p)
		act->conn_fds = p;
}

/* Receives every fd in flight on a connq socket (its sender is gone: EOF ends it). */
static void drain_queue(struct activation *act, int sock)
{
	for (;;) {
		char byte;
		struct iovec iov = {.iov_base = &byte, .iov_len = 1};
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * 253)];
		} u;
		struct msghdr mh = {
		    .msg_iov = &iov,
		    .msg_iovlen = 1,
		    .msg_control = u.buf,
		    .msg_controllen = sizeof(u.buf),
		};
		ssize_t r = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN)
			log_warning("fd store: reading a connq: %s", strerror(errno));
		if (r <= 0)
			return;
		if (mh.msg_flags & MSG_CTRUNC)
			log_warning("fd store: a connq message lost fds");
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < nfd; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
				take_conn(act, fd);
			}
		}
	}
}

void handover_adopt(struct server *s)
{
	struct activation *act = &s->act;
	if (act->nconn == 0 && act->nstate == 0 && act->nqueue == 0)
		return;
	bool direct = act->nconn > 0;
	for (size_t i = 0; i < act->nqueue; i++) {
		drain_queue(act, act->queue_fds[i]);
		safe_close(act->queue_fds[i]);
	}
	char **data = calloc(act->nstate ? act->nstate : 1, sizeof(*data));
	struct partial *p = NULL;
	size_t np = data ? load_states(act, data, &p) : 0, adopted = 0, with_line = 0;
	const char *first_error = NULL;

	for (size_t i = 0; i < act->nconn; i++) {
		const struct partial *part = find_partial(p, np, act->conn_fds[i]);
		int r = adopt_one(s, s->workers[i % (size_t) s->nworkers], act->conn_fds[i], part);
		if (r < 0 && !first_error)
			first_error = r == -EMFILE ? "max_connections reached" : strerror(-r);
		adopted += r == 0;
		with_line += r == 0 && part;
	}
	if (adopted < act->nconn)
		log_warning("fd store: closed %zu of %zu passed connections (%s)",
			    act->nconn - adopted, act->nconn, first_error);
	act->nconn = 0; /* taken */
	/* systemd would keep them (and pass them again) until told otherwise. */
	if (direct)
		supervisor_forget_fds("conn");
	if (act->nqueue)
		supervisor_forget_fds("connq");
	act->nqueue = 0;
	if (act->nstate)
		supervisor_forget_fds("connstate");
	for (size_t i = 0; i < act->nstate; i++) {
		safe_close(act->state_fds[i]);
		free(data ? data[i] : NULL);
	}
	act->nstate = 0;
	free(data);
	free(p);
	log_notice("adopted %zu connection%s from the previous echod (%zu with an unfinished line)",
		   adopted, adopted == 1 ? "" : "s", with_line);
}
