#!/bin/bash
# SPDX-License-Identifier: MIT
# One scenario under valgrind memcheck: echod serves echo and line traffic,
# answers every control command (including a rejected reload and a kill),
# drains on SIGTERM and must exit 0 with no leak and no memory error.
# Usage: tests/valgrind/run.sh BUILDDIR
set -euo pipefail

build=$(realpath "${1:?usage: run.sh BUILDDIR}")
echod="$build/daemon/echod"
echoctl="$build/ctl/echoctl"
dir=$(mktemp -d /tmp/echod-valgrind.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sock="$dir/control.sock"
write_config() {
	cat >"$dir/echod.conf" <<CONF
host = "127.0.0.1"; port = $port; threads = 2; mode = "$1";
control_socket = "$sock"; idle_timeout = 30; shutdown_timeout = 5;
CONF
}
write_config echo

valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no \
	--log-file="$dir/valgrind.log" "$echod" -c "$dir/echod.conf" 2>"$dir/echod.log" &
pid=$!

for _ in $(seq 200); do
	"$echoctl" -s "$sock" ping >/dev/null 2>&1 && break
	sleep 0.1
done
"$echoctl" -s "$sock" ping

fail() {
	echo "valgrind scenario: FAIL: $*" >&2
	cat "$dir/echod.log" "$dir/valgrind.log" >&2
	exit 1
}

# Echo: 1 MiB of random bytes, byte-exact.
head -c 1048576 /dev/urandom >"$dir/in.bin"
socat -t 5 - "TCP:127.0.0.1:$port" <"$dir/in.bin" >"$dir/out.bin"
cmp -s "$dir/in.bin" "$dir/out.bin" || fail "echo mismatch"

# A client that stays connected while the control commands run, then is killed.
(sleep 8 | socat - "TCP:127.0.0.1:$port" >/dev/null) &
held=$!
sleep 0.5
for cmd in status stats threads connections "log-level" "log-level debug" "stats-reset" \
	"--json stats" "--prometheus stats"; do
	# shellcheck disable=SC2086
	"$echoctl" -s "$sock" $cmd >/dev/null || fail "echoctl $cmd"
done
id=$("$echoctl" -s "$sock" --json connections | /usr/bin/python3 -c \
	'import json,sys; print(json.load(sys.stdin)["connections"][0]["id"])')
"$echoctl" -s "$sock" kill "$id" >/dev/null || fail "kill $id"
wait "$held" || true

# Line mode by reload, a line answered, then a rejected reload.
write_config line
"$echoctl" -s "$sock" reload >/dev/null || fail "reload"
reply=$(printf 'hello\n' | socat -t 5 - "TCP:127.0.0.1:$port")
[ "$reply" = "Received: hello" ] || fail "line mode answered '$reply'"
echo 'port = "x";' >"$dir/echod.conf"
if "$echoctl" -s "$sock" reload 2>/dev/null; then fail "bad reload accepted"; fi
# Junk on the control socket.
head -c 2000 /dev/urandom | socat -t 2 - "UNIX-CONNECT:$sock" >/dev/null || true

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
if [ "$rc" != 0 ] || [ -s "$dir/valgrind.log" ]; then
	fail "echod exited with $rc under valgrind"
fi
echo "valgrind scenario: PASS (0 errors, 0 leaks)"
