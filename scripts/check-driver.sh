#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Static checks of the guest driver: checkpatch.pl --strict on every driver
# file and the uapi header, and sparse (make C=2).  Any warning fails.
# checkpatch.pl comes from the linux-source-6.12 package, extracted once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CP=$BUILD/checkpatch

extract_checkpatch() {
	[ -x "$CP/scripts/checkpatch.pl" ] && return 0
	log "check: extracting checkpatch.pl from $LINUX_SOURCE"
	extract_linux_source "$CP" scripts/checkpatch.pl scripts/spelling.txt \
		scripts/const_structs.checkpatch
}

# With --no-tree checkpatch cannot see the kernel's own headers, so it
# calls every kernel API with capitals CamelCase (__SetPageOffline).  Such
# a report is dropped only if the name is defined in the kernel headers.
KHDR=/usr/src/linux-headers-${KVER%-amd64}-common/include
[ -z "$GIVEN_KERNEL" ] || KHDR=$KDIR/include

kernel_name() {
	grep -rqw -- "$1" "$KHDR" 2>/dev/null
}

run_checkpatch() {
	local f rc=0 out name kept ignore
	for f in "$TOP"/drivers/dmm/*.[ch] \
		 "$TOP"/virtio-dmm-device/include/uapi/linux/virtio_dmm.h; do
		# dmm_compat.h is the one file whose job is to test the
		# kernel version (an out-of-tree module builds for several):
		# its one LINUX_VERSION_CODE is allowed, nowhere else.
		ignore=
		[ "$(basename "$f")" = dmm_compat.h ] &&
			ignore="--ignore LINUX_VERSION_CODE"
		# shellcheck disable=SC2086
		out=$("$CP/scripts/checkpatch.pl" --strict --no-tree --quiet \
			--show-types $ignore -f "$f") && continue
		kept=0
		while IFS= read -r name; do
			kernel_name "$name" || kept=1
		done < <(echo "$out" | sed -n 's/^CHECK:CAMELCASE: Avoid CamelCase: <\(.*\)>$/\1/p')
		# anything but known kernel CamelCase fails the check
		if [ $kept = 1 ] || echo "$out" | grep -E '^(ERROR|WARNING|CHECK):' |
			grep -vq '^CHECK:CAMELCASE:'; then
			echo "$out"
			rc=1
		fi
	done
	return $rc
}

# sparse: rebuild every object with C=2 and fail on any sparse line.
run_sparse() {
	local out
	out=$("$TOP/scripts/build-module.sh" C=2 2>&1) || {
		echo "$out"
		return 1
	}
	if echo "$out" | grep -E '\.(c|h):[0-9]+:[0-9]+: (warning|error)'; then
		return 1
	fi
}

main() {
	local rc=0
	extract_checkpatch
	log "check: checkpatch --strict"
	run_checkpatch || rc=1
	log "check: sparse (C=2)"
	run_sparse || rc=1
	[ $rc = 0 ] && log "check: clean"
	return $rc
}

main "$@"
