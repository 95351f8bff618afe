// SPDX-License-Identifier: MIT
/*
 * Reload (SIGHUP or `echoctl reload`): the new file is parsed and validated
 * whole; only a valid config is swapped in. What the workers use is sent to
 * each of them as a copy. Listening addresses and the thread count are fixed
 * for the life of the process: a change is logged and takes effect on restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "daemon.h"
#include "log.h"
#include "server-internal.h"

static void set_params(struct worker *w, void *arg)
{
	worker_set_params(w, arg);
	free(arg);
}

static void push_params(struct server *s)
{
	struct worker_params p;

	server_params_from_config(s, &p);

	for (int i = 0; i < s->nworkers; i++) {
		struct worker_params *copy = malloc(sizeof(*copy));
		if (copy)
			*copy = p;
		if (!copy || worker_call(s->workers[i], set_params, copy) < 0) {

			free(copy);
			log_error("reload: worker %d keeps its old settings: out of memory", i);
		}
	}
}

static void warn_fixed_settings(const struct server *s, const struct echod_config *n)
{
	if (!s->activated && (strcmp(s->cfg.host, n->host) != 0 || s->cfg.port != n->port))
		log_warning("reload: host/port changed to %s:%d; this takes effect on restart",
			    n->host, n->port);
	if (config_worker_count(&s->cfg) != config_worker_count(n))
		log_warning("reload: threads changed to %d; this takes effect on restart",
			    config_worker_count(n));
	if (strcmp(s->cfg.control_socket, n->control_socket) != 0)
		log_warning(
		    "reload: control_socket changed to \"%s\"; this takes effect on restart",
		    n->control_socket);
}

static int reject(struct server *s, struct config_errors *errs, char *reason, size_t len)
{
	const char *first = errs->count ? errs->lines[0] : "cannot load the config";

	config_errors_log(errs);
	log_error("reload failed; keeping the running configuration");
	s->reloads_failed++;
	if (reason)
		snprintf(reason, len, "%s", first);
	supervisor_status("Reload failed: %s", first);
	supervisor_ready();
	return -EINVAL;
}

int server_reload(struct server *s, char *reason, size_t len)
{
	struct config_errors errs = {0};
	struct echod_config n;
	int r;

	supervisor_reloading();
	log_info("reloading the configuration");
	r = daemon_load_config(s->opts, &n, &errs);
	if (r < 0) {
		r = reject(s, &errs, reason, len);
		config_errors_done(&errs);
		config_done(&n);
		return r;
	}
	warn_fixed_settings(s, &n);
	/* The listening and threading settings stay those of the running process. */
	free(n.host);
	n.host = s->cfg.host;
	n.port = s->cfg.port;
	n.threads = s->cfg.threads;
	s->cfg.host = NULL;
	free(n.control_socket);
	n.control_socket = s->cfg.control_socket;
	s->cfg.control_socket = NULL;
	config_done(&s->cfg);
	s->cfg = n;

	log_set_level(s->cfg.log_level);
	atomic_store(&s->max_connections, s->cfg.max_connections);
	push_params(s);
	control_apply_config(s);
	s->reloads++;
	log_notice("configuration reloaded");
	supervisor_ready();
	server_update_status(s, true);
	return 0;
}
