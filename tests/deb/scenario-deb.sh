#!/bin/bash
# SPDX-License-Identifier: MIT
# The Debian package under the real systemd. run-nspawn-deb.sh runs this as
# echod-deb-test.service in a container of the machine itself (its root under
# a tmpfs overlay: dpkg's database and apt are the machine's, every write
# vanishes), with the package in /deb. It installs the package with apt-get,
# checks what the package enabled and started, echoes through the activated
# echod, asks echoctl, then does what an admin may: enables an instance
# (echod@b) and echod-metrics.timer. It upgrades the package under a
# connected client, removes it and checks that everything stopped, then
# purges it and checks that nothing is left but the admin's own files.
# Conventions (results.txt, steps.log, `systemctl exit N`): scenario-lib.sh.
set -u
source /echod-test/scenario-lib.sh
CLIENT="/usr/bin/python3 /echod-test/echo-client.py"
PORT=7007
PORT_B=7008 # instance b
TEXTFILE_DIR=/var/lib/prometheus/node-exporter
b_pid='' timer_since='' # t_upgrade notes them for t_upgrade_admin_units
deb=$(cd /deb && echo ./echod_*.deb)

sc() { timeout 30 systemctl "$@"; }
# The container has no network: the dependencies must be installed already
# (a missing one fails at once: the mirror is unreachable). Not --no-download:
# apt 2.6 then fails on a .deb given by path ("Pathname to install is not
# absolute").
apt_get() {
	timeout 90 apt-get -y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=30 "$@"
}
main_pid() { prop echod.service MainPID; }
is_active() { [[ $(prop "$1" ActiveState) == active ]]; }
listening() { ss -Hltn "sport = :${1:-$PORT}" | grep -q .; }
# Files with "echod" in their name where the maintainer scripts and systemd
# make them (enabling symlinks, deb-systemd-helper's state, sockets);
# what the package itself holds is checked against `dpkg -L`.
echod_files() {
	find /etc /var/lib /run -name '*echod*' | sort
}
# Links in /etc/systemd/system to or named after an echod unit.
echod_links() {
	find /etc/systemd/system \( -lname '*echod*' -o -name '*echod*' \) -type l -printf '%P\n' | sort
}
# Units in memory named echod*, this test's own included (its service, the
# mount of /echod-test).
loaded_units() { systemctl list-units --all --plain --no-legend 'echod*' | awk '{print $1}' | sort; }
failed_units() { systemctl list-units --failed --plain --no-legend | awk '{print $1}' | sort; }

on_finish() {
	exec 7<&- 2>/dev/null
	systemctl list-units --all --no-pager 'echod*' >"$OUT/units.txt" 2>&1
}

t_preconditions() {
	[[ -f /deb/$deb ]] || { echo "no /deb/echod_*.deb"; return 1; }
	# A policy-rc.d that forbids starting services (Docker images have one
	# that exits 101) would keep the postinst from starting the sockets. This
	# test is about a machine that runs its services; the overlay forgets the
	# removal.
	if [[ -e /usr/sbin/policy-rc.d ]]; then
		rm /usr/sbin/policy-rc.d || return 1
		result NOTE "removed the machine's /usr/sbin/policy-rc.d inside the container"
	fi
	if dpkg-query -W -f '${db:Status-Abbrev}\n' echod 2>/dev/null | grep -q '^.i'; then
		echo "echod is installed on this machine already; the test needs a machine without it"
		return 1
	fi
	echod_files >/tmp/files-before.txt
	failed_units >/tmp/failed-before.txt
	loaded_units >/tmp/loaded-before.txt
	cksum /etc/passwd /etc/group >/tmp/users-before.txt
	cat /tmp/files-before.txt
}

# As README says: apt-get install ./echod_*.deb
t_install() {
	(cd /deb && apt_get install "$deb") || return 1
	dpkg-query -W -f '${db:Status-Abbrev} ${Version}\n' echod | tee /tmp/status.txt
	grep -qx "ii  $(dpkg-deb -f "/deb/$deb" Version)" /tmp/status.txt || return 1
	# The package's own files (not directories), to look for after the purge.
	dpkg -L echod | while read -r f; do [[ -d $f ]] || echo "$f"; done >/tmp/package-files.txt
}

