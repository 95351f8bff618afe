/* SPDX-License-Identifier: MIT */
/*
 * Small macros shared by echod and echoctl: cleanup attributes, printf
 * checking, a type-checked ARRAY_SIZE and EINTR-retrying wrappers.
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _noreturn_     __attribute__((noreturn))
#define likely(x)      __builtin_expect(!!(x), 1)
#define unlikely(x)    __builtin_expect(!!(x), 0)

/* Fails to compile when given a pointer instead of an array. */
#define ARRAY_SIZE(a)                                                                              \
	(sizeof(a) / sizeof((a)[0]) +                                                              \
	 0 * sizeof(struct {                                                                       \
		 _Static_assert(!__builtin_types_compatible_p(__typeof__(a), __typeof__(&(a)[0])), \
				"ARRAY_SIZE needs an array");                                      \
		 int dummy;                                                                        \
	 }))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define CACHELINE 64

static inline void freep(void *p)
{
	free(*(void **) p);
}

/* Closes an fd and preserves errno; for _cleanup_(closep) on int fds. */
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		(void) close(*fd);
		errno = saved;
	}
}

#define _cleanup_free_	_cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Returns the fd and leaves -1 behind, so a _cleanup_close_ variable can hand it on. */
static inline int take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

/* close() that never retries: on Linux the fd is gone even when EINTR is returned. */
static inline void safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		(void) close(fd);
		errno = saved;
	}
}
