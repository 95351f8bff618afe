// SPDX-License-Identifier: MIT
/* echoctl's options, and the step from argv to a command. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "config.h"
#include "ctl.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: echoctl [OPTIONS] COMMAND [ARGS]\n"
		   "Query and steer a running echod over its control socket.\n\nCommands:\n");
	for (unsigned i = 0; i < ctl_commands_count; i++) {
		char name[48];
		snprintf(name, sizeof(name), "%s %s", ctl_commands[i].name, ctl_commands[i].args);
		fprintf(f, "  %-22s %s\n", name, ctl_commands[i].help);
	}
	fprintf(f,
		"\nOptions:\n"
		"  -s, --socket PATH     control socket (default %s)\n"
		"  -c, --config PATH     take the control socket from this echod config\n"
		"  -j, --json            print JSON\n"
		"  -p, --prometheus      stats in Prometheus text format\n"
		"  -l, --label NAME=VAL  add a label to every Prometheus series (up to 4)\n"
		"  -n, --count N         top: print N samples, then exit\n"
		"  -t, --timeout SEC     wait at most SEC for echod's reply (default 10)\n"
		"  -h, --help            show this help\n"
		"  -V, --version         show the version\n\n"
		"Exit status: 0 ok, 1 echod reported an error, 2 usage, 3 echod not running,\n"
		"4 permission denied. See echoctl(1).\n",
		ECHOD_CONTROL_SOCKET);
}

static int parse_int(const char *opt, const char *v, int min, int max, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max) {
		fprintf(stderr, "echoctl: %s: \"%s\" is not a number from %d to %d\n", opt, v, min,
			max);
		return EXIT_USAGE;
	}
	*out = (int) n;
	return 0;
}

/* -c: the socket an instance's config names (`echoctl -c /etc/echod/b.conf status`). */
static int socket_from_config(const char *path, char **ret)
{
	struct echod_config c;
	struct config_errors errs = {0};

	config_init_defaults(&c);
	int r = config_load_file(&c, path, &errs);
	if (r == -ENOENT)
		fprintf(stderr, "echoctl: --config %s: no such file\n", path);
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "echoctl: %s\n", errs.lines[i]);
	if (r == 0 && !*c.control_socket) {
		fprintf(stderr,
			"echoctl: %s sets control_socket = \"\": echod has no control socket\n",
			path);
		r = -EINVAL;
	}
	if (r == 0) {
		*ret = c.control_socket;
		c.control_socket = NULL;
	}
	config_errors_done(&errs);
	config_done(&c);
	return r < 0 ? EXIT_USAGE : 0;
}

static int parse_options(int argc, char **argv, struct ctl_options *o, char **config_socket)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},  {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},	       {"prometheus", no_argument, NULL, 'p'},
	    {"label", required_argument, NULL, 'l'},   {"count", required_argument, NULL, 'n'},
	    {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},       {0},
	};
	int ch;

	opterr = 0;
	/* Options may follow the command too (`echoctl top -n 5`): no argument starts with '-'. */
	while ((ch = getopt_long(argc, argv, ":s:c:jpl:n:t:hV", longopts, NULL)) != -1) {

		switch (ch) {
		case 's':
			o->socket_path = optarg;
			break;
		case 'c':
			free(*config_socket);
			*config_socket = NULL;
			if (socket_from_config(optarg, config_socket))
				return EXIT_USAGE;
			o->socket_path = *config_socket;
			break;
		case 'j':
			o->format = OUTPUT_JSON;
			break;
		case 'p':
			o->format = OUTPUT_PROMETHEUS;
			break;
		case 'l':
			if (o->nlabels == (int) (sizeof(o->labels) / sizeof(o->labels[0]))) {
				fprintf(stderr, "echoctl: at most 4 --label options\n");
				return EXIT_USAGE;
			}
			o->labels[o->nlabels++] = optarg;
			break;
		case 'n':
			if (parse_int("--count", optarg, 1, 1000000, &o->count))
				return EXIT_USAGE;
			break;
		case 't':
			if (parse_int("--timeout", optarg, 1, 3600, &o->timeout_s))
				return EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("echoctl %s\n", ECHOD_VERSION);
			return EXIT_OK;
		case ':':
			fprintf(stderr, "echoctl: %s needs an argument\n", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "echoctl: unknown option '%s' (see echoctl --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	return -1;
}

static const struct ctl_command *find_command(const char *name)
{
	for (unsigned i = 0; i < ctl_commands_count; i++)
		if (strcmp(ctl_commands[i].name, name) == 0)
			return &ctl_commands[i];
	return NULL;
}

static int check_command(const struct ctl_command *cmd, const struct ctl_options *o, int nargs)
{
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		fprintf(stderr, "echoctl: usage: echoctl %s %s\n", cmd->name, cmd->args);
		return EXIT_USAGE;
	}
	if (o->format == OUTPUT_PROMETHEUS && strcmp(cmd->name, "stats") != 0) {
		fprintf(stderr, "echoctl: --prometheus applies to stats only\n");
		return EXIT_USAGE;
	}
	return 0;
}

int ctl_main(int argc, char **argv)
{
	struct ctl_options o = {.socket_path = ECHOD_CONTROL_SOCKET, .timeout_s = 10};
	struct ctl_client client;
	char *config_socket = NULL;
	int r = parse_options(argc, argv, &o, &config_socket);

	if (r >= 0)
		goto out;
	if (optind >= argc) {
		fprintf(stderr, "echoctl: no command given (see echoctl --help)\n");
		r = EXIT_USAGE;
		goto out;
	}
	const struct ctl_command *cmd = find_command(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "echoctl: unknown command '%s' (see echoctl --help)\n",
			argv[optind]);
		r = EXIT_USAGE;
		goto out;
	}
	r = check_command(cmd, &o, argc - optind - 1);
	if (r)
		goto out;
	r = client_connect(&client, o.socket_path, &o);
	if (r == EXIT_OK) {
		r = cmd->run(&client, argc - optind - 1, argv + optind + 1);
		client_close(&client);
	}
out:
	free(config_socket);
	return r;
}
