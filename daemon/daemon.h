/* SPDX-License-Identifier: MIT */
/* Command line and the config it names: what start-up and reload share. */
#pragma once

#include <stdbool.h>

#include "config.h"

struct cli_options {
	const char *config_path;
	bool config_explicit; /* -c given: a missing file is an error */
	bool check_only;
	const char *host, *port, *threads; /* overrides, already validated */
};

enum {
	CLI_RUN = -1, /* cli_parse: go on and run */
	EXIT_USAGE = 2,
};

/* Parses argv; returns CLI_RUN, or an exit code after --help, --version or a usage error. */
int cli_parse(int argc, char **argv, struct cli_options *o);

/*
 * Builds the effective config: defaults, the file, then command-line
 * overrides. Returns 0 or -EINVAL with errors filled in.
 */
int daemon_load_config(const struct cli_options *o, struct echod_config *c,
		       struct config_errors *errs);

/* main() of echod, below argument parsing. */
int echod_main(int argc, char **argv);
