/* SPDX-License-Identifier: MIT */
/*
 * The control socket, served by the main thread's loop. Clients are
 * non-blocking and bounded (PROTO_MAX_CLIENTS, PROTO_MAX_REQUEST,
 * PROTO_TIMEOUT_MS), so a slow or hostile client cannot hold up another or
 * any worker. Requests that need the workers' data (connections, kill) are
 * asked of each worker with worker_call(); the reply is sent when the last
 * worker has answered, without blocking the main loop meanwhile.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "proto.h"
#include "stats.h"

struct server;
struct query;

struct control_client {
	int fd;
	struct control_client *prev, *next;
	struct buf in, out;
	int64_t deadline_ms; /* a request must arrive (or a reply leave) by then */
	uid_t uid;
	pid_t pid;
	bool admin;
	bool closing; /* disconnect once the reply is out */
	bool eof;     /* the client sent all it will */

	struct query *pending;
};

struct control {
	int listen_fd;
	bool accept_paused; /* out of fds: listen_fd is out of the epoll set until the next tick */

	char *path; /* the socket file we created, unlinked at exit; NULL if passed in */
	int query_fd;
	struct control_client *clients;
	int nclients;
	struct query *queries; /* in flight */
	gid_t admin_gid;
	bool has_admin_gid;
	struct stats_snapshot *baseline; /* per worker, at the last stats-reset */
	int64_t reset_ms;
	uint64_t requests, denied, errors;
};

/* control.c */
void control_reply(struct server *s, struct control_client *c, json_object *reply);
void control_reply_error(struct server *s, struct control_client *c, const char *code,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void control_apply_config(struct server *s);
void control_client_progress(struct server *s, struct control_client *c);

/* control-cmd.c: runs one parsed request; replies now or starts a query. */
void control_dispatch(struct server *s, struct control_client *c, const struct proto_request *r);
json_object *control_ok(void);
void control_stats_now(struct server *s, int worker, struct stats_snapshot *out);

/* control-query.c */
int control_query_connections(struct server *s, struct control_client *c);
int control_query_kill(struct server *s, struct control_client *c, uint64_t id);
void control_query_orphan(struct query *q);
void control_queries_done(struct server *s);
void control_queries_free(struct server *s);
