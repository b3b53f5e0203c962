#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Where a grow's and a large shrink's time goes (rows grow, scale-*).

Boots the benchmark's virtio-dmm guest of the scaling rows (an untouched
region, backend reserve=off) once with the device's per-block memslots
(the default) and once with ``x-dynamic-memslots=off`` (the whole region
mapped, for comparisons only), grows and shrinks it by each size, and
reports per shrink:

  * the wall time (QMP request to QMP guest-size at the target),
  * the time between consecutive UNPLUG requests as QEMU handled them
    (trace event virtio_dmm_request), for the first and the last tenth of
    the blocks: the device's work plus the guest's per block,
  * the guest kernel's time per call of the functions adding a block is
    made of (ftrace function_graph on just those, in a grow by the first
    size before the timed ones).

Not a test and not the benchmark: a profile for design.rst.

  scripts/profile-scale.py [--sizes GIB ...] [--memslots on off]
"""

import argparse
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dmmlib import bench, dmmvm          # noqa: E402

GiB, MiB = dmmvm.GiB, dmmvm.MiB
TRACING = "/sys/kernel/tracing"
# what adding a block is made of; the shrink is not traced in the guest:
# with function_graph on offline_and_remove_memory() and its parts a block
# took 1.6 s to leave instead of 40 ms, outside the traced functions
FUNCS = ("add_memory_driver_managed", "arch_add_memory", "vmemmap_populate",
         "vmemmap_alloc_block", "online_pages", "move_pfn_range_to_zone",
         "dmm_add_block", "dmm_send_plug")
UNPLUG = 1
TRACE_RE = re.compile(r"@(\d+)\.(\d+):virtio_dmm_request .*type=(\d+) "
                      r"addr=0x([0-9a-f]+) resp=(\d+)")


# " 0) + 15.178 us   |  } /* offline_pages */", "...|  flush_tlb_all();";
# a module's functions carry " [module]"
GRAPH_RE = re.compile(r"([\d.]+) us\s+\|\s+(?:\} /\* (\w+)(?: \[\w+\])? \*/|"
                      r"(\w+)(?: \[\w+\])?\(\);)")


def profiler(g, on):
    """Start (@on) or stop the guest's function_graph tracer over FUNCS
    (Debian's kernel has no function profiler); returns per function the
    calls and the microseconds spent in them, children included."""
    t = TRACING
    if on:
        g.run("grep -q \" %s \" /proc/mounts || mount -t tracefs none %s"
              % (t, t))
        g.run("echo nop > %s/current_tracer; echo 16384 > "
              "%s/buffer_size_kb; echo 1 > %s/options/funcgraph-tail"
              % (t, t, t))
        g.run(": > %s/set_ftrace_filter" % t)
        for f in FUNCS:
            g.run("echo %s >> %s/set_ftrace_filter 2>/dev/null" % (f, t))
        g.run(": > %s/trace; echo function_graph > %s/current_tracer"
              % (t, t))
        # patching the kernel's text flushes TCG's translated code: let
        # the guest get back up to speed before timing anything
        time.sleep(3)
        return {}
    # the buffer goes with the tracer: read it before switching to nop
    g.run("echo 0 > %s/tracing_on" % t)
    text = g.out("cat %s/trace" % t, 600)
    g.run("echo nop > %s/current_tracer; echo 1 > %s/tracing_on" % (t, t))
    stats = {}
    for ln in text.splitlines():
        m = GRAPH_RE.search(ln)
        if not m:
            continue
        f = m.group(2) or m.group(3)
        if f in FUNCS:
            h0, t0 = stats.get(f, (0, 0.0))
            stats[f] = (h0 + 1, t0 + float(m.group(1)))
    g.run(": > %s/set_ftrace_filter; : > %s/trace" % (t, t))
    return stats


def unplug_times(log, t0, t1):
    """Timestamps of UNPLUG requests QEMU acknowledged between t0 and t1
    (wall clock)."""
    out = []
    with open(log) as f:
        for ln in f:
            m = TRACE_RE.search(ln)
            if not m or int(m.group(3)) != UNPLUG or m.group(5) != "0":
                continue
            t = int(m.group(1)) + int(m.group(2)) / 1e6
            if t0 <= t <= t1:
                out.append(t)
    return out


def tenth(gaps, last=False):
    n = max(1, len(gaps) // 10)
    part = gaps[-n:] if last else gaps[:n]
    return statistics.mean(part) * 1000 if part else float("nan")


def run(memslots, sizes, outdir):
    big = int(max(sizes) * GiB)
    boot = 512 * MiB + big // 32
    log = os.path.join(outdir, "trace-memslots-%s.log" % memslots)
    if os.path.exists(log):
        os.unlink(log)
    opts = "x-dynamic-memslots=off" if memslots == "off" else ""
    g = bench.DMM.guest("prof-%s" % memslots, boot, boot + big,
                        opts=opts, timeout=3600,
                        extra_args=["-msg", "timestamp=on", "-trace",
                                    "enable=virtio_dmm_request,file=" + log])
    rows = []
    with g:
        g.run("sleep 1")
        # the functions adding a block is made of, in a pass of its own:
        # the first shrink after the tracer was on took 1.5 s a block
        profiler(g, True)
        bench.resize(bench.DMM, g, boot + int(sizes[0] * GiB), 900)
        stats = profiler(g, False)
        bench.resize(bench.DMM, g, boot, 900)
        for gib in sizes:
            size = int(gib * GiB)
            grow = bench.resize(bench.DMM, g, boot + size, 900)
            time.sleep(3)
            w0 = time.time()
            shrink = bench.resize(bench.DMM, g, boot + 0, 900)
            w1 = time.time()
            ts = unplug_times(log, w0, w1 + 1)
            gaps = [b - a for a, b in zip(ts, ts[1:])]
            rows.append((gib, grow, shrink, len(ts), tenth(gaps),
                         tenth(gaps, True)))
    return rows, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[8, 64])
    ap.add_argument("--memslots", nargs="+", default=["on", "off"])
    ap.add_argument("--out", default=os.path.join(dmmvm.BUILD, "profile"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for ms in args.memslots:
        rows, stats = run(ms, args.sizes, args.out)
        for i, (gib, grow, shrink, n, first, last) in enumerate(rows):
            print("memslots=%-3s %g GiB: grow %s, shrink %s, "
                  "%d UNPLUG; between UNPLUGs: first tenth %.1f ms, "
                  "last tenth %.1f ms" % (
                      ms, gib, bench.fmt(grow, "s"),
                      bench.fmt(shrink, "s"), n, first, last))
            for f in FUNCS if i == 0 else ():
                if f in stats:
                    hits, us = stats[f]
                    print("    grow: %-26s %5d calls, %7.2f ms per call, "
                          "%8.1f ms in all" % (f, hits, us / 1000 / hits,
                                                us / 1000))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
