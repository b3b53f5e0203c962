# SPDX-License-Identifier: GPL-2.0
"""Issue 15: the module on Debian 12's stock 6.1 kernels, and with DKMS.

Every other suite boots the pinned 6.12 kernel (or $DMM_KERNEL's).  These
boot the stock kernels of scripts/lib.sh (STOCK_KVERS), built by
scripts/build-guest-kernel.sh, with one guest each that goes through the
checks of the other suites' features once: grow in blocks and sub-blocks
(block-states), below boot size and back (fine), free page reporting
(free-page-reporting) and zero-page hints (hint-zero).
"""

import hashlib
import os
import subprocess
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Guest
from harness import suite
from helpers import check_sizes, gtap, resize, wait_guest_file
from suites.coarse import block_states
from suites.hints import hint_counters, wait_host

# The stock kernel the DKMS test installs for and boots.
DKMS_KVER = dmmvm.STOCK_KVERS[-1]


def build_guest_kernel(r, kver):
    """scripts/build-guest-kernel.sh @kver (reuses what is built)."""
    t0 = time.time()
    p = subprocess.run([os.path.join(dmmvm.TOP, "scripts",
                                     "build-guest-kernel.sh"), kver],
                       capture_output=True, text=True)
    return r.ok(p.returncode == 0, "%s: image fetched, module and initramfs "
                "built (%.1f s)" % (kver, time.time() - t0),
                (p.stdout + p.stderr)[-3000:])


