#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build qemu-system-x86_64 with virtio-dmm into build/qemu-build.
# The QEMU source (the Debian tarball of build/versions.env, fetched and
# sha256-checked once, or the user's QEMU_SRC tree) is unpacked or copied
# once (build/qemu-pristine) and copied to build/qemu-src; the series
# exported from qemu-device/ is applied with git am (apply-qemu-series.sh)
# and what it changed synced into build/qemu-src; configure runs once;
# ninja rebuilds what changed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PRISTINE=$QEMU_PRISTINE

fetch() {
	[ -n "$QEMU_SRC" ] && return 0
	[ -f "$DL/$QEMU_ORIG" ] && return 0
	log "qemu: fetching source package qemu=$QEMU_DSC_VER"
	mkdir -p "$DL"
	(cd "$DL" && apt-get source --download-only -qq "qemu=$QEMU_DSC_VER")
}

# What the pristine tree is made of: the user's QEMU_SRC or the tarball.
origin() {
	if [ -n "$QEMU_SRC" ]; then
		echo "tree $QEMU_SRC"
	else
		echo "tarball $QEMU_ORIG $QEMU_ORIG_SHA256"
	fi
}

# The pristine tree is made once per origin (an empty stamp is from
# before origins were recorded: the pinned tarball).
unpacked() {
	local have
	[ -f "$PRISTINE/.stamp" ] || return 1
	have=$(cat "$PRISTINE/.stamp")
	[ "$have" = "$(origin)" ] ||
		{ [ -z "$have$QEMU_SRC" ] && [ "$QEMU_ORIG" = "$PIN_QEMU_ORIG" ]; }
}

unpack() {
	local sum tmp ver
	unpacked && return 0
	tmp=$(mktemp -d "$BUILD/qemu-unpack.XXXXXX")
	if [ -n "$QEMU_SRC" ]; then
		ver=$(cat "$QEMU_SRC/VERSION" 2>/dev/null) || ver=none
		case "$ver" in
		"$QEMU_SERIES".*) ;;
		*) die "QEMU_SRC=$QEMU_SRC: VERSION is $ver, not $QEMU_SERIES.x" ;;
		esac
		log "qemu: copying QEMU_SRC=$QEMU_SRC ($ver)"
		rsync -a --exclude=.git "$QEMU_SRC/" "$tmp/qemu-$ver/"
	else
		sum=$(sha256sum "$DL/$QEMU_ORIG" | cut -d' ' -f1)
		[ "$sum" = "$QEMU_ORIG_SHA256" ] ||
			die "$QEMU_ORIG: sha256 $sum, expected $QEMU_ORIG_SHA256"
		log "qemu: unpacking $QEMU_ORIG"
		tar -xJf "$DL/$QEMU_ORIG" -C "$tmp"
	fi
	rm -rf "$PRISTINE" "$QEMU_TREE"
	mv "$tmp"/qemu-* "$PRISTINE"
	rmdir "$tmp"
	cp -a "$PRISTINE" "$QEMU_TREE"
	origin >"$PRISTINE/.stamp"
}

# Debian's python3: meson and pycotap are installed for it (not for a
# python3 earlier in PATH, e.g. pyenv's); QEMU fetches no wheels here.
configure() {
	[ -f "$QEMU_BUILD/build.ninja" ] && return 0
	log "qemu: configure"
	rm -rf "$QEMU_BUILD"
	mkdir -p "$QEMU_BUILD"
	(cd "$QEMU_BUILD" && "$QEMU_TREE/configure" \
		--target-list=x86_64-softmmu --without-default-features \
		--enable-tcg --enable-kvm --disable-docs \
		--disable-install-blobs --disable-werror \
		--python=/usr/bin/python3)
}

main() {
	fetch
	unpack
	"$TOP/scripts/apply-qemu-series.sh" "$QEMU_TREE"
	configure
	link_firmware "$QEMU_BUILD"
	log "qemu: ninja qemu-system-x86_64, the virtio-dmm qtest and" \
		"QEMU's qom-test and device-introspect-test"
	ninja -C "$QEMU_BUILD" qemu-system-x86_64 tests/qtest/virtio-dmm-test \
		tests/qtest/qom-test tests/qtest/device-introspect-test
	log "qemu: $QEMU_BIN"
}

main "$@"
