// SPDX-License-Identifier: MIT
/* Unit tests for config loading and validation (daemon/config.c): every bad-input kind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-config.h"
#include "config.h"
#include "log.h"

#define NAME "echod.conf"

struct fx {
	struct echod_config c;
	struct config_errors e;
};

static char tmpdir[] = "/tmp/echod-unit-config-XXXXXX";

static int group_setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	/* Files a failed test left behind. */
	DIR *d = opendir(tmpdir);
	for (struct dirent *de; d && (de = readdir(d));)
		if (de->d_name[0] != '.')
			(void) unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	return rmdir(tmpdir);
}

static int setup(void **state)
{
	struct fx *f = test_calloc(1, sizeof(*f));
	config_init_defaults(&f->c);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	config_errors_done(&f->e);
	config_done(&f->c);
	test_free(f);
	return 0;
}

static void reset(struct fx *f)
{
	config_errors_done(&f->e);
	config_done(&f->c);
	config_init_defaults(&f->c);
}

/* printf into a static buffer: config texts and expected messages. */
_printf_(2, 3) static const char *fmt(char buf[static 8192], const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int n = vsnprintf(buf, 8192, format, ap);
	va_end(ap);
	assert_true(n >= 0 && n < 8192);
	return buf;
}

/* A string of n copies of ch, after an optional head; static, one at a time. */
static const char *repeat(const char *head, char ch, size_t n)
{
	static char s[4096];
	size_t h = strlen(head);
	assert_true(h + n < sizeof(s));
	memcpy(s, head, h);
	memset(s + h, ch, n);
	s[h + n] = '\0';
	return s;
}

static int load(struct fx *f, const char *text)
{
	reset(f);
	return config_load_string(&f->c, text, NAME, &f->e);
}

static void expect_ok(struct fx *f, const char *text)
{
	int r = load(f, text);
	if (r != 0)
		fail_msg("config \"%s\" rejected (%d): %s", text, r,
			 f->e.count ? f->e.lines[0] : "(no message)");
	assert_int_equal(f->e.count, 0);
}

/* Expects exactly one error, with exactly this text. */
static void expect_error(struct fx *f, const char *text, const char *msg)
{
	int r = load(f, text);
	if (r != -EINVAL || f->e.count != 1 || strcmp(f->e.lines[0], msg) != 0)
		fail_msg("config \"%s\": got %d with %zu errors, first \"%s\"; want \"%s\"", text,
			 r, f->e.count, f->e.count ? f->e.lines[0] : "", msg);
}

/* Expects exactly one error that starts with prefix. */
static void expect_error_prefix(struct fx *f, const char *text, const char *prefix)
{
	int r = load(f, text);
	if (r != -EINVAL || f->e.count != 1 || strncmp(f->e.lines[0], prefix, strlen(prefix)) != 0)
		fail_msg("config \"%s\": got %d with %zu errors, first \"%s\"; want \"%s...\"",
			 text, r, f->e.count, f->e.count ? f->e.lines[0] : "", prefix);
}

static int *int_field(struct echod_config *c, const struct config_key *k)
{
	return (int *) ((char *) c + k->offset);
}

static char **string_field(struct echod_config *c, const struct config_key *k)
{
	return (char **) ((char *) c + k->offset);
}

/* ---- defaults and the key table ---- */

static void test_defaults(void **state)
{
	struct fx *f = *state;

	assert_string_equal(f->c.host, "127.0.0.1");
	assert_int_equal(f->c.port, 7007);
	assert_int_equal(f->c.threads, 0);
	assert_int_equal(f->c.mode, MODE_ECHO);
	assert_string_equal(f->c.line_prefix, "Received: ");
	assert_int_equal(f->c.max_line, 65536);
	assert_int_equal(f->c.max_connections, 10000);
	assert_int_equal(f->c.idle_timeout, 300);
	assert_int_equal(f->c.shutdown_timeout, 10);
	assert_string_equal(f->c.control_socket, ECHOD_CONTROL_SOCKET);
	assert_int_equal(f->c.log_level, LOG_LEVEL_INFO);
	/* Every int default lies in its key's range. */
	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->type == KEY_INT)
			assert_in_range(*int_field(&f->c, k), k->min, k->max);
	}
}

static void test_empty_file_keeps_defaults(void **state)
{
	struct fx *f = *state;
	struct echod_config d;

	config_init_defaults(&d);
	expect_ok(f, "");
	expect_ok(f, "# only a comment\n// another\n/* and a\n block */\n\n");
	assert_int_equal(f->c.port, d.port);
	assert_string_equal(f->c.host, d.host);
	assert_string_equal(f->c.line_prefix, d.line_prefix);
	config_done(&d);
}

