#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Pack the test guest's initramfs: busybox (static), the driver module, the
# baseline modules (virtio_mem, virtio_balloon), virtio_blk (a disk for
# page-cache tests), virtio_pci where it is a module, and the selftests.
# For the pinned guest kernel, or DMM_GUEST_KVER's (scripts/lib.sh).
# Rebuilds only when an input is newer than the archive.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# DMM_KMOD and DMM_INITRAMFS: another build of the driver (a DKMS one) in
# an initramfs of its own (DMM_INITRAMFS=build/....cpio.gz).
OUT=${DMM_INITRAMFS:-$GUEST_BUILD/initramfs.cpio.gz}
ROOT=${OUT%.cpio.gz}
KMOD=${DMM_KMOD:-$GUEST_BUILD/kmod/drivers/dmm/virtio_dmm.ko}
KMOD_TEST=$GUEST_BUILD/kmod-test/dmm_test_pin.ko
SELFTESTS=$BUILD/selftests
MODDIR=$KERNEL_DIR/lib/modules/$GUEST_KVER/kernel
# With the user's GUEST_KERNEL, the baseline modules come from its KDIR
# (a built tree); one that is not there is built in or absent.
[ -z "$GIVEN_KERNEL" ] || MODDIR=$KDIR

inputs() {
	echo "$KMOD" "$KMOD_TEST" "$TOP/selftests/guest/init" "$0" /bin/busybox
	find "$SELFTESTS" -maxdepth 1 -type f -perm -u+x
}

# Copy a module file, uncompressed (busybox insmod reads plain ELF only).
copy_module() {
	local f=$1 to=$2
	case "$f" in
	*.xz) xz -dc "$f" >"$to" ;;
	*.zst) zstd -dcq "$f" >"$to" ;;
	*) cp "$f" "$to" ;;
	esac
}

# Copy a module of the guest kernel.
guest_module() {
	local name=$1 f
	f=$(find "$MODDIR" -name "$name.ko*" | head -n 1)
	if [ -z "$f" ] && [ -n "$GIVEN_KERNEL" ]; then
		log "initramfs: no $name.ko in KDIR=$KDIR (built in or absent)"
		return 0
	fi
	[ -n "$f" ] || die "module $name not in $MODDIR"
	copy_module "$f" "$ROOT/lib/modules/$name.ko"
}

# Where virtio (PCI) is a module (Debian's 6.1 kernels), /init loads it
# and what it needs before anything else: lib/modules/preload, in order.
# modules.dep lists every dependency, the last to be loaded first.
preload_virtio_pci() {
	local line dep name order=""
	# the user's kernel: virtio must be built in (README, "Without apt")
	[ -z "$GIVEN_KERNEL" ] || return 0
	# the image's package has no modules.dep (made when installed)
	[ -f "$MODDIR/../modules.dep" ] ||
		depmod -b "$KERNEL_DIR" "$GUEST_KVER"
	line=$(grep -E '(^|/)virtio_pci\.ko[^:]*:' \
		"$MODDIR/../modules.dep") || return 0
	for dep in ${line#*:}; do
		order="$dep $order"
	done
	for dep in $order ${line%%:*}; do
		name=$(basename "$dep")
		name=${name%%.ko*}
		copy_module "$MODDIR/../$dep" "$ROOT/lib/modules/$name.ko"
		echo "$name" >>"$ROOT/lib/modules/preload"
	done
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
	copy_module "$KMOD" "$ROOT/lib/modules/virtio_dmm.ko"
	cp "$KMOD_TEST" "$ROOT/lib/modules/"
	guest_module virtio_mem
	guest_module virtio_balloon
	guest_module virtio_blk
	preload_virtio_pci
	find "$SELFTESTS" -maxdepth 1 -type f -perm -u+x -exec cp {} "$ROOT/dmm/" \;
	(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT.tmp"
	mv "$OUT.tmp" "$OUT"
	log "initramfs: $OUT ($(du -h "$OUT" | cut -f1))"
}

main "$@"
