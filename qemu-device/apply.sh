#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Apply virtio-dmm onto a QEMU 10.0.13 source tree:
#   qemu-device/apply.sh PRISTINE_TREE TREE
#
# TREE is made equal to PRISTINE_TREE plus qemu-device/patches/*.patch plus
# the new files (qemu-device/{hw,include,tests}), the portable device library
# (virtio-dmm-device/lib -> hw/virtio/dmm/) and the uapi header
# (-> linux-headers/linux/virtio_dmm.h, on QEMU's -isystem path for Linux
# hosts).  The repository keeps one copy of each; this script copies.
#
# Only files whose content changed are rewritten (rsync --checksum), so
# ninja rebuilds only what a change touches.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
PRISTINE=${1:?usage: apply.sh PRISTINE_TREE TREE}
TREE=${2:?usage: apply.sh PRISTINE_TREE TREE}

stage=$(mktemp -d "${TREE%/}.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Patched copy of every file the patches touch, in the stage.
for p in "$HERE"/patches/*.patch; do
	[ -e "$p" ] || continue
	grep -E '^\+\+\+ b/' "$p" | sed 's|^+++ b/||; s|\t.*||' |
	while read -r f; do
		if [ ! -e "$stage/$f" ]; then
			mkdir -p "$stage/$(dirname "$f")"
			cp "$PRISTINE/$f" "$stage/$f"
		fi
	done
	patch -s -p1 -d "$stage" --no-backup-if-mismatch <"$p"
done

# New files.
for d in hw include tests; do
	[ -d "$HERE/$d" ] && cp -r "$HERE/$d" "$stage/"
done
mkdir -p "$stage/hw/virtio/dmm" "$stage/linux-headers/linux"
cp "$TOP"/virtio-dmm-device/lib/*.[ch] "$stage/hw/virtio/dmm/"
# Every library source must be in hw/virtio/meson.build (patch 0002).
for f in "$TOP"/virtio-dmm-device/lib/*.c; do
	grep -q "'dmm/$(basename "$f")'" "$stage/hw/virtio/meson.build" || {
		echo "apply.sh: dmm/$(basename "$f") missing from meson.build" >&2
		exit 1
	}
done
cp "$TOP/virtio-dmm-device/include/uapi/linux/virtio_dmm.h" \
	"$stage/linux-headers/linux/"

# Files a previous apply patched but no patch touches now: back to pristine.
if [ -f "$TREE/.dmm-applied" ]; then
	while read -r f; do
		[ -e "$stage/$f" ] && continue
		if [ -e "$PRISTINE/$f" ]; then
			cmp -s "$PRISTINE/$f" "$TREE/$f" || cp "$PRISTINE/$f" "$TREE/$f"
		else
			rm -f "$TREE/$f"
		fi
	done <"$TREE/.dmm-applied"
fi

rsync -r --checksum "$stage/" "$TREE/"
(cd "$stage" && find . -type f | sed 's|^\./||' | sort) >"$TREE/.dmm-applied"