static void test_key_table(void **state)
{
	assert_true(config_keys_count >= 11);
	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		assert_non_null(k->name);
		assert_non_null(k->allowed);
		assert_true(k->allowed[0] != '\0');
		assert_true(k->min <= k->max);
		assert_ptr_equal(config_key_find(k->name), k);
		if (k->type == KEY_INT) {
			/* Values are stored in an int. */
			assert_true(k->min >= INT32_MIN && k->max <= INT32_MAX);
			assert_null(k->convert);
		} else {
			assert_non_null(k->convert);
		}
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(config_keys[j].name, k->name);
	}
	assert_null(config_key_find("no_such_key"));
	assert_null(config_key_find(""));
	assert_null(config_key_find("PORT"));
}

/* ---- int keys, driven from config_keys[] ---- */

static void test_int_keys_at_min_and_max(void **state)
{
	struct fx *f = *state;
	char t[8192], err[256];

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->type != KEY_INT)
			continue;
		long long edge[] = {k->min, k->max};
		for (size_t j = 0; j < 2; j++) {
			expect_ok(f, fmt(t, "%s = %lld;\n", k->name, edge[j]));
			assert_int_equal(*int_field(&f->c, k), edge[j]);
			/* And the same from the command line. */
			reset(f);
			char v[32];
			snprintf(v, sizeof(v), "%lld", edge[j]);
			assert_int_equal(
			    config_set_from_string(&f->c, k->name, v, err, sizeof(err)), 0);
			assert_int_equal(*int_field(&f->c, k), edge[j]);
		}
	}
}

static void test_int_keys_out_of_range(void **state)
{
	struct fx *f = *state;
	char t[8192], m[8192], err[256];

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->type != KEY_INT)
			continue;
		long long bad[] = {k->min - 1, k->max + 1};
		for (size_t j = 0; j < 2; j++) {
			expect_error(f, fmt(t, "\n%s = %lld;\n", k->name, bad[j]),
				     fmt(m, NAME ":2: %s: %lld is out of range (%s)", k->name,
					 bad[j], k->allowed));
			reset(f);
			int before = *int_field(&f->c, k);
			char v[32];
			snprintf(v, sizeof(v), "%lld", bad[j]);
			assert_int_equal(
			    config_set_from_string(&f->c, k->name, v, err, sizeof(err)), -EINVAL);
			assert_string_equal(
			    err, fmt(m, "%lld is out of range (%s)", bad[j], k->allowed));
			assert_int_equal(*int_field(&f->c, k), before);
		}
	}
}

/*
 * libconfig 1.5 reads an integer literal that does not fit in 32 bits modulo
 * 2^32: "port = 4294967297" would be port 1. Each of these wraps to a value in
 * range, so only checking the literal as written catches them.
 */
static void test_int_keys_beyond_32_bits(void **state)
{
	struct fx *f = *state;
	char t[8192], m[8192];

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->type != KEY_INT)
			continue;
		long long wraps = 4294967296LL + k->min; /* reads as min */
		expect_error(
		    f, fmt(t, "%s = %lld;", k->name, wraps),
		    fmt(m, NAME ":1: %s: %lld is out of range (%s)", k->name, wraps, k->allowed));
		expect_error(
		    f, fmt(t, "%s = 0x%llx;", k->name, wraps),
		    fmt(m, NAME ":1: %s: 0x%llx is out of range (%s)", k->name, wraps, k->allowed));
		expect_error(f, fmt(t, "%s = %lld;", k->name, k->min - 4294967296LL),
			     fmt(m, NAME ":1: %s: %lld is out of range (%s)", k->name,
				 k->min - 4294967296LL, k->allowed));
		expect_error(f, fmt(t, "%s = 99999999999999999999;", k->name),
			     fmt(m, NAME ":1: %s: 99999999999999999999 is out of range (%s)",
				 k->name, k->allowed));
		/* A 64-bit literal (L suffix) is read correctly and range-checked as usual. */
		expect_error(
		    f, fmt(t, "%s = %lldL;", k->name, wraps),
		    fmt(m, NAME ":1: %s: %lld is out of range (%s)", k->name, wraps, k->allowed));
		expect_ok(f, fmt(t, "%s = %lldL;", k->name, k->max));
		assert_int_equal(*int_field(&f->c, k), k->max);
	}
	/* Laid out over several lines, or after a string that mentions the key. */
	expect_error(f, "\nport\n=\n4294967297;",
		     NAME ":2: port: 4294967297 is out of range (1-65535)");
	expect_error(f, "line_prefix = \"port = 5\"; port = 4294967297;",
		     NAME ":1: port: 4294967297 is out of range (1-65535)");
	expect_error(f, "threads: 4294967296",
		     NAME
		     ":1: threads: 4294967296 is out of range (0-1024, 0 = one per online CPU)");
	/* Ordinary literals still work in every notation libconfig has. */
	expect_ok(f, "port = 0x1F90;");
	assert_int_equal(f->c.port, 8080);
	expect_ok(f, "port=+8081;");
	assert_int_equal(f->c.port, 8081);
	expect_ok(f, "line_prefix = \"port = 99999999999\";\nport: 8082");
	assert_int_equal(f->c.port, 8082);
}

