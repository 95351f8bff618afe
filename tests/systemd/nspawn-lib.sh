# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# What the scripts that boot a scenario container share (run-nspawn.sh,
# tests/deb/run-nspawn-deb.sh); sourced. The scenario inside writes
# PASS/FAIL/SKIP/NOTE lines to /out/results.txt and ends the container with
# `systemctl exit N` (scenario-lib.sh).

# nspawn_require: exits 77 (skip) unless root with systemd-nspawn.
nspawn_require() {
	if [[ $(id -u) != 0 ]]; then
		echo "SKIP: needs root (systemd-nspawn)"
		exit 77
	fi
	if ! command -v systemd-nspawn >/dev/null; then
		echo "SKIP: systemd-nspawn not found (package systemd-container)"
		exit 77
	fi
}

# nspawn_scenario_unit FILE DESCRIPTION SCRIPT SECONDS [LINE...]: writes the
# oneshot unit that runs /echod-test/SCRIPT inside, for at most SECONDS, with
# any further [Service] LINEs.
nspawn_scenario_unit() {
	local file=$1 description=$2 script=$3 seconds=$4
	shift 4
	{
		printf '[Unit]\nDescription=%s\nAfter=basic.target\n\n' "$description"
		printf '[Service]\nType=oneshot\nTimeoutStartSec=%ss\n' "$seconds"
		(($# == 0)) || printf '%s\n' "$@"
		printf 'ExecStart=/bin/bash /echod-test/%s\n' "$script"
		printf 'StandardOutput=journal+console\nStandardError=journal+console\n'
	} >"$file"
}

# nspawn_boot LIMIT OUTDIR COMMAND...: runs COMMAND (which boots the
# container) for at most LIMIT seconds, with its console in
# OUTDIR/console.log and OUTDIR bound at /out inside; prints the scenario's
# results and a verdict. Returns the container's exit status (the scenario's
# N), or 1 when it timed out or the scenario did not run.
nspawn_boot() {
	local limit=$1 outdir=$2 start_ns elapsed_ms rc=0
	shift 2
	start_ns=$(date +%s%N)
	timeout --kill-after=10 "$limit" "$@" >"$outdir/console.log" 2>&1 || rc=$?
	elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
	grep -E '^(PASS|FAIL|SKIP|NOTE)' "$outdir/results.txt" 2>/dev/null || true
	if [[ $rc == 124 || $rc == 137 ]]; then
		echo "FAIL: the container did not finish within $limit s (see $outdir/console.log)"
		rc=1
	elif [[ ! -s $outdir/results.txt ]]; then
		echo "FAIL: the scenario did not run (exit $rc; see $outdir/console.log)"
		[[ $rc == 0 ]] && rc=1
	fi
	printf "container exit %d after %d.%03d s; logs in %s\n" "$rc" \
		$((elapsed_ms / 1000)) $((elapsed_ms % 1000)) "$outdir"
	return "$rc"
}
