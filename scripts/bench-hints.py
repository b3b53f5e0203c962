#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark: what the host stops paying for, virtio-dmm's shared-page hints
and free page reporting against KSM on all guest memory and against
virtio-balloon free page reporting, in the same run.

Two 1 GiB guests each hold, when the clock starts:
  - the same 256 MiB file in page cache (a disk shared read-only),
  - 256 MiB of anonymous memory, allocated and zeroed, still allocated,
  - 256 MiB of anonymous memory written with a pattern, then freed at t=0.

Configurations (same QEMU, kernel, initramfs):
  dmm          virtio-dmm: hints (budget 50 %) and free page reporting;
               KSM scans only what hints marked (mem-merge=off), at
               pages_to_scan=2000 / 20 ms, use_zero_pages=1.
  ksm-default  no virtio-dmm; QEMU's default mem-merge=on (all guest RAM
               mergeable), KSM with the kernel's default settings
               (pages_to_scan=100 / 20 ms, use_zero_pages=0).
  ksm-fast     the same, at virtio-dmm's scan rate (pages_to_scan=2000,
               use_zero_pages=1): what scanning everything costs.
  balloon-fpr  virtio-balloon with free-page-reporting=on, no KSM.

At t=0 KSM starts (where used), hints start (dmm) and the freed memory is
freed.  The sum of both QEMUs' Pss (/proc/PID/smaps_rollup) is sampled
every second for --seconds.  Reported per configuration: memory saved
(peak Pss - Pss at the end), time until 90 % of that saving (t90), CPU
seconds of ksmd and of the guests' hint scanners until then (cpu90) and
MiB saved per such CPU second, and the same CPU over the whole run (ksmd
keeps scanning at its set rate after the saving is reached).  The QEMU processes' own CPU time is printed too: under TCG it is
dominated by emulating the guests.  Not a test: nothing is asserted.

  scripts/bench-hints.py [--seconds 180] [--only dmm,ksm-default,...]