static const struct {
	const char *literal, *type;
} wrong_for_int[] = {
    {"\"7007\"", "a string"},  {"1.5", "a float"},     {"7007.0", "a float"},
    {"1e3", "a float"},	       {"true", "a boolean"},  {"false", "a boolean"},
    {"{ a = 1; }", "a group"}, {"( 1, 2 )", "a list"}, {"[ 1, 2 ]", "an array"},
};

static void test_int_keys_wrong_type(void **state)
{
	struct fx *f = *state;
	char t[8192], m[8192];

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->type != KEY_INT)
			continue;
		for (size_t j = 0; j < sizeof(wrong_for_int) / sizeof(wrong_for_int[0]); j++)
			expect_error(f, fmt(t, "%s = %s;", k->name, wrong_for_int[j].literal),
				     fmt(m, NAME ":1: %s: expected an integer (%s), got %s",
					 k->name, k->allowed, wrong_for_int[j].type));
	}
}

static const struct {
	const char *literal, *type;
} wrong_for_string[] = {
    {"1", "an integer"},     {"0", "an integer"},	{"5000000000L", "an integer"},
    {"1.5", "a float"},	     {"true", "a boolean"},	{"{ a = \"x\"; }", "a group"},
    {"( \"a\" )", "a list"}, {"[ \"a\" ]", "an array"},
};

static void test_string_keys_wrong_type(void **state)
{
	struct fx *f = *state;
	char t[8192], m[8192];

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->type != KEY_STRING)
			continue;
		for (size_t j = 0; j < sizeof(wrong_for_string) / sizeof(wrong_for_string[0]); j++)
			expect_error(f, fmt(t, "%s = %s;", k->name, wrong_for_string[j].literal),
				     fmt(m, NAME ":1: %s: expected a string (%s), got %s", k->name,
					 k->allowed, wrong_for_string[j].type));
	}
}

/* ---- string keys: values every key accepts and refuses ---- */

/*
 * Samples for each string key. A key added to config_keys[] without an entry
 * here fails test_string_keys_have_samples. `stored`: the value is kept as a
 * string at the key's offset. An error of NULL means "any error".
 */
static const struct string_sample {
	const char *key;
	bool stored;
	const char *valid[8];
	struct {
		const char *value, *error;
	} invalid[4];
} samples[] = {
    {"host",
     true,
     {"127.0.0.1", "::", "::1", "localhost", "h", "echo.example.com"},
     {{"", "must not be empty (IPv4/IPv6 literal or host name)"},
      {"a b", "\"a b\" is not a host name or address"},
      {" localhost", "\" localhost\" is not a host name or address"},
      {"a\tb", "\"a\tb\" is not a host name or address"}}},
    {"mode",
     false,
     {"echo", "line"},
     {{"ECHO", "\"ECHO\" is not a mode (\"echo\" or \"line\")"},
      {"lines", "\"lines\" is not a mode (\"echo\" or \"line\")"},
      {"", "must not be empty (\"echo\" or \"line\")"}}},
    {"line_prefix", true, {"", "Received: ", "@include x", "> "}, {{NULL, NULL}}},
    {"control_socket",
     true,
     {"", "/run/echod/control.sock", "/"},
     {{"run/echod.sock", "\"run/echod.sock\" is not an absolute path (or \"\" for none)"},
      {"./x.sock", "\"./x.sock\" is not an absolute path (or \"\" for none)"}}},
    {"log_level",
     false,
     {"error", "warning", "notice", "info", "debug"},
     {{"warn", "\"warn\" is not a log level (error, warning, notice, info, debug)"},
      {"INFO", "\"INFO\" is not a log level (error, warning, notice, info, debug)"},
      {"", "must not be empty (error, warning, notice, info, debug)"}}},
    /* The control socket's access keys. */
    {"control_socket_mode", false, {"0660", "0600", "0"}, {{"abc", NULL}, {"0999", NULL}}},
    {"control_socket_group", true, {"", "root"}, {{"no-such-group-echod-test", NULL}}},
    {"control_admin_group", true, {"", "root"}, {{"no-such-group-echod-test", NULL}}},
};

static const struct string_sample *sample_for(const char *key)
{
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		if (strcmp(samples[i].key, key) == 0)
			return &samples[i];
	return NULL;
}

static void test_string_keys_have_samples(void **state)
{
	size_t missing = 0;

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->type == KEY_STRING && !sample_for(k->name)) {
			print_error("string key \"%s\" has no samples in test_config.c\n", k->name);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
}

static void test_string_keys_valid_samples(void **state)
{
	struct fx *f = *state;
	char t[8192], err[256];

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		const struct string_sample *s = sample_for(k->name);
		if (k->type != KEY_STRING || !s)
			continue;
		for (size_t j = 0; j < 8 && s->valid[j]; j++) {
			const char *v = s->valid[j];
			expect_ok(f, fmt(t, "%s = \"%s\";", k->name, v));
			if (s->stored)
				assert_string_equal(*string_field(&f->c, k), v);
			reset(f);
			if (config_set_from_string(&f->c, k->name, v, err, sizeof(err)) != 0)
				fail_msg("--%s \"%s\" rejected: %s", k->name, v, err);
			if (s->stored)
				assert_string_equal(*string_field(&f->c, k), v);
		}
	}
}

