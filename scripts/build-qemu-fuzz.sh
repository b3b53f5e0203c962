#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the sanitizer QEMU into build/qemu-fuzz: clang, ASan + UBSan and
# libFuzzer instrumentation (--enable-fuzzing --enable-asan --enable-ubsan).
# One build directory serves both users:
#   qemu-fuzz-x86_64               QEMU's generic-fuzz target (fuzz-qemu.sh)
#   qemu-system-x86_64 and         the virtio-dmm qtest under ASan/LSan/UBSan
#   tests/qtest/virtio-dmm-test    (runner.py suite qtest-asan)
# The source tree is its own (build/qemu-fuzz-src: a copy of the pristine
# tree build-qemu.sh unpacked, with the same series applied by
# apply-qemu-series.sh), so this build never races the main one.  Configure
# runs once; ninja rebuilds what changed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PRISTINE=$QEMU_PRISTINE

# A copy of the pristine tree, made again (with a new build) when
# build-qemu.sh unpacked a new one.
copy_source() {
	local tmp
	[ -f "$PRISTINE/.stamp" ] ||
		die "$PRISTINE missing: run scripts/build-qemu.sh first"
	[ "$QEMU_FUZZ_SRC/.copied" -nt "$PRISTINE/.stamp" ] && return 0
	log "qemu-fuzz: copying the pristine source to $QEMU_FUZZ_SRC"
	rm -rf "$QEMU_FUZZ_SRC" "$QEMU_FUZZ_BUILD"
	tmp=$(mktemp -d "$BUILD/qemu-fuzz-copy.XXXXXX")
	cp -a "$PRISTINE/." "$tmp/"
	rm -f "$tmp/.stamp"
	mv "$tmp" "$QEMU_FUZZ_SRC"
	touch "$QEMU_FUZZ_SRC/.copied"
}

# The options of build-qemu.sh with clang, the sanitizers and fuzzing, but
# without TCG: the fuzzer and the qtest run QEMU with -accel qtest, and TCG
# (softfloat, the x86 translator) is 955 of the 2,538 build steps.  It is
# built at -O0 (-Doptimization=0, as --enable-debug does): clang with ASan
# compiles a file about 3 times faster than at -O2 (hw/virtio/virtio.c:
# 1.7 s against 5.7 s), which is most of the CI cold run's build time; the
# fuzzer runs fewer inputs a second for it, and sees more undefined
# behaviour the optimiser would otherwise fold away.  A build made with
# other options is configured again.
FUZZ_CONFIGURE=(--cc=clang --cxx=clang++ --host-cc=clang
	--target-list=x86_64-softmmu --without-default-features
	--disable-tcg --enable-kvm --disable-docs
	--disable-install-blobs --disable-werror
	--enable-fuzzing --enable-asan --enable-ubsan
	-Doptimization=0
	--python=/usr/bin/python3)

configure() {
	local stamp=$QEMU_FUZZ_BUILD/.configure-args
	[ -f "$QEMU_FUZZ_BUILD/build.ninja" ] &&
		[ "$(cat "$stamp" 2>/dev/null)" = "${FUZZ_CONFIGURE[*]}" ] &&
		return 0
	log "qemu-fuzz: configure (clang, asan, ubsan, fuzzing, no TCG)"
	rm -rf "$QEMU_FUZZ_BUILD"
	mkdir -p "$QEMU_FUZZ_BUILD"
	(cd "$QEMU_FUZZ_BUILD" && "$QEMU_FUZZ_SRC/configure" \
		"${FUZZ_CONFIGURE[@]}")
	echo "${FUZZ_CONFIGURE[*]}" >"$stamp"
}

# Leaks of pristine QEMU code that virtio-dmm cannot fix, with the reason;
# every user of this build passes the file to LeakSanitizer.  Keep it
# short: a suppression hides a device leak too if its stack matches.
write_lsan_suppressions() {
	cat >"$QEMU_LSAN_SUPP.tmp" <<-'SUPP'
	# util/mmap-alloc.c map_noreserve_effective() never frees what
	# g_file_get_contents() read from /proc/sys/vm/overcommit_memory
	# (every memory backend with reserve=off, once, at start-up).
	leak:map_noreserve_effective
	SUPP
	mv "$QEMU_LSAN_SUPP.tmp" "$QEMU_LSAN_SUPP"
}

main() {
	command -v clang >/dev/null ||
		die "clang missing: run scripts/setup-host.sh"
	copy_source
	"$TOP/scripts/apply-qemu-series.sh" "$QEMU_FUZZ_SRC"
	configure
	link_firmware "$QEMU_FUZZ_BUILD"
	write_lsan_suppressions
	log "qemu-fuzz: ninja qemu-fuzz-x86_64, qemu-system-x86_64, the qtest"
	ninja -C "$QEMU_FUZZ_BUILD" qemu-fuzz-x86_64 qemu-system-x86_64 \
		tests/qtest/virtio-dmm-test
	log "qemu-fuzz: $QEMU_FUZZER"
}

main "$@"
