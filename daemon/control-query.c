// SPDX-License-Identifier: MIT
/*
 * Questions the main thread asks every worker: the rows of its connections,
 * or to close one. Each worker answers into its own slot on its own thread;
 * the last one to finish wakes the main loop through the query eventfd. A
 * query whose client went away is orphaned and freed when it completes, never
 * before (workers may still be writing to it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "control.h"
#include "log.h"
#include "server-internal.h"

enum query_kind {
	QUERY_CONNECTIONS,
	QUERY_KILL,
};

struct query {
	enum query_kind kind;
	_Atomic int remaining;
	int query_fd;
	struct control_client *client; /* NULL once orphaned */
	struct query *next;	       /* in control->queries */
	uint64_t kill_id;
	_Atomic bool killed;
	struct row_set *sets; /* per worker */
	int nworkers;
};

/*
 * What a worker copies out per connection: plain data, so the worker spends
 * no time on JSON; the main thread formats it.
 */
struct conn_row {
	uint64_t id, bytes_in, bytes_out, pending;
	int64_t age_ms, idle_ms;
	int thread;
	enum echo_mode mode;
	const char *state;
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} peer;
};

struct row_set {
	struct conn_row *rows;
	size_t n;
};

static void peer_string(const struct conn_row *c, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (c->peer.sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &c->peer.in4.sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(c->peer.in4.sin_port));
	} else if (c->peer.sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &c->peer.in6.sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(c->peer.in6.sin6_port));
	} else {
		snprintf(buf, len, "unknown");
	}
}

static const char *state_name(const struct conn *c)
{
	switch (c->state) {
	case CONN_OPEN:
		return buf_empty(&c->out) ? "open" : "sending";
	case CONN_FLUSHING:
	case CONN_HANDOVER: /* stopping: the control socket is closed by then */
	case CONN_PARKED:
		return "flushing";
	case CONN_LINGERING:
		return "closing";
	}
	return "?";
}

static json_object *row_json(const struct conn_row *r)
{
	json_object *o = json_object_new_object();
	char peer[80];

	peer_string(r, peer, sizeof(peer));
	json_object_object_add(o, "id", json_object_new_uint64(r->id));
	json_object_object_add(o, "peer", json_object_new_string(peer));
	json_object_object_add(o, "thread", json_object_new_int(r->thread));
	json_object_object_add(o, "age_seconds",
			       json_object_new_uint64((uint64_t) r->age_ms / 1000));
	json_object_object_add(o, "idle_seconds",
			       json_object_new_uint64((uint64_t) r->idle_ms / 1000));
	json_object_object_add(o, "bytes_received", json_object_new_uint64(r->bytes_in));
	json_object_object_add(o, "bytes_sent", json_object_new_uint64(r->bytes_out));
	json_object_object_add(o, "pending_bytes", json_object_new_uint64(r->pending));
	json_object_object_add(o, "mode", json_object_new_string(config_mode_name(r->mode)));
	json_object_object_add(o, "state", json_object_new_string(r->state));
	return o;
}

static void fill_row(const struct worker *w, const struct conn *c, struct conn_row *r)
{
	*r = (struct conn_row){
	    .id = c->id,
	    .bytes_in = c->bytes_in,
	    .bytes_out = c->bytes_out,
	    .pending = buf_size(&c->out) + buf_size(&c->in),
	    .age_ms = w->now_ms - c->created_ms,
	    .idle_ms = w->now_ms - c->last_active_ms,
	    .thread = w->index,
	    .mode = c->mode,
	    .state = state_name(c),
	};
	memcpy(&r->peer, &c->peer, sizeof(r->peer));
}

static void finish(struct query *q)
{
	uint64_t one = 1;
	/* Read before the decrement: once remaining reaches 0 the main loop may free q
	 * (woken by another query's answer) before this write. */
	int fd = q->query_fd;

	if (atomic_fetch_sub(&q->remaining, 1) == 1)
		(void) !write(fd, &one, sizeof(one));
}

