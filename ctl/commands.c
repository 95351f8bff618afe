// SPDX-License-Identifier: MIT
/* echoctl's commands: the table --help and echoctl(1) are built from, and their handlers. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* Sends request, checks the reply, and hands it to show() in the chosen format. */
static int simple(struct ctl_client *c, const char *request, void (*show)(json_object *))
{
	json_object *reply = NULL;
	int r = client_request(c, request, &reply);

	if (r == EXIT_OK)
		r = client_check_reply(reply);
	if (r == EXIT_OK) {
		if (c->opts->format == OUTPUT_JSON || !show)
			format_json(reply);
		else
			show(reply);
	}
	json_object_put(reply);
	return r;
}

static int cmd_status(struct ctl_client *c, int argc, char **argv)
{
	return simple(c, "status", format_status);
}

static int cmd_stats(struct ctl_client *c, int argc, char **argv)
{
	json_object *reply = NULL;
	int r;

	if (c->opts->format != OUTPUT_PROMETHEUS)
		return simple(c, "stats", format_stats);
	r = client_request(c, "stats", &reply);
	if (r == EXIT_OK)
		r = client_check_reply(reply);
	if (r == EXIT_OK)
		r = format_prometheus(reply, c->opts);
	json_object_put(reply);
	return r;
}

static int cmd_threads(struct ctl_client *c, int argc, char **argv)
{
	return simple(c, "threads", format_threads);
}

static int cmd_connections(struct ctl_client *c, int argc, char **argv)
{
	return simple(c, "connections", format_connections);
}

static void say_done(json_object *reply)
{
	(void) reply;
}

static int cmd_ping(struct ctl_client *c, int argc, char **argv)
{
	int r = simple(c, "ping", say_done);
	if (r == EXIT_OK && c->opts->format == OUTPUT_HUMAN)
		printf("echod is alive\n");
	return r;
}

static int cmd_kill(struct ctl_client *c, int argc, char **argv)
{
	char request[160];
	snprintf(request, sizeof(request), "kill %s", argv[0]);
	int r = simple(c, request, say_done);
	if (r == EXIT_OK && c->opts->format == OUTPUT_HUMAN)
		printf("connection %s closed\n", argv[0]);
	return r;
}

static void show_reload(json_object *reply)
{
	printf("configuration reloaded (%llu reloads so far)\n",
	       (unsigned long long) json_u64(reply, "reloads"));
}

static int cmd_reload(struct ctl_client *c, int argc, char **argv)
{
	return simple(c, "reload", show_reload);
}

static void show_level(json_object *reply)
{
	printf("%s\n", json_str(reply, "log_level"));
}

static int cmd_log_level(struct ctl_client *c, int argc, char **argv)
{
	char request[160];
	snprintf(request, sizeof(request), "log-level%s%s", argc ? " " : "", argc ? argv[0] : "");
	return simple(c, request, show_level);
}

static void show_reset(json_object *reply)
{
	printf("counters reset\n");
}

static int cmd_stats_reset(struct ctl_client *c, int argc, char **argv)
{
	return simple(c, "stats-reset", show_reset);
}

static int cmd_top(struct ctl_client *c, int argc, char **argv)
{
	return top_run(c);
}

const struct ctl_command ctl_commands[] = {
    {"status", cmd_status, 0, 0, "", "version, uptime, listeners, connections, reloads"},
    {"stats", cmd_stats, 0, 0, "", "every counter; with --json or --prometheus"},
    {"threads", cmd_threads, 0, 0, "", "per-worker connections and bytes"},
    {"connections", cmd_connections, 0, 0, "", "one row per client connection"},
    {"kill", cmd_kill, 1, 1, "ID", "close client connection ID"},
    {"reload", cmd_reload, 0, 0, "", "reload the config; fails if it is rejected"},
    {"log-level", cmd_log_level, 0, 1, "[LEVEL]", "show, or set until the next reload"},
    {"stats-reset", cmd_stats_reset, 0, 0, "", "zero the counters"},
    {"ping", cmd_ping, 0, 0, "", "exit 0 when echod answers"},
    {"top", cmd_top, 0, 0, "", "live view, refreshed every second"},
};
const unsigned ctl_commands_count = sizeof(ctl_commands) / sizeof(ctl_commands[0]);
