// SPDX-License-Identifier: MIT
/*
 * Unit tests for echoctl's formatters (ctl/format.c, ctl/prometheus.c): hand-built
 * replies in, exact stdout (and stderr) out.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "counters.h"
#include "ctl.h"

/* ---- capturing stdout and stderr ---- */

struct captured {
	char *out, *err;
	int rc;
};

enum which { F_JSON, F_STATUS, F_STATS, F_THREADS, F_CONNECTIONS, F_PROMETHEUS };

static char *slurp(FILE *f)
{
	long len;
	char *s;

	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len >= 0);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	s = malloc((size_t) len + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t) len, f), (size_t) len);
	s[len] = '\0';
	fclose(f);
	return s;
}

/* Runs one formatter with stdout and stderr going to temporary files. */
static struct captured run(enum which w, json_object *reply, const struct ctl_options *o)
{
	struct captured c = {0};
	FILE *out = tmpfile(), *err = tmpfile();
	int saved_out, saved_err;

	assert_non_null(out);
	assert_non_null(err);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(STDOUT_FILENO);
	saved_err = dup(STDERR_FILENO);
	assert_true(saved_out >= 0 && saved_err >= 0);
	assert_true(dup2(fileno(out), STDOUT_FILENO) >= 0);
	assert_true(dup2(fileno(err), STDERR_FILENO) >= 0);
	switch (w) {
	case F_JSON:
		format_json(reply);
		break;
	case F_STATUS:
		format_status(reply);
		break;
	case F_STATS:
		format_stats(reply);
		break;
	case F_THREADS:
		format_threads(reply);
		break;
	case F_CONNECTIONS:
		format_connections(reply);
		break;
	case F_PROMETHEUS:
		c.rc = format_prometheus(reply, o);
		break;
	}
	fflush(stdout);
	fflush(stderr);
	assert_true(dup2(saved_out, STDOUT_FILENO) >= 0);
	assert_true(dup2(saved_err, STDERR_FILENO) >= 0);
	close(saved_out);
	close(saved_err);
	c.out = slurp(out);
	c.err = slurp(err);
	return c;
}

static void captured_free(struct captured *c)
{
	free(c->out);
	free(c->err);
}

/* Parses JSON text, as client.c does with a reply line. */
static json_object *reply_of(const char *text)
{
	json_object *o = json_tokener_parse(text);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

/* True when text has the whole line `line`. */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static void assert_has_line(const char *text, const char *line)
{
	if (!has_line(text, line))
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

/* How many lines begin with prefix. */
static int count_prefix(const char *text, const char *prefix)
{
	int n = 0;
	size_t len = strlen(prefix);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, len) == 0)
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}

/* ---- replies ---- */

/* A stats reply as echod builds it: summary keys, counters, workers (thread 0 and 1). */
static json_object *stats_reply(void)
{
	json_object *r = json_object_new_object();
	json_object *workers = json_object_new_array();
	uint64_t v = 1;

	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "version", json_object_new_string("0.1.0"));
	json_object_object_add(r, "pid", json_object_new_uint64(4242));
	json_object_object_add(r, "uptime_seconds", json_object_new_uint64(3725));
	json_object_object_add(r, "started_at", json_object_new_uint64(1700000000));
	json_object_object_add(r, "threads", json_object_new_uint64(2));
#define X(name, help) json_object_object_add(r, #name, json_object_new_uint64(v++ * 100));
	WORKER_COUNTERS(X)
#undef X
	json_object_object_add(r, "connections_active", json_object_new_uint64(7));
	json_object_object_add(r, "max_connections", json_object_new_uint64(10000));
	json_object_object_add(r, "reloads", json_object_new_uint64(3));
	json_object_object_add(r, "reloads_failed", json_object_new_uint64(1));
	json_object_object_add(r, "control_requests", json_object_new_uint64(55));
	json_object_object_add(r, "control_denied", json_object_new_uint64(2));
	json_object_object_add(r, "control_errors", json_object_new_uint64(4));
	for (int t = 0; t < 2; t++) {
		json_object *w = json_object_new_object();
		v = 1;
		json_object_object_add(w, "thread", json_object_new_uint64((uint64_t) t));
#define X(name, help)                                                                              \
	json_object_object_add(w, #name, json_object_new_uint64(v++ * 10 + (uint64_t) t));
		WORKER_COUNTERS(X)
#undef X
		json_object_object_add(w, "connections_active",
				       json_object_new_uint64(3 + (uint64_t) t));
		json_object_array_add(workers, w);
	}
	json_object_object_add(r, "workers", workers);
	json_object_object_add(r, "protocol", json_object_new_int(1));
	return r;
}

