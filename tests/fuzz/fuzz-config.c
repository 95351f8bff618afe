// SPDX-License-Identifier: MIT
/*
 * Fuzzes the config loader with any text as echod.conf. Whatever comes in, the
 * result is either a config whose every key is within its documented range, or
 * -EINVAL with at least one error, each a single line (config.h promises one
 * line without "\n"; they go to the journal and to `echoctl reload`). And
 * libconfig must never get to open a file named by @include.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "fuzz-config: check failed at line %d: %s\n", __LINE__,    \
				#x);                                                               \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void check_config(const struct echod_config *c)
{
	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		const char *field = (const char *) c + k->offset;
		if (k->type == KEY_INT) {
			int v = *(const int *) field;
			CHECK(v >= k->min && v <= k->max);
		}
	}
	/* String keys: the ones stored as strings are within their length limits. */
	CHECK(c->host && strlen(c->host) >= 1 && strlen(c->host) <= 255);
	CHECK(c->line_prefix && strlen(c->line_prefix) <= 1024);
	CHECK(c->control_socket && strlen(c->control_socket) <= 107);
	CHECK(c->control_socket[0] == '\0' || c->control_socket[0] == '/');
	CHECK(c->control_socket_group && c->control_admin_group);
	CHECK(c->control_socket_mode >= 0 && c->control_socket_mode <= 0777);
	CHECK(c->mode == MODE_ECHO || c->mode == MODE_LINE);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void check_errors(const struct config_errors *e)
{
	CHECK(e->count <= sizeof(e->lines) / sizeof(e->lines[0]));
	for (size_t i = 0; i < e->count; i++) {
		CHECK(e->lines[i] && e->lines[i][0] != '\0');
		CHECK(!strchr(e->lines[i], '\n'));
		CHECK(!strchr(e->lines[i], '\r'));
		/* libconfig 1.5's error text after it tried to fopen() an @include. */
		CHECK(!ends_with(e->lines[i], ": cannot open include file"));
		CHECK(!ends_with(e->lines[i], ": include too deep"));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return -1;
	/* config_load_file() refuses a NUL byte; text in memory ends at the first. */
	const uint8_t *nul = memchr(data, '\0', size);
	if (nul)
		size = (size_t) (nul - data);
	char *text = malloc(size + 1);
	CHECK(text);
	memcpy(text, data, size);
	text[size] = '\0';

	struct echod_config c;
	struct config_errors errs = {0};
	config_init_defaults(&c);
	int r = config_load_string(&c, text, "fuzz.conf", &errs);
	check_errors(&errs);
	/* Bad values are never stored, so even a rejected config stays in range. */
	check_config(&c);
	if (r == 0) {
		CHECK(errs.count == 0 && errs.dropped == 0);
		struct echod_config copy;
		CHECK(config_copy(&copy, &c) == 0);
		config_done(&copy);
	} else {
		CHECK(r == -EINVAL);
		CHECK(errs.count > 0);
	}
	config_errors_done(&errs);
	config_done(&c);
	free(text);
	return 0;
}
