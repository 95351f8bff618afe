/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of echo-load: options, the result of a run, the byte pattern
 * every connection sends (so every echoed byte can be checked without keeping
 * a copy), clocks and socket helpers. load-echo.c runs the closed-loop echo
 * benchmark, load-hold.c the connect-and-hold run, echo-load.c parses the
 * command line and prints the report.
 */
#pragma once

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hist.h"
#include "procstat.h"

/* Pattern period: prime, so message boundaries fall on ever-different bytes. */
#define PATTERN_LEN 65521u
/* Largest single send; the pattern buffer is this much longer than its period. */
#define SEND_CHUNK (64u * 1024u)

struct load_opts {
	struct sockaddr_in addr;
	int connections;
	int inflight;
	int threads;
	size_t size;
	double duration;
	double warmup;
	double drain_timeout;
	bool nodelay;
	pid_t pid;
	/* connect-only mode when hold > 0 */
	int hold;
	double hold_time;
	int spread; /* source addresses 127.0.0.2.. to use; 0 = automatic */
	double connect_timeout;
};

struct load_result {
	struct hist hist;
	uint64_t requests;
	uint64_t bytes;
	double elapsed;
	uint64_t errors;
	uint64_t mismatches;
	uint64_t served;
	double connect_s;
	struct proc_sample before, after, held;
	uint64_t client_cpu_us;
};

extern unsigned char load_pattern[PATTERN_LEN + SEND_CHUNK];
extern atomic_bool load_stop;

void load_pattern_init(void);
/* The pattern bytes a connection with this seed sends at stream offset off. */
const unsigned char *load_expected(uint32_t seed, uint64_t off);
/* Index of the first byte of p[0..n) that differs from the stream, or -1. */
ssize_t load_verify(uint32_t seed, uint64_t off, const unsigned char *p, size_t n);

uint64_t now_ns(void);
void sleep_until_ns(uint64_t t);
uint64_t self_cpu_us(void);

int load_run_echo(const struct load_opts *o, struct load_result *res);
int load_run_hold(const struct load_opts *o, struct load_result *res);