static void test_string_keys_invalid_samples(void **state)
{
	struct fx *f = *state;
	char t[8192], m[8192], err[256];

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		const struct string_sample *s = sample_for(k->name);
		if (k->type != KEY_STRING || !s)
			continue;
		for (size_t j = 0; j < 4 && s->invalid[j].value; j++) {
			const char *v = s->invalid[j].value, *want = s->invalid[j].error;
			fmt(t, "%s = \"%s\";", k->name, v);
			if (want)
				expect_error(f, t, fmt(m, NAME ":1: %s: %s", k->name, want));
			else
				expect_error_prefix(f, t, fmt(m, NAME ":1: %s: ", k->name));
			reset(f);
			assert_int_equal(
			    config_set_from_string(&f->c, k->name, v, err, sizeof(err)), -EINVAL);
			if (want)
				assert_string_equal(err, want);
		}
	}
}

/* Length limits come from the table, so a new string key is covered without a new test. */
static void test_string_keys_length_limits(void **state)
{
	struct fx *f = *state;
	char t[8192], m[8192], err[256];

	for (size_t i = 0; i < config_keys_count; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->type != KEY_STRING)
			continue;
		size_t over = (size_t) k->max + 1;
		const char *v = repeat("/", 'a', over - 1);
		expect_error(
		    f, fmt(t, "%s = \"%s\";", k->name, v),
		    fmt(m, NAME ":1: %s: is %zu bytes long (%s)", k->name, over, k->allowed));
		reset(f);
		assert_int_equal(config_set_from_string(&f->c, k->name, v, err, sizeof(err)),
				 -EINVAL);
		assert_string_equal(err, fmt(m, "is %zu bytes long (%s)", over, k->allowed));
		if (k->min > 0)
			expect_error(
			    f, fmt(t, "%s = \"\";", k->name),
			    fmt(m, NAME ":1: %s: must not be empty (%s)", k->name, k->allowed));
	}
}

static void test_mode_and_log_level_values(void **state)
{
	struct fx *f = *state;

	expect_ok(f, "mode = \"line\";");
	assert_int_equal(f->c.mode, MODE_LINE);
	expect_ok(f, "mode = \"echo\";");
	assert_int_equal(f->c.mode, MODE_ECHO);
	const char *levels[] = {"error", "warning", "notice", "info", "debug"};
	const int values[] = {LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_NOTICE, LOG_LEVEL_INFO,
			      LOG_LEVEL_DEBUG};
	char t[8192];
	for (size_t i = 0; i < 5; i++) {
		expect_ok(f, fmt(t, "log_level = \"%s\";", levels[i]));
		assert_int_equal(f->c.log_level, values[i]);
	}
	expect_error(f, "mode = \"echo \";",
		     NAME ":1: mode: \"echo \" is not a mode (\"echo\" or \"line\")");
	expect_error(f, "log_level = \"debug2\";",
		     NAME ":1: log_level: \"debug2\" is not a log level (error, warning, notice, "
			  "info, debug)");
	assert_string_equal(config_mode_name(MODE_ECHO), "echo");
	assert_string_equal(config_mode_name(MODE_LINE), "line");
}

static void test_control_socket(void **state)
{
	struct fx *f = *state;
	char t[8192];

	/* sun_path holds 107 bytes and a NUL. */
	const char *max = repeat("/", 's', 106);
	assert_int_equal(strlen(max), 107);
	expect_ok(f, fmt(t, "control_socket = \"%s\";", max));
	assert_string_equal(f->c.control_socket, max);
	const char *over = repeat("/", 's', 107);
	expect_error(f, fmt(t, "control_socket = \"%s\";", over),
		     NAME
		     ":1: control_socket: is 108 bytes long (absolute path, or \"\" for none)");
	expect_error(f, "control_socket = \"echod/control.sock\";",
		     NAME ":1: control_socket: \"echod/control.sock\" is not an absolute path (or "
			  "\"\" for none)");
	expect_ok(f, "control_socket = \"\";");
	assert_string_equal(f->c.control_socket, "");
}

static void test_line_prefix(void **state)
{
	struct fx *f = *state;
	char t[8192];

	const char *max = repeat("", 'p', 1024);
	expect_ok(f, fmt(t, "line_prefix = \"%s\";", max));
	assert_string_equal(f->c.line_prefix, max);
	expect_error(f, fmt(t, "line_prefix = \"%s\";", repeat("", 'p', 1025)),
		     NAME ":1: line_prefix: is 1025 bytes long (at most 1024 bytes)");
	expect_ok(f, "line_prefix = \"\";");
	assert_string_equal(f->c.line_prefix, "");
	/* Escapes are decoded by libconfig; the limit applies to the decoded bytes. */
	expect_ok(f, "line_prefix = \"a\\tb\\\"c\";");
	assert_string_equal(f->c.line_prefix, "a\tb\"c");
	/* Adjacent strings are joined. */
	expect_ok(f, "line_prefix = \"ab\" \"cd\";");
	assert_string_equal(f->c.line_prefix, "abcd");
}

