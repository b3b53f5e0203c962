#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the guest driver against the guest kernel's headers (KDIR:
# /lib/modules/$GUEST_KVER/build, the kernel of build/versions.env or
# DMM_GUEST_KVER's (scripts/lib.sh), or the user's KDIR=).
# Linux 6.12 writes objects next to the sources (no MO=), so the sources the
# root Kbuild needs are mirrored into build/kmod first; the tree stays clean.
#   scripts/build-module.sh [extra make arguments, e.g. C=2]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KMOD=$GUEST_BUILD/kmod
KMOD_TEST=$GUEST_BUILD/kmod-test

main() {
	[ -d "$KDIR" ] || die "$KDIR missing: run scripts/setup-host.sh (or set KDIR=)"
	mkdir -p "$KMOD"
	rsync -a --checksum --delete --exclude='*.o' --exclude='*.ko' \
		--exclude='.*.cmd' --exclude='*.mod*' --exclude='modules.order' \
		--exclude='Module.symvers' --exclude='.tmp*' \
		"$TOP/drivers" "$TOP/Kbuild" "$KMOD/"
	mkdir -p "$KMOD/virtio-dmm-device"
	rsync -a --checksum --delete "$TOP/virtio-dmm-device/include" \
		"$KMOD/virtio-dmm-device/"
	make -C "$KDIR" M="$KMOD" W=1 "$@" modules
	log "module: $KMOD/drivers/dmm/virtio_dmm.ko"

	# the selftests' own test module (pins pages; guests only)
	mkdir -p "$KMOD_TEST"
	rsync -a --checksum "$TOP/selftests/dmm/pin/" "$KMOD_TEST/"
	make -C "$KDIR" M="$KMOD_TEST" W=1 "$@" modules
	log "module: $KMOD_TEST/dmm_test_pin.ko"
}

main "$@"
