// SPDX-License-Identifier: MIT
#include "man-page.h"

#include <stdio.h>
#include <stdlib.h>

char *man_page_read(const char *path)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return NULL; /* the tests fail with the path as the reason */
	for (;;) {
		if (cap - len < 4096) {
			char *p = realloc(text, cap + 65536);
			if (!p) {
				free(text);
				text = NULL;
				break;
			}
			text = p;
			cap += 65536;
		}
		size_t n = fread(text + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	if (text)
		text[len] = '\0';
	fclose(f);
	return text;
}
