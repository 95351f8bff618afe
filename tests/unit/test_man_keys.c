// SPDX-License-Identifier: MIT
/* Fails when echod.conf(5) (man/echod.conf.5.scd, argv[1]) does not document a key of
 * config_keys[]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "man-page.h"

#include "config.h"

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

/* True when some line of the page starts (after blanks) with "*name*". */
static bool documents(const char *name)
{
	char want[128];
	snprintf(want, sizeof(want), "*%s*", name);
	for (const char *line = page; line && *line;) {
		const char *p = line + strspn(line, " \t");
		if (strncmp(p, want, strlen(want)) == 0)
			return true;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return false;
}

static void test_page_exists(void **state)
{
	if (!page)
		fail_msg("cannot read %s: the echod.conf(5) page must exist and document every key",
			 page_path);
}

static void test_every_key_documented(void **state)
{
	size_t missing = 0;

	if (!page)
		fail_msg("cannot read %s", page_path);
	assert_true(config_keys_count > 0);
	for (size_t i = 0; i < config_keys_count; i++) {
		if (!documents(config_keys[i].name)) {
			print_error("%s: no line starting with \"*%s*\"\n", page_path,
				    config_keys[i].name);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
}

/* The check itself must be able to fail: a name that is surely not a key is not found. */
static void test_check_can_fail(void **state)
{
	if (!page)
		fail_msg("cannot read %s", page_path);
	assert_false(documents("no_such_key_in_echod"));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_page_exists),
	    cmocka_unit_test(test_every_key_documented),
	    cmocka_unit_test(test_check_can_fail),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/TO/echod.conf.5.scd\n", argv[0]);
		return 2;
	}
	page_path = argv[1];
	return cmocka_run_group_tests(tests, read_page, free_page);
}