static void test_host(void **state)
{
	struct fx *f = *state;
	char t[8192];

	expect_ok(f, fmt(t, "host = \"%s\";", repeat("", 'h', 255)));
	assert_int_equal(strlen(f->c.host), 255);
	expect_error(f, "host = \"\";",
		     NAME ":1: host: must not be empty (IPv4/IPv6 literal or host name)");
	expect_error(f, "host = \"local host\";",
		     NAME ":1: host: \"local host\" is not a host name or address");
	expect_error(f, "host = \"localhost\\n\";",
		     NAME ":1: host: \"localhost\\n\" is not a host name or address");
	expect_ok(f, "host = \"::\";");
	assert_string_equal(f->c.host, "::");
}

/* ---- file-level problems ---- */

static void test_syntax_error(void **state)
{
	struct fx *f = *state;

	expect_error(f, "port = 7008;\nthreads = ;\n", NAME ":2: syntax error");
	/* Nothing from a file that does not parse is applied. */
	assert_int_equal(f->c.port, 7007);
	expect_error(f, "# comment\n\nhost = \"a\";\nport = 7007 7008;\n", NAME ":4: syntax error");
	/*
	 * Not tested: a syntax error just after a string token ('mode "echo";',
	 * a string left open at the end). libconfig 1.5 reports it but leaks the
	 * string's buffer, which valgrind and LSan would flag.
	 */
	expect_error_prefix(f, "port = 1\nthreads = 2\nidle_timeout 5;\n", NAME ":3: ");
	expect_error_prefix(f, "port = 7007;;\n", NAME ":1: ");
	expect_error_prefix(f, "{ port = 1; };", NAME ":1: ");
}

static void test_unknown_key(void **state)
{
	struct fx *f = *state;

	expect_error(f, "prot = 7007;", NAME ":1: prot: unknown key (did you mean \"port\"?)");
	expect_error(f, "\nmax_conections = 5;",
		     NAME ":2: max_conections: unknown key (did you mean \"max_connections\"?)");
	expect_error(f, "idle-timeout = 5;",
		     NAME ":1: idle-timeout: unknown key (did you mean \"idle_timeout\"?)");
	expect_error(f, "Host = \"x\";", NAME ":1: Host: unknown key (did you mean \"host\"?)");
	/* Nothing close: no suggestion. */
	expect_error(f, "listen_address = \"::\";", NAME ":1: listen_address: unknown key");
	expect_error(f, "xyzzy = 1;", NAME ":1: xyzzy: unknown key");
	char t[8192], m[8192];
	const char *longname = repeat("k", 'x', 100);
	expect_error(f, fmt(t, "%s = 1;", longname), fmt(m, NAME ":1: %s: unknown key", longname));
}

static void test_include_rejected(void **state)
{
	struct fx *f = *state;
	const char *msg = NAME ":3: @include is not supported (keep the config in one file)";

	expect_error(f, "port = 7008;\n\n@include \"/etc/passwd\"\n", msg);
	expect_error(f, "port = 7008;\n\n  \t@include \"/nonexistent/echod.conf\"\n", msg);
	assert_int_equal(f->c.port, 7007);
	expect_error(f, "@include \"x\"\n",
		     NAME ":1: @include is not supported (keep the config in one file)");
}

static void test_include_inside_string_accepted(void **state)
{
	struct fx *f = *state;

	expect_ok(f, "line_prefix = \"@include \\\"/etc/passwd\\\"\";");
	assert_string_equal(f->c.line_prefix, "@include \"/etc/passwd\"");
	expect_ok(f, "line_prefix = \"@include\"; # @include in a comment\n");
	assert_string_equal(f->c.line_prefix, "@include");
}

static void test_duplicate_key(void **state)
{
	struct fx *f = *state;

	expect_error_prefix(f, "port = 7008;\nthreads = 2;\nport = 7009;\n", NAME ":3: ");
	assert_non_null(strstr(f->e.lines[0], "duplicate"));
	assert_int_equal(f->c.port, 7007);
	expect_error_prefix(f, "host = \"a\"; host = \"b\";", NAME ":1: ");
	assert_non_null(strstr(f->e.lines[0], "duplicate"));
}

