// SPDX-License-Identifier: MIT
/* Unit tests for the control protocol's request parser and command table (common/proto.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

struct parsed {
	int r;
	struct proto_request req;
	char err[256];
};

/* Parses s (without its "\n"), as control.c does with one line. */
static struct parsed parse_len(const char *s, size_t len)
{
	struct parsed p;
	memset(&p, 0x5a, sizeof(p));
	p.err[0] = '\0';
	p.r = proto_parse_request(s, len, &p.req, p.err, sizeof(p.err));
	return p;
}

static struct parsed parse(const char *s)
{
	return parse_len(s, strlen(s));
}

static void assert_ok(const struct parsed *p, const char *name, int argc)
{
	if (p->r != 0)
		fail_msg("expected %s to parse, got %d: %s", name, p->r, p->err);
	assert_non_null(p->req.cmd);
	assert_string_equal(p->req.cmd->name, name);
	assert_int_equal(p->req.argc, argc);
}

static void assert_error(const struct parsed *p, int r, const char *msg)
{
	assert_int_equal(p->r, r);
	assert_string_equal(p->err, msg);
}

static void test_every_command_with_valid_arg_counts(void **state)
{
	for (size_t i = 0; i < proto_commands_count; i++) {
		const struct proto_command *c = &proto_commands[i];
		for (int n = c->min_args; n <= c->max_args; n++) {
			char line[256];
			int len = snprintf(line, sizeof(line), "%s", c->name);
			for (int a = 0; a < n; a++)
				len +=
				    snprintf(line + len, sizeof(line) - (size_t) len, " arg%d", a);
			struct parsed p = parse(line);
			assert_ok(&p, c->name, n);
			assert_ptr_equal(p.req.cmd, c);
			for (int a = 0; a < n; a++) {
				char want[16];
				snprintf(want, sizeof(want), "arg%d", a);
				assert_string_equal(p.req.argv[a], want);
			}
		}
	}
}

static void test_too_few_args(void **state)
{
	struct parsed p = parse("kill");
	assert_error(&p, -EINVAL, "usage: kill ID");
}

static void test_too_many_args(void **state)
{
	struct parsed p = parse("ping x");
	assert_error(&p, -EINVAL, "usage: ping ");
	p = parse("kill 1 2");
	assert_error(&p, -EINVAL, "usage: kill ID");
	p = parse("log-level debug info");
	assert_error(&p, -EINVAL, "usage: log-level [LEVEL]");
	p = parse("stats-reset now");
	assert_error(&p, -EINVAL, "usage: stats-reset ");
	/* More words than any command takes: stopped by the splitter. */
	p = parse("log-level a b c");
	assert_error(&p, -EINVAL, "too many arguments");
	p = parse("ping a b c d e f");
	assert_error(&p, -EINVAL, "too many arguments");
}

/* Every command, with one argument more than it takes, is a usage error naming its arguments. */
static void test_every_command_one_arg_too_many(void **state)
{
	for (size_t i = 0; i < proto_commands_count; i++) {
		const struct proto_command *c = &proto_commands[i];
		char line[256], want[128];
		int len = snprintf(line, sizeof(line), "%s", c->name);
		for (int a = 0; a <= c->max_args; a++)
			len += snprintf(line + len, sizeof(line) - (size_t) len, " x");
		struct parsed p = parse(line);
		if (c->max_args + 1 > PROTO_MAX_ARGS)
			snprintf(want, sizeof(want), "too many arguments");
		else
			snprintf(want, sizeof(want), "usage: %s %s", c->name, c->args);
		assert_error(&p, -EINVAL, want);
	}
}

static void test_unknown_command(void **state)
{
	struct parsed p = parse("frobnicate");
	assert_error(&p, -EINVAL, "unknown command \"frobnicate\"");
	assert_null(p.req.cmd);
	/* Command words are case-sensitive and whole. */
	p = parse("PING");
	assert_error(&p, -EINVAL, "unknown command \"PING\"");
	p = parse("pin");
	assert_error(&p, -EINVAL, "unknown command \"pin\"");
	p = parse("pingx");
	assert_error(&p, -EINVAL, "unknown command \"pingx\"");
	p = parse("stats-");
	assert_error(&p, -EINVAL, "unknown command \"stats-\"");
}

static void test_unknown_command_long_name_is_cut(void **state)
{
	char line[128], want[128];
	memset(line, 'z', 127);
	line[127] = '\0';
	struct parsed p = parse(line);
	/* The name in the message is cut to 63 bytes. */
	snprintf(want, sizeof(want), "unknown command \"%.63s\"", line);
	assert_error(&p, -EINVAL, want);
}

