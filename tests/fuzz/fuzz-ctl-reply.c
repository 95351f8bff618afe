// SPDX-License-Identifier: MIT
/*
 * Fuzzes echoctl's handling of a reply: no reply echod (or whatever listens
 * on the control socket) sends may crash echoctl.
 *
 * The input is what the peer sends. It is written into one end of a
 * socketpair and the real client_request() reads it from the other, so the
 * reply goes through the same read loop and json_tokener_parse_ex() call as
 * in echoctl. The reply (if it is a JSON object) is then checked with
 * client_check_reply() and given to every formatter, each on its own copy
 * because some of them edit the object. Lines after the first, up to four,
 * are used as --label NAME=VALUE arguments for the Prometheus output.
 *
 * stdout goes to /dev/null; stderr is left alone for sanitizer reports, so
 * run with -close_fd_mask=2 to silence echoctl's error messages (run.sh does).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "fuzz-ctl-reply: check failed at line %d: %s\n", __LINE__, \
				#x);                                                               \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	CHECK(freopen("/dev/null", "w", stdout));
	return 0;
}

/* The lines after the reply line become --label arguments, as from argv. */
static void take_labels(const char *s, size_t n, struct ctl_options *o, char store[4][512])
{
	const char *nl = memchr(s, '\n', n);
	while (nl && o->nlabels < 4) {
		const char *start = nl + 1;
		size_t left = n - (size_t) (start - s);
		nl = memchr(start, '\n', left);
		size_t len = nl ? (size_t) (nl - start) : left;
		if (len >= 512)
			len = 511;
		memcpy(store[o->nlabels], start, len);
		store[o->nlabels][len] = '\0';
		o->labels[o->nlabels] = store[o->nlabels];
		o->nlabels++;
	}
}

static json_object *copy_of(json_object *reply)
{
	json_object *copy = NULL;
	CHECK(json_object_deep_copy(reply, &copy, NULL) == 0 && copy);
	return copy;
}

static void show_all(json_object *reply, const struct ctl_options *o)
{
	void (*const human[])(json_object *) = {format_json, format_status, format_stats,
						format_threads, format_connections};
	json_object *copy;

	(void) client_check_reply(reply);
	for (size_t i = 0; i < sizeof(human) / sizeof(human[0]); i++) {
		copy = copy_of(reply);
		human[i](copy);
		json_object_put(copy);
	}
	copy = copy_of(reply);
	(void) format_prometheus(copy, o);
	json_object_put(copy);
	/* What the small commands read (reload, log-level). */
	(void) json_u64(reply, "reloads");
	(void) json_str(reply, "log_level");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_options o = {.socket_path = "fuzz", .format = OUTPUT_HUMAN, .timeout_s = 5};
	char labels[4][512];
	int sv[2];

	/* Stays well inside a socket buffer, so writing it in one go cannot block. */
	if (size > 65536)
		return -1;
	take_labels((const char *) data, size, &o, labels);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(write(sv[1], data, size) == (ssize_t) size);
	/* The peer has said everything: without a newline echoctl sees EOF, not a timeout. */
	CHECK(shutdown(sv[1], SHUT_WR) == 0);

	struct ctl_client c = {.fd = sv[0], .path = o.socket_path, .opts = &o};
	json_object *reply = NULL;
	if (client_request(&c, "stats", &reply) == EXIT_OK) {
		CHECK(reply && json_object_is_type(reply, json_type_object));
		show_all(reply, &o);
	} else {
		CHECK(!reply);
	}
	json_object_put(reply);
	client_close(&c);
	close(sv[1]);
	fflush(stdout);
	return 0;
}
