/* SPDX-License-Identifier: MIT */
/*
 * One logging module for echod and echoctl. Lines go to stderr; when stderr is
 * the journal (JOURNAL_STREAM matches it) each line carries the sd-daemon "<N>"
 * priority prefix so journald files it at the right level. The level filter is
 * an atomic so any thread may log while the main thread changes it.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

enum log_level {
	LOG_LEVEL_ERROR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

void log_setup(const char *ident);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);
/* Parses "error", "warning", "notice", "info" or "debug"; returns -EINVAL otherwise. */
int log_level_from_string(const char *s);
const char *log_level_to_string(enum log_level level);
/* The accepted level names, comma separated, for error messages and help. */
const char *log_level_names(void);

_printf_(2, 3) void log_msg(enum log_level level, const char *fmt, ...);

#define log_error(...)	 log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...)	 log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)	 log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_LEVEL_DEBUG))                                                  \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                     \
	} while (0)

/* Logs "message: strerror(errnum)" at ERROR and returns -errnum: `return log_errno(-r, ...)`. */
_printf_(2, 3) int log_errno(int errnum, const char *fmt, ...);

/* True at most once per interval_s for the given call site's timestamp. */
bool log_ratelimit_pass(_Atomic int64_t *last_s, int interval_s);

/* Logs at most once per interval_s from this call site (any thread). */
#define log_ratelimited(level, interval_s, ...)                                                    \
	do {                                                                                       \
		static _Atomic int64_t _last_s;                                                    \
		if (log_enabled(level) && log_ratelimit_pass(&_last_s, (interval_s)))              \
			log_msg(level, __VA_ARGS__);                                               \
	} while (0)
