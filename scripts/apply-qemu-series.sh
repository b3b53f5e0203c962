#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Make a copy of the pristine QEMU source the patched source the build uses:
#   scripts/apply-qemu-series.sh TREE
# Exports the series (export-qemu-series.sh, into build/qemu-series), then
# applies it with git am onto the pristine commit of build/qemu-git, then
# the local build fixes of qemu-device/local/ (not part of the series: what
# building from Debian's tarball needs), so what is built and tested is
# the series itself.  TREE is then made equal to that tree: only files the
# patches touch, now or at an earlier run, are compared, and only those
# whose content changed are rewritten (rsync --checksum), so ninja rebuilds
# only what a change touches.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TREE=${1:?usage: apply-qemu-series.sh TREE}

# Files of the applied tree that differ from the pristine one.
changed_files() {
	qemu_git diff --name-only --no-renames pristine HEAD
}

sync_tree() {
	local list f
	list=$(mktemp)
	# Files patched now, and files an earlier run patched (back to
	# pristine if no patch touches them now).
	{ changed_files; cat "$TREE/.dmm-applied" 2>/dev/null || true; } |
		sort -u | while read -r f; do
			if [ -e "$QEMU_GIT/$f" ]; then
				echo "$f"
			else
				rm -f "$TREE/$f"
			fi
		done >"$list"
	rsync --checksum --files-from="$list" "$QEMU_GIT/" "$TREE/"
	rm -f "$list"
	changed_files >"$TREE/.dmm-applied"
}

main() {
	local p
	[ -d "$TREE" ] || die "$TREE: no such directory"
	"$TOP/scripts/export-qemu-series.sh" "$QEMU_SERIES_DIR"
	qemu_git_lock
	qemu_git checkout -q -f -B applied pristine
	qemu_git clean -q -fdx
	for p in "$QEMU_SERIES_DIR"/*.patch "$TOP"/qemu-device/local/*.patch; do
		qemu_git am -q "$p" || {
			qemu_git am --abort || true
			die "git am $p failed"
		}
	done
	sync_tree
	log "qemu: $TREE is the pristine source + $(ls "$QEMU_SERIES_DIR" | wc -l) patches of the series + qemu-device/local"
}

main "$@"
