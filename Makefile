# SPDX-License-Identifier: GPL-2.0
# Developer shortcuts; the README's two commands are scripts/demo.sh and
# scripts/test.sh, which also install what is missing.

.PHONY: all setup kernel qemu module selftests initramfs test demo check \
	devlib-test clean

all:
	scripts/build-all.sh
setup:
	scripts/setup-host.sh
kernel:
	scripts/fetch-kernel.sh
qemu:
	scripts/build-qemu.sh
module:
	scripts/build-module.sh
selftests:
	scripts/build-selftests.sh
initramfs: module selftests
	scripts/build-initramfs.sh
test:
	scripts/test.sh
demo:
	scripts/demo.sh
check:
	scripts/check-driver.sh
devlib-test:
	$(MAKE) -C virtio-dmm-device test
clean:
	rm -rf build/kmod build/selftests build/initramfs build/initramfs.cpio.gz \
		build/qemu-build build/logs build/run
