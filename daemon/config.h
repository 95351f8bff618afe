/* SPDX-License-Identifier: MIT */
/*
 * The configuration: a plain struct filled with defaults, then from a
 * libconfig file, then from command-line overrides. This module is the only
 * one that knows libconfig. Every problem is reported as "file:line: key:
 * what is wrong (what is allowed)" and a config is used only if it has none.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum echo_mode {
	MODE_ECHO = 0,
	MODE_LINE = 1,
};

struct echod_config {
	char *host;
	int port;
	int threads; /* 0 = one per online CPU; see config_worker_count() */
	enum echo_mode mode;
	char *line_prefix;
	int max_line;
	int max_connections;
	int idle_timeout;
	int shutdown_timeout;
	char *control_socket;	      /* "" = none */
	bool control_socket_explicit; /* set by the file: failing to create it is fatal */

	int control_socket_mode;    /* permission bits of the socket file */
	char *control_socket_group; /* "" = leave the group alone */
	char *control_admin_group;  /* "" = none: only root and echod's own user */
	int log_level;
	bool preserve_connections; /* hand live clients to systemd's fd store on stop */
};

enum config_key_type {
	KEY_INT,
	KEY_STRING,
	KEY_BOOL, /* libconfig true/false; a bool field; convert parses the command-line text */
};

struct config_key {
	const char *name;
	enum config_key_type type;
	long long min, max;  /* range for ints, length for strings */
	const char *allowed; /* for messages and echod --help-config */
	size_t offset;
	/* Extra check/convert for strings (and the text of a bool); writes the reason to err and
	 * returns <0 when bad. */
	int (*convert)(struct echod_config *c, const char *value, char *err, size_t errlen);
};

extern const struct config_key config_keys[];
extern const size_t config_keys_count;

/* Error messages collected while loading; each is one line without "\n". */
struct config_errors {
	char *lines[32];
	size_t count;
	size_t dropped;
};

#include "macro.h"

_printf_(2, 3) void config_error_add(struct config_errors *e, const char *fmt, ...);
void config_errors_done(struct config_errors *e);
/* Appends the errors, one per line, to the log at error level or to a stream. */
void config_errors_log(const struct config_errors *e);

void config_init_defaults(struct echod_config *c);
void config_done(struct echod_config *c);
int config_copy(struct echod_config *dst, const struct echod_config *src);

/*
 * Loads path over the defaults. Returns 0, -ENOENT when the file does not exist
 * (nothing else reported), or -EINVAL with errors filled in.
 */
int config_load_file(struct echod_config *c, const char *path, struct config_errors *errs);
/* The same for text in memory; `name` stands for the file in messages. */
int config_load_string(struct echod_config *c, const char *text, const char *name,
		       struct config_errors *errs);

/*
 * Sets one key from a command-line string (e.g. --port 7008). On error writes
 * "value is out of range (...)" style text to err and returns -EINVAL.
 */
int config_set_from_string(struct echod_config *c, const char *key, const char *value, char *err,
			   size_t errlen);

const struct config_key *config_key_find(const char *name);
/* The number of worker threads the config asks for, resolving 0 to the CPU count. */
int config_worker_count(const struct echod_config *c);
const char *config_mode_name(enum echo_mode m);
