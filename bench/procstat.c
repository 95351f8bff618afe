// SPDX-License-Identifier: MIT
/*
 * /proc/PID/stat parsing. The command name (field 2) may contain spaces and
 * parentheses, so fields are counted from the last ')'.
 */
#include "procstat.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static bool parse_stat(const char *buf, uint64_t *cpu_ticks, uint64_t *threads)
{
	const char *p = strrchr(buf, ')');
	unsigned long long f[20];

	/* After ')': state(3) then fields 4..; utime=14, stime=15, num_threads=20. */
	if (!p || sscanf(p + 1,
			 " %*c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
			 "%llu %llu %llu %llu %llu",
			 &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &f[11], &f[12], &f[13],
			 &f[14], &f[15], &f[16], &f[17], &f[18], &f[19], &f[2]) != 17)
		return false;
	*cpu_ticks = f[14] + f[15];
	*threads = f[2];
	return true;
}

static uint64_t parse_rss(const char *buf)
{
	const char *p = strstr(buf, "\nVmRSS:");
	return p ? strtoull(p + 7, NULL, 10) : 0;
}

void proc_sample(pid_t pid, struct proc_sample *ret)
{
	char path[64], buf[4096];
	uint64_t ticks, threads;
	long hz = sysconf(_SC_CLK_TCK);

	*ret = (struct proc_sample){0};
	if (pid <= 0 || hz <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	if (read_file(path, buf, sizeof(buf)) <= 0 || !parse_stat(buf, &ticks, &threads))
		return;
	snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return;
	ret->cpu_us = ticks * 1000000u / (uint64_t) hz;
	ret->threads = threads;
	ret->rss_kib = parse_rss(buf);
	ret->ok = true;
}
