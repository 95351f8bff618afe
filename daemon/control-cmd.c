// SPDX-License-Identifier: MIT
/*
 * Control commands: each builds one JSON reply. Counters are summed from the
 * workers' blocks (read-only, relaxed loads) minus the baseline taken at the
 * last stats-reset, so reading never changes them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-config.h"
#include "control.h"
#include "log.h"
#include "server-internal.h"

json_object *control_ok(void)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static void add_u64(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static void add_str(json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v));
}

void control_stats_now(struct server *s, int worker, struct stats_snapshot *out)
{
	stats_read(&s->workers[worker]->stats, out);
	stats_subtract(out, &s->control->baseline[worker]);
}

static void add_counters(json_object *o, const struct stats_snapshot *st)
{
#define X(name, help) add_u64(o, #name, st->name);
	WORKER_COUNTERS(X)
#undef X
	add_u64(o, "connections_active", st->connections_active);
}

/*
 * One read of every worker's block: the totals and the per-thread rows of a
 * reply come from the same snapshot, so they always add up.
 */
static struct stats_snapshot *snapshot_all(struct server *s, struct stats_snapshot *sum)
{
	struct stats_snapshot *per = calloc((size_t) s->nworkers, sizeof(*per));

	*sum = (struct stats_snapshot){0};
	for (int i = 0; per && i < s->nworkers; i++) {
		control_stats_now(s, i, &per[i]);
		stats_accumulate(sum, &per[i]);
	}
	return per;
}

static void add_summary(struct server *s, json_object *o, const struct stats_snapshot *sum)
{
	add_str(o, "version", ECHOD_VERSION);
	add_u64(o, "pid", (uint64_t) getpid());
	add_u64(o, "uptime_seconds", (uint64_t) ((monotonic_ms() - s->started_ms) / 1000));
	add_u64(o, "started_at", (uint64_t) s->started_wall);
	add_u64(o, "threads", (uint64_t) s->nworkers);
	add_counters(o, sum);
	add_u64(o, "max_connections", (uint64_t) s->cfg.max_connections);
	add_u64(o, "reloads", s->reloads);
	add_u64(o, "reloads_failed", s->reloads_failed);
}

static json_object *workers_array(struct server *s, const struct stats_snapshot *per)
{
	json_object *a = json_object_new_array();
	for (int i = 0; i < s->nworkers; i++) {
		json_object *w = json_object_new_object();
		add_u64(w, "thread", (uint64_t) i);
		add_counters(w, &per[i]);
		json_object_array_add(a, w);
	}
	return a;
}

static json_object *listeners_array(struct server *s)
{
	json_object *a = json_object_new_array();
	const char *p = s->listen_desc;
	/* listen_desc is "a, b, c"; split it back rather than keep two lists. */
	while (*p) {
		const char *end = strstr(p, ", ");
		size_t len = end ? (size_t) (end - p) : strlen(p);
		json_object_array_add(a, json_object_new_string_len(p, (int) len));
		p += len + (end ? 2 : 0);
	}
	return a;
}

static void cmd_status(struct server *s, struct control_client *c)
{
	struct stats_snapshot sum;
	free(snapshot_all(s, &sum));
	json_object *o = control_ok();
	add_summary(s, o, &sum);
	json_object_object_add(o, "listeners", listeners_array(s));
	json_object_object_add(o, "socket_activated", json_object_new_boolean(s->activated));
	add_str(o, "mode", config_mode_name(s->cfg.mode));
	add_str(o, "log_level", log_level_to_string(log_get_level()));
	add_str(o, "config_file", s->opts->config_path);
	json_object_object_add(o, "stopping", json_object_new_boolean(s->stopping));
	control_reply(s, c, o);
}

/* stats and threads: the per-worker rows, with the totals too when `full`. */
static void reply_counters(struct server *s, struct control_client *c, bool full)
{
	struct stats_snapshot sum;
	struct stats_snapshot *per = snapshot_all(s, &sum);

	if (!per) {
		control_reply_error(s, c, PROTO_CODE_FAILED, "out of memory");
		return;
	}
	json_object *o = control_ok();
	if (full) {
		add_summary(s, o, &sum);
		add_u64(o, "control_requests", s->control->requests);
		add_u64(o, "control_denied", s->control->denied);
		add_u64(o, "control_errors", s->control->errors);
	} else {
		add_u64(o, "threads", (uint64_t) s->nworkers);
	}
	json_object_object_add(o, "workers", workers_array(s, per));
	free(per);
	control_reply(s, c, o);
}