/* ---- human_bytes ---- */

static void check_bytes(uint64_t n, const char *want)
{
	char buf[32];
	memset(buf, 'x', sizeof(buf));
	human_bytes(n, buf, sizeof(buf));
	if (strcmp(buf, want) != 0)
		fail_msg("human_bytes(%" PRIu64 ") = \"%s\", expected \"%s\"", n, buf, want);
}

static void test_human_bytes(void **state)
{
	const uint64_t K = 1024, M = K * K, G = M * K, T = G * K, P = T * K;

	check_bytes(0, "0 B");
	check_bytes(1, "1 B");
	check_bytes(1023, "1023 B");
	check_bytes(K, "1.0 KiB");
	check_bytes(K + 1, "1.0 KiB");
	check_bytes(1536, "1.5 KiB");
	check_bytes(10 * K - 1, "10.0 KiB");
	check_bytes(1023 * K, "1023.0 KiB");
	/* Just below the next unit: never "1024.0 KiB". */
	check_bytes(M - 1, "1.0 MiB");
	check_bytes(M - 52, "1023.9 KiB");
	check_bytes(M, "1.0 MiB");
	check_bytes(G - 1, "1.0 GiB");
	check_bytes(G, "1.0 GiB");
	check_bytes(T, "1.0 TiB");
	check_bytes(P, "1.0 PiB");
	check_bytes(P - 1, "1.0 PiB");
	/* PiB is the largest unit. */
	check_bytes(1024 * P, "1024.0 PiB");
	check_bytes(UINT64_MAX, "16384.0 PiB");
}

static void test_human_bytes_small_buffer(void **state)
{
	char buf[4];
	human_bytes(1023, buf, sizeof(buf));
	assert_string_equal(buf, "102");
	human_bytes(UINT64_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "163");
}

/* ---- json_u64 / json_str ---- */

static void test_json_getters(void **state)
{
	json_object *r =
	    reply_of("{\"n\":18446744073709551615,\"neg\":-5,\"s\":\"x\",\"i\":3,\"b\":true}");
	assert_true(json_u64(r, "n") == UINT64_MAX);
	assert_int_equal(json_u64(r, "neg"), 0);
	assert_int_equal(json_u64(r, "i"), 3);
	assert_int_equal(json_u64(r, "missing"), 0);
	assert_string_equal(json_str(r, "s"), "x");
	assert_string_equal(json_str(r, "i"), "");
	assert_string_equal(json_str(r, "missing"), "");
	assert_int_equal(json_u64(NULL, "n"), 0);
	assert_string_equal(json_str(NULL, "s"), "");
	json_object_put(r);
}

/* ---- format_json ---- */

static void test_json(void **state)
{
	json_object *r = reply_of("{\"ok\":true,\"log_level\":\"info\",\"path\":\"/run/x\","
				  "\"protocol\":1}");
	struct captured c = run(F_JSON, r, NULL);
	assert_string_equal(c.out, "{\n"
				   "  \"log_level\":\"info\",\n"
				   "  \"path\":\"/run/x\",\n"
				   "  \"protocol\":1\n"
				   "}\n");
	assert_string_equal(c.err, "");
	captured_free(&c);
	json_object_put(r);
}

/* ---- format_stats ---- */

