# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# What the container scenarios share; each scenario*.sh sources it first
# thing. Every step prints PASS/FAIL/SKIP to $OUT/results.txt and its details
# to $OUT/steps.log. The EXIT trap saves the journal and `systemctl status`
# to $OUT and always ends the container with `systemctl exit N` (N = failed
# steps, capped at 100), so that it never idles until the outer timeout.
# A scenario may define on_finish, which runs first in that trap (to stop its
# clients, say, or save more logs).
OUT=${OUT:-/out}
failures=0
T0=$(date +%s%N)
: >"$OUT/results.txt"
: >"$OUT/steps.log"

log() { echo "[$((($(date +%s%N) - T0) / 1000000)) ms] $*" >>"$OUT/steps.log"; }
result() {
	echo "$1: $2" | tee -a "$OUT/results.txt" >&2
	log "$1: $2"
	if [[ $1 == FAIL ]]; then failures=$((failures + 1)); fi
}
# step NAME FUNCTION...: runs FUNCTION with its output in steps.log; a
# function that returns 77 is a SKIP (it says why on its last line).
step() {
	local name=$1 rc
	shift
	log "--- $name"
	"$@" >>"$OUT/steps.log" 2>&1
	rc=$?
	case $rc in
	0) result PASS "$name" ;;
	77) result SKIP "$name: $(tail -n 1 "$OUT/steps.log")" ;;
	*) result FAIL "$name (exit $rc; see steps.log)" ;;
	esac
}
# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		(($(date +%s) < deadline)) || return 1
		sleep 0.1
	done
}
prop() { systemctl show -P "$2" "$1"; }

finishing=0
finish() {
	local rc=$failures
	finishing=1
	if declare -F on_finish >/dev/null; then on_finish; fi
	log "--- finishing"
	journalctl -b --no-pager -o short-monotonic >"$OUT/journal.txt" 2>&1
	systemctl --no-pager status 'echod*' >"$OUT/status.txt" 2>&1
	((rc > 100)) && rc=100
	result NOTE "scenario took $((($(date +%s%N) - T0) / 1000000)) ms, $failures failed"
	systemctl --no-block exit "$rc"
}
trap finish EXIT
# `systemctl exit` stops the scenario's unit too; SIGTERM before that means
# the unit timed out.
trap '((finishing)) || { result FAIL "scenario killed by SIGTERM (its unit timed out?)"; exit 1; }' TERM
