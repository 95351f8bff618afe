// SPDX-License-Identifier: MIT
/*
 * Fails when echoctl(1) (man/echoctl.1.scd, argv[1]) does not document a command of
 * echoctl's table ctl_commands[] in its COMMANDS section, with the arguments --help
 * shows and the admin mark where echod wants admin rights, or a request of the
 * protocol's table proto_commands[] in its PROTOCOL section.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "man-page.h"

#include "ctl.h"
#include "proto.h"

static const char *page_path;

/* The page's text, read once; NULL when it cannot be read. */
static char *page;

static int read_page(void **state)
{
	page = man_page_read(page_path);
	return 0; /* a missing page is reported by the tests, with the path */
}

static int free_page(void **state)
{
	free(page);
	return 0;
}

struct section {
	const char *start, *end;
};

/* The text under the heading "# title", up to the next "# " heading. */
static struct section find_section(const char *text, const char *title)
{
	struct section s = {NULL, NULL};
	char want[64];
	int n = snprintf(want, sizeof(want), "# %s\n", title);

	for (const char *line = text; line && *line;) {
		if (!s.start && strncmp(line, want, (size_t) n) == 0)
			s.start = line + n;
		else if (s.start && strncmp(line, "# ", 2) == 0) {
			s.end = line;
			return s;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	if (s.start)
		s.end = s.start + strlen(s.start);
	return s;
}

/* The line in s that starts with "*name*" (not indented: an entry, not its text), or NULL. */
static const char *entry(struct section s, const char *name)
{
	char want[160];
	snprintf(want, sizeof(want), "*%s*", name);
	for (const char *line = s.start; line && line < s.end;) {
		if (strncmp(line, want, strlen(want)) == 0)
			return line;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

/* The entry's first line without scdoc's * and _ marks: "kill ID", "log-level [LEVEL]". */
static void plain_line(const char *p, char *out, size_t len)
{
	size_t n = 0;
	for (; *p && *p != '\n' && n + 1 < len; p++)
		if (*p != '*' && *p != '_')
			out[n++] = *p;
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		n--;
	out[n] = '\0';
}

/* The entry's text: its line and the indented lines under it. */
static bool entry_mentions(const char *p, const char *end, const char *what)
{
	const char *stop = p;
	do {
		stop = strchr(stop, '\n');
		if (!stop)
			stop = end;
		else
			stop++;
	} while (stop < end && (*stop == '\t' || *stop == '\n'));
	size_t n = strlen(what);
	for (const char *q = p; q + n <= stop; q++)
		if (strncmp(q, what, n) == 0)
			return true;
	return false;
}

static bool needs_admin(const char *name)
{
	const struct proto_command *pc = proto_command_find(name);
	/* log-level is open for reading; setting a level needs admin (daemon/control.c). */
	return (pc && pc->access == PROTO_ADMIN) || strcmp(name, "log-level") == 0;
}

/*
 * Finds the entry "*name* args" in section s (named what) and checks that its
 * line reads exactly that; each problem adds one to *missing. Returns the
 * entry, or NULL when there is none.
 */
static const char *check_entry(struct section s, const char *what, const char *name,
			       const char *args, bool quiet, size_t *missing)
{
	const char *p = entry(s, name);
	char got[256], want[256];

	if (!p) {
		if (!quiet)
			print_error("%s: %s has no line starting with \"*%s*\"\n", page_path, what,
				    name);
		(*missing)++;
		return NULL;
	}
	plain_line(p, got, sizeof(got));
	snprintf(want, sizeof(want), "%s%s%s", name, *args ? " " : "", args);
	if (strcmp(got, want) != 0) {
		if (!quiet)
			print_error("%s: %s: \"%s\" is documented as \"%s\", not \"%s\"\n",
				    page_path, what, name, got, want);
		(*missing)++;
	}
	return p;
}

/* Counts the commands of ctl_commands[] that text does not document properly. */
static size_t check_commands(const char *text, bool quiet)
{
	struct section s = find_section(text, "COMMANDS");
	size_t missing = 0;

	if (!s.start) {
		if (!quiet)
			print_error("%s: no COMMANDS section\n", page_path);
		return ctl_commands_count;
	}
	for (unsigned i = 0; i < ctl_commands_count; i++) {
		const struct ctl_command *c = &ctl_commands[i];
		const char *p = check_entry(s, "COMMANDS", c->name, c->args, quiet, &missing);

		if (p && entry_mentions(p, s.end, "(admin)") != needs_admin(c->name)) {
			if (!quiet)
				print_error("%s: \"%s\" should %sbe marked _(admin)_\n", page_path,
					    c->name, needs_admin(c->name) ? "" : "not ");
			missing++;
		}
	}
	return missing;
}

/* Counts the requests of proto_commands[] that the PROTOCOL section does not list. */
static size_t check_requests(const char *text, bool quiet)
{
	struct section s = find_section(text, "PROTOCOL");
	size_t missing = 0;

	if (!s.start) {
		if (!quiet)
			print_error("%s: no PROTOCOL section\n", page_path);
		return proto_commands_count;
	}
	for (size_t i = 0; i < proto_commands_count; i++) {
		const struct proto_command *c = &proto_commands[i];
		(void) check_entry(s, "PROTOCOL", c->name, c->args, quiet, &missing);
	}
	return missing;
}

static void test_page_exists(void **state)
{
	if (!page)
		fail_msg(
		    "cannot read %s: the echoctl(1) page must exist and document every command",
		    page_path);
}

static void test_every_command_documented(void **state)
{
	if (!page)
		fail_msg("cannot read %s", page_path);
	assert_true(ctl_commands_count >= 10);
	assert_int_equal(check_commands(page, false), 0);
}

static void test_every_request_documented(void **state)
{
	if (!page)
		fail_msg("cannot read %s", page_path);
	assert_true(proto_commands_count >= 10);
	assert_int_equal(check_requests(page, false), 0);
}

/* The sections the page promises. */
static void test_sections_present(void **state)
{
	static const char *const sections[] = {
	    "NAME",	      "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS",	 "OUTPUT FORMATS",
	    "ACCESS CONTROL", "PROTOCOL", "EXIT STATUS", "EXAMPLES", "SEE ALSO",
	};
	if (!page)
		fail_msg("cannot read %s", page_path);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (!find_section(page, sections[i]).start)
			fail_msg("%s: no section \"# %s\"", page_path, sections[i]);
}

/* The checks themselves must be able to fail. */
static void test_check_can_fail(void **state)
{
	if (!page)
		fail_msg("cannot read %s", page_path);
	struct section s = find_section(page, "COMMANDS");
	assert_non_null(s.start);
	assert_null(entry(s, "no-such-command"));
	/* Commands documented only outside COMMANDS do not count. */
	assert_null(entry(s, "version"));
	assert_non_null(entry(find_section(page, "PROTOCOL"), "version"));

	/* The page with one command's line taken out: exactly that one is missing. */
	char *copy = strdup(page);
	assert_non_null(copy);
	char *kill = strstr(copy, "\n*kill* _ID_\n");
	assert_non_null(kill);
	kill[1] = 'X';
	assert_int_equal(check_commands(copy, true), 1);
	assert_int_equal(check_requests(copy, true), 0); /* PROTOCOL still lists it */
	free(copy);

	/* Wrong arguments, and a missing admin mark, are caught too. */
	copy = strdup(page);
	assert_non_null(copy);
	char *ll = strstr(copy, "\n*log-level* [_LEVEL_]\n");
	assert_non_null(ll);
	ll[13] = '<'; /* "*log-level* <_LEVEL_]" */
	assert_int_equal(check_commands(copy, true), 1);
	free(copy);

	copy = strdup(page);
	assert_non_null(copy);
	char *admin = strstr(copy, "_(admin)_ Reload");
	assert_non_null(admin);
	memcpy(admin, "_(abmin)_", 9);
	assert_int_equal(check_commands(copy, true), 1);
	free(copy);

	assert_int_equal(check_commands("no sections at all\n", true), ctl_commands_count);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_page_exists),
	    cmocka_unit_test(test_every_command_documented),
	    cmocka_unit_test(test_every_request_documented),
	    cmocka_unit_test(test_sections_present),
	    cmocka_unit_test(test_check_can_fail),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/TO/echoctl.1.scd\n", argv[0]);
		return 2;
	}
	page_path = argv[1];
	return cmocka_run_group_tests(tests, read_page, free_page);
}
