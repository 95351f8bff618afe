/* SPDX-License-Identifier: MIT */
/*
 * echoctl: a command table (name, handler, arguments, help) from which
 * --help and echoctl(1)'s command list are built, a client for the control
 * protocol (common/proto.h), and formatters for human, JSON and Prometheus
 * output.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

/* Exit status, documented in echoctl(1). */
enum {
	EXIT_OK = 0,
	EXIT_ECHOD_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_NOT_RUNNING = 3,
	EXIT_DENIED = 4,
};

enum output_format {
	OUTPUT_HUMAN,
	OUTPUT_JSON,
	OUTPUT_PROMETHEUS,
};

struct ctl_options {
	const char *socket_path;
	enum output_format format;
	int timeout_s;
	int count;	       /* top: samples to print, 0 = until stopped */
	const char *labels[4]; /* NAME=VALUE added to every Prometheus series */
	int nlabels;
};

struct ctl_client {
	int fd;
	const char *path;
	const struct ctl_options *opts;
};

struct ctl_command {
	const char *name;
	int (*run)(struct ctl_client *c, int argc, char **argv);
	int min_args, max_args;
	const char *args;
	const char *help;
};

extern const struct ctl_command ctl_commands[];
extern const unsigned ctl_commands_count;

int ctl_main(int argc, char **argv);

/* client.c */
int client_connect(struct ctl_client *c, const char *path, const struct ctl_options *o);
void client_close(struct ctl_client *c);
/*
 * Sends one request line and reads the reply. Returns EXIT_OK with the reply
 * in *ret (caller puts it), or an exit code after printing why.
 */
int client_request(struct ctl_client *c, const char *request, json_object **ret);
/* The reply's exit code: EXIT_OK, or the error printed and mapped. */
int client_check_reply(json_object *reply);

/* format.c */
void format_json(json_object *reply);
void format_status(json_object *reply);
void format_stats(json_object *reply);
void format_threads(json_object *reply);
void format_connections(json_object *reply);
int format_prometheus(json_object *reply, const struct ctl_options *o);
uint64_t json_u64(json_object *o, const char *key);
const char *json_str(json_object *o, const char *key);
void human_bytes(uint64_t n, char *buf, size_t len);

/* top.c */
int top_run(struct ctl_client *c);
