# SPDX-License-Identifier: GPL-2.0
# Shared helpers and pinned versions for the virtio-dmm scripts.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DMM_BUILD:-$TOP/build}
DL=$BUILD/downloads

# Pinned QEMU source (Debian trixie source package).
QEMU_VER=10.0.13
QEMU_DEB_VER=1:10.0.13+ds
QEMU_ORIG=qemu_10.0.13+ds.orig.tar.xz
QEMU_ORIG_SHA256=6a0888e806c2ffc0c5f0733e974f9aea55491950d3c47c98669c8b236dde59ae
QEMU_DSC_VER=1:10.0.13+ds-0+deb13u1
QEMU_SRC=$BUILD/qemu-src
QEMU_BUILD=$BUILD/qemu-build
QEMU_BIN=$QEMU_BUILD/qemu-system-x86_64
QEMU_QTEST=$QEMU_BUILD/tests/qtest/virtio-dmm-test
# The sanitizer build (ASan + UBSan + libFuzzer instrumentation) of the same
# source, with its own tree: scripts/build-qemu-fuzz.sh, scripts/fuzz-qemu.sh.
QEMU_FUZZ_SRC=$BUILD/qemu-fuzz-src
QEMU_FUZZ_BUILD=$BUILD/qemu-fuzz
QEMU_FUZZ_BIN=$QEMU_FUZZ_BUILD/qemu-system-x86_64
QEMU_FUZZER=$QEMU_FUZZ_BUILD/qemu-fuzz-x86_64
QEMU_LSAN_SUPP=$QEMU_FUZZ_BUILD/lsan-suppressions.txt

# Pinned guest kernel (Debian bookworm-backports).
KVER=6.12.117+deb12-amd64
KPKG_VER=6.12.117-1~deb12u1
KERNEL_DIR=$BUILD/kernel

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# A QEMU run from its build tree BUILDDIR looks for data in qemu-bundle/
# there; the +ds source has none.  Link Debian's (seabios,
# qemu-system-data) in, so the binaries and their qtests need no -L.
link_firmware() {
	local f datadir=$1/qemu-bundle/usr/local/share/qemu
	mkdir -p "$datadir"
	for f in /usr/share/seabios/* /usr/share/qemu/*; do
		[ -f "$f" ] || continue
		[ -e "$datadir/$(basename "$f")" ] ||
			ln -s "$f" "$datadir/"
	done
}

LINUX_SOURCE=/usr/src/linux-source-6.12.tar.xz

# Extract FILE... (paths inside the kernel tree) from the linux-source-6.12
# package's tarball into DIR, keeping their paths.  Reads the whole tarball
# (about 10 s): callers do it once and keep the result under build/.
extract_linux_source() {
	local dir=$1
	shift
	[ -f "$LINUX_SOURCE" ] ||
		die "$LINUX_SOURCE missing: run scripts/setup-host.sh"
	mkdir -p "$dir"
	tar -xJf "$LINUX_SOURCE" -C "$dir" --strip-components=1 \
		"${@/#/linux-source-6.12/}"
}
