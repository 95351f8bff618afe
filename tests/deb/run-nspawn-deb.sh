#!/bin/bash
# SPDX-License-Identifier: MIT
# The Debian package test under the real systemd: boots the machine's own
# systemd in systemd-nspawn on the machine's root under a tmpfs overlay
# (dpkg's database and the installed dependencies are the machine's, and
# whatever apt-get and dpkg write vanishes with the container), without
# network, and runs scenario-deb.sh inside as echod-deb-test.service; that
# ends the container with `systemctl exit N`, and N is this script's exit
# status.
#
# Usage: run-nspawn-deb.sh DEBDIR [OUTDIR]
# DEBDIR holds echod_<version>_<arch>.deb (tests/deb/build-deb.sh DEBDIR).
# Logs and the container's journal go to OUTDIR (default DEBDIR/nspawn).
# Needs root and systemd-nspawn (package systemd-container); exits 77 (skip)
# without them. Bounded: 150 s for the scenario unit, 180 s for the container.
set -euo pipefail

debdir=$(realpath "${1:?usage: run-nspawn-deb.sh DEBDIR [OUTDIR]}")
outdir=$(realpath -m "${2:-$debdir/nspawn}")
here=$(dirname "$(realpath "$0")")
scenario_timeout=150
source "$here/../systemd/nspawn-lib.sh"
nspawn_require
debs=("$debdir"/echod_*.deb)
if [[ ${#debs[@]} != 1 || ! -f ${debs[0]} ]]; then
	echo "FAIL: want exactly one echod_*.deb in $debdir, found: ${debs[*]}"
	exit 1
fi

work=$(mktemp -d /tmp/echod-nspawn-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
rm -rf "$outdir"
mkdir -p "$outdir" "$work/in" "$work/deb"
# apt-get reads the package as user _apt where it can.
chmod 0755 "$work" "$work/in" "$work/deb"
cp "${debs[0]}" "$work/deb/"
chmod 0644 "$work/deb/"*.deb
cp "$here/scenario-deb.sh" "$here/../systemd/scenario-lib.sh" "$here/../systemd/echo-client.py" "$work/in/"
nspawn_scenario_unit "$work/in/echod-deb-test.service" "echod Debian package scenario" \
	scenario-deb.sh "$scenario_timeout"

# The container's root: an overlay of the machine's root (the lower layer,
# never written) and a tmpfs. systemd-nspawn refuses -D / with
# --volatile=overlay, so the overlay is made here, in a mount namespace of
# its own: its mounts vanish with its last process, and the EXIT trap above
# only ever sees $work/root as an empty directory.
mkdir "$work/root" "$work/layers"
# basic.target: none of the machine's services. timers.target masked: the
# machine's apt-daily and dpkg-db-backup timers must not take dpkg's lock
# under the test. fstab=no: the machine's mounts are not the container's.
# -M echod-deb: a name of its own beside the other container tests.
boot='mount -t tmpfs -o mode=0755 echod-deb "$1/layers" &&
	mkdir "$1/layers/upper" "$1/layers/work" &&
	mount -t overlay -o lowerdir=/,upperdir="$1/layers/upper",workdir="$1/layers/work" echod-deb "$1/root" &&
	exec systemd-nspawn -q -D "$1/root" \
		--register=no --keep-unit --private-network -M echod-deb \
		--bind="$2:/out" \
		--bind-ro="$1/deb:/deb" \
		--bind-ro="$1/in:/echod-test" \
		--bind-ro="$1/in/echod-deb-test.service:/etc/systemd/system/echod-deb-test.service" \
		-b systemd.firstboot=off systemd.unit=basic.target systemd.mask=timers.target fstab=no \
		systemd.wants=echod-deb-test.service'

rc=0
nspawn_boot $((scenario_timeout + 30)) "$outdir" \
	unshare --mount --propagation private bash -c "$boot" boot "$work" "$outdir" || rc=$?
exit "$rc"