def check_features(r, g, kver):
    """The five features, once each, on guest @g (1 GiB, 2 GiB region)."""
    mt0 = g.meminfo()["MemTotal"]
    # grow: 10 whole blocks and 22 sub-blocks of an 11th
    resize(r, g, 2 * GiB + 300 * MiB, "%s: grow to 2348 MiB" % kver)
    st = block_states(g)
    r.ok(st["online"] == "10" and st["online_partial"] == "1" and
         st["consistent"] == "yes",
         "%s: 2348 MiB: 10 blocks online, 1 online and partial" % kver, st)
    # shrink below boot size: the blocks, then boot memory as pages
    resize(r, g, 384 * MiB, "%s: shrink below boot to 384 MiB" % kver)
    check_sizes(r, g, 384 * MiB, mt0, "%s: 384 MiB" % kver)
    st = block_states(g)
    r.ok(st["consistent"] == "yes",
         "%s: 384 MiB: the driver's block states are consistent" % kver, st)
    resize(r, g, GiB, "%s: grow back to 1 GiB" % kver)
    check_sizes(r, g, GiB, mt0, "%s: back at 1 GiB" % kver)
    # a sub-block busy at the shrink may stay plugged, pages given instead
    gtap(r, g, "dmm_state_check %d" % g.dmm_info()["size"])

    # free page reporting: freed memory leaves the host without a resize
    g.run("dmm_memfill -s %d -w /tmp/go >/tmp/fill.log 2>&1 &" % (512 * MiB))
    out = wait_guest_file(g, "/tmp/fill.log", "waiting for")
    peak, reported0 = g.rss(), int(g.counter("reported_bytes"))
    g.run("touch /tmp/go")
    wait_guest_file(g, "/tmp/fill.log", "# Totals")
    fell, secs = wait_host(lambda: peak - g.rss() >= 400 * MiB, 60, 0.25)
    reported = int(g.counter("reported_bytes")) - reported0
    r.ok(fell and reported >= 400 * MiB and
         g.dmm_info()["refused-reports"] == 0,
         "%s: free page reporting: 512 MiB freed, %d MiB reported, QEMU RSS "
         "fell by %d MiB in %.1f s" % (kver, reported // MiB,
                                       (peak - g.rss()) // MiB, secs), out)

    # zero-page hints: zero pages a program holds are hinted and taken
    g.out("echo 50 > %s/hint_budget" % g.sysfs_dir())
    c0 = hint_counters(g)
    g.run("dmm_zerohold -s %d -f /tmp/zero -w /tmp/zgo >/tmp/z.log 2>&1 &"
          % (256 * MiB))
    wait_guest_file(g, "/tmp/z.log", "filled", 300)
    g.run("touch /tmp/zero")
    wait_guest_file(g, "/tmp/z.log", "zeroed", 300)
    ok, secs = wait_host(
        lambda: g.dmm_info()["hint-mergeable-size"] >= 256 * MiB, 120)
    c1, info = hint_counters(g), g.dmm_info()
    r.ok(ok and c1["hint_zero_sent"] > c0["hint_zero_sent"] and
         c1["hint_errors"] == 0 and info["hint-errors"] == 0,
         "%s: zero-page hints: %d sent, %d accepted, %d MiB mergeable "
         "after %.1f s" % (kver, c1["hint_zero_sent"] - c0["hint_zero_sent"],
                           info["hint-zero-accepted"],
                           info["hint-mergeable-size"] // MiB, secs))
    g.run("touch /tmp/zgo")
    out = wait_guest_file(g, "/tmp/z.log", "# Totals", 300)
    r.tap("dmm_zerohold (%s)" % kver, 0, out)


@suite(uses=("ksm", "guest-kernels"))
def suite_kernels(r):
    """Issue 15: Debian 12's stock 6.1 kernels (generic, cloud): build, boot,
    grow, sub-blocks, below boot size, free page reporting, zero hints."""
    if not dmmvm.HostKSM.available():
        r.ok(False, "host KSM is writable (/sys/kernel/mm/ksm/run)")
        return
    for kver in dmmvm.STOCK_KVERS:
        if not build_guest_kernel(r, kver):
            continue
        with dmmvm.HostKSM(), Guest("kernel-" + kver, mem="1G", maxmem="4G",
                                    region="2G", kernel=kver) as g:
            rel = g.out("uname -r").strip()
            r.ok(rel == kver and g.run("test -d %s" % g.sysfs_dir())[0] == 0,
                 "%s: the guest runs it and the driver is bound" % kver, rel)
            check_features(r, g, kver)


def run(r, name, cmd):
    """Run host command @cmd; one check @name.  Returns its output."""
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=dmmvm.TOP)
    r.ok(p.returncode == 0, name, "%s\n%s" % (" ".join(cmd),
                                              (p.stdout + p.stderr)[-3000:]))
    return p.stdout if p.returncode == 0 else None


def dkms_version():
    with open(os.path.join(dmmvm.TOP, "dkms.conf")) as f:
        for line in f:
            if line.startswith("PACKAGE_VERSION="):
                return line.split("=", 1)[1].strip().strip('"')
    raise KeyError("PACKAGE_VERSION")


@suite(alone="installs into the host's DKMS tree", uses="guest-kernels")
def suite_dkms(r):
    """Issue 15: make dkms-add, dkms build and install against the installed
    headers of a stock kernel; that module loads in a guest of it."""
    kver, mod = DKMS_KVER, "virtio-dmm/" + dkms_version()
    if not build_guest_kernel(r, kver):
        return
    try:
        subprocess.run(["make", "-s", "dkms-remove"], capture_output=True,
                       cwd=dmmvm.TOP)
        if run(r, "make dkms-add: %s registered" % mod,
               ["make", "-s", "dkms-add"]) is None or \
                run(r, "dkms build %s -k %s" % (mod, kver),
                    ["dkms", "build", mod, "-k", kver]) is None or \
                run(r, "dkms install %s -k %s" % (mod, kver),
                    ["dkms", "install", mod, "-k", kver]) is None:
            return
        path = run(r, "modinfo finds the installed module",
                   ["modinfo", "-k", kver, "-n", "virtio_dmm"])
        if path is None:
            return
        path = path.strip()
        r.ok("/updates/dkms/" in path, "it is DKMS's: %s" % path)
        # what the guest's /init loads: the module file, uncompressed
        unxz = ["xz", "-dc", path] if path.endswith(".xz") else \
            ["cat", path]
        digest = hashlib.md5(subprocess.run(
            unxz, capture_output=True).stdout).hexdigest()
        initrd = os.path.join(dmmvm.BUILD, "kernels", kver,
                              "initramfs-dkms.cpio.gz")
        env = dict(os.environ, DMM_GUEST_KVER=kver, DMM_KMOD=path,
                   DMM_INITRAMFS=initrd)
        p = subprocess.run([os.path.join(dmmvm.TOP, "scripts",
                                         "build-initramfs.sh")],
                           capture_output=True, text=True, env=env)
        if not r.ok(p.returncode == 0, "an initramfs with DKMS's module",
                    p.stderr[-2000:]):
            return
        with Guest("dkms", mem="512M", maxmem="2G", region="1G", kernel=kver,
                   initrd=initrd) as g:
            got = g.out("md5sum /lib/modules/virtio_dmm.ko").split()[0]
            r.ok(got == digest and
                 g.run("test -d %s" % g.sysfs_dir())[0] == 0,
                 "the guest (%s) loaded DKMS's module (md5 %s) and it "
                 "bound the device" % (g.out("uname -r").strip(), got))
            resize(r, g, 768 * MiB, "DKMS's module: grow to 768 MiB")
    finally:
        subprocess.run(["make", "-s", "dkms-remove"], capture_output=True,
                       cwd=dmmvm.TOP)
        st = subprocess.run(["dkms", "status", "virtio-dmm"],
                            capture_output=True, text=True).stdout
        r.ok("virtio-dmm" not in st and not os.path.exists(
            "/usr/src/virtio-dmm-" + dkms_version()),
             "make dkms-remove: nothing of it left in DKMS", st)