static void test_empty(void **state)
{
	struct parsed p = parse("");
	assert_error(&p, -EINVAL, "empty request");
	p = parse("   ");
	assert_error(&p, -EINVAL, "empty request");
	p = parse("\r");
	assert_error(&p, -EINVAL, "empty request");
	p = parse(" \r");
	assert_error(&p, -EINVAL, "empty request");
}

static void test_spaces(void **state)
{
	struct parsed p = parse("  ping");
	assert_ok(&p, "ping", 0);
	p = parse("ping   ");
	assert_ok(&p, "ping", 0);
	p = parse("   log-level    debug   ");
	assert_ok(&p, "log-level", 1);
	assert_string_equal(p.req.argv[0], "debug");
	p = parse("kill  42");
	assert_ok(&p, "kill", 1);
	assert_string_equal(p.req.argv[0], "42");
}

static void test_trailing_cr(void **state)
{
	struct parsed p = parse("ping\r");
	assert_ok(&p, "ping", 0);
	p = parse("log-level info\r");
	assert_ok(&p, "log-level", 1);
	assert_string_equal(p.req.argv[0], "info");
	/* Only one CR, and only at the end. */
	p = parse("ping\r\r");
	assert_error(&p, -EPROTO, "request contains a control or non-ASCII byte");
	p = parse("pi\rng");
	assert_error(&p, -EPROTO, "request contains a control or non-ASCII byte");
}

/* len, not a NUL, ends the line: the parser must not read past it. */
static void test_length_not_nul(void **state)
{
	struct parsed p = parse_len("pingXYZ", 4);
	assert_ok(&p, "ping", 0);
	p = parse_len("kill 12345", 7);
	assert_ok(&p, "kill", 1);
	assert_string_equal(p.req.argv[0], "12");
}

static void test_arg_127_and_128_bytes(void **state)
{
	char line[300], arg[129];

	memset(arg, '7', 127);
	arg[127] = '\0';
	snprintf(line, sizeof(line), "kill %s", arg);
	struct parsed p = parse(line);
	assert_ok(&p, "kill", 1);
	assert_string_equal(p.req.argv[0], arg);

	memset(arg, '8', 128);
	arg[128] = '\0';
	snprintf(line, sizeof(line), "kill %s", arg);
	p = parse(line);
	assert_error(&p, -EINVAL, "argument 1 is too long (max 127 bytes)");

	/* The command word counts as argument 0. */
	snprintf(line, sizeof(line), "%s", arg);
	p = parse(line);
	assert_error(&p, -EINVAL, "argument 0 is too long (max 127 bytes)");
}

static void test_binary_bytes(void **state)
{
	static const char msg[] = "request contains a control or non-ASCII byte";
	char line[16];

	/* Every byte that is neither printable ASCII nor a space, wherever it is. */
	for (int b = 0; b < 256; b++) {
		if (b == ' ' || (b > 0x20 && b < 0x7f))
			continue;
		for (int pos = 0; pos < 3; pos++) {
			/* "ping" with b at its start, in the middle, or after a space */
			memcpy(line, "ping ping", 9);
			size_t at = pos == 0 ? 0 : pos == 1 ? 2 : 5;
			line[at] = (char) b;
			size_t len = pos == 2 ? 6 : 9;
			if (b == '\r' && at + 1 == len)
				continue; /* a trailing CR is allowed */
			struct parsed p = parse_len(line, len);
			if (p.r != -EPROTO)
				fail_msg("byte 0x%02x at %zu: got %d (%s), expected -EPROTO", b, at,
					 p.r, p.err);
			assert_string_equal(p.err, msg);
		}
	}
}

static void test_nul_tab_high(void **state)
{
	static const char msg[] = "request contains a control or non-ASCII byte";
	struct parsed p = parse_len("ping\0", 5);
	assert_error(&p, -EPROTO, msg);
	p = parse_len("\0ping", 5);
	assert_error(&p, -EPROTO, msg);
	p = parse("log-level\tinfo");
	assert_error(&p, -EPROTO, msg);
	p = parse("kill \xc3\xa9");
	assert_error(&p, -EPROTO, msg);
	p = parse("\x80");
	assert_error(&p, -EPROTO, msg);
	p = parse("\xff\xfe");
	assert_error(&p, -EPROTO, msg);
	p = parse("ping\x7f");
	assert_error(&p, -EPROTO, msg);
	p = parse("\x1b[2J");
	assert_error(&p, -EPROTO, msg);
}

