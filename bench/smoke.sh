#!/bin/bash
# SPDX-License-Identifier: MIT
#
# A few-seconds correctness smoke of bench/echo-load against echod: starts
# echod from BUILDDIR on a free loopback port, runs a short verified echo load
# (small and 64 KiB messages, several in flight) and a small connect-and-hold
# run, and fails on any verification or connection error. No timing is
# asserted. echod is stopped on every path (EXIT trap).
#
# usage: bench/smoke.sh BUILDDIR
set -euo pipefail

build=${1:?usage: smoke.sh BUILDDIR}
echod=$build/daemon/echod
load=$build/bench/echo-load
for f in "$echod" "$load"; do
	[[ -x $f ]] || { echo "smoke: $f not built" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/echod-smoke.XXXXXX")
pid=
cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Sets pid and port. echod exits at once if the port is taken; try another.
# (Not called in $(...): the background echod would hold the pipe open.)
port=
start_echod() {
	for _ in $(seq 20); do
		port=$((20000 + RANDOM % 1000))
		printf 'host = "127.0.0.1"; port = %d; threads = 2; control_socket = "";\n' \
			"$port" >"$tmp/echod.conf"
		"$echod" -c "$tmp/echod.conf" >/dev/null 2>"$tmp/echod.log" &
		pid=$!
		for _ in $(seq 50); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break
			fi
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				return 0
			fi
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=
	done
	echo "smoke: echod did not start; last log:" >&2
	cat "$tmp/echod.log" >&2
	return 1
}

run() {
	echo "smoke: echo-load $*" >&2
	timeout 60 "$load" "$@" --pid "$pid" >"$tmp/out" || {
		echo "smoke: FAILED (exit $?): echo-load $*" >&2
		cat "$tmp/out" >&2
		exit 1
	}
	tail -n1 "$tmp/out"
}

start_echod
run -p "$port" -c 4 -P 4 -s 100 -d 0.5 -w 0
run -p "$port" -c 2 -s 65536 -d 0.5 -w 0
run -p "$port" -c 3 -s 4096 -t 2 -d 0.3 -w 0
run -p "$port" --hold 200 --hold-time 0.2
run -p "$port" --hold 300 --spread 3 --hold-time 0.2
echo "smoke: ok" >&2