static void test_several_errors_reported(void **state)
{
	struct fx *f = *state;
	const char *text = "a = 1; b = 2;\n"
			   "port = 0;\n"
			   "host = 1.0;\n"
			   "mode = \"x\";\n"
			   "threads = 4;\n"
			   "max_line = 15;\n";

	assert_int_equal(load(f, text), -EINVAL);
	assert_int_equal(f->e.count, 6);
	assert_int_equal(f->e.dropped, 0);
	assert_string_equal(f->e.lines[0], NAME ":1: a: unknown key");
	assert_string_equal(f->e.lines[1], NAME ":1: b: unknown key");
	assert_string_equal(f->e.lines[2], NAME ":2: port: 0 is out of range (1-65535)");
	assert_string_equal(f->e.lines[3], NAME ":3: host: expected a string (IPv4/IPv6 literal "
						"or host name), got a float");
	assert_string_equal(f->e.lines[4],
			    NAME ":4: mode: \"x\" is not a mode (\"echo\" or \"line\")");
	assert_string_equal(f->e.lines[5], NAME ":6: max_line: 15 is out of range (16-16777216)");
}

static void test_too_many_errors_counted(void **state)
{
	struct fx *f = *state;
	static char text[8192];
	size_t n = 0;

	for (int i = 0; i < 40; i++)
		n += (size_t) snprintf(text + n, sizeof(text) - n, "unknown%d = %d;\n", i, i);
	assert_int_equal(load(f, text), -EINVAL);
	assert_int_equal(f->e.count, 32);
	assert_int_equal(f->e.dropped, 8);
	assert_string_equal(f->e.lines[31], NAME ":32: unknown31: unknown key");
	config_errors_done(&f->e);
	assert_int_equal(f->e.count, 0);
	assert_int_equal(f->e.dropped, 0);
}

static void test_message_format_example(void **state)
{
	struct fx *f = *state;

	/* The example from the issue, to the byte. */
	expect_error(f,
		     "# echod configuration\n"
		     "host = \"127.0.0.1\";\n"
		     "\n"
		     "port = 70000;\n",
		     "echod.conf:4: port: 70000 is out of range (1-65535)");
}

static void test_assignment_syntaxes(void **state)
{
	struct fx *f = *state;

	expect_ok(f, "port: 8080");
	assert_int_equal(f->c.port, 8080);
	expect_ok(f, "port = 8081\nthreads = 2");
	assert_int_equal(f->c.port, 8081);
	assert_int_equal(f->c.threads, 2);
	expect_ok(f, "port=8082;threads=3,idle_timeout=0;");
	assert_int_equal(f->c.port, 8082);
	assert_int_equal(f->c.idle_timeout, 0);
}

/* ---- config_load_file ---- */

static const char *write_file(const char *name, const void *data, size_t len)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t) len);
	assert_int_equal(close(fd), 0);
	return path;
}

static void test_load_file_ok(void **state)
{
	struct fx *f = *state;
	const char *text = "port = 7010;\nmode = \"line\";\nline_prefix = \"> \";\n";
	const char *path = write_file("ok.conf", text, strlen(text));

	reset(f);
	assert_int_equal(config_load_file(&f->c, path, &f->e), 0);
	assert_int_equal(f->e.count, 0);
	assert_int_equal(f->c.port, 7010);
	assert_int_equal(f->c.mode, MODE_LINE);
	assert_string_equal(f->c.line_prefix, "> ");
	assert_int_equal(unlink(path), 0);
}

static void test_load_file_empty(void **state)
{
	struct fx *f = *state;
	const char *path = write_file("empty.conf", "", 0);

	reset(f);
	assert_int_equal(config_load_file(&f->c, path, &f->e), 0);
	assert_int_equal(f->c.port, 7007);
	assert_int_equal(unlink(path), 0);
}

static void test_load_file_errors_name_the_path(void **state)
{
	struct fx *f = *state;
	const char *text = "port = 7010;\n\nthreads = 2000;\n";
	const char *path = write_file("bad.conf", text, strlen(text));
	char m[8192];

	reset(f);
	assert_int_equal(config_load_file(&f->c, path, &f->e), -EINVAL);
	assert_int_equal(f->e.count, 1);
	assert_string_equal(
	    f->e.lines[0],
	    fmt(m, "%s:3: threads: 2000 is out of range (0-1024, 0 = one per online CPU)", path));
	assert_int_equal(unlink(path), 0);
}

static void test_load_file_missing(void **state)
{
	struct fx *f = *state;
	char path[256];

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	reset(f);
	assert_int_equal(config_load_file(&f->c, path, &f->e), -ENOENT);
	/* The caller decides whether that is an error; nothing is reported here. */
	assert_int_equal(f->e.count, 0);
	assert_int_equal(f->c.port, 7007);
	snprintf(path, sizeof(path), "%s/no-such-dir/echod.conf", tmpdir);
	assert_int_equal(config_load_file(&f->c, path, &f->e), -ENOENT);
}

static void test_load_file_directory(void **state)
{
	struct fx *f = *state;
	char m[8192];

	reset(f);
	assert_int_equal(config_load_file(&f->c, tmpdir, &f->e), -EINVAL);
	assert_int_equal(f->e.count, 1);
	assert_string_equal(f->e.lines[0], fmt(m, "%s: cannot read: Is a directory", tmpdir));
}

