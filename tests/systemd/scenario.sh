#!/bin/bash
# SPDX-License-Identifier: MIT
# The scenario run-nspawn.sh runs inside the container as echod-test.service:
# echod installed at /usr/local, its units in /usr/local/lib/systemd/system,
# /usr/local/etc/echod writable. Results, logs and the end of the container:
# scenario-lib.sh.
set -u
source /echod-test/scenario-lib.sh
CONF_DIR=/usr/local/etc/echod
CLIENT="/usr/bin/python3 /echod-test/echo-client.py"
PORT=7007
PORT_B=7008

is_active() { [[ $(systemctl show -P ActiveState "$1") == active ]]; }
sc() { timeout 30 systemctl "$@"; }
echo_ok() { timeout 30 $CLIENT echo "${1:-$PORT}"; }
main_pid() { prop echod.service MainPID; }
on_finish() {
	journalctl -b --no-pager -o json -u echod.service -u 'echod@b.service' >"$OUT/echod-journal.json" 2>&1
}

good_config() {
	cat >"$CONF_DIR/echod.conf" <<-EOF
		threads = 2;
		idle_timeout = ${1:-300};
		log_level = "info";
	EOF
}

setup() {
	good_config
	mkdir -p /etc/systemd/system/echod.service.d
	# A short watchdog (pings every second) and a restart delay long enough
	# that clients certainly arrive while echod is down.
	cat >/etc/systemd/system/echod.service.d/50-test.conf <<-EOF
		[Service]
		WatchdogSec=3s
		RestartSec=1s
		LimitCORE=0
	EOF
	if [[ ! -x /usr/local/bin/echoctl ]]; then
		echo "FAIL: /usr/local/bin/echoctl is not installed (ExecReload needs it)" | tee -a "$OUT/results.txt" >&2
		exit 1
	fi
	sc daemon-reload
	# The preset enables echod-metrics.timer at boot; only t_metrics may ask
	# the control sockets (asking starts a socket-activated echod).
	sc stop echod-metrics.timer
}

# Units load and verify cleanly at their installed paths.
t_verify() {
	local units=(/usr/local/lib/systemd/system/echod{.service,.socket,-control.socket})
	systemd-analyze verify --man=no "${units[@]}" 2>&1 | tee /tmp/verify.log
	! grep -q . /tmp/verify.log
}

t_sockets() {
	sc start echod.socket echod-control.socket || return 1
	systemctl is-active echod.socket echod-control.socket || return 1
	[[ $(prop echod.service ActiveState) == inactive ]] || return 1
	test -S /run/echod/control.sock && stat -c '%a %U:%G' /run/echod/control.sock | grep -qx '660 root:root'
}

t_activation() {
	echo_ok || return 1
	wait_for 10 is_active echod.service
	systemctl status --no-pager echod.service
}

t_show() {
	local pid
	exec 7<>/dev/tcp/127.0.0.1/$PORT || return 1
	pid=$(main_pid)
	((pid > 0)) || return 1
	[[ $(prop echod.service NRestarts) == 0 ]] || return 1
	# STATUS= is refreshed at most once a second.
	wait_for 5 bash -c '[[ $(systemctl show -P StatusText echod.service) == "Serving 1 connection on 127.0.0.1:'$PORT' with 2 threads" ]]'
	local rc=$?
	systemctl show -p StatusText,MainPID,NRestarts,Result echod.service
	exec 7<&-
	return $rc
}

t_reload_good() {
	local pid
	pid=$(main_pid)
	good_config 200
	sc reload echod.service || return 1
	wait_for 5 bash -c 'journalctl -u echod.service -b -o cat | grep -q "configuration reloaded"' || return 1
	[[ $(main_pid) == "$pid" && $(prop echod.service ActiveState) == active ]] && echo_ok
}

t_reload_bad() {
	local pid rc
	pid=$(main_pid)
	echo 'threads = "many";' >"$CONF_DIR/echod.conf"
	sc reload echod.service
	rc=$?
	echo "systemctl reload exited $rc"
	wait_for 5 bash -c '[[ $(systemctl show -P StatusText echod.service) == "Reload failed: "* ]]'
	local failed=$?
	prop echod.service StatusText
	good_config # whatever happened: later steps restart echod
	((failed == 0)) || return 1
	[[ $(main_pid) == "$pid" && $(prop echod.service ActiveState) == active ]] || return 1
	echo_ok || return 1
	sc reload echod.service || return 1
	if [[ -x /usr/local/bin/echoctl ]]; then
		((rc != 0)) || return 1
	else
		echo "fallback (kill -HUP): the rejection shows in StatusText only"
	fi
	wait_for 5 bash -c '[[ $(systemctl show -P StatusText echod.service) == Serving* ]]'
}