t_files() {
	local f
	for f in /usr/sbin/echod /usr/bin/echoctl; do
		test -x $f || { echo "missing $f"; return 1; }
	done
	for f in /usr/share/man/man8/echod.8.gz /usr/share/man/man5/echod.conf.5.gz \
		/usr/share/man/man1/echoctl.1.gz /etc/echod/echod.conf; do
		test -f $f || { echo "missing $f"; return 1; }
	done
	dpkg-query -W -f '${Conffiles}\n' echod | tee /tmp/conffiles.txt
	grep -q '^ /etc/echod/echod.conf ' /tmp/conffiles.txt || return 1
	/usr/sbin/echod -t
}

# The package enabled and started the sockets and nothing else: echod.service
# waits for its first client, the templates for an admin.
t_enabled() {
	systemctl is-enabled echod.socket echod-control.socket || return 1
	[[ $(systemctl is-enabled echod.service) == disabled ]] || return 1
	# echod-metrics.timer is the admin's to enable.
	[[ $(systemctl is-enabled echod-metrics.timer) == disabled ]] || return 1
	echod_links | tee /tmp/links.txt
	printf '%s\n' sockets.target.wants/echod-control.socket sockets.target.wants/echod.socket |
		diff - /tmp/links.txt
}

t_started() {
	# The postinst started them; `systemctl start` is then a no-op.
	is_active echod.socket && is_active echod-control.socket || return 1
	sc start echod.socket || return 1
	systemctl is-active echod.socket echod-control.socket || return 1
	listening || return 1
	[[ $(prop echod.service ActiveState) == inactive ]] || return 1
	! is_active echod-metrics.timer
}

t_no_user() {
	cksum /etc/passwd /etc/group | diff /tmp/users-before.txt -
}

t_activation() {
	timeout 30 $CLIENT echo $PORT || return 1
	wait_for 10 is_active echod.service || return 1
	journalctl -u echod.service -b -o cat | tee /tmp/echod-journal.txt
	grep -q '^socket-activated with 1 listener' /tmp/echod-journal.txt
}

t_echoctl() {
	timeout 10 echoctl status || return 1
	timeout 10 echoctl --json status >/tmp/status.json || return 1
	/usr/bin/python3 - "$(main_pid)" "$(dpkg-query -W -f '${Version}' echod)" <<-'EOF'
		import json, sys
		s = json.load(open("/tmp/status.json"))
		want = {"pid": int(sys.argv[1]), "version": sys.argv[2].split("-")[0],
		        "socket_activated": True, "config_file": "/etc/echod/echod.conf"}
		bad = {k: (s.get(k), v) for k, v in want.items() if s.get(k) != v}
		print("mismatches (got, want):", bad)
		sys.exit(1 if bad else 0)
	EOF
}

# An upgrade (here a reinstall: the postinst runs with the old version) puts
# the new binary in place, restarts a running echod, and leaves the sockets
# alone: a client connected before it is still echoed after it.
t_upgrade() {
	local pid socket_since reply
	pid=$(main_pid)
	socket_since=$(prop echod.socket ActiveEnterTimestampMonotonic)
	b_pid=$(prop echod@b.service MainPID)
	timer_since=$(prop echod-metrics.timer ActiveEnterTimestampMonotonic)
	exec 7<>/dev/tcp/127.0.0.1/$PORT || return 1
	printf 'before\n' >&7 && read -r -t 10 reply <&7 && [[ $reply == before ]] || return 1
	(cd /deb && apt_get install --reinstall "$deb") || return 1
	wait_for 10 is_active echod.service || return 1
	echo "MainPID $pid -> $(main_pid)"
	[[ $(main_pid) != "$pid" ]] || return 1
	[[ $(prop echod.socket ActiveEnterTimestampMonotonic) == "$socket_since" ]] || return 1
	printf 'after\n' >&7 && read -r -t 10 reply <&7
	echo "held connection answered: ${reply:-nothing}"
	exec 7<&-
	[[ $reply == after ]]
}