"""

import argparse
import os
import sys
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import MiB, Guest, HostKSM, hint_file

PART = 256 * MiB


class Config:
    def __init__(self, name, dmm=False, mem_merge=False, ksm=None,
                 balloon=False):
        self.name, self.dmm, self.mem_merge = name, dmm, mem_merge
        self.ksm, self.balloon = ksm, balloon

    def guest(self, i):
        extra = ["-drive", "file=%s,format=raw,if=virtio,snapshot=on"
                 % hint_file()]
        mods = ["virtio_blk"]
        if self.dmm:
            mods.insert(0, "virtio_dmm")
        if self.balloon:
            extra += ["-device", "virtio-balloon-pci,id=bal0,"
                      "free-page-reporting=on"]
            mods.insert(0, "virtio_balloon")
        return Guest("bench-hints-%s-%d" % (self.name, i), mem="1G",
                     maxmem="3G", region="1G" if self.dmm else None,
                     modules=mods, mem_merge=self.mem_merge,
                     extra_args=extra,
                     dev_opts="dup-hints=on" if self.dmm else "")


CONFIGS = [
    Config("dmm", dmm=True,
           ksm=dict(pages_to_scan=2000, sleep_ms=20, zero_pages=1)),
    Config("ksm-default", mem_merge=True,
           ksm=dict(pages_to_scan=100, sleep_ms=20, zero_pages=0)),
    Config("ksm-fast", mem_merge=True,
           ksm=dict(pages_to_scan=2000, sleep_ms=20, zero_pages=1)),
    Config("balloon-fpr", balloon=True),
]


def prepare(g, dmm):
    """Page cache, zeroed memory, memory about to be freed; all held."""
    if dmm:
        g.out("echo 0 > %s/hint_budget" % g.sysfs_dir())
    g.run("sleep 100000 </dev/vda >/dev/null 2>&1 &")
    g.out("cat /dev/vda >/dev/null", 600)
    g.run("dmm_zerohold -s %d -w /tmp/never >/tmp/z.log 2>&1 &" % PART)
    g.run("dmm_memfill -s %d -w /tmp/free >/tmp/f.log 2>&1 &" % PART)
    print("prepared page cache and programs of", g.name, flush=True)
    for log, text in (("/tmp/z.log", "zeroed"), ("/tmp/f.log", "waiting")):
        while text not in g.out("cat " + log):
            time.sleep(0.5)


def scan_seconds(guests, dmm):
    if not dmm:
        return 0.0
    return sum(int(g.counter("hint_scan_ms")) for g in guests) / 1000


def run_config(c, seconds, log):
    ksm = HostKSM(**c.ksm) if c.ksm else None
    if ksm:
        ksm.__enter__()
        ksm.write("run", 0)
    guests = []
    try:
        for i in range(2):
            guests.append(c.guest(i).start())
        for g in guests:
            prepare(g, c.dmm)
        time.sleep(3)
        peak = sum(g.pss() for g in guests)
        ksmd0 = HostKSM.ksmd_cpu_seconds()
        scan0 = scan_seconds(guests, c.dmm)
        qemu0 = sum(dmmvm.cpu_seconds(g.proc.pid) for g in guests)
        t0 = time.monotonic()
        if ksm:
            ksm.write("run", 1)
        for g in guests:
            if c.dmm:
                g.out("echo 50 > %s/hint_budget" % g.sysfs_dir())
            g.run("touch /tmp/free")
        samples = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            cpu = HostKSM.ksmd_cpu_seconds() - ksmd0 + \
                scan_seconds(guests, c.dmm) - scan0
            samples.append((time.monotonic() - t0,
                            sum(g.pss() for g in guests), cpu))
            log.write("%s %.1f %d %.2f\n" % (c.name, samples[-1][0],
                                             samples[-1][1] // MiB, cpu))
        saved = peak - samples[-1][1]
        t90, cpu90 = next(((t, u) for t, p, u in samples
                           if peak - p >= 0.9 * saved), (None, None))
        res = dict(name=c.name, peak=peak, saved=saved, t90=t90, cpu90=cpu90,
                   ksmd=HostKSM.ksmd_cpu_seconds() - ksmd0,
                   scan=scan_seconds(guests, c.dmm) - scan0,
                   qemu=sum(dmmvm.cpu_seconds(g.proc.pid)
                            for g in guests) - qemu0)
        for g in guests:
            if c.dmm:
                info = g.dmm_info()
                log.write("%s %s: %s\n" % (c.name, g.name, {
                    k: info[k] for k in ("reported-size", "hint-zero-accepted",
                                         "hint-dup-accepted", "hint-rejected",
                                         "hint-mergeable-size",
                                         "process-ksm-merging-size",
                                         "process-ksm-zero-size")}))
        return res
    finally:
        for g in guests:
            g.stop()
        if ksm:
            ksm.__exit__()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    if not HostKSM.available():
        sys.exit("bench-hints: needs a writable /sys/kernel/mm/ksm (root)")
    only = set(args.only.split(",")) if args.only else None
    os.makedirs(dmmvm.LOGS, exist_ok=True)
    path = os.path.join(dmmvm.LOGS, "bench-hints.log")
    results = []
    with open(path, "w") as log:
        for c in CONFIGS:
            if only and c.name not in only:
                continue
            print("bench-hints: %s ..." % c.name, flush=True)
            results.append(run_config(c, args.seconds, log))
            log.flush()
    print("\n%-12s %9s %9s %7s %8s %9s %7s %7s %8s" % (
        "config", "peak MiB", "saved MiB", "t90 s", "cpu90 s", "MiB/cpu90",
        "ksmd s", "scan s", "qemu s"))
    for r in results:
        cpu90 = r["cpu90"] or 0
        print("%-12s %9d %9d %7s %8.1f %9s %7.1f %7.1f %8.1f" % (
            r["name"], r["peak"] // MiB, r["saved"] // MiB,
            "%.1f" % r["t90"] if r["t90"] is not None else "-", cpu90,
            "%.0f" % (0.9 * r["saved"] / MiB / cpu90) if cpu90 > 0.05
            else "-", r["ksmd"], r["scan"], r["qemu"]))
    base = next((r for r in results if r["name"] == "dmm"), None)
    for r in results:
        if base and r is not base and r["saved"] > 0:
            print("dmm / %s: saved %.2f x, time to 90 %% %s" % (
                r["name"], base["saved"] / r["saved"],
                "%.2f x" % (base["t90"] / r["t90"])
                if base["t90"] and r["t90"] else "-"))
    print("samples: %s" % path)


if __name__ == "__main__":
    main()
