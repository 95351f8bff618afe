// SPDX-License-Identifier: MIT
/* Assembling the effective config, `echod -t`, and the step from main() to the server. */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "listener.h"
#include "log.h"
#include "server.h"

static int apply_override(struct echod_config *c, const char *key, const char *value,
			  const char *option, struct config_errors *errs)
{
	char err[256];

	if (!value || config_set_from_string(c, key, value, err, sizeof(err)) == 0)
		return 0;
	config_error_add(errs, "%s: %s", option, err);
	return -EINVAL;
}

int daemon_load_config(const struct cli_options *o, struct echod_config *c,
		       struct config_errors *errs)
{
	int r;

	config_init_defaults(c);
	r = config_load_file(c, o->config_path, errs);
	if (r == -ENOENT && o->config_explicit) {
		config_error_add(errs, "%s: cannot open: %s", o->config_path, strerror(ENOENT));
		return -EINVAL;
	}
	if (r == -ENOENT) {
		log_notice("no config file at %s; using built-in defaults", o->config_path);
		r = 0;
	}
	if (r < 0)
		return r;
	if (apply_override(c, "host", o->host, "--host", errs) < 0 ||
	    apply_override(c, "port", o->port, "--port", errs) < 0 ||
	    apply_override(c, "threads", o->threads, "--threads", errs) < 0)
		return -EINVAL;
	return 0;
}

static int check_config(const struct cli_options *o)
{
	struct config_errors errs = {0};
	struct echod_config c;
	char err[256];
	int r = daemon_load_config(o, &c, &errs);

	if (r == 0 && listener_resolve(c.host, c.port, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: host: %s\n", o->config_path, err);
		r = -EINVAL;
	}
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.lines[i]);
	if (errs.dropped)
		fprintf(stderr, "... and %zu more errors\n", errs.dropped);
	if (r == 0)
		printf("configuration OK\n");
	config_errors_done(&errs);
	config_done(&c);
	return r == 0 ? 0 : 1;
}

int echod_main(int argc, char **argv)
{
	struct cli_options o;
	struct config_errors errs = {0};
	struct echod_config c;

	int r = cli_parse(argc, argv, &o);
	if (r != CLI_RUN)
		return r;
	log_setup("echod");
	if (o.check_only)
		return check_config(&o);
	r = daemon_load_config(&o, &c, &errs);
	if (r < 0) {
		config_errors_log(&errs);
		log_error("not starting: the configuration is invalid");
		config_errors_done(&errs);
		config_done(&c);
		return 1;
	}
	return server_run(&o, &c);
}
