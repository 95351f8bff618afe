#!/bin/bash
# SPDX-License-Identifier: MIT
# Restart without dropping clients, under the real systemd: run by
# run-nspawn.sh (SCENARIO=scenario-handover.sh) as echod-test.service, like
# scenario.sh, with the same conventions (scenario-lib.sh; NOTE lines with
# timings).
# Clients (hold-clients.py) stay connected and keep being echoed while
# `systemctl restart echod` replaces the process; `systemctl stop` closes them.
set -u
source /echod-test/scenario-lib.sh
CONF_DIR=/usr/local/etc/echod
HOLD="/usr/bin/python3 /echod-test/hold-clients.py"
ECHOCTL="/usr/local/bin/echoctl -s /run/echod/control.sock"
PORT=7007
hold_pid=

sc() { timeout 60 systemctl "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# state KEY: a field of the clients' state file.
state() { /usr/bin/python3 -c "import json; print(json.load(open('/tmp/hold.json'))['$1'])"; }
stat_of() { $ECHOCTL --json stats | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
on_finish() {
	[[ -n $hold_pid ]] && kill "$hold_pid" 2>/dev/null
}

config() {
	cat >"$CONF_DIR/echod.conf" <<-EOF
		threads = $1;
		idle_timeout = 0;
		log_level = "info";
	EOF
}

setup() {
	config 2
	# This scenario restarts echod more often than the default start limit allows.
	mkdir -p /etc/systemd/system/echod.service.d
	printf '[Unit]\nStartLimitIntervalSec=0\n' >/etc/systemd/system/echod.service.d/50-test.conf
	sc daemon-reload
	sc start echod.socket echod-control.socket && sc start echod.service
}

# hold N: starts N clients in the background; waits until all are connected and echoed.
hold() {
	rm -f /tmp/hold.json
	$HOLD $PORT "$1" /tmp/hold.json >/tmp/hold.log 2>&1 &
	hold_pid=$!
	local deadline=$(($(date +%s) + 120))
	until [[ -s /tmp/hold.json ]] && (($(state rounds) >= 3)); do
		if ! kill -0 "$hold_pid" 2>/dev/null || (($(date +%s) > deadline)); then
			cat /tmp/hold.log
			return 1
		fi
		sleep 0.2
	done
}

healthy() { # N: all connected, none closed or wrong, rounds advancing
	local n=$1 r
	r=$(state rounds)
	wait_for 30 bash -c '(( $('"$(declare -f state)"'; state rounds) > '"$r"' + 2 ))' || return 1
	cat /tmp/hold.json
	echo
	[[ $(state connected) == "$n" && $(state closed) == 0 && $(state wrong) == 0 ]]
}

# restart_kept N THREADS LABEL: restarts echod with N clients held; checks they all survived.
restart_kept() {
	local n=$1 threads=$2 label=$3 pid inv t0 ms
	pid=$(prop echod.service MainPID)
	inv=$(prop echod.service InvocationID)
	config "$threads"
	kill -USR1 "$hold_pid"
	sleep 0.3
	t0=$(now_ms)
	sc restart echod.service || return 1
	ms=$(($(now_ms) - t0))
	healthy "$n" || return 1
	systemctl show -p MainPID,NRestarts,InvocationID,NFileDescriptorStore echod.service
	[[ $(prop echod.service MainPID) != "$pid" && $(prop echod.service InvocationID) != "$inv" ]] || return 1
	local adopted threads_now
	adopted=$(stat_of connections_adopted)
	threads_now=$(stat_of threads)
	echo "adopted $adopted, threads $threads_now"
	[[ $adopted == "$n" && $threads_now == "$threads" ]] || return 1
	# The store was emptied after adoption.
	[[ $(prop echod.service NFileDescriptorStore) == 0 ]] || return 1
	journalctl -u echod.service -b -o cat | grep -E 'handed|adopted' | tail -n 6
	result NOTE "$label: systemctl restart took $ms ms; clients waited at most $(state max_round_ms) ms for a reply (a round of replies to all of them usually takes $(state median_round_ms) ms)"
}

# The cost of a restart itself (sandbox set-up and teardown), for comparison.
t_restart_empty() {
	local t0 ms
	t0=$(now_ms)
	sc restart echod.service || return 1
	ms=$(($(now_ms) - t0))
	result NOTE "no connections: systemctl restart took $ms ms"
}

t_restart_1000() { hold 1000 && healthy 1000 && restart_kept 1000 2 "1,000 connections"; }
t_restart_threads() { restart_kept 1000 3 "1,000 connections, threads 2 -> 3"; }

t_stop_closes() {
	sc stop echod.service || return 1
	journalctl -u echod.service -b -o cat | grep -E 'handed' | tail -n 3
	# systemd flushes the store when the unit stops: every client is closed.
	wait_for 30 bash -c '(( $('"$(declare -f state)"'; state closed) == 1000 ))' || { cat /tmp/hold.json; return 1; }
	cat /tmp/hold.json
	wait "$hold_pid"
	hold_pid=
	sc start echod.service || return 1
	[[ $(stat_of connections_adopted) == 0 ]] && timeout 20 /usr/bin/python3 /echod-test/echo-client.py echo $PORT
}

t_restart_10000() {
	config 2
	sc restart echod.service || return 1
	hold 10000 || { cat /tmp/hold.log; return 1; }
	healthy 10000 || return 1
	restart_kept 10000 2 "10,000 connections" || return 1
	kill "$hold_pid"
	wait "$hold_pid"
	hold_pid=
}

step "echod starts under its sockets" setup
step "systemctl restart without clients" t_restart_empty
step "1,000 clients stay connected and echoed across systemctl restart" t_restart_1000
step "... and across a restart with a changed threads value" t_restart_threads
step "systemctl stop closes them (fd store flushed); the next start adopts none" t_stop_closes
step "10,000 clients stay connected across systemctl restart" t_restart_10000
