#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The QEMU series, exported afresh from what the repository holds now: git
# am applies it onto the pristine source and gives the tree it was exported
# from, and QEMU's own checkpatch.pl (of the pinned release) passes on
# every patch, in patch mode, as QEMU's maintainers run it.  A patch passes
# with 0 errors and 0 warnings, or with each warning explained in its
# commit message: the message quotes the warning up to its first "?" or
# " but " (whitespace and line breaks aside).  Needs build/qemu-pristine
# (scripts/build-qemu.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# A warning's text as a commit message quotes it, without whitespace.
warning_key() {
	local w=$1
	case "$w" in
	*"?"*) w="${w%%\?*}?" ;;
	esac
	w=${w%% but *}
	tr -d ' \t\n' <<<"$w"
}

check_patch() {
	local p=$1 out msg w key errors warnings unexplained=0
	out=$(cd "$QEMU_PRISTINE" && scripts/checkpatch.pl "$p" 2>&1) || true
	errors=$(grep -c '^ERROR:' <<<"$out" || true)
	warnings=$(grep -c '^WARNING:' <<<"$out" || true)
	# The commit message: everything before the diffstat's "---".
	msg=$(sed '/^---$/q' "$p" | tr -d ' \t\n')
	while read -r w; do
		[ -n "$w" ] || continue
		key=$(warning_key "$w")
		if [[ "$msg" != *"$key"* ]]; then
			echo "  unexplained: WARNING: $w"
			unexplained=$((unexplained + 1))
		fi
	done < <(sed -n 's/^WARNING: //p' <<<"$out" | sort -u)
	echo "$(basename "$p"): $errors errors, $warnings warnings" \
		"($unexplained not explained in the commit message)"
	if [ "$errors" != 0 ] || [ $unexplained != 0 ]; then
		grep -A4 -E '^(ERROR|WARNING):' <<<"$out" | head -n 60
		return 1
	fi
}

# git am of the exported files onto the pristine commit gives the tree
# the export made: the patch files alone carry the whole change.
check_am() {
	local p
	qemu_git_lock
	qemu_git checkout -q -f -B check-am pristine
	qemu_git clean -q -fdx
	for p in "$QEMU_SERIES_DIR"/*.patch; do
		qemu_git am -q "$p" || {
			qemu_git am --abort || true
			echo "git am $(basename "$p") failed"
			return 1
		}
	done
	[ "$(qemu_git rev-parse 'check-am^{tree}')" = \
	  "$(qemu_git rev-parse 'export^{tree}')" ] || {
		echo "git am of the series gives another tree than the export"
		return 1
	}
	echo "git am: the $(ls "$QEMU_SERIES_DIR" | wc -l) patches apply onto QEMU $QEMU_VER"
	flock -u 9
}

main() {
	local p rc=0 n=0
	[ -x "$QEMU_PRISTINE/scripts/checkpatch.pl" ] ||
		die "$QEMU_PRISTINE missing: run scripts/build-qemu.sh"
	"$TOP/scripts/export-qemu-series.sh" "$QEMU_SERIES_DIR"
	check_am || rc=1
	for p in "$QEMU_SERIES_DIR"/*.patch; do
		check_patch "$p" || rc=1
		n=$((n + 1))
	done
	[ $rc = 0 ] && log "check: QEMU's checkpatch.pl passes on the $n patches"
	return $rc
}

main "$@"