static void test_stats_lines(void **state)
{
	json_object *r = stats_reply();
	struct captured c = run(F_STATS, r, NULL);
	char want[4096];
	size_t n = 0;
	uint64_t v = 1;

	n += (size_t) snprintf(want + n, sizeof(want) - n,
			       "version 0.1.0\npid 4242\nuptime_seconds 3725\n"
			       "started_at 1700000000\nthreads 2\n");
#define X(name, help)                                                                              \
	n += (size_t) snprintf(want + n, sizeof(want) - n, #name " %" PRIu64 "\n", v++ * 100);
	WORKER_COUNTERS(X)
#undef X
	n += (size_t) snprintf(want + n, sizeof(want) - n,
			       "connections_active 7\nmax_connections 10000\nreloads 3\n"
			       "reloads_failed 1\ncontrol_requests 55\ncontrol_denied 2\n"
			       "control_errors 4\n");
	for (uint64_t t = 0; t < 2; t++) {
		v = 1;
#define X(name, help)                                                                              \
	n += (size_t) snprintf(want + n, sizeof(want) - n,                                         \
			       "thread%" PRIu64 "." #name " %" PRIu64 "\n", t, v++ * 10 + t);
		WORKER_COUNTERS(X)
#undef X
		n += (size_t) snprintf(want + n, sizeof(want) - n,
				       "thread%" PRIu64 ".connections_active %" PRIu64 "\n", t,
				       3 + t);
	}
	assert_true(n < sizeof(want));
	assert_string_equal(c.out, want);
	/* The lines the issue names, spelled out. */
	assert_has_line(c.out, "connections_total 100");
	assert_has_line(c.out, "bytes_received 500");
	assert_has_line(c.out, "thread0.connections_total 10");
	assert_has_line(c.out, "thread1.connections_total 11");
	assert_has_line(c.out, "thread1.bytes_sent 61");
	assert_int_equal(count_prefix(c.out, "thread0.thread"), 0);
	assert_string_equal(c.err, "");
	captured_free(&c);
	json_object_put(r);
}

/* Numbers print in full, as unsigned; strings other than version and non-numbers don't print. */
static void test_stats_values(void **state)
{
	json_object *r =
	    reply_of("{\"ok\":true,\"big\":18446744073709551615,\"zero\":0,"
		     "\"mode\":\"echo\",\"flag\":true,\"list\":[1,2],\"obj\":{\"a\":1},"
		     "\"version\":\"9.9\",\"workers\":[{\"thread\":7,\"x\":1}]}");
	struct captured c = run(F_STATS, r, NULL);
	assert_string_equal(c.out, "big 18446744073709551615\nzero 0\nversion 9.9\nthread7.x 1\n");
	captured_free(&c);
	json_object_put(r);
}

/* ---- format_status ---- */

static void test_status(void **state)
{
	json_object *r = stats_reply();
	json_object *l = json_object_new_array();
	json_object_array_add(l, json_object_new_string("127.0.0.1:7007"));
	json_object_array_add(l, json_object_new_string("[::1]:7007"));
	json_object_object_add(r, "listeners", l);
	json_object_object_add(r, "socket_activated", json_object_new_boolean(1));
	json_object_object_add(r, "mode", json_object_new_string("line"));
	json_object_object_add(r, "log_level", json_object_new_string("debug"));
	json_object_object_add(r, "config_file", json_object_new_string("/etc/echod/echod.conf"));
	json_object_object_add(r, "bytes_received", json_object_new_uint64(1536));
	json_object_object_add(r, "bytes_sent", json_object_new_uint64(3u * 1024 * 1024));

	struct captured c = run(F_STATUS, r, NULL);
	assert_string_equal(c.out,
			    "echod 0.1.0 is running (pid 4242), up 1h 2m 5s\n"
			    "  listening:    127.0.0.1:7007, [::1]:7007 (socket-activated)\n"
			    "  threads:      2\n"
			    "  mode:         line\n"
			    "  connections:  7 active (max 10000), 100 total, 200 rejected, 300 "
			    "timed out\n"
			    "  bytes:        1.5 KiB in, 3.0 MiB out\n"
			    "  reloads:      3 ok, 1 failed\n"
			    "  log level:    debug\n"
			    "  config:       /etc/echod/echod.conf\n");
	assert_string_equal(c.err, "");
	captured_free(&c);
	json_object_put(r);
}

static void test_status_durations(void **state)
{
	static const struct {
		uint64_t s;
		const char *want;
	} cases[] = {
	    {0, "0s"},		 {59, "59s"},	      {60, "1m 0s"},
	    {3599, "59m 59s"},	 {3600, "1h 0m 0s"},  {86399, "23h 59m 59s"},
	    {86400, "1d 0h 0m"}, {90061, "1d 1h 1m"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_object *r = json_object_new_object();
		char want[128];
		json_object_object_add(r, "uptime_seconds", json_object_new_uint64(cases[i].s));
		struct captured c = run(F_STATUS, r, NULL);
		snprintf(want, sizeof(want), "echod  is running (pid 0), up %s", cases[i].want);
		assert_has_line(c.out, want);
		captured_free(&c);
		json_object_put(r);
	}
}

/* ---- format_threads ---- */

static void test_threads(void **state)
{
	json_object *r = stats_reply();
	struct captured c = run(F_THREADS, r, NULL);
	/* thread t: connections_total 10+t, rejected 20+t, timed_out 30+t, bytes 50+t/60+t,
	 * lines 70+t, active 3+t */
	assert_string_equal(c.out,
			    "THREAD   ACTIVE      TOTAL  REJECTED  TIMEDOUT     BYTES_IN    "
			    "BYTES_OUT      LINES\n"
			    "0             3         10        20        30           50           "
			    "60         70\n"
			    "1             4         11        21        31           51           "
			    "61         71\n");
	captured_free(&c);
	json_object_put(r);
}

/* ---- format_connections ---- */

static void test_connections(void **state)
{
	json_object *r =
	    reply_of("{\"ok\":true,\"connections\":["
		     "{\"id\":1,\"peer\":\"127.0.0.1:40000\",\"thread\":0,\"age_seconds\":65,"
		     "\"idle_seconds\":3,\"bytes_received\":6,\"bytes_sent\":6,\"pending_bytes\":0,"
		     "\"mode\":\"echo\",\"state\":\"open\"},"
		     "{\"id\":18446744073709551615,\"peer\":\"[2001:db8::1]:65535\",\"thread\":1,"
		     "\"age_seconds\":90061,\"idle_seconds\":3600,\"bytes_received\":1048576,"
		     "\"bytes_sent\":0,\"state\":\"sending\"}],\"protocol\":1}");
	struct captured c = run(F_CONNECTIONS, r, NULL);
	char want[1024];
	snprintf(want, sizeof(want),
		 "%-10s %-42s %6s %8s %8s %12s %12s %s\n"
		 "%-10s %-42s %6s %8s %8s %12s %12s %s\n"
		 "%-10s %-42s %6s %8s %8s %12s %12s %s\n"
		 "2 connections\n",
		 "ID", "PEER", "THREAD", "AGE", "IDLE", "BYTES_IN", "BYTES_OUT", "STATE", "1",
		 "127.0.0.1:40000", "0", "1m 5s", "3s", "6", "6", "open", "18446744073709551615",
		 "[2001:db8::1]:65535", "1", "1d 1h 1m", "1h 0m 0s", "1048576", "0", "sending");
	assert_string_equal(c.out, want);
	captured_free(&c);
	json_object_put(r);
}

static void test_connections_count_words(void **state)
{
	json_object *r = reply_of("{\"ok\":true,\"connections\":[]}");
	struct captured c = run(F_CONNECTIONS, r, NULL);
	assert_has_line(c.out, "0 connections");
	assert_int_equal(count_prefix(c.out, ""), 2);
	captured_free(&c);
	json_object_put(r);

	r = reply_of("{\"ok\":true,\"connections\":[{\"id\":5}]}");
	c = run(F_CONNECTIONS, r, NULL);
	assert_has_line(c.out, "1 connection");
	assert_false(has_line(c.out, "1 connections"));
	captured_free(&c);
	json_object_put(r);
}

/* ---- missing keys and wrong types ---- */

static void test_missing_keys_dont_crash(void **state)
{
	static const char *const replies[] = {
	    "{}",
	    "{\"ok\":true}",
	    "{\"workers\":null,\"connections\":null,\"listeners\":null}",
	    "{\"workers\":\"x\",\"connections\":5,\"listeners\":{\"a\":1}}",
	    "{\"workers\":{},\"connections\":{},\"listeners\":\"a\"}",
	    "{\"workers\":[null,5,\"s\",[],{}],\"connections\":[null,3,\"x\",[],{}],"
	    "\"listeners\":[null,3,\"a\",{}]}",
	    "{\"workers\":[{\"thread\":\"x\",\"bytes_sent\":\"12\"}],\"version\":5,"
	    "\"pid\":-1,\"uptime_seconds\":1.5,\"mode\":null,\"log_level\":[]}",
	};
	static const enum which all[] = {F_JSON,    F_STATUS,	   F_STATS,
					 F_THREADS, F_CONNECTIONS, F_PROMETHEUS};
	struct ctl_options o = {0};

	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		for (size_t j = 0; j < sizeof(all) / sizeof(all[0]); j++) {
			json_object *r = reply_of(replies[i]);
			struct captured c = run(all[j], r, &o);
			if (all[j] == F_PROMETHEUS)
				assert_true(c.rc == EXIT_OK || c.rc == EXIT_ECHOD_ERROR);
			captured_free(&c);
			json_object_put(r);
		}
	}
}

static void test_status_of_empty_reply(void **state)
{
	json_object *r = reply_of("{}");
	struct captured c = run(F_STATUS, r, NULL);
	assert_string_equal(c.out,
			    "echod  is running (pid 0), up 0s\n"
			    "  listening:    \n"
			    "  threads:      0\n"
			    "  mode:         \n"
			    "  connections:  0 active (max 0), 0 total, 0 rejected, 0 timed out\n"
			    "  bytes:        0 B in, 0 B out\n"
			    "  reloads:      0 ok, 0 failed\n"
			    "  log level:    \n"
			    "  config:       \n");
	captured_free(&c);
	json_object_put(r);
}

/* ---- format_prometheus ---- */

/* Checks the exposition's structure: every sample belongs to a family announced once with
 * HELP then TYPE, counters end in _total exactly once, and no family is announced twice. */
static void check_exposition(const char *text)
{
	char family[128] = "", type[16] = "";
	char seen[64][128];
	int nseen = 0;

	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		assert_non_null(nl); /* every line ends in \n */
		int len = (int) (nl - line);
		char name[128], t[16];
		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", name), 1);
			for (int i = 0; i < nseen; i++)
				if (strcmp(seen[i], name) == 0)
					fail_msg("family %s announced twice", name);
			assert_true(nseen < 64);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
			snprintf(family, sizeof(family), "%s", name);
			type[0] = '\0';
			/* The TYPE line follows at once. */
			const char *next = nl + 1;
			assert_int_equal(sscanf(next, "# TYPE %127s %15s", name, t), 2);
			assert_string_equal(name, family);
			assert_true(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0);
			snprintf(type, sizeof(type), "%s", t);
			size_t fl = strlen(family);
			bool total = fl > 6 && strcmp(family + fl - 6, "_total") == 0;
			if (strcmp(type, "counter") == 0) {
				if (!total)
					fail_msg("counter %s does not end in _total", family);
				if (strstr(family, "_total_total"))
					fail_msg("counter %s has _total twice", family);
			} else if (total) {
				fail_msg("gauge %s ends in _total", family);
			}
			assert_int_equal(strncmp(family, "echod_", 6), 0);
			line = strchr(next, '\n') + 1;
			continue;
		}
		assert_true(line[0] != '#');
		/* A sample: NAME{...} VALUE or NAME VALUE, NAME the current family. */
		size_t fl = strlen(family);
		if (fl == 0 || strncmp(line, family, fl) != 0 ||
		    (line[fl] != ' ' && line[fl] != '{'))
			fail_msg("sample \"%.*s\" outside its family %s", len, line, family);
		const char *sp = memrchr(line, ' ', (size_t) len);
		assert_non_null(sp);
		assert_true(sp + 1 < nl);
		for (const char *d = sp + 1; d < nl; d++)
			assert_true(*d >= '0' && *d <= '9');
		line = nl + 1;
	}
}