static void list_connections(struct worker *w, void *arg)
{
	struct query *q = arg;
	struct row_set *set = &q->sets[w->index];
	const struct conn_list *lists[] = {&w->active, &w->lingering};
	size_t n = w->active.count + w->lingering.count;

	w->now_ms = monotonic_ms();
	set->rows = n ? calloc(n, sizeof(*set->rows)) : NULL;
	for (size_t i = 0; set->rows && i < ARRAY_SIZE(lists); i++)
		for (const struct conn *c = lists[i]->head; c; c = c->next)
			fill_row(w, c, &set->rows[set->n++]);
	finish(q);
}

static void kill_connection(struct worker *w, void *arg)
{
	struct query *q = arg;
	struct conn_list *lists[] = {&w->active, &w->lingering};

	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		for (struct conn *c = lists[i]->head; c; c = c->next)
			if (c->id == q->kill_id) {
				log_info("connection %llu closed on request",
					 (unsigned long long) c->id);
				conn_close(w, c);
				atomic_store(&q->killed, true);
				goto done;
			}
done:
	finish(q);
}

static void query_free(struct query *q)
{
	if (q->sets)
		for (int i = 0; i < q->nworkers; i++)
			free(q->sets[i].rows);
	free(q->sets);
	free(q);
}

static int start_query(struct server *s, struct control_client *c, struct query *q, worker_fn fn)
{
	q->nworkers = s->nworkers;
	q->query_fd = s->control->query_fd;
	q->client = c;
	q->sets = calloc((size_t) s->nworkers, sizeof(*q->sets));
	if (!q->sets) {
		query_free(q);
		return -ENOMEM;
	}
	atomic_init(&q->remaining, s->nworkers);
	q->next = s->control->queries;
	s->control->queries = q;
	c->pending = q;
	for (int i = 0; i < s->nworkers; i++)
		if (worker_call(s->workers[i], fn, q) < 0)
			finish(q); /* that worker's part stays empty */
	return 0;
}

int control_query_connections(struct server *s, struct control_client *c)
{
	struct query *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->kind = QUERY_CONNECTIONS;
	return start_query(s, c, q, list_connections);
}

int control_query_kill(struct server *s, struct control_client *c, uint64_t id)
{
	struct query *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->kind = QUERY_KILL;
	q->kill_id = id;
	return start_query(s, c, q, kill_connection);
}

void control_query_orphan(struct query *q)
{
	q->client = NULL;
}

static void answer(struct server *s, struct query *q)
{
	struct control_client *c = q->client;

	c->pending = NULL;
	if (q->kind == QUERY_KILL) {
		if (atomic_load(&q->killed))
			control_reply(s, c, control_ok());
		else
			control_reply_error(s, c, PROTO_CODE_NOT_FOUND, "no connection %llu",
					    (unsigned long long) q->kill_id);
	} else {
		json_object *o = control_ok();
		json_object *all = json_object_new_array();
		for (int i = 0; i < q->nworkers; i++)
			for (size_t j = 0; j < q->sets[i].n; j++)
				json_object_array_add(all, row_json(&q->sets[i].rows[j]));
		json_object_object_add(o, "connections", all);
		control_reply(s, c, o);
	}
	control_client_progress(s, c);
}

void control_queries_done(struct server *s)
{
	uint64_t v;
	struct query **pp = &s->control->queries;

	(void) !read(s->control->query_fd, &v, sizeof(v));
	while (*pp) {
		struct query *q = *pp;
		if (atomic_load(&q->remaining) > 0) {
			pp = &q->next;
			continue;
		}
		*pp = q->next;
		if (q->client)
			answer(s, q);
		query_free(q);
	}
}

/* After the workers are joined every query has completed; free what is left. */
void control_queries_free(struct server *s)
{
	while (s->control->queries) {
		struct query *q = s->control->queries;
		s->control->queries = q->next;
		query_free(q);
	}
}
