// SPDX-License-Identifier: MIT
/* Request parsing for the control protocol; see proto.h. Fuzzed by tests/fuzz. */
#include "proto.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"

const struct proto_command proto_commands[] = {
    {"ping", PROTO_READ, 0, 0, ""},
    {"version", PROTO_READ, 0, 0, ""},
    {"status", PROTO_READ, 0, 0, ""},
    {"stats", PROTO_READ, 0, 0, ""},
    {"threads", PROTO_READ, 0, 0, ""},
    {"connections", PROTO_READ, 0, 0, ""},
    {"kill", PROTO_ADMIN, 1, 1, "ID"},
    {"reload", PROTO_ADMIN, 0, 0, ""},
    {"log-level", PROTO_READ, 0, 1, "[LEVEL]"}, /* setting a level needs admin */
    {"stats-reset", PROTO_ADMIN, 0, 0, ""},
};
const size_t proto_commands_count = ARRAY_SIZE(proto_commands);

const struct proto_command *proto_command_find(const char *name)
{
	for (size_t i = 0; i < proto_commands_count; i++)
		if (strcmp(proto_commands[i].name, name) == 0)
			return &proto_commands[i];
	return NULL;
}

/* Copies a word for an error message, replacing anything unprintable. */
static void printable(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t n = MIN(len, dstlen - 1);
	for (size_t i = 0; i < n; i++)
		dst[i] = isprint((unsigned char) src[i]) ? src[i] : '?';
	dst[n] = '\0';
}

static int split_words(const char *line, size_t len, char words[][128], int max, int *count,
		       char *err, size_t errlen)
{
	size_t i = 0;
	int n = 0;

	while (i < len) {
		while (i < len && line[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t start = i;
		while (i < len && line[i] != ' ')
			i++;
		if (n == max) {
			snprintf(err, errlen, "too many arguments");
			return -EINVAL;
		}
		if (i - start >= 128) {
			snprintf(err, errlen, "argument %d is too long (max 127 bytes)", n);
			return -EINVAL;
		}
		memcpy(words[n], line + start, i - start);
		words[n][i - start] = '\0';
		n++;
	}
	*count = n;
	return 0;
}

int proto_parse_request(const char *line, size_t len, struct proto_request *req, char *err,
			size_t errlen)
{
	char words[1 + PROTO_MAX_ARGS][128];
	int n = 0;

	*req = (struct proto_request){0};
	if (len > 0 && line[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\0' || (line[i] != ' ' && !isgraph((unsigned char) line[i]))) {
			snprintf(err, errlen, "request contains a control or non-ASCII byte");
			return -EPROTO;
		}
	}
	if (split_words(line, len, words, 1 + PROTO_MAX_ARGS, &n, err, errlen) < 0)
		return -EINVAL;
	if (n == 0) {
		snprintf(err, errlen, "empty request");
		return -EINVAL;
	}
	req->cmd = proto_command_find(words[0]);
	if (!req->cmd) {
		char name[64];
		printable(name, sizeof(name), words[0], strlen(words[0]));
		snprintf(err, errlen, "unknown command \"%s\"", name);
		return -EINVAL;
	}
	req->argc = n - 1;
	if (req->argc < req->cmd->min_args || req->argc > req->cmd->max_args) {
		snprintf(err, errlen, "usage: %s %s", req->cmd->name, req->cmd->args);
		return -EINVAL;
	}
	for (int i = 0; i < req->argc; i++)
		memcpy(req->argv[i], words[i + 1], sizeof(req->argv[i]));
	return 0;
}
