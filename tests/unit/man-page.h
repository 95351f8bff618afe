/* SPDX-License-Identifier: MIT */
/* The man-page tests' shared reader: a whole scdoc source as one string. */
#pragma once

/* The file's text, NUL-terminated (malloc'd); NULL when it cannot be read. */
char *man_page_read(const char *path);
