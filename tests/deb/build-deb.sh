#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds the Debian package echod_<version>_<arch>.deb and checks it.
#
# Usage: tests/deb/build-deb.sh [OUTDIR]   (default: build-deb, in the source root)
#
# dpkg-buildpackage -b -us -uc runs in a copy of the source tree (the files git
# tracks, plus untracked ones it does not ignore, as they are in the working
# tree), so the build leaves nothing behind in the tree. OUTDIR receives the
# .deb, .changes and .buildinfo, build.log, lintian.txt (lintian --info on
# the .changes) and the package's contents and control information. Fails on
# a build error, on a lintian error, and when the package lacks what it must
# have (binaries, man pages, the conffile, the units, socket enabling).
# Exits 77 (skip) without dpkg-buildpackage or lintian.
set -euo pipefail

root=$(realpath "$(dirname "$0")/../..")
outdir=$(realpath -m "${1:-$root/build-deb}")

for tool in dpkg-buildpackage lintian git; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: $tool not found (packages dpkg-dev, debhelper, lintian, git)"
		exit 77
	fi
done

if ! git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
	echo "FAIL: $root is not a git checkout (the copy takes the files git knows of)"
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/echod-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/echod
mkdir -p "$src" "$outdir"
rm -f "$outdir"/*.deb "$outdir"/*.changes "$outdir"/*.buildinfo

# The copy: what git knows of, minus files deleted in the working tree and
# anything inside a meson build directory that is not ignored.
mapfile -t builddirs < <(find "$root" -mindepth 2 -maxdepth 3 -type d -name meson-private -printf '%h\n' |
	sed "s|^$root/||")
git -C "$root" ls-files -z -co --exclude-standard |
	while IFS= read -r -d '' f; do
		for b in "${builddirs[@]}"; do
			[[ $f == "$b"/* ]] && continue 2
		done
		if [[ -e $root/$f || -L $root/$f ]]; then printf '%s\0' "$f"; fi
	done |
	tar -C "$root" --null -T - -cf - | tar -C "$src" -xf -

# The package version must be the project's (meson.build), so that
# echod_<version> names the version echod reports.
project_version=$(sed -n "s/^  version: '\([^']*\)',\$/\1/p" "$src/meson.build")
package_version=$(cd "$src" && dpkg-parsechangelog -S Version)
if [[ -z $project_version || $project_version != "$package_version" ]]; then
	echo "FAIL: debian/changelog has version $package_version, meson.build '$project_version'"
	exit 1
fi

start=$(date +%s)
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -b -us -uc) >"$outdir/build.log" 2>&1; then
	tail -n 40 "$outdir/build.log"
	echo "FAIL: dpkg-buildpackage (full log: $outdir/build.log)"
	exit 1
fi
echo "built in $(($(date +%s) - start)) s"
cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$outdir/"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=$outdir/echod_${package_version}_${arch}.deb
changes=$outdir/echod_${package_version}_${arch}.changes
if [[ ! -f $deb ]]; then
	echo "FAIL: no $(basename "$deb") (built: $(cd "$outdir" && echo *.deb))"
	exit 1
fi
echo "package: $deb"

# lintian: errors fail the build; warnings are fixed or overridden with a
# reason in debian/echod.lintian-overrides.
# (As root, lintian says on stderr that it should not be run as root.)
lintian_rc=0
lintian --info --display-info --fail-on error "$changes" >"$outdir/lintian.txt" \
	2>"$outdir/lintian.stderr" || lintian_rc=$?
echo "lintian $(lintian --version | sed 's/^Lintian v//') --info --display-info on $(basename "$changes"):"
sed 's/^/  /' "$outdir/lintian.txt"
[[ -s $outdir/lintian.txt ]] || echo "  (no tags; overrides: debian/echod.lintian-overrides)"
sed 's/^/  stderr: /' "$outdir/lintian.stderr"
if ((lintian_rc != 0)); then
	echo "FAIL: lintian exited $lintian_rc"
	exit 1
fi

# What the package must hold, and how its maintainer scripts treat the units.
dpkg-deb -c "$deb" >"$outdir/contents.txt"
dpkg-deb -I "$deb" >"$outdir/info.txt"
dpkg-deb -e "$deb" "$work/control"
failed=0
check() {
	local what=$1
	shift
	if "$@"; then
		echo "PASS: $what"
	else
		echo "FAIL: $what"
		failed=$((failed + 1))
	fi
}
has_file() { grep -q " \./$1\$" "$outdir/contents.txt"; }
# Where the build put the units: the unit directory systemd.pc names, else
# <prefix>/lib/systemd/system (systemd/meson.build).
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
unitdir=${unitdir:-/usr/lib/systemd/system}
unitdir=${unitdir#/}
for f in usr/sbin/echod usr/bin/echoctl etc/echod/echod.conf usr/share/doc/echod/copyright \
	usr/share/man/man8/echod.8.gz usr/share/man/man5/echod.conf.5.gz usr/share/man/man1/echoctl.1.gz \
	"$unitdir/echod.service" "$unitdir/echod.socket" "$unitdir/echod-control.socket" \
	"$unitdir/echod@.service" "$unitdir/echod@.socket" "$unitdir/echod-control@.socket"; do
	check "contains /$f" has_file "$f"
done
check "/etc/echod/echod.conf is a conffile" grep -qx /etc/echod/echod.conf "$work/control/conffiles"
# dh_installsystemd --no-enable still has an enable line, run only for a
# unit that was enabled before (the admin's, on upgrade): guarded by
# `deb-systemd-helper debian-installed`. The rest are enabled at install.
units_in() { sed -n "s/^.*deb-systemd-helper $1 '\([^']*\)'.*\$/\1/p" "$work/control/postinst" | sort -u; }
guarded=$(units_in debian-installed | xargs)
enabled=$(comm -23 <(units_in enable) <(units_in debian-installed) | xargs)
check "postinst enables exactly echod-control.socket echod.socket (got: $enabled)" \
	test "$enabled" = "echod-control.socket echod.socket"
check "postinst enables echod-metrics.timer only if it was enabled (got: $guarded)" \
	test "$guarded" = echod-metrics.timer
# echod.postrm removes echod.prom from the directory the build wrote into
# echod-metrics.service (meson option node_exporter_textfile_dir).
textfile_dir=$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "./$unitdir/echod-metrics.service" |
	sed -n 's/^ConditionPathIsDirectory=//p')
check "postrm removes echod.prom from the unit's textfile directory ($textfile_dir)" \
	grep -q "^textfile_dir=\${DPKG_ROOT:-}$textfile_dir\$" "$work/control/postrm"
check "postinst starts the sockets" grep -q "deb-systemd-invoke .* 'echod-control.socket' 'echod.socket'" "$work/control/postinst"
check "postinst does not start echod-metrics.timer" \
	bash -c '! grep -q "deb-systemd-invoke .*echod-metrics" "$1"' _ "$work/control/postinst"
check "no maintainer script creates a user (DynamicUser=yes)" \
	bash -c '! grep -Eq "adduser|useradd|addgroup|groupadd" "$1"/*inst "$1"/*rm' _ "$work/control"
check "a release build (meson summary: test hooks False)" \
	grep -Eq '^ *test hooks *: False$' "$outdir/build.log"
((failed == 0)) || exit 1
