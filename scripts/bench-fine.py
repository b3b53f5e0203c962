#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark: fine-grained resizes, virtio-dmm against virtio-balloon and
virtio-mem, in the same run, with the same QEMU, kernel and initramfs.

  below-boot   1 GiB guest, all but 64 MiB of its free memory dirtied and
               freed (no free page reporting); shrink to 384 MiB,
               grow back to 1 GiB.  virtio-dmm unplugs pages; virtio-balloon
               inflates 640 MiB and deflates.  (virtio-mem cannot go below
               the boot size.)
  between      1 GiB boot + 1 GiB plugged; shrink to 1224 MiB (not a whole
               number of 128 MiB blocks).  virtio-dmm: blocks, 2 MiB
               sub-blocks, pages; virtio-mem with 2 MiB blocks.
  pinned       the same, after dmm_test_pin pinned a page in every other
               2 MiB of every plugged block; shrink by 768 MiB.  Shows how
               far each gets within 60 s.

Times are taken on the host from the QMP command until QMP reports the
target (virtio-dmm: size, virtio-balloon: actual, virtio-mem: size), polled
every 5 ms.  Prints medians over --runs and ratios virtio-dmm / other
(below 1: virtio-dmm is faster).  Not a test: nothing is asserted.

  scripts/bench-fine.py [--runs 3]
"""

import argparse
import statistics
import time

from dmmlib.dmmvm import GiB, MiB, Guest

LIMIT = 60


def poll(fn, want, limit=LIMIT):
    """Seconds until fn() == want, or None (then also the last value)."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v == want:
            return time.monotonic() - t0, v
        if time.monotonic() - t0 > limit:
            return None, v
        time.sleep(0.005)


class Dmm:
    name = "virtio-dmm"

    def guest(self, tag, requested=None):
        return Guest("bench-" + tag, mem="1G", maxmem="4G", region="2G",
                     requested=requested,
                     dev_opts="free-page-reporting=off")

    def size(self, g):
        return g.qmp.cmd("qom-get", path="dmm0", property="guest-size")

    def resize(self, g, total):
        g.qmp.cmd("qom-set", path="dmm0", property="requested-guest-size",
                  value=total)
        return poll(lambda: self.size(g), total)

    def region(self, g):
        return g.dmm_info()["memaddr"]


class Balloon:
    name = "virtio-balloon"

    def guest(self, tag, requested=None):
        return Guest("bench-" + tag, mem="1G", maxmem="4G", region=None,
                     modules=["virtio_balloon"],
                     extra_args=["-device", "virtio-balloon-pci,id=bal0"])

    def size(self, g):
        return g.qmp.cmd("query-balloon")["actual"]

    def resize(self, g, total):
        g.qmp.cmd("balloon", value=total)
        return poll(lambda: self.size(g), total)


class VirtioMem:
    name = "virtio-mem/2M"

    def guest(self, tag, requested=None):
        req = (requested or GiB) - GiB
        return Guest("bench-" + tag, mem="1G", maxmem="4G", region=None,
                     modules=["virtio_mem"],
                     extra_args=["-object", "memory-backend-ram,id=vmem0,"
                                 "size=2G,reserve=off", "-device",
                                 "virtio-mem-pci,id=vm0,memdev=vmem0,"
                                 "requested-size=%d" % req])

    def size(self, g):
        return GiB + g.qmp.cmd("qom-get", path="vm0", property="size")

    def resize(self, g, total):
        g.qmp.cmd("qom-set", path="vm0", property="requested-size",
                  value=total - GiB)
        return poll(lambda: self.size(g), total)

    def region(self, g):
        for d in g.qmp.cmd("query-memory-devices"):
            if d["type"] == "virtio-mem":
                return d["data"]["memaddr"]
        raise RuntimeError("no virtio-mem device")


def below_boot(dev):
    with dev.guest("below") as g:
        g.run("sleep 1")
        g.out("dmm_memfill -l %d" % (64 * MiB), timeout=600)
        rss = g.rss()
        shrink, _ = dev.resize(g, 384 * MiB)
        time.sleep(0.5)
        freed = (rss - g.rss()) / MiB
        grow, _ = dev.resize(g, GiB)
        return shrink, grow, freed


def settle(dev, g):
    """Wait until the device has plugged what it was started with."""
    return poll(lambda: dev.size(g), 2 * GiB, 120)[0] is not None


def between(dev):
    with dev.guest("between", requested=2 * GiB) as g:
        settle(dev, g)
        g.run("sleep 1")
        t, _ = dev.resize(g, 1224 * MiB)
        return (t,)


def pinned(dev):
    with dev.guest("pinned", requested=2 * GiB) as g:
        settle(dev, g)
        rc, out = g.run("insmod /lib/modules/dmm_test_pin.ko start=%d "
                        "size=%d per_block=32 spread=%d"
                        % (dev.region(g), GiB, 2 * MiB), 300)
        if rc:
            raise RuntimeError("dmm_test_pin: " + out)
        t, got = dev.resize(g, 1280 * MiB)
        return t, (2 * GiB - got) / MiB


def fmt(v, unit="s"):
    return "timeout" if v is None else ("%.3f %s" % (v, unit))


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(title, cols, rows, res):
    print("\n%s (median)" % title)
    print("%-24s" % "" + "".join("%18s" % c for c in cols))
    for i, (label, unit) in enumerate(rows):
        print("%-24s" % label + "".join(
            "%18s" % fmt(res[c][i], unit) for c in cols))
    base = res[cols[0]]
    for c in cols[1:]:
        for i, (label, unit) in enumerate(rows):
            if unit == "s" and base[i] and res[c][i]:
                print("  ratio %s / %s, %s: %.2f" % (cols[0], c, label,
                                                     base[i] / res[c][i]))


def run(scenario, devs, runs, rows, title):
    res = {}
    for dev in devs:
        out = [scenario(dev) for _ in range(runs)]
        for o in out:
            print("%-16s %s" % (dev.name, "  ".join(
                fmt(v, u) for v, (_, u) in zip(o, rows))), flush=True)
        res[dev.name] = [median(col) for col in zip(*out)]
    table(title, [d.name for d in devs], rows, res)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    run(below_boot, (Dmm(), Balloon()), args.runs,
        [("shrink 1G -> 384M", "s"), ("grow 384M -> 1G", "s"),
         ("host RSS freed", "MiB")],
        "below boot size: 1 GiB guest to 384 MiB and back")
    run(between, (Dmm(), VirtioMem()), args.runs,
        [("shrink 2G -> 1224M", "s")],
        "between blocks: 2 GiB guest to 1224 MiB")
    run(pinned, (Dmm(), VirtioMem()), 1,
        [("shrink 2G -> 1280M", "s"), ("MiB given back", "MiB")],
        "pinned: a page pinned in every other 2 MiB of every block")
    print("\nratio = virtio-dmm / other (below 1: virtio-dmm is faster)")


if __name__ == "__main__":
    main()
