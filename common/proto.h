/* SPDX-License-Identifier: MIT */
/*
 * DOC: the control protocol, shared by echod and echoctl (and documented in
 * echoctl(1), so `socat` or a script can speak it).
 *
 * A client connects to the Unix stream socket and sends requests, one per
 * line: a command word and up to two arguments separated by spaces, at most
 * PROTO_MAX_REQUEST bytes including the "\n". echod answers each request with
 * exactly one JSON object on one line, ending in "\n", in request order:
 *   {"ok":true,"protocol":1,...}              on success
 *   {"ok":false,"protocol":1,"error":"...","code":"usage|denied|failed|not_found|busy"}
 * A request that is too long, or a client that sends nothing complete within
 * PROTO_TIMEOUT_MS, gets an error reply and is disconnected.
 *
 * Version history:
 *   1  first version (echod 0.1.0).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define PROTO_VERSION	  1
#define PROTO_MAX_REQUEST 4096
#define PROTO_MAX_CLIENTS 64
#define PROTO_TIMEOUT_MS  10000
#define PROTO_MAX_ARGS	  2

/* Why a request failed; the reply's "code". echoctl maps these to exit codes. */
#define PROTO_CODE_USAGE     "usage"
#define PROTO_CODE_DENIED    "denied"
#define PROTO_CODE_FAILED    "failed"
#define PROTO_CODE_NOT_FOUND "not_found"
#define PROTO_CODE_BUSY	     "busy"

enum proto_access {
	PROTO_READ,  /* anyone who can connect */
	PROTO_ADMIN, /* root, echod's own user, or control_admin_group */
};

struct proto_command {
	const char *name;
	enum proto_access access;
	int min_args, max_args;
	const char *args; /* for usage messages, e.g. "[LEVEL]" */
};

extern const struct proto_command proto_commands[];
extern const size_t proto_commands_count;

struct proto_request {
	const struct proto_command *cmd;
	int argc;
	char argv[PROTO_MAX_ARGS][128];
};

/*
 * Parses one request line (without its "\n"; a trailing "\r" is allowed).
 * Returns 0; -EINVAL with a message for the client in err; or -EPROTO when
 * the line holds bytes no command can contain (binary junk).

 */
int proto_parse_request(const char *line, size_t len, struct proto_request *req, char *err,
			size_t errlen);
const struct proto_command *proto_command_find(const char *name);
