// SPDX-License-Identifier: MIT
/*
 * The send pattern and small helpers shared by both load modes. Connection i
 * sends the pattern starting at its own seed, so a reply that went to the
 * wrong connection, was reordered or corrupted shows up as a mismatch.
 */
#include "load.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

unsigned char load_pattern[PATTERN_LEN + SEND_CHUNK];
atomic_bool load_stop;

void load_pattern_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < PATTERN_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		load_pattern[i] = (unsigned char) (x >> 24);
	}
	/* The tail repeats the start, so any offset has SEND_CHUNK bytes after it. */
	for (size_t i = PATTERN_LEN; i < sizeof(load_pattern); i++)
		load_pattern[i] = load_pattern[i - PATTERN_LEN];
}

const unsigned char *load_expected(uint32_t seed, uint64_t off)
{
	return &load_pattern[(off + seed) % PATTERN_LEN];
}

ssize_t load_verify(uint32_t seed, uint64_t off, const unsigned char *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < SEND_CHUNK ? n - done : SEND_CHUNK;
		const unsigned char *want = load_expected(seed, off + done);
		if (memcmp(p + done, want, k) != 0) {
			for (size_t i = 0; i < k; i++)
				if (p[done + i] != want[i])
					return (ssize_t) (done + i);
		}
		done += k;
	}
	return -1;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

void sleep_until_ns(uint64_t t)
{
	struct timespec ts = {.tv_sec = (time_t) (t / 1000000000u),
			      .tv_nsec = (long) (t % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

uint64_t self_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}
