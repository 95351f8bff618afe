// SPDX-License-Identifier: MIT
/*
 * echo-load: a load generator for TCP echo servers. In echo mode it runs a
 * closed loop over --connections connections with --inflight messages of
 * --size bytes outstanding on each, checks every echoed byte, and reports
 * requests/s, MB/s and latency percentiles. In hold mode (--hold N) it opens
 * N connections, checks each is served, and keeps them idle for a while. With
 * --pid it also reports that server's CPU time and RSS. The last line on
 * stdout is `RESULT key=value ...` for scripts; exit status 2 means a byte
 * came back wrong, 1 any other error.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "load.h"

static const char usage[] =
    "usage: echo-load [options]\n"
    "  -H, --host ADDR         server IPv4 address (127.0.0.1)\n"
    "  -p, --port PORT         server port (required)\n"
    "  -c, --connections N     connections (1)\n"
    "  -P, --inflight N        messages outstanding per connection (1)\n"
    "  -s, --size BYTES        message size (64)\n"
    "  -d, --duration SECS     measurement window (5)\n"
    "  -w, --warmup SECS       load before the window, not measured (1)\n"
    "  -t, --threads N         client threads (min(connections, 2))\n"
    "      --no-nodelay        leave Nagle on for the client's sockets\n"
    "      --pid PID           report this server's CPU time and RSS\n"
    "      --hold N            connect-only: open N connections, echo once each, hold\n"
    "      --hold-time SECS    how long to hold them (2)\n"
    "      --spread N          source addresses 127.0.0.2.. for --hold (auto)\n"
    "  -h, --help\n";

static double number(const char *s, const char *what, double lo, double hi)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "echo-load: bad %s '%s' (%g..%g)\n", what, s, lo, hi);
		exit(1);
	}
	return v;
}

static void parse(int argc, char **argv, struct load_opts *o)
{
	enum { O_NONAGLE = 256, O_PID, O_HOLD, O_HOLDTIME, O_SPREAD };
	static const struct option longopts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"connections", required_argument, NULL, 'c'},
	    {"inflight", required_argument, NULL, 'P'},
	    {"size", required_argument, NULL, 's'},
	    {"duration", required_argument, NULL, 'd'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"threads", required_argument, NULL, 't'},
	    {"no-nodelay", no_argument, NULL, O_NONAGLE},
	    {"pid", required_argument, NULL, O_PID},
	    {"hold", required_argument, NULL, O_HOLD},
	    {"hold-time", required_argument, NULL, O_HOLDTIME},
	    {"spread", required_argument, NULL, O_SPREAD},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *host = "127.0.0.1";
	int opt;

	while ((opt = getopt_long(argc, argv, "H:p:c:P:s:d:w:t:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			o->addr.sin_port = htons((uint16_t) number(optarg, "port", 1, 65535));
			break;
		case 'c':
			o->connections = (int) number(optarg, "connections", 1, 100000);
			break;
		case 'P':
			o->inflight = (int) number(optarg, "inflight", 1, 4096);
			break;
		case 's':
			o->size = (size_t) number(optarg, "size", 1, 1 << 26);
			break;
		case 'd':
			o->duration = number(optarg, "duration", 0.01, 3600);
			break;
		case 'w':
			o->warmup = number(optarg, "warmup", 0, 3600);
			break;
		case 't':
			o->threads = (int) number(optarg, "threads", 1, 256);
			break;
		case O_NONAGLE:
			o->nodelay = false;
			break;
		case O_PID:
			o->pid = (pid_t) number(optarg, "pid", 1, 1 << 30);
			break;
		case O_HOLD:
			o->hold = (int) number(optarg, "hold", 1, 1000000);
			break;
		case O_HOLDTIME:
			o->hold_time = number(optarg, "hold-time", 0, 3600);
			break;
		case O_SPREAD:
			o->spread = (int) number(optarg, "spread", 1, 250);
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			exit(1);
		}
	}
	if (optind != argc || o->addr.sin_port == 0) {
		fputs(usage, stderr);
		exit(1);
	}
	if (inet_pton(AF_INET, host, &o->addr.sin_addr) != 1) {
		fprintf(stderr, "echo-load: '%s' is not an IPv4 address\n", host);
		exit(1);
	}
	if (o->threads == 0)
		o->threads = o->connections < 2 ? o->connections : 2;
	if (o->threads > o->connections)
		o->threads = o->connections;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void print_server(const struct load_result *r, const struct proc_sample *end)
{
	if (!r->before.ok || !end->ok)
		return;
	printf(" server_cpu_us=%llu server_rss_kib=%llu server_rss_before_kib=%llu "
	       "server_threads=%llu",
	       (unsigned long long) (end->cpu_us - r->before.cpu_us),
	       (unsigned long long) end->rss_kib, (unsigned long long) r->before.rss_kib,
	       (unsigned long long) end->threads);
}

static void report_echo(const struct load_opts *o, const struct load_result *r)
{
	double rps = (double) r->requests / r->elapsed;
	double mbps = (double) r->bytes / r->elapsed / 1e6; /* payload echoed, counted once */
	double us[4] = {
	    (double) hist_quantile(&r->hist, 0.50) / 1e3,
	    (double) hist_quantile(&r->hist, 0.99) / 1e3,
	    (double) hist_quantile(&r->hist, 0.999) / 1e3,
	    (double) r->hist.max / 1e3,
	};

	fprintf(stderr,
		"%d conns x %d in flight x %zu B, %.1f s: %.0f req/s, %.1f MB/s echoed; "
		"latency us p50 %.1f p99 %.1f p99.9 %.1f max %.1f; errors %llu, mismatches %llu\n",
		o->connections, o->inflight, o->size, r->elapsed, rps, mbps, us[0], us[1], us[2],
		us[3], (unsigned long long) r->errors, (unsigned long long) r->mismatches);
	printf("RESULT mode=echo connections=%d inflight=%d size=%zu threads=%d duration=%.3f "
	       "requests=%llu rps=%.1f mbps=%.2f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
	       "max_us=%.1f errors=%llu mismatches=%llu client_cpu_us=%llu",
	       o->connections, o->inflight, o->size, o->threads, r->elapsed,
	       (unsigned long long) r->requests, rps, mbps, us[0], us[1], us[2], us[3],
	       (unsigned long long) r->errors, (unsigned long long) r->mismatches,
	       (unsigned long long) r->client_cpu_us);
	print_server(r, &r->after);
	printf("\n");
}

