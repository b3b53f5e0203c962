#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install, fetch and build everything a guest run needs, reusing what is
# built.  Each phase's output goes to build/logs/PHASE.log; its duration is
# appended to build/logs/phases.txt and printed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PHASES=(
	"setup:$TOP/scripts/setup-host.sh"
	"kernel:$TOP/scripts/fetch-kernel.sh"
	"qemu:$TOP/scripts/build-qemu.sh"
	"qemu-fuzz:$TOP/scripts/build-qemu-fuzz.sh"
	"module:$TOP/scripts/build-module.sh"
	"selftests:$TOP/scripts/build-selftests.sh"
	"initramfs:$TOP/scripts/build-initramfs.sh"
	"balancer:$TOP/scripts/build-balancer.sh"
)

run_phase() {
	local name=$1 cmd=$2 t0 t1 logf=$BUILD/logs/$1.log
	t0=$(date +%s.%N)
	if ! "$cmd" >"$logf" 2>&1; then
		log "phase $name FAILED; last lines of $logf:"
		tail -n 40 "$logf" >&2
		return 1
	fi
	t1=$(date +%s.%N)
	printf '%-10s %6.1f s\n' "$name" "$(echo "$t1 - $t0" | bc -l)" |
		tee -a "$BUILD/logs/phases.txt" >&2
}

main() {
	local p
	# an unsupported host: the check's one line, exit status 2
	"$TOP/scripts/setup-host.sh" --check-host || exit
	mkdir -p "$BUILD/logs"
	: >"$BUILD/logs/phases.txt"
	# The first phase installs what the others need (bc among them), so
	# it runs before anything is timed with bc.
	for p in "${PHASES[@]}"; do
		run_phase "${p%%:*}" "${p#*:}" || return 1
	done
}

main "$@"
