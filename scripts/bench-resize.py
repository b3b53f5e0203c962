#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark: grow and shrink a guest with virtio-dmm and with virtio-mem.

Same QEMU binary, same guest kernel and initramfs, same guest command line
(memhp_default_state=online_movable), same steps:

  boot 512 MiB -> grow to 2 GiB -> fill 1 GiB in the guest (the program
  exits, its memory is free) -> shrink to 512 MiB

Times are taken on the host from the qom-set to the device reporting the
target plugged size (virtio-dmm and virtio-mem: size), polled
over QMP every 5 ms.  virtio-mem runs twice: with its default block size
(2 MiB: sub-block mode) and with 128 MiB blocks (whole memory blocks, like
virtio-dmm's coarse mode).  Prints medians over --runs and the ratios
virtio-dmm / virtio-mem (below 1: virtio-dmm is faster).  Not a test:
nothing is asserted.

  scripts/bench-resize.py [--runs 3]
"""

import argparse
import statistics
import time

from dmmlib.dmmvm import GiB, MiB, Guest

BOOT = 512 * MiB
TOTAL = 2 * GiB


class Dmm:
    name = "virtio-dmm"

    def guest(self):
        return Guest("bench-dmm", mem="512M", maxmem="4G", region="3G")

    def set(self, g, total):
        g.qmp.cmd("qom-set", path="dmm0", property="requested-guest-size",
                  value=total)

    def plugged(self, g):
        return g.qmp.cmd("qom-get", path="dmm0", property="size")


class VirtioMem:
    """virtio-mem with its default block size (2 MiB on x86-64), or @bs."""

    def __init__(self, bs=None):
        self.bs = bs
        self.name = "virtio-mem" + ("/%dM" % (bs // MiB) if bs else "")

    def guest(self):
        dev = "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0"
        if self.bs:
            dev += ",block-size=%d" % self.bs
        return Guest("bench-vmem", mem="512M", maxmem="4G", region=None,
                     modules=["virtio_mem"],
                     extra_args=["-object", "memory-backend-ram,id=vmem0,"
                                 "size=3G,reserve=off", "-device", dev])

    def set(self, g, total):
        g.qmp.cmd("qom-set", path="vm0", property="requested-size",
                  value=total - BOOT)

    def plugged(self, g):
        return g.qmp.cmd("qom-get", path="vm0", property="size")


def timed_resize(dev, g, total, timeout=300):
    want = total - BOOT
    t0 = time.monotonic()
    dev.set(g, total)
    while dev.plugged(g) != want:
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(0.005)
    return time.monotonic() - t0


def one_run(dev):
    with dev.guest() as g:
        g.run("sleep 1")                 # driver probed and idle
        grow = timed_resize(dev, g, TOTAL)
        g.out("dmm_memfill -s %d" % GiB, timeout=600)
        rss_full = g.rss()
        shrink = timed_resize(dev, g, BOOT)
        time.sleep(0.5)
        return grow, shrink, rss_full - g.rss()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    res = {}
    devs = (Dmm(), VirtioMem(), VirtioMem(128 * MiB))
    for dev in devs:
        runs = [one_run(dev) for _ in range(args.runs)]
        for grow, shrink, freed in runs:
            print("%-10s grow %s s  shrink %s s  RSS freed %d MiB" % (
                dev.name, "%.3f" % grow if grow else "timeout",
                "%.3f" % shrink if shrink else "timeout", freed // MiB),
                flush=True)
        res[dev.name] = [statistics.median(x for x in col if x is not None)
                         for col in zip(*runs)]
    d = res["virtio-dmm"]
    others = [dev.name for dev in devs[1:]]
    print("\nmedian of %d runs   %12s" % (args.runs, "virtio-dmm") +
          "".join("%16s  ratio" % n for n in others))
    for i, what in ((0, "grow 512M -> 2G"), (1, "shrink 2G -> 512M")):
        print("%-18s %10.3f s" % (what, d[i]) +
              "".join("%14.3f s %6.2f" % (res[n][i], d[i] / res[n][i])
                      for n in others))
    print("%-18s %8d MiB" % ("host RSS freed", d[2] // MiB) +
          "".join("%12d MiB       " % (res[n][2] // MiB) for n in others))
    print("ratio = virtio-dmm / other (below 1: virtio-dmm is faster)")

if __name__ == "__main__":
    main()
