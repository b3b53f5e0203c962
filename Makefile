# SPDX-License-Identifier: GPL-2.0
#
# The guest module, the way out-of-tree modules build (and DKMS, see
# dkms.conf).  It needs a prepared kernel tree (headers) and never installs
# anything:
#   make [KDIR=/lib/modules/$(uname -r)/build]   virtio_dmm.ko, in drivers/dmm/
#   make KDIR=... clean | modules_install
#   make dkms-add / dkms-remove                   register the sources with DKMS
# The kernel build reads the root Kbuild, not this file.
#
# Developer shortcuts for the whole project (they may run apt, see
# scripts/setup-host.sh): build-all setup kernel qemu module selftests
# initramfs test demo check devlib-test clean-build.

KDIR ?= /lib/modules/$(shell uname -r)/build

.PHONY: all modules modules_install clean dkms-add dkms-remove \
	build-all setup kernel qemu module selftests initramfs test demo \
	check devlib-test clean-build

all: modules

modules modules_install clean:
	@test -d $(KDIR) || { echo "KDIR=$(KDIR): no kernel tree there" \
		"(install linux-headers-$(notdir $(patsubst %/build,%,$(KDIR))) or set KDIR)" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) $@

# DKMS builds from its own copy under /usr/src: copy what the module needs
# (not build/, not QEMU), then register it.  Afterwards:
#   dkms build virtio-dmm/$(DKMS_VERSION) -k KVER; dkms install ...
DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
DKMS_SRC ?= /usr/src/virtio-dmm-$(DKMS_VERSION)
DKMS_FILES := dkms.conf Makefile Kbuild COPYING $(wildcard LICENSES/*) \
	$(wildcard drivers/dmm/Kbuild drivers/dmm/*.[ch]) \
	virtio-dmm-device/include/uapi/linux/virtio_dmm.h

dkms-add: dkms-remove
	mkdir -p $(DKMS_SRC)
	cp --parents $(DKMS_FILES) $(DKMS_SRC)/
	dkms add virtio-dmm/$(DKMS_VERSION)

dkms-remove:
	-dkms remove virtio-dmm/$(DKMS_VERSION) --all 2>/dev/null
	rm -rf $(DKMS_SRC)

build-all:
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
clean-build:
	rm -rf build/kmod build/selftests build/initramfs build/initramfs.cpio.gz \
		build/qemu-build build/logs build/run