static void test_load_file_not_a_directory_in_path(void **state)
{
	struct fx *f = *state;
	const char *file = write_file("plain", "x", 1);
	char path[256], m[8192];

	snprintf(path, sizeof(path), "%s/echod.conf", file);
	reset(f);
	assert_int_equal(config_load_file(&f->c, path, &f->e), -EINVAL);
	assert_int_equal(f->e.count, 1);
	assert_string_equal(f->e.lines[0], fmt(m, "%s: cannot open: Not a directory", path));
	assert_int_equal(unlink(file), 0);
}

static void test_load_file_unreadable(void **state)
{
	struct fx *f = *state;
	const char *text = "port = 7010;\n";
	const char *path = write_file("unreadable.conf", text, strlen(text));
	char m[8192];

	assert_int_equal(chmod(path, 0), 0);
	if (geteuid() == 0 || access(path, R_OK) == 0) {
		/* root reads anything; test_load_file_nul_byte covers a file that cannot be used.
		 */
		assert_int_equal(unlink(path), 0);
		skip();
	}
	reset(f);
	assert_int_equal(config_load_file(&f->c, path, &f->e), -EINVAL);
	assert_int_equal(f->e.count, 1);
	assert_string_equal(f->e.lines[0], fmt(m, "%s: cannot open: Permission denied", path));
	assert_int_equal(f->c.port, 7007);
	assert_int_equal(unlink(path), 0);
}

static void test_load_file_nul_byte(void **state)
{
	struct fx *f = *state;
	const char text[] = "port = 7010;\n\0threads = 2;\n";
	const char *path = write_file("nul.conf", text, sizeof(text) - 1);
	char m[8192];

	reset(f);
	assert_int_equal(config_load_file(&f->c, path, &f->e), -EINVAL);
	assert_int_equal(f->e.count, 1);
	assert_string_equal(f->e.lines[0],
			    fmt(m, "%s: contains a NUL byte, not a config file", path));
	/* Not even the part before the NUL is applied. */
	assert_int_equal(f->c.port, 7007);
	assert_int_equal(unlink(path), 0);
}

static void test_load_file_too_large(void **state)
{
	struct fx *f = *state;
	const size_t limit = 16 * 1024 * 1024;
	char *big = test_malloc(limit + 1);
	char at_limit[256], over[256], m[8192];

	/* 16 MiB is still read; one byte more is not. */
	memset(big, '\n', limit + 1);
	snprintf(at_limit, sizeof(at_limit), "%s", write_file("limit.conf", big, limit));
	snprintf(over, sizeof(over), "%s", write_file("huge.conf", big, limit + 1));
	test_free(big);
	reset(f);
	assert_int_equal(config_load_file(&f->c, at_limit, &f->e), 0);
	reset(f);
	assert_int_equal(config_load_file(&f->c, over, &f->e), -EINVAL);
	assert_int_equal(f->e.count, 1);
	assert_string_equal(f->e.lines[0],
			    fmt(m, "%s: larger than 16 MiB, not a config file", over));
	assert_int_equal(unlink(at_limit), 0);
	assert_int_equal(unlink(over), 0);
}

static void test_load_file_with_include(void **state)
{
	struct fx *f = *state;
	const char *text = "port = 7010;\n@include \"other.conf\"\n";
	const char *path = write_file("inc.conf", text, strlen(text));
	char m[8192];

	reset(f);
	assert_int_equal(config_load_file(&f->c, path, &f->e), -EINVAL);
	assert_int_equal(f->e.count, 1);
	assert_string_equal(
	    f->e.lines[0],
	    fmt(m, "%s:2: @include is not supported (keep the config in one file)", path));
	assert_int_equal(unlink(path), 0);
}

/* ---- command-line overrides ---- */

