#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fetch the Debian guest kernel image of build/versions.env and unpack it
# into build/kernel (never installed on the host); with DMM_GUEST_KVER, that
# stock kernel's into build/kernels/V/kernel (scripts/lib.sh).  The matching
# headers come from scripts/setup-host.sh.  Nothing to do with GUEST_KERNEL=
# set.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PKG=linux-image-$GUEST_KVER-unsigned
DEB=${PKG}_${GUEST_KPKG_VER}_amd64.deb

main() {
	local stamp=$KERNEL_DIR/.stamp-$GUEST_KPKG_VER
	if [ -n "$GIVEN_KERNEL" ]; then
		[ -f "$GUEST_KERNEL" ] || die "GUEST_KERNEL=$GUEST_KERNEL: no such file"
		log "guest kernel: GUEST_KERNEL=$GUEST_KERNEL (nothing to fetch)"
		return 0
	fi
	if [ -f "$stamp" ]; then
		log "guest kernel $GUEST_KVER: present"
		return 0
	fi
	mkdir -p "$DL"
	if [ ! -f "$DL/$DEB" ]; then
		log "guest kernel: downloading $PKG=$GUEST_KPKG_VER"
		(cd "$DL" && apt-get download "$PKG=$GUEST_KPKG_VER")
	fi
	rm -rf "$KERNEL_DIR"
	mkdir -p "$KERNEL_DIR"
	dpkg -x "$DL/$DEB" "$KERNEL_DIR"
	[ -f "$KERNEL_DIR/boot/vmlinuz-$GUEST_KVER" ] || die "no vmlinuz in $DEB"
	touch "$stamp"
	log "guest kernel $GUEST_KVER: unpacked into $KERNEL_DIR"
}

main "$@"