static void cmd_version(struct server *s, struct control_client *c)
{
	json_object *o = control_ok();
	add_str(o, "version", ECHOD_VERSION);
	control_reply(s, c, o);
}

static void cmd_log_level(struct server *s, struct control_client *c, const struct proto_request *r)
{
	if (r->argc == 1) {
		int level = log_level_from_string(r->argv[0]);
		if (level < 0) {
			control_reply_error(s, c, PROTO_CODE_USAGE,
					    "\"%s\" is not a log level (%s)", r->argv[0],
					    log_level_names());
			return;
		}
		log_set_level(level);
		log_notice("log level set to %s by uid %ld (until the next reload)", r->argv[0],
			   (long) c->uid);
	}
	json_object *o = control_ok();
	add_str(o, "log_level", log_level_to_string(log_get_level()));
	control_reply(s, c, o);
}

static void cmd_reload(struct server *s, struct control_client *c)
{
	char reason[512] = "";

	if (s->stopping) {
		control_reply_error(s, c, PROTO_CODE_FAILED, "echod is shutting down");
		return;
	}
	log_info("reload requested by uid %ld (pid %ld)", (long) c->uid, (long) c->pid);
	if (server_reload(s, reason, sizeof(reason)) < 0) {
		control_reply_error(s, c, PROTO_CODE_FAILED, "%s", reason);
		return;
	}
	json_object *o = control_ok();
	add_u64(o, "reloads", s->reloads);
	control_reply(s, c, o);
}

static void cmd_stats_reset(struct server *s, struct control_client *c)
{
	for (int i = 0; i < s->nworkers; i++)
		stats_read(&s->workers[i]->stats, &s->control->baseline[i]);
	s->reloads = s->reloads_failed = 0;
	s->control->requests = s->control->denied = s->control->errors = 0;
	s->control->reset_ms = monotonic_ms();
	log_notice("counters reset by uid %ld", (long) c->uid);
	control_reply(s, c, control_ok());
}

static void cmd_kill(struct server *s, struct control_client *c, const struct proto_request *r)
{
	char *end;
	errno = 0;
	unsigned long long id = strtoull(r->argv[0], &end, 10);
	if (errno || end == r->argv[0] || *end || id == 0) {
		control_reply_error(s, c, PROTO_CODE_USAGE, "\"%s\" is not a connection id",
				    r->argv[0]);
		return;
	}
	if (control_query_kill(s, c, id) < 0)
		control_reply_error(s, c, PROTO_CODE_FAILED, "out of memory");
}

void control_dispatch(struct server *s, struct control_client *c, const struct proto_request *r)
{
	const char *n = r->cmd->name;

	if (strcmp(n, "ping") == 0)
		control_reply(s, c, control_ok());
	else if (strcmp(n, "version") == 0)
		cmd_version(s, c);
	else if (strcmp(n, "status") == 0)
		cmd_status(s, c);
	else if (strcmp(n, "stats") == 0)
		reply_counters(s, c, true);
	else if (strcmp(n, "threads") == 0)
		reply_counters(s, c, false);
	else if (strcmp(n, "connections") == 0) {
		if (control_query_connections(s, c) < 0)
			control_reply_error(s, c, PROTO_CODE_FAILED, "out of memory");
	} else if (strcmp(n, "kill") == 0)
		cmd_kill(s, c, r);
	else if (strcmp(n, "reload") == 0)
		cmd_reload(s, c);
	else if (strcmp(n, "log-level") == 0)
		cmd_log_level(s, c, r);
	else if (strcmp(n, "stats-reset") == 0)
		cmd_stats_reset(s, c);
	else
		control_reply_error(s, c, PROTO_CODE_USAGE, "\"%s\" is not served", n);
}