static void test_prometheus(void **state)
{
	json_object *r = stats_reply();
	struct ctl_options o = {0};
	struct captured c = run(F_PROMETHEUS, r, &o);

	assert_int_equal(c.rc, EXIT_OK);
	assert_string_equal(c.err, "");
	check_exposition(c.out);

	assert_has_line(c.out, "# HELP echod_info Version of the running echod (always 1)");
	assert_has_line(c.out, "# TYPE echod_info gauge");
	assert_has_line(c.out, "echod_info{version=\"0.1.0\"} 1");
	assert_has_line(c.out, "# TYPE echod_start_time_seconds gauge");
	assert_has_line(c.out, "echod_start_time_seconds 1700000000");
	assert_has_line(c.out, "echod_uptime_seconds 3725");
	assert_has_line(c.out, "echod_threads 2");
	assert_has_line(c.out, "echod_max_connections 10000");
	assert_has_line(c.out, "# TYPE echod_connections_active gauge");
	assert_has_line(c.out, "echod_connections_active{thread=\"0\"} 3");
	assert_has_line(c.out, "echod_connections_active{thread=\"1\"} 4");
	/* connections_total keeps its _total once. */
	assert_has_line(c.out, "# HELP echod_connections_total Client connections accepted and "
			       "served");
	assert_has_line(c.out, "# TYPE echod_connections_total counter");
	assert_has_line(c.out, "echod_connections_total{thread=\"0\"} 10");
	assert_has_line(c.out, "echod_connections_total{thread=\"1\"} 11");
	assert_null(strstr(c.out, "connections_total_total"));
	/* every worker counter: a counter family with one series per thread */
	uint64_t v = 1;
	(void) v;
#define X(name, help)                                                                              \
	{                                                                                          \
		char line[256];                                                                    \
		const char *fam = strcmp(#name, "connections_total") == 0 ? "echod_" #name         \
									  : "echod_" #name         \
									    "_total";              \
		snprintf(line, sizeof(line), "# HELP %s %s", fam, help);                           \
		assert_has_line(c.out, line);                                                      \
		snprintf(line, sizeof(line), "# TYPE %s counter", fam);                            \
		assert_has_line(c.out, line);                                                      \
		for (uint64_t t = 0; t < 2; t++) {                                                 \
			snprintf(line, sizeof(line), "%s{thread=\"%" PRIu64 "\"} %" PRIu64, fam,   \
				 t, v * 10 + t);                                                   \
			assert_has_line(c.out, line);                                              \
		}                                                                                  \
		snprintf(line, sizeof(line), "%s{", fam);                                          \
		assert_int_equal(count_prefix(c.out, line), 2);                                    \
		v++;                                                                               \
	}
	WORKER_COUNTERS(X)
#undef X
	assert_has_line(c.out, "# TYPE echod_reloads_total counter");
	assert_has_line(c.out, "echod_reloads_total 3");
	assert_has_line(c.out, "echod_reloads_failed_total 1");
	assert_has_line(c.out, "echod_control_requests_total 55");
	assert_has_line(c.out, "echod_control_denied_total 2");
	assert_has_line(c.out, "echod_control_errors_total 4");
	/* HELP and TYPE for every family: as many of each as there are families. */
	assert_int_equal(count_prefix(c.out, "# HELP "), count_prefix(c.out, "# TYPE "));
	assert_int_equal(count_prefix(c.out, "# TYPE "), 6 + 9 + 5);
	captured_free(&c);
	json_object_put(r);
}

static void test_prometheus_labels(void **state)
{
	json_object *r = stats_reply();
	struct ctl_options o = {
	    .labels = {"instance=b", "x=a\"b\\c\nd", "_e9=", "Job_1=echo"},
	    .nlabels = 4,
	};
	struct captured c = run(F_PROMETHEUS, r, &o);
	static const char extra[] = "instance=\"b\",x=\"a\\\"b\\\\c\\nd\",_e9=\"\",Job_1=\"echo\"";
	char line[512];

	assert_int_equal(c.rc, EXIT_OK);
	check_exposition(c.out);
	snprintf(line, sizeof(line), "echod_bytes_sent_total{thread=\"0\",%s} 60", extra);
	assert_has_line(c.out, line);
	snprintf(line, sizeof(line), "echod_connections_active{thread=\"1\",%s} 4", extra);
	assert_has_line(c.out, line);
	snprintf(line, sizeof(line), "echod_reloads_total{%s} 3", extra);
	assert_has_line(c.out, line);
	snprintf(line, sizeof(line), "echod_info{version=\"0.1.0\",%s} 1", extra);
	assert_has_line(c.out, line);
	snprintf(line, sizeof(line), "echod_uptime_seconds{%s} 3725", extra);
	assert_has_line(c.out, line);
	/* Every sample carries them. */
	for (const char *p = c.out; *p; p = strchr(p, '\n') + 1) {
		const char *mine = strstr(p, "Job_1=\"echo\"} ");
		if (*p != '#' && (!mine || mine > strchr(p, '\n')))
			fail_msg("a sample without the labels: %.*s", (int) strcspn(p, "\n"), p);
	}
	captured_free(&c);
	json_object_put(r);
}

static void test_prometheus_bad_labels(void **state)
{
	static const char *const bad[] = {
	    "noequals", "=x",	"1a=x",	    "a-b=x",	 "a b=x", "a.b=x", "é=x",
	    "__name=x", "__=x", "thread=x", "version=x", "a\n=x", "",	   "a\"=x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_object *r = stats_reply();
		struct ctl_options o = {.labels = {"ok=1", bad[i]}, .nlabels = 2};
		struct captured c = run(F_PROMETHEUS, r, &o);
		if (c.rc != EXIT_USAGE)
			fail_msg("--label \"%s\" was accepted (rc %d)", bad[i], c.rc);
		assert_string_equal(c.out, ""); /* nothing printed before the check */
		assert_non_null(strstr(c.err, "echoctl: --label "));
		captured_free(&c);
		json_object_put(r);
	}
}

/* Names that merely contain a reserved one are fine. */
static void test_prometheus_label_names_near_reserved(void **state)
{
	json_object *r = stats_reply();
	struct ctl_options o = {.labels = {"threads=1", "_thread=2", "versions=3", "_a_=4"},
				.nlabels = 4};
	struct captured c = run(F_PROMETHEUS, r, &o);
	assert_int_equal(c.rc, EXIT_OK);
	assert_has_line(c.out,
			"echod_threads{threads=\"1\",_thread=\"2\",versions=\"3\",_a_=\"4\"} 2");
	captured_free(&c);
	json_object_put(r);
}

/* Labels that do not fit are refused whole, never cut or written past the buffer. */
static void test_prometheus_long_labels(void **state)
{
	char a[300], b[300], quotes[300];
	json_object *r;
	struct captured c;

	memset(a, 'a', sizeof(a));
	memcpy(a, "n1=", 3);
	a[299] = '\0';
	memset(b, 'b', sizeof(b));
	memcpy(b, "n2=", 3);
	b[299] = '\0';
	/* 296 + 296 value bytes plus names and quotes: over 511. */
	struct ctl_options o = {.labels = {a, b}, .nlabels = 2};
	r = stats_reply();
	c = run(F_PROMETHEUS, r, &o);
	assert_int_equal(c.rc, EXIT_USAGE);
	assert_string_equal(c.out, "");
	assert_non_null(strstr(c.err, "too long"));
	captured_free(&c);
	json_object_put(r);

	/* Escaping doubles: 200 quotes need 400 bytes plus the rest; 300 don't fit alone. */
	memset(quotes, '"', sizeof(quotes));
	memcpy(quotes, "q=", 2);
	quotes[299] = '\0';
	struct ctl_options q = {.labels = {quotes}, .nlabels = 1};
	r = stats_reply();
	c = run(F_PROMETHEUS, r, &q);
	assert_int_equal(c.rc, EXIT_USAGE);
	assert_string_equal(c.out, "");
	captured_free(&c);
	json_object_put(r);

	/* A long name too (the name is not escaped, but must fit). */
	char name[600];
	memset(name, 'n', sizeof(name));
	name[598] = '=';
	name[599] = '\0';
	struct ctl_options n = {.labels = {name}, .nlabels = 1};
	r = stats_reply();
	c = run(F_PROMETHEUS, r, &n);
	assert_int_equal(c.rc, EXIT_USAGE);
	captured_free(&c);
	json_object_put(r);
}

/* The most that fits: ,NAME="VALUE" of exactly 511 bytes. */
static void test_prometheus_label_just_fits(void **state)
{
	char l[512];
	/* ",v=\"" (4) + value + "\"" (1) = 511: value of 506 bytes */
	memcpy(l, "v=", 2);
	memset(l + 2, 'z', 506);
	l[508] = '\0';
	struct ctl_options o = {.labels = {l}, .nlabels = 1};
	json_object *r = stats_reply();
	struct captured c = run(F_PROMETHEUS, r, &o);
	assert_int_equal(c.rc, EXIT_OK);
	char want[600];
	snprintf(want, sizeof(want), "echod_threads{v=\"%s\"} 2", l + 2);
	assert_has_line(c.out, want);
	captured_free(&c);
	json_object_put(r);

	/* One byte more is refused. */
	l[508] = 'z';
	l[509] = '\0';
	r = stats_reply();
	c = run(F_PROMETHEUS, r, &o);
	assert_int_equal(c.rc, EXIT_USAGE);
	assert_string_equal(c.out, "");
	captured_free(&c);
	json_object_put(r);
}

static void test_prometheus_without_workers(void **state)
{
	json_object *r = reply_of("{\"ok\":true,\"version\":\"0.1.0\"}");
	struct ctl_options o = {0};
	struct captured c = run(F_PROMETHEUS, r, &o);
	assert_int_equal(c.rc, EXIT_ECHOD_ERROR);
	assert_string_equal(c.out, "");
	assert_string_equal(c.err, "echoctl: the stats reply has no per-thread counters\n");
	captured_free(&c);
	json_object_put(r);
}

/* A reply with no workers and no values still gives a valid exposition (all families). */
static void test_prometheus_empty_workers(void **state)
{
	json_object *r = reply_of("{\"ok\":true,\"workers\":[]}");
	struct ctl_options o = {0};
	struct captured c = run(F_PROMETHEUS, r, &o);
	assert_int_equal(c.rc, EXIT_OK);
	check_exposition(c.out);
	assert_has_line(c.out, "echod_info{version=\"\"} 1");
	assert_has_line(c.out, "echod_reloads_total 0");
	assert_has_line(c.out, "# TYPE echod_bytes_sent_total counter");
	assert_int_equal(count_prefix(c.out, "echod_bytes_sent_total"), 0);
	captured_free(&c);
	json_object_put(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_human_bytes),
	    cmocka_unit_test(test_human_bytes_small_buffer),
	    cmocka_unit_test(test_json_getters),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_stats_lines),
	    cmocka_unit_test(test_stats_values),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_status_durations),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_connections),
	    cmocka_unit_test(test_connections_count_words),
	    cmocka_unit_test(test_missing_keys_dont_crash),
	    cmocka_unit_test(test_status_of_empty_reply),
	    cmocka_unit_test(test_prometheus),
	    cmocka_unit_test(test_prometheus_labels),
	    cmocka_unit_test(test_prometheus_bad_labels),
	    cmocka_unit_test(test_prometheus_label_names_near_reserved),
	    cmocka_unit_test(test_prometheus_long_labels),
	    cmocka_unit_test(test_prometheus_label_just_fits),
	    cmocka_unit_test(test_prometheus_without_workers),
	    cmocka_unit_test(test_prometheus_empty_workers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
