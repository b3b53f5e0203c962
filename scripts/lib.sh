# SPDX-License-Identifier: GPL-2.0
# Shared helpers and pinned versions for the virtio-dmm scripts.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DMM_BUILD:-$TOP/build}
DL=$BUILD/downloads

# Pinned versions: what the set-up asks the Debian archive for.  When a
# pinned version has left the archive, scripts/setup-host.sh (through
# scripts/resolve-versions.sh) falls back to the newest version of the same
# series and records what it uses in $VERSIONS, which is read below: every
# later script builds and boots what that file says.  DMM_QEMU_DSC_VER and
# DMM_KPKG_VER override the pins (to test the fallback).
QEMU_SERIES=10.0
PIN_QEMU_DSC_VER=${DMM_QEMU_DSC_VER:-1:10.0.13+ds-0+deb13u1}
PIN_QEMU_ORIG=qemu_10.0.13+ds.orig.tar.xz
PIN_QEMU_ORIG_SHA256=6a0888e806c2ffc0c5f0733e974f9aea55491950d3c47c98669c8b236dde59ae
KSERIES=6.12
PIN_KPKG_VER=${DMM_KPKG_VER:-6.12.117-1~deb12u1}

# Builds with no apt at all (README, "Without apt"): QEMU_SRC, a QEMU
# 10.0.x source tree; KDIR, a prepared kernel tree to build the module
# against; GUEST_KERNEL, a bzImage to boot the guests with.  Each one set
# replaces what apt would fetch; set in the environment, it wins over what
# $VERSIONS recorded.
USER_QEMU_SRC=${QEMU_SRC:-}
USER_KDIR=${KDIR:-}
USER_GUEST_KERNEL=${GUEST_KERNEL:-}

