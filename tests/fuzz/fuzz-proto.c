// SPDX-License-Identifier: MIT
/*
 * Fuzzes proto_parse_request() with any bytes as one request line, and checks
 * what a caller relies on: a parsed request names a known command with an
 * argument count it accepts and NUL-terminated printable arguments; a refused
 * one leaves a NUL-terminated message within errlen, even for a tiny errlen.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static bool is_known(const struct proto_command *cmd)
{
	for (size_t i = 0; i < proto_commands_count; i++)
		if (cmd == &proto_commands[i])
			return true;
	return false;
}

/* The words of the line as the protocol defines them: space-separated, trailing CR dropped. */
static int count_words(const char *line, size_t len)
{
	int n = 0;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && (i == 0 || line[i - 1] == ' '))
			n++;
	return n;
}

static void check_err(const char *err, size_t errlen)
{
	CHECK(memchr(err, '\0', errlen) != NULL);
	CHECK(errlen == 1 || err[0] != '\0'); /* a refusal always says why */
}

static void parse_once(const char *line, size_t len, size_t errlen)
{
	struct proto_request req;
	/* Heap-allocated at its exact size so ASan catches a write past errlen. */
	char *err = malloc(errlen);
	CHECK(err);
	memset(err, 'x', errlen);

	int r = proto_parse_request(line, len, &req, err, errlen);
	if (r == 0) {
		CHECK(req.cmd && is_known(req.cmd));
		CHECK(req.argc >= req.cmd->min_args && req.argc <= req.cmd->max_args);
		CHECK(count_words(line, len) == 1 + req.argc);
		for (int i = 0; i < req.argc; i++) {
			const char *a = req.argv[i];
			size_t alen = strnlen(a, sizeof(req.argv[i]));
			CHECK(alen > 0 && alen < sizeof(req.argv[i]));
			for (size_t j = 0; j < alen; j++)
				CHECK(isgraph((unsigned char) a[j]));
		}
	} else {
		CHECK(r == -EINVAL || r == -EPROTO);
		check_err(err, errlen);
	}
	free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The daemon never passes more than a request's worth (PROTO_MAX_REQUEST). */
	if (size > 2 * PROTO_MAX_REQUEST)
		return -1;
	/* An exact-size copy: a read past len is an ASan report, not a lucky NUL. */
	char *line = malloc(size ? size : 1);
	CHECK(line);
	if (size)
		memcpy(line, data, size);
	parse_once(line, size, 256); /* what control.c passes */
	parse_once(line, size, 1);
	parse_once(line, size, 7);
	free(line);
	return 0;
}
