#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Export qemu-device/ as a git format-patch series against the pinned QEMU
# release (Debian's orig tarball is that release's source):
#   scripts/export-qemu-series.sh [DIR]      (default build/qemu-series)
# DIR then holds NNNN-*.patch, to take with "git am DIR/*.patch" onto a
# QEMU v10.0.x tree; the build applies the same files (apply-qemu-series.sh).
#
# qemu-device/series/series lists the patches in order: each is a commit on
# top of the pristine source (build/qemu-git, tag pristine) made of its
# changes to files QEMU has (NAME.diff), the files it adds, and its commit
# message (NAME.msg).  The files it adds come from qemu-device/ at their
# path in the QEMU tree, except two, whose one copy lives elsewhere:
#   include/standard-headers/linux/virtio_dmm.h
#       virtio-dmm-device/include/uapi/linux/virtio_dmm.h, converted as
#       QEMU's scripts/update-linux-headers.sh converts a Linux header
#   hw/virtio/dmm/
#       virtio-dmm-device/lib/*, its #include <linux/virtio_dmm.h> made
#       "standard-headers/linux/virtio_dmm.h"
# The same sources give the same bytes: fixed identity and dates
# (lib.sh), --zero-commit, no signature.  Takes seconds once build/qemu-git
# exists (ensure_qemu_git makes it from build/qemu-pristine).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SERIES_DIR=$TOP/qemu-device/series
OUT=${1:-$QEMU_SERIES_DIR}

# The uapi header as cp_portable() of QEMU's update-linux-headers.sh
# converts a header for include/standard-headers/linux/ (the expressions
# that apply to a virtio header, in its order).
convert_uapi_header() {
	sed -e 's/__aligned_u64/__u64 __attribute__((aligned(8)))/g' \
	    -e 's/__u\([0-9][0-9]*\)/uint\1_t/g' \
	    -e 's/u\([0-9][0-9]*\)/uint\1_t/g' \
	    -e 's/__s\([0-9][0-9]*\)/int\1_t/g' \
	    -e 's/__le\([0-9][0-9]*\)/uint\1_t/g' \
	    -e 's/__be\([0-9][0-9]*\)/uint\1_t/g' \
	    -e 's/<linux\/\([^>]*\)>/"standard-headers\/linux\/\1"/' \
	    -e 's/__bitwise//' \
	    -e 's/__attribute__((packed))/QEMU_PACKED/' \
	    -e 's/__inline__/inline/' \
	    "$1"
}

# Write the new file at QEMU path $1 into the working tree.
add_file() {
	local path=$1 dst=$QEMU_GIT/$1 f
	case "$path" in
	include/standard-headers/linux/virtio_dmm.h)
		mkdir -p "$(dirname "$dst")"
		convert_uapi_header \
			"$TOP/virtio-dmm-device/include/uapi/linux/virtio_dmm.h" \
			>"$dst"
		;;
	hw/virtio/dmm/)
		mkdir -p "$dst"
		for f in "$TOP"/virtio-dmm-device/lib/*.[ch]; do
			sed 's|^#include <linux/virtio_dmm.h>$|#include "standard-headers/linux/virtio_dmm.h"|' \
				"$f" >"$dst/$(basename "$f")"
		done
		;;
	*)
		[ -f "$TOP/qemu-device/$path" ] ||
			die "series: qemu-device/$path missing"
		mkdir -p "$(dirname "$dst")"
		cp "$TOP/qemu-device/$path" "$dst"
		;;
	esac
}

# Every file of qemu-device/{hw,include,tests,docs} is added by exactly
# one patch, and every library source is compiled.
check_manifest() {
	local f n
	while read -r f; do
		n=$(awk -v f="$f" '!/^#/ { for (i = 2; i <= NF; i++)
			if ($i == f) n++ } END { print n + 0 }' "$SERIES_DIR/series")
		[ "$n" = 1 ] ||
			die "series: qemu-device/$f is added by $n patches, not 1"
	done < <(cd "$TOP/qemu-device" &&
		find hw include tests docs -type f 2>/dev/null | sort)
	for f in "$TOP"/virtio-dmm-device/lib/*.c; do
		grep -q "'dmm/$(basename "$f")'" "$QEMU_GIT/hw/virtio/meson.build" ||
			die "series: dmm/$(basename "$f") missing from hw/virtio/meson.build"
	done
}

main() {
	local name files f n=0
	qemu_git_lock
	ensure_qemu_git
	log "qemu: exporting the series to $OUT"
	qemu_git checkout -q -f -B export pristine
	qemu_git clean -q -fdx
	while read -r name files; do
		case "$name" in '' | '#'*) continue ;; esac
		[ -f "$SERIES_DIR/$name.msg" ] ||
			die "series: $name.msg missing"
		if [ -f "$SERIES_DIR/$name.diff" ]; then
			qemu_git apply --whitespace=nowarn "$SERIES_DIR/$name.diff" ||
				die "series: $name.diff does not apply"
		fi
		for f in $files; do
			add_file "$f"
		done
		qemu_git add -A -f
		qemu_git commit -q --cleanup=verbatim -F "$SERIES_DIR/$name.msg"
		n=$((n + 1))
	done <"$SERIES_DIR/series"
	check_manifest
	rm -rf "$OUT"
	mkdir -p "$OUT"
	qemu_git format-patch -q --zero-commit --no-signature -o "$OUT" \
		pristine..export
	log "qemu: $n patches in $OUT"
}

main "$@"