static void expect_cli_error(struct fx *f, const char *key, const char *value, const char *want)
{
	char err[256];

	reset(f);
	struct echod_config before;
	assert_int_equal(config_copy(&before, &f->c), 0);
	assert_int_equal(config_set_from_string(&f->c, key, value, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
	/* A rejected value changes nothing. */
	assert_int_equal(f->c.port, before.port);
	assert_int_equal(f->c.threads, before.threads);
	assert_string_equal(f->c.host, before.host);
	config_done(&before);
}

static void test_set_from_string(void **state)
{
	struct fx *f = *state;
	char err[256];

	expect_cli_error(f, "port", "70000", "70000 is out of range (1-65535)");
	expect_cli_error(f, "port", "0", "0 is out of range (1-65535)");
	expect_cli_error(f, "port", "abc", "\"abc\" is not an integer (1-65535)");
	expect_cli_error(f, "port", "12x", "\"12x\" is not an integer (1-65535)");
	expect_cli_error(f, "port", "", "\"\" is not an integer (1-65535)");
	expect_cli_error(f, "port", "1.5", "\"1.5\" is not an integer (1-65535)");
	expect_cli_error(f, "port", "4294967297", "4294967297 is out of range (1-65535)");
	expect_cli_error(f, "port", "99999999999999999999",
			 "\"99999999999999999999\" is not an integer (1-65535)");
	expect_cli_error(f, "threads", "-1", "-1 is out of range (0-1024, 0 = one per online CPU)");
	expect_cli_error(f, "threads", "many",
			 "\"many\" is not an integer (0-1024, 0 = one per online CPU)");
	expect_cli_error(f, "host", "", "must not be empty (IPv4/IPv6 literal or host name)");
	expect_cli_error(f, "host", "a b", "\"a b\" is not a host name or address");
	expect_cli_error(f, "no_such_key", "1", "unknown key");

	reset(f);
	assert_int_equal(config_set_from_string(&f->c, "port", "8080", err, sizeof(err)), 0);
	assert_int_equal(f->c.port, 8080);
	assert_int_equal(config_set_from_string(&f->c, "threads", "0", err, sizeof(err)), 0);
	assert_int_equal(f->c.threads, 0);
	assert_int_equal(config_set_from_string(&f->c, "host", "::", err, sizeof(err)), 0);
	assert_string_equal(f->c.host, "::");
	/* An override after a file load replaces the file's value. */
	expect_ok(f, "port = 7011;");
	assert_int_equal(config_set_from_string(&f->c, "port", "7012", err, sizeof(err)), 0);
	assert_int_equal(f->c.port, 7012);
}

/* ---- the struct's own life cycle ---- */

static void test_copy_and_done(void **state)
{
	struct fx *f = *state;
	struct echod_config copy;

	expect_ok(f, "host = \"::1\"; line_prefix = \"P\"; port = 7020; control_socket = \"\";");
	assert_int_equal(config_copy(&copy, &f->c), 0);
	assert_string_equal(copy.host, "::1");
	assert_string_equal(copy.line_prefix, "P");
	assert_string_equal(copy.control_socket, "");
	assert_int_equal(copy.port, 7020);
	/* Deep: the copy owns its strings. */
	assert_ptr_not_equal(copy.host, f->c.host);
	assert_ptr_not_equal(copy.line_prefix, f->c.line_prefix);
	reset(f);
	assert_string_equal(copy.host, "::1");
	config_done(&copy);
	assert_null(copy.host);
	assert_null(copy.line_prefix);
	assert_null(copy.control_socket);
	config_done(&copy); /* twice is harmless */
}

static void test_worker_count(void **state)
{
	struct fx *f = *state;

	f->c.threads = 3;
	assert_int_equal(config_worker_count(&f->c), 3);
	f->c.threads = 0;
	int n = config_worker_count(&f->c);
	assert_in_range(n, 1, 1024);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus >= 1 && cpus <= 1024)
		assert_int_equal(n, cpus);
}

static void test_error_list(void **state)
{
	struct config_errors e = {0};

	config_error_add(&e, "%s:%d: %s", "f", 1, "first");
	assert_int_equal(e.count, 1);
	assert_string_equal(e.lines[0], "f:1: first");
	for (int i = 0; i < 40; i++)
		config_error_add(&e, "more %d", i);
	assert_int_equal(e.count, 32);
	assert_int_equal(e.dropped, 9);
	config_errors_done(&e);
	assert_int_equal(e.count, 0);
	config_errors_done(&e);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_defaults),
	    T(test_empty_file_keeps_defaults),
	    T(test_key_table),
	    T(test_int_keys_at_min_and_max),
	    T(test_int_keys_out_of_range),
	    T(test_int_keys_beyond_32_bits),
	    T(test_int_keys_wrong_type),
	    T(test_string_keys_wrong_type),
	    T(test_string_keys_have_samples),
	    T(test_string_keys_valid_samples),
	    T(test_string_keys_invalid_samples),
	    T(test_string_keys_length_limits),
	    T(test_mode_and_log_level_values),
	    T(test_control_socket),
	    T(test_line_prefix),
	    T(test_host),
	    T(test_syntax_error),
	    T(test_unknown_key),
	    T(test_include_rejected),
	    T(test_include_inside_string_accepted),
	    T(test_duplicate_key),
	    T(test_several_errors_reported),
	    T(test_too_many_errors_counted),
	    T(test_message_format_example),
	    T(test_assignment_syntaxes),
	    T(test_load_file_ok),
	    T(test_load_file_empty),
	    T(test_load_file_errors_name_the_path),
	    T(test_load_file_missing),
	    T(test_load_file_directory),
	    T(test_load_file_not_a_directory_in_path),
	    T(test_load_file_unreadable),
	    T(test_load_file_nul_byte),
	    T(test_load_file_too_large),
	    T(test_load_file_with_include),
	    T(test_set_from_string),
	    T(test_copy_and_done),
	    T(test_worker_count),
	    T(test_error_list),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
