/* SPDX-License-Identifier: MIT */
/*
 * Samples another process's cost from /proc: CPU time (utime + stime of all
 * its threads, live and exited, from /proc/PID/stat) and resident memory
 * (VmRSS from /proc/PID/status). The load generator takes one sample before
 * and one after its measurement window and reports the difference.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_sample {
	bool ok;
	uint64_t cpu_us; /* utime + stime, in microseconds (clock-tick resolution) */
	uint64_t rss_kib;
	uint64_t threads;
};

/* Fills *ret; ret->ok is false if pid is 0 or its /proc files cannot be read. */
void proc_sample(pid_t pid, struct proc_sample *ret);