static void test_every_printable_byte_in_an_arg(void **state)
{
	char line[32];
	for (int b = 0x21; b < 0x7f; b++) {
		snprintf(line, sizeof(line), "log-level a%cb", b);
		struct parsed p = parse(line);
		assert_ok(&p, "log-level", 1);
		assert_int_equal((unsigned char) p.req.argv[0][1], b);
	}
}

static void test_small_err_buffer(void **state)
{
	struct proto_request req;
	char err[8];
	assert_int_equal(proto_parse_request("nosuchcommand", 13, &req, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown");
}

static void test_command_find(void **state)
{
	for (size_t i = 0; i < proto_commands_count; i++)
		assert_ptr_equal(proto_command_find(proto_commands[i].name), &proto_commands[i]);
	assert_null(proto_command_find(""));
	assert_null(proto_command_find("Ping"));
	assert_null(proto_command_find("ping "));
	assert_null(proto_command_find("stat"));
	assert_null(proto_command_find("top")); /* echoctl's, not a request */
}

static void test_table_sanity(void **state)
{
	size_t admin = 0;

	assert_true(proto_commands_count >= 10);
	for (size_t i = 0; i < proto_commands_count; i++) {
		const struct proto_command *c = &proto_commands[i];
		assert_non_null(c->name);
		assert_true(*c->name);
		assert_true(strlen(c->name) < 128);
		assert_true(strspn(c->name, "abcdefghijklmnopqrstuvwxyz-") == strlen(c->name));
		assert_non_null(c->args);
		assert_true(c->min_args >= 0);
		assert_true(c->min_args <= c->max_args);
		assert_true(c->max_args <= PROTO_MAX_ARGS);
		assert_true((c->max_args == 0) == (*c->args == '\0'));
		for (size_t j = 0; j < i; j++)
			if (strcmp(proto_commands[j].name, c->name) == 0)
				fail_msg("command \"%s\" is in the table twice", c->name);
		if (c->access == PROTO_ADMIN) {
			admin++;
			if (strcmp(c->name, "kill") != 0 && strcmp(c->name, "reload") != 0 &&
			    strcmp(c->name, "stats-reset") != 0)
				fail_msg("\"%s\" needs admin rights; only kill, reload and "
					 "stats-reset should",
					 c->name);
		} else {
			assert_int_equal(c->access, PROTO_READ);
		}
	}
	assert_int_equal(admin, 3);
	assert_int_equal(proto_command_find("kill")->access, PROTO_ADMIN);
	assert_int_equal(proto_command_find("reload")->access, PROTO_ADMIN);
	assert_int_equal(proto_command_find("stats-reset")->access, PROTO_ADMIN);
	/* Setting a level is checked by the daemon; reading it is open. */
	assert_int_equal(proto_command_find("log-level")->access, PROTO_READ);
}

static void test_limits(void **state)
{
	assert_int_equal(PROTO_VERSION, 1);
	assert_int_equal(PROTO_MAX_REQUEST, 4096);
	assert_int_equal(PROTO_MAX_CLIENTS, 64);
	assert_int_equal(PROTO_TIMEOUT_MS, 10000);
}

/* A request of PROTO_MAX_REQUEST - 1 bytes (the most a line can hold) still parses. */
static void test_longest_line(void **state)
{
	char line[PROTO_MAX_REQUEST];
	size_t len = PROTO_MAX_REQUEST - 1;
	memset(line, ' ', len);
	memcpy(line + len - 4, "ping", 4);
	struct parsed p = parse_len(line, len);
	assert_ok(&p, "ping", 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_command_with_valid_arg_counts),
	    cmocka_unit_test(test_too_few_args),
	    cmocka_unit_test(test_too_many_args),
	    cmocka_unit_test(test_every_command_one_arg_too_many),
	    cmocka_unit_test(test_unknown_command),
	    cmocka_unit_test(test_unknown_command_long_name_is_cut),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_spaces),
	    cmocka_unit_test(test_trailing_cr),
	    cmocka_unit_test(test_length_not_nul),
	    cmocka_unit_test(test_arg_127_and_128_bytes),
	    cmocka_unit_test(test_binary_bytes),
	    cmocka_unit_test(test_nul_tab_high),
	    cmocka_unit_test(test_every_printable_byte_in_an_arg),
	    cmocka_unit_test(test_small_err_buffer),
	    cmocka_unit_test(test_command_find),
	    cmocka_unit_test(test_table_sanity),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_longest_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
