#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every libFuzzer target for a bounded time, one after the other.
#
#   tests/fuzz/run.sh BUILDDIR [SECONDS] [TARGET...]
#
# BUILDDIR is a build configured with CC=clang -Dfuzzing=true
# -Db_sanitize=address,undefined -Db_lundef=false; SECONDS (default 60) is per
# target. Each target starts from a copy of its checked-in corpus (which is
# left untouched) plus its dictionary, if any. Prints the executions per
# target and exits non-zero if any target crashed, leaked, hit UB, timed out
# or ran out of memory; the reproducer is kept in BUILDDIR/fuzz-artifacts/.
# A timeout (wall-clock, 5 s) counts only if the input times out again when
# run alone, unless FUZZ_STRICT_TIMEOUTS=1.
set -u

if [ $# -lt 1 ]; then
	echo "usage: $0 BUILDDIR [SECONDS] [TARGET...]" >&2
	exit 2
fi
builddir=$1
seconds=${2:-60}
if [ $# -ge 2 ]; then shift 2; else shift 1; fi
targets=${*:-fuzz-config fuzz-framer fuzz-proto fuzz-ctl-reply}
here=$(cd "$(dirname "$0")" && pwd)
artifacts=$builddir/fuzz-artifacts

case $seconds in
'' | *[!0-9]*)
	echo "$0: SECONDS must be a number" >&2
	exit 2
	;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/echod-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

# Appended, so they win over anything the caller set for other tests. Leaks
# inside libconfig 1.5 itself are known and listed in lsan.supp.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$here/lsan.supp:print_suppressions=0"

failed=0
summary=""
for t in $targets; do
	bin=$builddir/tests/fuzz/$t
	if [ ! -x "$bin" ]; then
		echo "$0: $bin not built (configure with -Dfuzzing=true)" >&2
		exit 2
	fi
	mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
	cp "$here/corpus/$t/"* "$work/$t/corpus/"
	set -- -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -detect_leaks=1 \
		-print_final_stats=1 -error_exitcode=1 -artifact_prefix="$work/$t/artifacts/"
	[ -f "$here/$t.dict" ] && set -- "$@" -dict="$here/$t.dict"
	# echoctl prints why it rejects a reply; sanitizer reports still get through.
	[ "$t" = fuzz-ctl-reply ] && set -- "$@" -close_fd_mask=2

	echo "== $t: fuzzing for ${seconds}s"
	"$bin" "$@" "$work/$t/corpus" >"$work/$t/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" | tail -n 1)
	note=""
	# libFuzzer's timeout is wall-clock time: on a loaded machine an input that
	# takes a millisecond can be descheduled past it. Run a timed-out input
	# again on its own; it is a finding only if it times out again
	# (FUZZ_STRICT_TIMEOUTS=1: every timeout fails).
	if [ "${FUZZ_STRICT_TIMEOUTS:-0}" = 0 ] && [ $rc -eq 70 ] && [ -n "$execs" ] && \
		[ -z "$(find "$work/$t/artifacts" -type f ! -name 'timeout-*')" ]; then
		rc=0
		for a in "$work/$t/artifacts"/timeout-*; do
			if ! "$bin" -timeout=5 -runs=3 -error_exitcode=1 "$a" >>"$work/$t/log" 2>&1; then
				rc=70
			fi
		done
		[ $rc -eq 0 ] && note=" (stopped early by a timeout that did not reproduce alone)"
	fi
	if [ $rc -ne 0 ] || [ -z "$execs" ]; then
		failed=1
		echo "== $t: FAILED (exit status $rc)"
		grep -E -A 40 'ERROR: |runtime error|check failed|Test unit written' "$work/$t/log" |
			head -n 80
		mkdir -p "$artifacts"
		cp "$work/$t/artifacts/"* "$artifacts/" 2>/dev/null &&
			echo "== $t: reproducer(s) copied to $artifacts/"
		summary="$summary$t: FAILED after ${execs:-?} executions
"
	else
		units=$(find "$work/$t/corpus" -type f | wc -l)
		echo "== $t: ok, $execs executions, corpus $units inputs$note"
		summary="$summary$t: $execs executions in ${seconds}s$note
"
	fi
done

echo "== fuzz summary"
printf '%s' "$summary"
exit $failed