t_watchdog() {
	local pid restarts
	pid=$(main_pid)
	restarts=$(prop echod.service NRestarts)
	kill -USR2 "$pid" || return 1
	if ! wait_for 3 bash -c 'journalctl -u echod.service -b -o cat | grep -q "test hook: worker 0 stalls"'; then
		echo "this echod has no test hooks (build with -Dtest_hooks=true)"
		return 77
	fi
	wait_for 15 bash -c '(( $(systemctl show -P NRestarts echod.service) > '"$restarts"' ))' || return 1
	wait_for 10 is_active echod.service || return 1
	systemctl show -p NRestarts,MainPID,Result echod.service
	journalctl -u echod.service -b -o cat | grep -i watchdog
	[[ $(main_pid) != "$pid" ]] && echo_ok
}

t_sigkill_under_load() {
	local pid restarts load_pid rc
	pid=$(main_pid)
	restarts=$(prop echod.service NRestarts)
	timeout 60 $CLIENT load $PORT 4 >/tmp/load.json &
	load_pid=$!
	sleep 1
	kill -KILL "$pid" || return 1
	# The listener is systemd's: a client arriving while echod is down waits
	# in the backlog and is served by the next echod.
	echo_ok || return 1
	systemctl is-active echod.socket || return 1
	wait $load_pid
	rc=$?
	cat /tmp/load.json
	((rc == 0)) || return 1
	(($(prop echod.service NRestarts) == restarts + 1)) && [[ $(main_pid) != "$pid" ]]
}

t_control_socket_kept() {
	# Restarts must not take the control socket's path away.
	test -S /run/echod/control.sock
}

t_instance() {
	cat >"$CONF_DIR/b.conf" <<-EOF
		threads = 1;
		mode = "line";
	EOF
	mkdir -p /etc/systemd/system/echod@b.socket.d
	printf '[Socket]\nListenStream=127.0.0.1:%d\n' $PORT_B >/etc/systemd/system/echod@b.socket.d/listen.conf
	sc daemon-reload || return 1
	sc start echod@b.socket || return 1
	systemd-analyze verify --man=no echod@b.service echod@b.socket echod-control@b.socket || return 1
	timeout 30 $CLIENT expect $PORT_B $'hi\n' $'Received: hi\n' || return 1
	wait_for 5 is_active echod@b.service || return 1
	echo_ok || return 1
	[[ $(prop echod.service ActiveState) == active ]] || return 1
	[[ $(prop echod@b.service MainPID) != "$(main_pid)" ]] || return 1
	test -S /run/echod/b.sock || return 1
	wait_for 5 bash -c '[[ $(systemctl show -P StatusText echod@b.service) == *"127.0.0.1:'$PORT_B' with 1 thread" ]]'
}

