#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build qemu-system-x86_64 with virtio-dmm into build/qemu-build.
# The pinned Debian QEMU source is fetched and checked once, unpacked once
# (build/qemu-pristine), copied to build/qemu-src, and qemu-device/ applied
# onto it; configure runs once; ninja rebuilds what changed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PRISTINE=$BUILD/qemu-pristine

fetch() {
	[ -f "$DL/$QEMU_ORIG" ] && return 0
	log "qemu: fetching source package qemu=$QEMU_DSC_VER"
	mkdir -p "$DL"
	(cd "$DL" && apt-get source --download-only -qq "qemu=$QEMU_DSC_VER")
}

unpack() {
	local sum tmp
	[ -f "$PRISTINE/.stamp" ] && return 0
	sum=$(sha256sum "$DL/$QEMU_ORIG" | cut -d' ' -f1)
	[ "$sum" = "$QEMU_ORIG_SHA256" ] ||
		die "$QEMU_ORIG: sha256 $sum, expected $QEMU_ORIG_SHA256"
	log "qemu: unpacking $QEMU_ORIG"
	tmp=$(mktemp -d "$BUILD/qemu-unpack.XXXXXX")
	tar -xJf "$DL/$QEMU_ORIG" -C "$tmp"
	rm -rf "$PRISTINE" "$QEMU_SRC"
	mv "$tmp"/qemu-* "$PRISTINE"
	rmdir "$tmp"
	cp -a "$PRISTINE" "$QEMU_SRC"
	touch "$PRISTINE/.stamp"
}

# Debian's python3: meson and pycotap are installed for it (not for a
# python3 earlier in PATH, e.g. pyenv's); QEMU fetches no wheels here.
configure() {
	[ -f "$QEMU_BUILD/build.ninja" ] && return 0
	log "qemu: configure"
	rm -rf "$QEMU_BUILD"
	mkdir -p "$QEMU_BUILD"
	(cd "$QEMU_BUILD" && "$QEMU_SRC/configure" \
		--target-list=x86_64-softmmu --without-default-features \
		--enable-tcg --enable-kvm --disable-docs \
		--disable-install-blobs --disable-werror \
		--python=/usr/bin/python3)
}

main() {
	fetch
	unpack
	"$TOP/qemu-device/apply.sh" "$PRISTINE" "$QEMU_SRC"
	configure
	link_firmware "$QEMU_BUILD"
	log "qemu: ninja qemu-system-x86_64 and the virtio-dmm qtest"
	ninja -C "$QEMU_BUILD" qemu-system-x86_64 tests/qtest/virtio-dmm-test
	log "qemu: $QEMU_BIN"
}

main "$@"
