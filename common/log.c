// SPDX-License-Identifier: MIT
/*
 * Logging: one write(2) per line so lines from different threads never
 * interleave, "<N>" prefixes when stderr is connected to journald.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const level_names[] = {
    [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_NOTICE] = "notice",
    [LOG_LEVEL_INFO] = "info",	 [LOG_LEVEL_DEBUG] = "debug",
};

static _Atomic int current_level = LOG_LEVEL_INFO;
static bool to_journal;
static const char *log_ident = "echod";

/* JOURNAL_STREAM is "dev:ino" of the stream systemd connected; it only counts if it is still
 * stderr. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(const char *ident)
{
	log_ident = ident;
	to_journal = stderr_is_journal();
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&current_level, level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return atomic_load_explicit(&current_level, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
	return (int) level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

int log_level_from_string(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (level_names[i] && strcmp(level_names[i], s) == 0)
			return (int) i;
	return -EINVAL;
}

const char *log_level_to_string(enum log_level level)
{
	if ((size_t) level < ARRAY_SIZE(level_names) && level_names[level])
		return level_names[level];
	return "unknown";
}

const char *log_level_names(void)
{
	return "error, warning, notice, info, debug";
}

_printf_(3, 0) static void log_vmsg(enum log_level level, const char *suffix, const char *fmt,
				    va_list ap)

{
	char line[2048];
	int saved = errno;
	size_t n = 0;

	if (to_journal)
		n = (size_t) snprintf(line, sizeof(line), "<%d>", (int) level);
	else if (level <= LOG_LEVEL_WARNING)
		n = (size_t) snprintf(line, sizeof(line), "%s: %s: ", log_ident,
				      log_level_to_string(level));
	else
		n = (size_t) snprintf(line, sizeof(line), "%s: ", log_ident);

	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += MIN((size_t) m, sizeof(line) - n - 2);
	if (suffix) {
		m = snprintf(line + n, sizeof(line) - n - 1, ": %s", suffix);
		n += MIN((size_t) MAX(m, 0), sizeof(line) - n - 2);
	}
	line[n++] = '\n';

	/* A failed or short write to stderr has nowhere better to be reported. */
	(void) !write(STDERR_FILENO, line, n);
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}

int log_errno(int errnum, const char *fmt, ...)
{
	va_list ap;

	if (log_enabled(LOG_LEVEL_ERROR)) {
		va_start(ap, fmt);
		log_vmsg(LOG_LEVEL_ERROR, strerror(errnum), fmt, ap);
		va_end(ap);
	}
	return -errnum;
}

bool log_ratelimit_pass(_Atomic int64_t *last_s, int interval_s)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now = ts.tv_sec + 1; /* +1 so that a zero-initialised timestamp passes */
	int64_t last = atomic_load_explicit(last_s, memory_order_relaxed);

	if (last && now - last < interval_s)
		return false;
	return atomic_compare_exchange_strong(last_s, &last, now);
}
