#!/bin/bash
# SPDX-License-Identifier: MIT
# The real-systemd test: installs BUILDDIR into a DESTDIR, boots the machine's
# own systemd (252 on Debian 12) in systemd-nspawn with that tree at
# /usr/local, and runs scenario.sh inside as echod-test.service, which ends the
# container with `systemctl exit N`; N is this script's exit status.
#
# Usage: run-nspawn.sh BUILDDIR [OUTDIR]
# SCENARIO=scenario-handover.sh runs that scenario instead (its own OUTDIR
# default, BUILDDIR/meson-logs/systemd-nspawn-handover), SCENARIO_TIMEOUT
# (seconds, default 120) bounds its unit; the container gets 30 s more.
# Needs root and systemd-nspawn (package systemd-container); exits 77 (skip)
# without them. Bounded: 120 s for the scenario unit, 150 s for the container. Logs and the container's journal go to OUTDIR (default
# BUILDDIR/meson-logs/systemd-nspawn).
set -euo pipefail

builddir=$(realpath "${1:?usage: run-nspawn.sh BUILDDIR [OUTDIR]}")
scenario=${SCENARIO:-scenario.sh}
scenario_timeout=${SCENARIO_TIMEOUT:-120}
suffix=${scenario#scenario}
suffix=${suffix%.sh}
outdir=${2:-$builddir/meson-logs/systemd-nspawn$suffix}
here=$(dirname "$(realpath "$0")")
source "$here/nspawn-lib.sh"
nspawn_require

prefix=$(meson introspect --buildoptions "$builddir" |
	/usr/bin/python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
if [[ $prefix != /usr/local ]]; then
	echo "SKIP: the scenario binds the install at /usr/local; this build has prefix $prefix"
	exit 77
fi

work=$(mktemp -d /tmp/echod-nspawn.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest=$work/dest
rm -rf "$outdir"
mkdir -p "$outdir" "$work/in" "$work/etc-echod"
chmod 0755 "$work" "$work/in" "$work/etc-echod"

DESTDIR=$dest meson install -C "$builddir" --no-rebuild --quiet >"$outdir/install.log" 2>&1 || {
	echo "FAIL: meson install (see $outdir/install.log)"
	exit 1
}
for f in lib/systemd/system/echod.service etc/echod/echod.conf; do
	if [[ ! -f $dest/usr/local/$f ]]; then
		echo "SKIP: the install has no /usr/local/$f (-Dsystemd_unit_dir or -Dsysconfdir moved it)"
		exit 77
	fi
done
# The units are found where they are installed (/usr/local/lib/systemd/system
# is on systemd's search path); the test's drop-ins go to /etc inside.
# The config directory must be writable inside (the scenario rewrites it), so
# a copy is bound over the read-only /usr/local/etc/echod.
cp -a "$dest/usr/local/etc/echod/." "$work/etc-echod/"
cp "$here/$scenario" "$here/scenario-lib.sh" "$here/echo-client.py" "$here/hold-clients.py" "$work/in/"
# LimitNOFILE: room for the clients of scenario-handover.sh (10,000 connections).
nspawn_scenario_unit "$work/in/echod-test.service" "echod systemd integration scenario" \
	"$scenario" "$scenario_timeout" LimitNOFILE=65536

rc=0
# --private-network: a loopback of its own; basic.target: none of the
# machine's services; the scenario ends the container with `systemctl exit`.
nspawn_boot $((scenario_timeout + 30)) "$outdir" \
	systemd-nspawn -q -D / --volatile=yes --register=no --keep-unit \
	--private-network -M echod-test \
	--bind="$outdir:/out" \
	--bind-ro="$dest/usr/local:/usr/local" \
	--bind="$work/etc-echod:/usr/local/etc/echod" \
	--bind-ro="$work/in:/echod-test" \
	--bind-ro="$work/in/echod-test.service:/etc/systemd/system/echod-test.service" \
	-b systemd.firstboot=off systemd.unit=basic.target systemd.wants=echod-test.service ||
	rc=$?
exit "$rc"