# The versions in use: the pins until the set-up has resolved them.
VERSIONS=$BUILD/versions.env
QEMU_DSC_VER=$PIN_QEMU_DSC_VER
QEMU_ORIG=$PIN_QEMU_ORIG
QEMU_ORIG_SHA256=$PIN_QEMU_ORIG_SHA256
KPKG_VER=$PIN_KPKG_VER
QEMU_VER=${PIN_QEMU_ORIG#qemu_}
QEMU_VER=${QEMU_VER%%+*}
KVER=${PIN_KPKG_VER%%-*}+deb12-amd64
RESOLVED_FROM= QEMU_SRC= KDIR= GUEST_KERNEL=
if [ -f "$VERSIONS" ]; then
	# shellcheck source=/dev/null
	. "$VERSIONS"
fi

# Debian 12's stock kernels (bookworm-security), the other guest kernels
# the module supports: scripts/build-guest-kernel.sh fetches and builds
# for them, the suites "kernels" and "dkms" boot them.
STOCK_KVERS="6.1.0-57-amd64 6.1.0-57-cloud-amd64"
STOCK_KPKG_VER=6.1.192-3

# The guest kernel the module, initramfs and image scripts work for:
# DMM_GUEST_KVER=V (one of STOCK_KVERS) puts them under build/kernels/V/
# instead of build/.
GUEST_KVER=${DMM_GUEST_KVER:-$KVER}
GUEST_KPKG_VER=$KPKG_VER
GUEST_BUILD=$BUILD
if [ "$GUEST_KVER" != "$KVER" ]; then
	GUEST_KPKG_VER=$STOCK_KPKG_VER
	GUEST_BUILD=$BUILD/kernels/$GUEST_KVER
fi
KERNEL_DIR=$GUEST_BUILD/kernel
QEMU_SRC=${USER_QEMU_SRC:-$QEMU_SRC}
# The user's bzImage (then KDIR is the user's too), or empty.
GIVEN_KERNEL=${USER_GUEST_KERNEL:-$GUEST_KERNEL}
KDIR=${USER_KDIR:-${KDIR:-/lib/modules/$GUEST_KVER/build}}
GUEST_KERNEL=${USER_GUEST_KERNEL:-${GUEST_KERNEL:-$KERNEL_DIR/boot/vmlinuz-$GUEST_KVER}}

# The QEMU tree virtio-dmm is applied onto and built from (a copy of the
# pristine source: the Debian tarball's or $QEMU_SRC).
QEMU_TREE=$BUILD/qemu-src
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
# The pristine source unpacked (build-qemu.sh), the same as a git
# repository (commit "pristine", the base of the series), and the series
# scripts/export-qemu-series.sh makes of qemu-device/.
QEMU_PRISTINE=$BUILD/qemu-pristine
QEMU_GIT=$BUILD/qemu-git
QEMU_SERIES_DIR=$BUILD/qemu-series

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# A QEMU run from its build tree BUILDDIR looks for data in qemu-bundle/
# there; the +ds source has none.  Link Debian's in (seabios,
# qemu-system-data, and ipxe-qemu's NIC option ROMs, which a machine's
# default NIC needs: efi-e1000e.rom for q35), so the binaries and their
# qtests need no -L and start a default machine.
link_firmware() {
	local f datadir=$1/qemu-bundle/usr/local/share/qemu
	mkdir -p "$datadir"
	for f in /usr/share/seabios/* /usr/share/qemu/* /usr/lib/ipxe/qemu/*; do
		[ -f "$f" ] || continue
		[ -e "$datadir/$(basename "$f")" ] ||
			ln -s "$f" "$datadir/"
	done
}

# git in $QEMU_GIT, as the identity that signs the series off, at a
# fixed date: the same sources make the same commits, byte for byte.
DMM_GIT_NAME="virtio-dmm developers"
DMM_GIT_EMAIL=virtio-dmm@example.org
DMM_GIT_DATE=2026-12-01T00:00:00Z
qemu_git() {
	GIT_AUTHOR_NAME=$DMM_GIT_NAME GIT_AUTHOR_EMAIL=$DMM_GIT_EMAIL \
	GIT_COMMITTER_NAME=$DMM_GIT_NAME GIT_COMMITTER_EMAIL=$DMM_GIT_EMAIL \
	GIT_AUTHOR_DATE=$DMM_GIT_DATE GIT_COMMITTER_DATE=$DMM_GIT_DATE \
		git -C "$QEMU_GIT" -c core.autocrlf=false -c advice.detachedHead=false \
		"$@"
}

# Make $QEMU_GIT, once per unpacked pristine tree: git init and one
# commit, tagged pristine, of every file of $QEMU_PRISTINE (also those
# QEMU's .gitignore names).  About a minute; callers hold qemu_git_lock.
ensure_qemu_git() {
	local tmp
	[ -f "$QEMU_PRISTINE/.stamp" ] ||
		die "$QEMU_PRISTINE missing: run scripts/build-qemu.sh"
	[ "$QEMU_GIT/.git/dmm-pristine" -nt "$QEMU_PRISTINE/.stamp" ] &&
		return 0
	log "qemu: a git repository of the pristine source in $QEMU_GIT"
	tmp=$(mktemp -d "$BUILD/qemu-git.XXXXXX")
	cp -R --preserve=mode,timestamps,links "$QEMU_PRISTINE/." "$tmp/"
	rm -f "$tmp/.stamp"
	rm -rf "$QEMU_GIT"
	mv "$tmp" "$QEMU_GIT"
	qemu_git init -q
	qemu_git add -A -f
	qemu_git commit -q -m "QEMU $QEMU_VER ($QEMU_ORIG)"
	qemu_git tag pristine
	touch "$QEMU_GIT/.git/dmm-pristine"
}

# One user of $QEMU_GIT's working tree at a time (export, apply).
qemu_git_lock() {
	mkdir -p "$BUILD"
	exec 9>"$BUILD/qemu-git.lock"
	flock 9
}

LINUX_SOURCE=/usr/src/linux-source-6.12.tar.xz

# Extract FILE... (paths inside the kernel tree) from the linux-source-6.12
# package's tarball into DIR, keeping their paths.  Reads the whole tarball
# (about 10 s): callers do it once and keep the result under build/.
# Without the package, a KDIR that is a whole kernel tree has them too.
extract_linux_source() {
	local dir=$1 f
	shift
	mkdir -p "$dir"
	if [ ! -f "$LINUX_SOURCE" ] && [ -n "$GIVEN_KERNEL" ]; then
		for f in "$@"; do
			[ -f "$KDIR/$f" ] ||
				die "$KDIR/$f missing (KDIR is not a whole kernel tree) and no $LINUX_SOURCE"
			mkdir -p "$dir/$(dirname "$f")"
			cp "$KDIR/$f" "$dir/$f"
		done
		return 0
	fi
	[ -f "$LINUX_SOURCE" ] ||
		die "$LINUX_SOURCE missing: run scripts/setup-host.sh"
	tar -xJf "$LINUX_SOURCE" -C "$dir" --strip-components=1 \
		"${@/#/linux-source-6.12/}"
}