static void report_hold(const struct load_opts *o, const struct load_result *r)
{
	fprintf(stderr, "held %llu of %d connections (opened in %.2f s); errors %llu\n",
		(unsigned long long) r->served, o->hold, r->connect_s,
		(unsigned long long) r->errors);
	printf("RESULT mode=hold hold=%d served=%llu connect_s=%.3f errors=%llu mismatches=%llu",
	       o->hold, (unsigned long long) r->served, r->connect_s,
	       (unsigned long long) r->errors, (unsigned long long) r->mismatches);
	print_server(r, &r->held);
	if (r->before.ok && r->held.ok && r->served > 0)
		printf(" rss_per_conn_bytes=%.0f",
		       ((double) r->held.rss_kib - (double) r->before.rss_kib) * 1024.0 /
			   (double) r->served);
	printf("\n");
}

int main(int argc, char **argv)
{
	static struct load_result res;
	struct load_opts o = {
	    .addr = {.sin_family = AF_INET},
	    .connections = 1,
	    .inflight = 1,
	    .size = 64,
	    .duration = 5,
	    .warmup = 1,
	    .drain_timeout = 5,
	    .nodelay = true,
	    .hold_time = 2,
	    .connect_timeout = 30,
	};
	int r;

	parse(argc, argv, &o);
	raise_fd_limit();
	load_pattern_init();
	r = o.hold ? load_run_hold(&o, &res) : load_run_echo(&o, &res);
	if (r < 0) {
		fprintf(stderr, "echo-load: %s\n", strerror(-r));
		return 1;
	}
	if (o.hold)
		report_hold(&o, &res);
	else
		report_echo(&o, &res);
	if (res.mismatches)
		return 2;
	return res.errors || (o.hold && res.served != (uint64_t) o.hold) ? 1 : 0;
}