# What README says after the install: `echoctl status` works even before any
# client came, since a connection to the control socket activates echod too.
t_echoctl_activates() {
	sc stop echod.service || return 1
	[[ $(prop echod.service ActiveState) == inactive ]] || return 1
	timeout 10 echoctl status || return 1
	is_active echod.service
}

# What echod(8) tells an admin to do for an instance: a config, a
# ListenStream= drop-in, `systemctl enable --now` of its sockets.
t_instance() {
	printf 'threads = 1;\nmode = "line";\n' >/etc/echod/b.conf || return 1
	mkdir -p /etc/systemd/system/echod@b.socket.d || return 1
	printf '[Socket]\nListenStream=127.0.0.1:%d\n' $PORT_B \
		>/etc/systemd/system/echod@b.socket.d/listen.conf || return 1
	sc daemon-reload || return 1
	sc enable --now echod@b.socket echod-control@b.socket || return 1
	timeout 30 $CLIENT expect $PORT_B $'hi\n' $'Received: hi\n' || return 1
	wait_for 10 is_active echod@b.service || return 1
	test -S /run/echod/b.sock || return 1
	[[ $(echod_links | grep -cx -e 'sockets.target.wants/echod@b.socket' \
		-e 'sockets.target.wants/echod-control@b.socket') == 2 ]]
}

# The timer runs its service at once (OnActiveSec=0): both instances answer.
t_metrics() {
	mkdir -p "$TEXTFILE_DIR" || return 1
	[[ ! -e $TEXTFILE_DIR/echod.prom ]] || { echo "$TEXTFILE_DIR/echod.prom exists already"; return 1; }
	sc enable --now echod-metrics.timer || return 1
	echod_links | grep -x 'timers.target.wants/echod-metrics.timer' || return 1
	wait_for 20 grep -qx 'echod_up{instance="b"} 1' "$TEXTFILE_DIR/echod.prom" || return 1
	grep '^echod_up' "$TEXTFILE_DIR/echod.prom"
	grep -qx 'echod_up{instance="default"} 1' "$TEXTFILE_DIR/echod.prom"
}

# The instance's echod is restarted onto the new binary (echod.postinst); the
# timer keeps running, still enabled.
t_upgrade_admin_units() {
	echo "echod@b MainPID $b_pid -> $(prop echod@b.service MainPID)"
	wait_for 10 is_active echod@b.service || return 1
	[[ $(prop echod@b.service MainPID) != "$b_pid" ]] || return 1
	timeout 30 $CLIENT expect $PORT_B $'hi\n' $'Received: hi\n' || return 1
	[[ $(prop echod-metrics.timer ActiveEnterTimestampMonotonic) == "$timer_since" ]] || return 1
	[[ $(systemctl is-enabled echod-metrics.timer) == enabled ]]
}

t_remove() {
	apt_get remove echod || return 1
	dpkg-query -W -f '${db:Status-Abbrev}\n' echod | tee /tmp/status.txt
	grep -qx 'rc ' /tmp/status.txt
}

# Whatever ran is stopped: the binaries are gone. The admin's enabling links
# stay until the purge, as Debian keeps any removed unit's (a reinstall finds
# the units enabled); echod.prom goes, or node_exporter would serve it for ever.
t_removed() {
	local u
	for u in echod.service echod.socket echod-control.socket echod@b.service echod@b.socket \
		echod-control@b.socket echod-metrics.timer echod-metrics.service; do
		echo "$u: $(prop $u ActiveState)"
		[[ $(prop $u ActiveState) == inactive ]] || return 1
	done
	! pgrep -x echod || return 1
	! listening $PORT && ! listening $PORT_B || return 1
	[[ ! -e $TEXTFILE_DIR/echod.prom && ! -e /run/echod ]] || return 1
	echod_links | tee /tmp/links.txt
	grep -qx 'timers.target.wants/echod-metrics.timer' /tmp/links.txt &&
		grep -qx 'sockets.target.wants/echod@b.socket' /tmp/links.txt
}

