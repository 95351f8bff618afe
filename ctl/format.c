// SPDX-License-Identifier: MIT
/* Turning control replies into human tables, `name value` lines, JSON and Prometheus text. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "counters.h"
#include "ctl.h"
#include "macro.h"

uint64_t json_u64(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_uint64(v);
}

const char *json_str(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

static json_object *json_array(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

void human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double) n;
	size_t u = 0;
	/* 1023.95 and up would print as "1024.0": show those in the next unit as "1.0". */
	while (v >= 1023.95 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

static void human_duration(uint64_t s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m", s / 86400,
			 s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s", s / 3600,
			 s % 3600 / 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "s", s);
}

void format_json(json_object *reply)
{
	json_object_object_del(reply, "ok");
	puts(json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
}

void format_status(json_object *r)
{
	char up[64], in[32], out[32];
	json_object *listeners = json_array(r, "listeners");
	json_object *act;
	bool activated =
	    json_object_object_get_ex(r, "socket_activated", &act) && json_object_get_boolean(act);

	human_duration(json_u64(r, "uptime_seconds"), up, sizeof(up));
	human_bytes(json_u64(r, "bytes_received"), in, sizeof(in));
	human_bytes(json_u64(r, "bytes_sent"), out, sizeof(out));
	printf("echod %s is running (pid %" PRIu64 "), up %s\n", json_str(r, "version"),
	       json_u64(r, "pid"), up);
	printf("  listening:    ");
	for (size_t i = 0; listeners && i < json_object_array_length(listeners); i++) {
		/* NULL for a JSON null, and printf("%s", NULL) is undefined. */
		const char *l = json_object_get_string(json_object_array_get_idx(listeners, i));
		printf("%s%s", i ? ", " : "", l ? l : "");
	}
	printf("%s\n", activated ? " (socket-activated)" : "");
	printf("  threads:      %" PRIu64 "\n", json_u64(r, "threads"));
	printf("  mode:         %s\n", json_str(r, "mode"));
	printf("  connections:  %" PRIu64 " active (max %" PRIu64 "), %" PRIu64 " total, %" PRIu64
	       " rejected, %" PRIu64 " timed out\n",
	       json_u64(r, "connections_active"), json_u64(r, "max_connections"),
	       json_u64(r, "connections_total"), json_u64(r, "connections_rejected"),
	       json_u64(r, "connections_timed_out"));
	printf("  bytes:        %s in, %s out\n", in, out);
	printf("  reloads:      %" PRIu64 " ok, %" PRIu64 " failed\n", json_u64(r, "reloads"),
	       json_u64(r, "reloads_failed"));
	printf("  log level:    %s\n", json_str(r, "log_level"));
	printf("  config:       %s\n", json_str(r, "config_file"));
}

static void print_numbers(const char *prefix, json_object *o)
{
	/* json_object_object_foreach() dereferences NULL for anything but an object. */
	if (!json_object_is_type(o, json_type_object))
		return;
	json_object_object_foreach(o, key, val)
	{
		if (strcmp(key, "protocol") == 0)
			continue; /* the reply's envelope, not a counter */
		if (json_object_is_type(val, json_type_int))
			printf("%s%s %" PRIu64 "\n", prefix, key, json_object_get_uint64(val));
		else if (json_object_is_type(val, json_type_string) && strcmp(key, "version") == 0)
			printf("%s%s %s\n", prefix, key, json_object_get_string(val));
	}
}

/* `name value` per line; per-worker counters as threadN.name, as unbound-control does. */
void format_stats(json_object *r)
{
	json_object *workers = json_array(r, "workers");
	print_numbers("", r);
	for (size_t i = 0; workers && i < json_object_array_length(workers); i++) {
		json_object *w = json_object_array_get_idx(workers, i);
		char prefix[32];
		/* json_object_object_del() asserts it is given an object. */
		if (!json_object_is_type(w, json_type_object))
			continue;
		snprintf(prefix, sizeof(prefix), "thread%" PRIu64 ".", json_u64(w, "thread"));
		json_object_object_del(w, "thread");
		print_numbers(prefix, w);
	}
}

void format_threads(json_object *r)
{
	json_object *workers = json_array(r, "workers");
	printf("%-6s %8s %10s %9s %9s %12s %12s %10s\n", "THREAD", "ACTIVE", "TOTAL", "REJECTED",
	       "TIMEDOUT", "BYTES_IN", "BYTES_OUT", "LINES");
	for (size_t i = 0; workers && i < json_object_array_length(workers); i++) {
		json_object *w = json_object_array_get_idx(workers, i);
		printf("%-6" PRIu64 " %8" PRIu64 " %10" PRIu64 " %9" PRIu64 " %9" PRIu64
		       " %12" PRIu64 " %12" PRIu64 " %10" PRIu64 "\n",
		       json_u64(w, "thread"), json_u64(w, "connections_active"),
		       json_u64(w, "connections_total"), json_u64(w, "connections_rejected"),
		       json_u64(w, "connections_timed_out"), json_u64(w, "bytes_received"),
		       json_u64(w, "bytes_sent"), json_u64(w, "lines"));
	}
}

void format_connections(json_object *r)
{
	json_object *rows = json_array(r, "connections");
	size_t n = rows ? json_object_array_length(rows) : 0;
	printf("%-10s %-42s %6s %8s %8s %12s %12s %s\n", "ID", "PEER", "THREAD", "AGE", "IDLE",
	       "BYTES_IN", "BYTES_OUT", "STATE");
	for (size_t i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(rows, i);
		char age[32], idle[32];
		human_duration(json_u64(c, "age_seconds"), age, sizeof(age));
		human_duration(json_u64(c, "idle_seconds"), idle, sizeof(idle));
		printf("%-10" PRIu64 " %-42s %6" PRIu64 " %8s %8s %12" PRIu64 " %12" PRIu64 " %s\n",
		       json_u64(c, "id"), json_str(c, "peer"), json_u64(c, "thread"), age, idle,
		       json_u64(c, "bytes_received"), json_u64(c, "bytes_sent"),
		       json_str(c, "state"));
	}
	printf("%zu connection%s\n", n, n == 1 ? "" : "s");
}
