// SPDX-License-Identifier: MIT
/*
 * Prometheus text exposition (version 0.0.4) of `stats`: every metric is
 * prefixed echod_, counters end in _total, and per-worker series carry
 * thread="N". Extra labels from --label (e.g. instance="b") go on every series.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "counters.h"
#include "ctl.h"

static char extra_labels[512];

/* NAME of NAME=VALUE: [a-zA-Z_][a-zA-Z0-9_]*, not reserved ("__...") and not one of ours. */
static bool valid_label(const char *nv, size_t *eq)
{
	const char *p = strchr(nv, '=');
	if (!p || p == nv)
		return false;
	for (const char *q = nv; q < p; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '_' ||
		      (q > nv && *q >= '0' && *q <= '9')))
			return false;
	*eq = (size_t) (p - nv);
	if ((*eq >= 2 && nv[0] == '_' && nv[1] == '_') ||
	    (*eq == 6 && strncmp(nv, "thread", 6) == 0) ||
	    (*eq == 7 && strncmp(nv, "version", 7) == 0))
		return false;
	return true;
}

/* Builds `,name="value"` for each --label, escaping the value as the format requires. */
static int build_labels(const struct ctl_options *o)
{
	size_t used = 0;
	extra_labels[0] = '\0';
	for (int i = 0; i < o->nlabels; i++) {
		const char *value;
		size_t eq, need;
		if (!valid_label(o->labels[i], &eq)) {
			fprintf(stderr,
				"echoctl: --label %s: expected NAME=VALUE with NAME of "
				"[a-zA-Z_][a-zA-Z0-9_]*, not starting with __ and not thread "
				"or version\n",
				o->labels[i]);
			return EXIT_USAGE;
		}
		value = o->labels[i] + eq + 1;
		/* ,NAME="VALUE" with the value escaped, and the final NUL: all must fit. */
		need = 1 + eq + 2 + 1 + 1;
		for (const char *v = value; *v; v++)
			need += *v == '\\' || *v == '"' || *v == '\n' ? 2 : 1;
		if (need > sizeof(extra_labels) - used) {
			fprintf(stderr,
				"echoctl: --label %s: too long (all labels together may take %zu "
				"bytes)\n",
				o->labels[i], sizeof(extra_labels) - 1);
			return EXIT_USAGE;
		}
		extra_labels[used++] = ',';
		memcpy(extra_labels + used, o->labels[i], eq);
		used += eq;
		extra_labels[used++] = '=';
		extra_labels[used++] = '"';
		for (const char *v = value; *v; v++) {
			if (*v == '\\' || *v == '"' || *v == '\n') {
				extra_labels[used++] = '\\';
				extra_labels[used++] = *v == '\n' ? 'n' : *v;
			} else {
				extra_labels[used++] = *v;
			}
		}
		extra_labels[used++] = '"';
		extra_labels[used] = '\0';
	}
	return EXIT_OK;
}

/* Labels for one series: {a="b",...}, or nothing when there are none. */
static void series(const char *name, const char *own, uint64_t value)
{
	const char *extra = extra_labels[0] ? extra_labels + (own ? 0 : 1) : "";
	if (!own && !extra_labels[0])
		printf("%s %" PRIu64 "\n", name, value);
	else
		printf("%s{%s%s} %" PRIu64 "\n", name, own ? own : "", extra, value);
}

static void header(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(json_object *r, const char *key, const char *help)
{
	char name[128];
	snprintf(name, sizeof(name), "echod_%s", key);
	header(name, "gauge", help);
	series(name, NULL, json_u64(r, key));
}

static void counter(json_object *r, const char *key, const char *help)
{
	char name[128];
	snprintf(name, sizeof(name), "echod_%s_total", key);
	header(name, "counter", help);
	series(name, NULL, json_u64(r, key));
}

/* One family with a series per worker; names already ending in _total keep it once. */
static void per_thread(json_object *workers, const char *key, const char *type, const char *help)
{
	char name[128], own[32];
	size_t len = strlen(key);
	bool has_total = len > 6 && strcmp(key + len - 6, "_total") == 0;

	snprintf(name, sizeof(name), "echod_%s%s", key,
		 strcmp(type, "counter") == 0 && !has_total ? "_total" : "");
	header(name, type, help);
	for (size_t i = 0; i < json_object_array_length(workers); i++) {
		json_object *w = json_object_array_get_idx(workers, i);
		snprintf(own, sizeof(own), "thread=\"%" PRIu64 "\"", json_u64(w, "thread"));
		series(name, own, json_u64(w, key));
	}
}

int format_prometheus(json_object *r, const struct ctl_options *o)
{
	json_object *workers;
	char own[96];
	int rc = build_labels(o);

	if (rc)
		return rc;
	if (!json_object_object_get_ex(r, "workers", &workers) ||
	    !json_object_is_type(workers, json_type_array)) {
		fprintf(stderr, "echoctl: the stats reply has no per-thread counters\n");
		return EXIT_ECHOD_ERROR;
	}
	header("echod_info", "gauge", "Version of the running echod (always 1)");
	snprintf(own, sizeof(own), "version=\"%s\"", json_str(r, "version"));
	series("echod_info", own, 1);
	header("echod_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch");
	series("echod_start_time_seconds", NULL, json_u64(r, "started_at"));
	gauge(r, "uptime_seconds", "Seconds since echod started");
	gauge(r, "threads", "Worker threads");
	gauge(r, "max_connections", "Configured max_connections");
	per_thread(workers, "connections_active", "gauge", "Client connections open now");
#define X(name, help) per_thread(workers, #name, "counter", help);
	WORKER_COUNTERS(X)
#undef X

	counter(r, "reloads", "Configuration reloads that succeeded");
	counter(r, "reloads_failed", "Configuration reloads rejected (old config kept)");
	counter(r, "control_requests", "Requests on the control socket");
	counter(r, "control_denied", "Control requests refused for lack of privilege");
	counter(r, "control_errors", "Control requests answered with an error");
	return EXIT_OK;
}