t_purge() {
	apt_get purge echod || return 1
	dpkg-query -W -f '${db:Status-Abbrev}\n' echod 2>&1 | tee /tmp/status.txt
	# dpkg forgets a purged package it has no other record of; else "un"/"pn".
	grep -Eq '^(dpkg-query: no packages found|[up]n )' /tmp/status.txt
}

t_purged_files() {
	local f left=0
	for f in /etc/echod/echod.conf /run/echod $TEXTFILE_DIR/echod.prom $(cat /tmp/package-files.txt); do
		if [[ -e $f || -L $f ]]; then
			echo "left behind: $f"
			left=1
		fi
	done
	((left == 0)) || return 1
	echo "links: $(echod_links)"
	[[ -z $(echod_links) ]] || return 1
	! grep -rl echod /var/lib/systemd/deb-systemd-helper-* || return 1
	# The admin's files stay, and only they: instance b's config (so
	# /etc/echod) and its drop-in.
	echod_files >/tmp/files-after.txt
	printf '%s\n' /etc/echod /etc/systemd/system/echod@b.socket.d | sort |
		diff - <(comm -13 /tmp/files-before.txt /tmp/files-after.txt) || return 1
	find /etc/echod /etc/systemd/system/echod@b.socket.d -mindepth 1 | tee /tmp/admin-files.txt
	printf '%s\n' /etc/echod/b.conf /etc/systemd/system/echod@b.socket.d/listen.conf |
		diff - /tmp/admin-files.txt || return 1
	comm -23 /tmp/files-before.txt /tmp/files-after.txt | diff /dev/null -
}

t_purged_units() {
	sc daemon-reload || return 1
	local u
	for u in echod.service echod.socket echod-control.socket echod@b.socket echod-metrics.timer; do
		echo "$u: $(prop $u LoadState) $(prop $u ActiveState)"
		[[ $(prop $u LoadState) == not-found && $(prop $u ActiveState) == inactive ]] || return 1
	done
	# No unit left in memory (the dangling links loaded them until the purge).
	loaded_units | diff /tmp/loaded-before.txt - || return 1
	! pgrep -x echod || return 1
	for u in $PORT $PORT_B; do
		! listening "$u" || return 1
		! (exec 8<>"/dev/tcp/127.0.0.1/$u") 2>/dev/null || return 1
	done
	failed_units | diff /tmp/failed-before.txt -
}

step "preconditions: the package is there, echod is not installed" t_preconditions
((failures == 0)) || exit
step "apt-get install $deb (offline)" t_install
step "binaries, man pages, /etc/echod/echod.conf as a conffile; echod -t accepts it" t_files
step "enabled: echod.socket and echod-control.socket only" t_enabled
step "echod.socket and echod-control.socket listen; echod.service and the timer wait" t_started
step "no user or group created (DynamicUser=yes)" t_no_user
step "the first connection activates echod and is echoed" t_activation
step "echoctl status answers (socket-activated, /etc/echod/echod.conf)" t_echoctl
step "echoctl status starts a stopped echod (echod-control.socket)" t_echoctl_activates
step "the admin enables instance echod@b; it echoes on its port" t_instance
step "the admin enables echod-metrics.timer; echod.prom has both instances" t_metrics
step "upgrade: echod restarted, the socket kept, a connected client kept" t_upgrade
step "upgrade: echod@b restarted, echod-metrics.timer kept running and enabled" t_upgrade_admin_units
step "apt-get remove echod" t_remove
step "remove: echod, echod@b and the timer stopped, ports closed, echod.prom gone" t_removed
step "apt-get purge echod" t_purge
step "purge: package files, links and helper state gone; the admin's files kept" t_purged_files
step "purge: no echod unit loaded, nothing listening, no new failed unit" t_purged_units