# echod-metrics.service in its sandbox (root, no capabilities), started by
# its timer: both running instances answer; an instance that crashes until
# systemd gives up (which stops its sockets, so its control socket is gone)
# and a stale socket show as down, the latter with a warning in the journal.
t_metrics() {
	local dir=/var/lib/prometheus/node-exporter # /var is empty in the container
	mkdir -p "$dir" /etc/systemd/system/echod@c.socket.d || return 1
	# awk is /etc/alternatives/awk on Debian; this container's /etc is empty.
	if ! command -v awk >/dev/null; then
		mkdir -p /etc/alternatives && ln -s /usr/bin/mawk /etc/alternatives/awk || return 1
	fi
	# The timer runs the service as soon as it starts; stopped again at once,
	# so that it does not start echod behind the later steps' backs.
	sc start echod-metrics.timer || return 1
	wait_for 10 test -s "$dir/echod.prom"
	local rc=$?
	sc stop echod-metrics.timer || return 1
	((rc == 0)) || return 1
	cat "$dir/echod.prom"
	grep -qx 'echod_up{instance="default"} 1' "$dir/echod.prom" || return 1
	grep -qx 'echod_up{instance="b"} 1' "$dir/echod.prom" || return 1
	grep -q '^echod_threads{instance="b"} 1$' "$dir/echod.prom" || return 1
	promtool check metrics <"$dir/echod.prom" || return 1
	echo 'threads = "many";' >"$CONF_DIR/c.conf"
	printf '[Socket]\nListenStream=127.0.0.1:7009\n' >/etc/systemd/system/echod@c.socket.d/listen.conf
	sc daemon-reload || return 1
	sc start echod@c.service && return 1
	wait_for 20 bash -c '[[ $(systemctl show -P ActiveState echod@c.service) == failed ]]' || return 1
	systemctl show -p ActiveState,Result echod@c.service echod-control@c.socket
	wait_for 5 bash -c '! test -e /run/echod/c.sock' || return 1
	# A socket nobody listens on: down, and a warning in the journal.
	/usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/run/echod/stale.sock")' || return 1
	sc start echod-metrics.service
	rc=$?
	rm -f /run/echod/stale.sock
	((rc == 0)) || return 1
	grep '^echod_up{' "$dir/echod.prom"
	grep -qx 'echod_up{instance="c"} 0' "$dir/echod.prom" || return 1
	grep -qx 'echod_up{instance="stale"} 0' "$dir/echod.prom" || return 1
	grep -qx 'echod_up{instance="b"} 1' "$dir/echod.prom" || return 1
	journalctl -b -o cat -u echod-metrics.service
	journalctl -b -o cat -p warning -u echod-metrics.service | grep -q 'instance stale .* did not answer' || return 1
	sc reset-failed 'echod*'
}

t_journal_priorities() {
	journalctl -b -o json -u echod.service --no-pager | /usr/bin/python3 -c '
import json, sys
want = {"reload failed; keeping the running configuration": "3",
        "socket-activated with 1 listener": "6",
        "configuration reloaded": "5",
        "echod 0.1.0 serving": "5"}
seen = {}
for line in sys.stdin:
    e = json.loads(line)
    if e.get("SYSLOG_IDENTIFIER") != "echod":
        continue
    msg = e.get("MESSAGE")
    for k in want:
        if isinstance(msg, str) and msg.startswith(k):
            seen.setdefault(k, set()).add(e.get("PRIORITY"))
bad = 0
for k, p in want.items():
    print(f"{k!r}: want PRIORITY={p}, saw {sorted(seen.get(k, []))}")
    bad += seen.get(k) != {p}
sys.exit(bad)
'
}

t_stop() {
	sc stop echod.service echod@b.service || return 1
	local u
	for u in echod.service echod@b.service; do
		systemctl show -p ActiveState,Result,ExecMainCode,ExecMainStatus "$u"
		[[ $(prop "$u" ActiveState) == inactive && $(prop "$u" Result) == success ]] || return 1
		[[ $(prop "$u" ExecMainStatus) == 0 ]] || return 1
	done
	journalctl -u echod.service -b -o cat | grep -q 'shutting down' || return 1
	# The socket stays; the next client starts echod again.
	systemctl is-active echod.socket && echo_ok || return 1
	sc stop echod.service echod.socket echod-control.socket echod@b.socket echod-control@b.socket || return 1
	! test -e /run/echod/control.sock
}

t_security() {
	systemd-analyze security --no-pager echod.service echod@b.service | tail -n 3
	local score
	score=$(systemd-analyze security --no-pager echod.service | sed -n 's/.*Overall exposure level for echod.service: \([0-9.]*\).*/\1/p')
	echo "exposure $score"
	[[ -n $score ]] && /usr/bin/python3 -c "import sys; sys.exit(not float('$score') <= 1.0)"
}

setup
step "units verify at their installed paths" t_verify
step "echod.socket and echod-control.socket listen (control 0660 root:root)" t_sockets
step "first connection activates echod and is echoed" t_activation
step "systemctl show: StatusText, MainPID, NRestarts" t_show
step "systemctl reload with a good config" t_reload_good
step "systemctl reload with a bad config fails, echod keeps serving" t_reload_bad
step "stalled worker: the watchdog restarts echod" t_watchdog
step "SIGKILL under load: restarted, the listener never closes" t_sigkill_under_load
step "control socket path survives restarts" t_control_socket_kept
step "instance echod@b beside echod" t_instance
step "echod-metrics.timer: instances up; a crashed one and a stale socket down" t_metrics
step "journal priorities of echod's lines" t_journal_priorities
step "security exposure of the running units <= 1.0" t_security
step "systemctl stop is clean" t_stop
