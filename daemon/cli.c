// SPDX-License-Identifier: MIT
/* echod's command line. Overrides are validated here with the config's own rules. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "daemon.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: echod [OPTIONS]\n"
		"A multi-threaded TCP echo daemon (RFC 862 echo, or line mode).\n\n"
		"  -c, --config PATH     configuration file (default %s)\n"
		"  -t, --check-config    validate the configuration, print the result and exit\n"
		"      --host HOST       listen on HOST instead of the configured host\n"
		"      --port PORT       listen on PORT instead of the configured port\n"
		"      --threads N       run N workers (0 = one per CPU)\n"
		"  -h, --help            show this help and exit\n"
		"  -V, --version         show the version and exit\n\n"
		"Signals: SIGHUP reloads the configuration; SIGTERM or SIGINT drain and stop.\n"
		"See echod(8) and echod.conf(5).\n",
		ECHOD_CONFIG_PATH);
}

/* Checks an override against the key's rules so a bad argument fails before anything starts. */
static int check_override(const char *option, const char *key, const char *value)
{
	struct echod_config scratch;
	char err[256];

	config_init_defaults(&scratch);
	int r = config_set_from_string(&scratch, key, value, err, sizeof(err));
	config_done(&scratch);
	if (r < 0) {
		fprintf(stderr, "echod: %s: %s\n", option, err);
		return EXIT_USAGE;
	}
	return 0;
}

int cli_parse(int argc, char **argv, struct cli_options *o)
{
	enum { OPT_HOST = 0x100, OPT_PORT, OPT_THREADS };
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 't'},
	    {"host", required_argument, NULL, OPT_HOST},
	    {"port", required_argument, NULL, OPT_PORT},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	int c;

	*o = (struct cli_options){.config_path = ECHOD_CONFIG_PATH};
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:thV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config_path = optarg;
			o->config_explicit = true;
			break;
		case 't':
			o->check_only = true;
			break;
		case OPT_HOST:
			o->host = optarg;
			if (check_override("--host", "host", optarg))
				return EXIT_USAGE;
			break;
		case OPT_PORT:
			o->port = optarg;
			if (check_override("--port", "port", optarg))
				return EXIT_USAGE;
			break;
		case OPT_THREADS:
			o->threads = optarg;
			if (check_override("--threads", "threads", optarg))
				return EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("echod %s\n", ECHOD_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "echod: %s needs an argument\n", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "echod: unknown option '%s' (see echod --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "echod: unexpected argument '%s' (see echod --help)\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	if (*o->config_path == '\0') {
		fprintf(stderr, "echod: --config: the path is empty\n");
		return EXIT_USAGE;
	}
	return CLI_RUN;
}
