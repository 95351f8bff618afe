// SPDX-License-Identifier: MIT
/*
 * `echoctl top`: samples `stats` once a second over one connection and shows
 * rates per worker. On a terminal it redraws the screen and q or Ctrl-C ends
 * it; otherwise it prints one plain line per sample (for logs and tests).
 * SIGINT/SIGTERM are read from a signalfd, so the terminal is always restored.
 */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "macro.h"

struct sample {
	uint64_t total, in, out, active;
	uint64_t w_total[64], w_in[64], w_out[64], w_active[64];
	size_t nworkers;
};

static int take_sample(struct ctl_client *c, struct sample *s)
{
	json_object *reply = NULL, *workers;
	int r = client_request(c, "stats", &reply);

	if (r == EXIT_OK)
		r = client_check_reply(reply);
	if (r == EXIT_OK) {
		s->total = json_u64(reply, "connections_total");
		s->in = json_u64(reply, "bytes_received");
		s->out = json_u64(reply, "bytes_sent");
		s->active = json_u64(reply, "connections_active");
		s->nworkers = 0;
		if (json_object_object_get_ex(reply, "workers", &workers) &&
		    json_object_is_type(workers, json_type_array))
			s->nworkers =
			    MIN(json_object_array_length(workers), ARRAY_SIZE(s->w_total));
		for (size_t i = 0; i < s->nworkers; i++) {
			json_object *w = json_object_array_get_idx(workers, i);

			s->w_total[i] = json_u64(w, "connections_total");
			s->w_in[i] = json_u64(w, "bytes_received");
			s->w_out[i] = json_u64(w, "bytes_sent");
			s->w_active[i] = json_u64(w, "connections_active");
		}
	}
	json_object_put(reply);
	return r;
}

/* Counters may have been reset between samples: never report a negative rate. */
static uint64_t delta(uint64_t now, uint64_t before)
{
	return now >= before ? now - before : now;
}

static void print_plain(const struct sample *a, const struct sample *b)
{
	char in[32], out[32], when[32];
	time_t t = time(NULL);
	struct tm tm;

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", localtime_r(&t, &tm));
	human_bytes(delta(b->in, a->in), in, sizeof(in));
	human_bytes(delta(b->out, a->out), out, sizeof(out));
	printf("%s active=%" PRIu64 " conn/s=%" PRIu64 " in/s=%s out/s=%s", when, b->active,
	       delta(b->total, a->total), in, out);
	for (size_t i = 0; i < b->nworkers && i < a->nworkers; i++)
		printf(" thread%zu=%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64, i, b->w_active[i],
		       delta(b->w_total[i], a->w_total[i]), delta(b->w_in[i], a->w_in[i]),
		       delta(b->w_out[i], a->w_out[i]));
	printf("\n");
	fflush(stdout);
}

static void print_screen(const struct sample *a, const struct sample *b, const char *path)
{
	char in[32], out[32];

	printf("\033[H\033[2J");
	printf("echoctl top — %s — q to quit\n\n", path);
	printf("%-8s %10s %10s %14s %14s\n", "THREAD", "ACTIVE", "CONN/S", "IN/S", "OUT/S");
	for (size_t i = 0; i < b->nworkers && i < a->nworkers; i++) {
		human_bytes(delta(b->w_in[i], a->w_in[i]), in, sizeof(in));
		human_bytes(delta(b->w_out[i], a->w_out[i]), out, sizeof(out));
		printf("%-8zu %10" PRIu64 " %10" PRIu64 " %14s %14s\n", i, b->w_active[i],
		       delta(b->w_total[i], a->w_total[i]), in, out);
	}
	human_bytes(delta(b->in, a->in), in, sizeof(in));
	human_bytes(delta(b->out, a->out), out, sizeof(out));
	printf("%-8s %10" PRIu64 " %10" PRIu64 " %14s %14s\n", "all", b->active,
	       delta(b->total, a->total), in, out);
	fflush(stdout);
}

/* Waits up to 1 s; returns true when the user asked to stop. */
static bool wait_or_quit(int sigfd, bool tty)
{
	struct pollfd p[2] = {{.fd = sigfd, .events = POLLIN},
			      {.fd = STDIN_FILENO, .events = POLLIN}};
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
				    (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0)
			return false;
		int n = poll(p, tty ? 2 : 1, (int) left);
		if (n <= 0)
			continue;
		if (p[0].revents)
			return true;
		char ch;
		if (tty && (p[1].revents & POLLIN) && read(STDIN_FILENO, &ch, 1) == 1 &&
		    (ch == 'q' || ch == 'Q' || ch == 3))
			return true;
	}
}

int top_run(struct ctl_client *c)
{
	bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	struct termios saved, raw;
	struct sample a = {0}, b = {0};
	sigset_t mask;
	int r, shown = 0;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return EXIT_ECHOD_ERROR;
	_cleanup_close_ int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sigfd < 0)
		return EXIT_ECHOD_ERROR;
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
		(void) tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	} else {
		tty = false;
	}
	r = take_sample(c, &a);
	while (r == EXIT_OK && !wait_or_quit(sigfd, tty)) {
		r = take_sample(c, &b);
		if (r != EXIT_OK)
			break;
		if (tty)
			print_screen(&a, &b, c->path);
		else
			print_plain(&a, &b);
		a = b;
		if (c->opts->count && ++shown >= c->opts->count)
			break;
	}
	if (tty)
		(void) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	return r;
}
