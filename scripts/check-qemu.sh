#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# QEMU's own checkpatch.pl on every file qemu-device/ adds, at its path in
# the applied tree (QEMU's rules differ by path, e.g. for tests/).  Any
# error or warning fails.  Needs scripts/build-qemu.sh to have run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

main() {
	local f rel rc=0
	[ -x "$QEMU_TREE/scripts/checkpatch.pl" ] ||
		die "$QEMU_TREE missing: run scripts/build-qemu.sh"
	# Check what the repository holds now, not an older copy.
	"$TOP/qemu-device/apply.sh" "$BUILD/qemu-pristine" "$QEMU_TREE"
	while read -r f; do
		rel=${f#"$TOP"/qemu-device/}
		if ! (cd "$QEMU_TREE" && scripts/checkpatch.pl --no-tree -q \
			-f "$rel"); then
			rc=1
		fi
	done < <(find "$TOP/qemu-device" -name '*.[ch]' | sort)
	[ $rc = 0 ] && log "check: QEMU style clean"
	return $rc
}

main "$@"
