#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Pack the test guest's initramfs: busybox (static), the driver module, the
# baseline modules (virtio_mem, virtio_balloon), virtio_blk (a disk for
# page-cache tests) and the selftests.
# Rebuilds only when an input is newer than the archive.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=$BUILD/initramfs.cpio.gz
ROOT=$BUILD/initramfs
KMOD=$BUILD/kmod/drivers/dmm/virtio_dmm.ko
KMOD_TEST=$BUILD/kmod-test/dmm_test_pin.ko
SELFTESTS=$BUILD/selftests
MODDIR=$KERNEL_DIR/lib/modules/$KVER/kernel
# With the user's GUEST_KERNEL, the baseline modules come from its KDIR
# (a built tree); one that is not there is built in or absent.
[ -z "$GIVEN_KERNEL" ] || MODDIR=$KDIR

inputs() {
	echo "$KMOD" "$KMOD_TEST" "$TOP/selftests/guest/init" "$0" /bin/busybox
	find "$SELFTESTS" -maxdepth 1 -type f -perm -u+x
}

# Copy a module of the guest kernel, uncompressed (busybox insmod reads
# plain ELF only).
guest_module() {
	local name=$1 f
	f=$(find "$MODDIR" -name "$name.ko*" | head -n 1)
	if [ -z "$f" ] && [ -n "$GIVEN_KERNEL" ]; then
		log "initramfs: no $name.ko in KDIR=$KDIR (built in or absent)"
		return 0
	fi
	[ -n "$f" ] || die "module $name not in $MODDIR"
	case "$f" in
	*.xz) xz -dc "$f" >"$ROOT/lib/modules/$name.ko" ;;
	*.zst) zstd -dcq "$f" >"$ROOT/lib/modules/$name.ko" ;;
	*) cp "$f" "$ROOT/lib/modules/$name.ko" ;;
	esac
}

main() {
	local f stale=0
	[ -f "$KMOD" ] && [ -f "$KMOD_TEST" ] ||
		die "$KMOD or $KMOD_TEST missing: run scripts/build-module.sh"
	[ -d "$MODDIR" ] || die "guest kernel missing: run scripts/fetch-kernel.sh"
	if [ -f "$OUT" ]; then
		for f in $(inputs); do
			[ "$f" -nt "$OUT" ] && stale=1
		done
		[ $stale = 0 ] && { log "initramfs: up to date"; return 0; }
	fi
	rm -rf "$ROOT"
	mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,tmp,dmm,lib/modules}
	cp /bin/busybox "$ROOT/bin/busybox"
	for f in $("$ROOT/bin/busybox" --list); do
		[ "$f" = busybox ] || ln -sf busybox "$ROOT/bin/$f"
	done
	cp "$TOP/selftests/guest/init" "$ROOT/init"
	chmod +x "$ROOT/init"
	cp "$KMOD" "$ROOT/lib/modules/"
	cp "$KMOD_TEST" "$ROOT/lib/modules/"
	guest_module virtio_mem
	guest_module virtio_balloon
	guest_module virtio_blk
	find "$SELFTESTS" -maxdepth 1 -type f -perm -u+x -exec cp {} "$ROOT/dmm/" \;
	(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT.tmp"
	mv "$OUT.tmp" "$OUT"
	log "initramfs: $OUT ($(du -h "$OUT" | cut -f1))"
}

main "$@"
