#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark: virtio-dmm against its anchors, every scenario of issue 14
in one run, on the same QEMU binary, guest kernel and initramfs.

Anchors: virtio-mem (2 MiB and 128 MiB blocks), virtio-balloon (with free
page reporting for that scenario), KSM (its defaults and at virtio-dmm's
scan rate), a static split for the balancer.  Each scenario runs --runs
times per system (runs interleaved: run 1 of every scenario, then run 2).
Writes into --out (default build/bench):

  results.json   every sample (scenario, system, size, run, value, unit,
                 note), the declared scenarios, the git commit, host facts
                 (CPU, load, THP mode, KSM), QEMU, kernel and initramfs
  results.md     the table: per scenario the median per system, the ratio
                 virtio-dmm / best anchor, the target and whether it is met
  times.png      median times per scenario and system (log scale)
  scaling.png    time against region size for the scaling runs
  balancer.png   the balancer's guests over time (when it ran)
  bench.log      tracebacks of runs that failed

--render writes results.md and the plots again from OUT/results.json.

Times are taken on the host from the QMP command until QMP reports the
target, polled every 5 ms.  Not a test: nothing is asserted.

  scripts/bench.py [--runs 3] [--quick] [--only SCENARIO ...] [--list]
                   [--scale GIB ...] [--guest-append ARGS] [--out DIR]
                   [--render]

Every guest boots with memory_hotplug.memmap_on_memory=1 unless
--guest-append says otherwise (virtio-dmm adds whole blocks with their
memory map on them; virtio-mem never asks for that).

--quick: each scenario once at small sizes (a few minutes; CI runs it).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from dmmlib import bench, dmmvm
from dmmlib.bench import BY_NAME, EXPERIMENTS, SCENARIOS, fmt

GiB = dmmvm.GiB
MiB = dmmvm.MiB


# Blocks carry their memory map (Documentation/design.rst, "Blocks that
# carry their memory map"); virtio-mem never asks for it.
GUEST_APPEND = "memory_hotplug.memmap_on_memory=1"


def git(*args):
    p = subprocess.run(["git", "-C", dmmvm.TOP, *args], text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p.stdout.strip()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def host_facts():
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                bench.read("/proc/cpuinfo").splitlines()
                if ln.startswith("model name")), "unknown")
    ksm = "/sys/kernel/mm/ksm/"
    qemu = subprocess.run([dmmvm.QEMU, "--version"], text=True,
                          stdout=subprocess.PIPE).stdout.splitlines()
    return {
        "hostname": platform.node(), "kernel": platform.release(),
        "cpu": cpu, "cpus": os.cpu_count(),
        "mem_total_kib": int(bench.read("/proc/meminfo").split()[1]),
        "loadavg_start": bench.read("/proc/loadavg"),
        "thp_enabled": bench.thp_setting(),
        "thp_defrag": bench.read(
            "/sys/kernel/mm/transparent_hugepage/defrag"),
        "ksm": {k: bench.read(ksm + k) for k in
                ("run", "pages_to_scan", "sleep_millisecs",
                 "use_zero_pages")},
        "accel": "kvm" if dmmvm.use_kvm() else "tcg",
        "qemu": dmmvm.QEMU, "qemu_version": qemu[0] if qemu else "",
        "guest_kernel": dmmvm.KVER,
        "initramfs": dmmvm.INITRD, "initramfs_sha256": sha256(dmmvm.INITRD),
    }


# --- the table ---------------------------------------------------------

def by_system(samples, sc):
    """{system: [sample, ...]} of scenario @sc."""
    out = {}
    for s in samples:
        if s["scenario"] == sc.name:
            out.setdefault(s["system"], []).append(s)
    return out


def cell(sc, ss):
    if not ss:
        return "not run"
    v = bench.aggregate(sc, [s["value"] for s in ss])
    if v is None:
        why = next((s["error"] or s["note"] for s in ss
                    if s["error"] or s["note"]), "")
        return "none (%s)" % why if why else "none"
    if sc.name == "fragmented":     # how far, besides how long
        ok = [s for s in ss if s["value"] is not None]
        mib = sorted({s["size"] // MiB for s in ok})
        return "%s (%s: %s MiB)" % (
            fmt(v, sc.unit), ", ".join(sorted({s["note"].split(":")[0]
                                              for s in ok})),
            "%d" % mib[0] if len(mib) == 1 else "%d–%d" % (mib[0], mib[-1]))
    return fmt(v, sc.unit)


def scaling_row(sc, per):
    """Cells of a scaling row: per size, and the ratio at the ends."""
    def medians(name):
        sizes = {}
        for s in per.get(name, []):
            sizes.setdefault(s["size"], []).append(s["value"])
        return {k: bench.aggregate(sc, v) for k, v in sorted(sizes.items())}
    ours = medians(sc.ours)
    anchor = medians(sc.anchors[0])

    def text(m):
        return ", ".join("%g GiB %s (%s/GiB)" % (
            k / GiB, fmt(v, "s"), fmt(v * GiB / k, "s") if v else "—")
            for k, v in m.items()) or "not run"
    ratios = {k: ours[k] / anchor[k] for k in ours
              if ours[k] and anchor.get(k)}
    if len(ratios) < 2:
        return text(ours), text(anchor), "n/a", "n/a (no value)"
    lo, hi = min(ratios), max(ratios)
    return text(ours), text(anchor), "%.2f at %g GiB, %.2f at %g GiB" % (
        ratios[lo], lo / GiB, ratios[hi], hi / GiB), \
        "yes" if ratios[hi] <= ratios[lo] else "no"


def table(res):
    samples = res["samples"]
    lines = ["| scenario | virtio-dmm | anchors | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for d in res["scenarios"]:
        sc = BY_NAME[d["name"]]
        per = by_system(samples, sc)
        na = "".join("; %s: n/a (%s)" % kv for kv in sc.na.items())
        if sc.target is None:
            ours, anchor, ratio, met = scaling_row(sc, per)
            anchors = "%s: %s" % (sc.anchors[0], anchor)
        else:
            meds = {n: bench.aggregate(sc, [s["value"] for s in per.get(n,
                                                                       [])])
                    for n in sc.systems}
            target = sc.target
            if sc.name == "fragmented":
                got = {n: bench.aggregate(sc, [s["size"] for s in per.get(
                    n, []) if s["value"] is not None]) for n in sc.systems}
                ended = {n: bool(per.get(n)) and all(
                    s["value"] is not None and
                    (s["note"].startswith(("target", bench.AT_FLOOR)))
                    for s in per[n]) for n in sc.systems}
                target = target(got, ended)
            ratio, met = target(meds[sc.ours],
                                {a: meds[a] for a in sc.anchors})
            ours = cell(sc, per.get(sc.ours))
            anchors = "; ".join("%s: %s" % (a, cell(sc, per.get(a)))
                                for a in sc.anchors)
        lines.append("| %s: %s | %s | %s%s | %s | %s | %s |" % (
            sc.name, sc.title, ours, anchors, na, ratio, sc.target_text,
            met))
    runs = res["args"]["runs"]
    done = 1 + max((s["run"] for s in samples), default=-1)
    if done < runs:
        per_run = "%d of %d runs (stopped before the end)" % (done, runs)
    else:
        per_run = "median of %d runs" % runs if runs > 1 else "1 run"
    lines += ["", "%s per system (rss-1s: lowest)%s; ratio = "
              "virtio-dmm / best anchor (hints: per anchor), below 1 is "
              "faster for times.  Commit %s, %s, %d CPUs, load %s at the "
              "start, %s at the end; THP %s; %s; QEMU %s; guest %s%s." % (
                  per_run,
                  "; --quick: sizes smaller than the titles say (see "
                  "results.json)" if res["args"]["quick"] else "",
                  res["commit"],
                  res["host"]["cpu"], res["host"]["cpus"],
                  res["host"]["loadavg_start"].split()[0],
                  res["host"].get("loadavg_end", "?").split()[0],
                  res["host"]["thp_enabled"], res["host"]["accel"].upper(),
                  res["host"]["qemu_version"].replace("QEMU emulator "
                                                      "version ", ""),
                  res["host"]["guest_kernel"],
                  " with `%s` on its command line" %
                  res["args"]["guest_append"]
                  if res["args"].get("guest_append") else ""),
              "Command: `%s`" % res["command"]]
    return "\n".join(lines) + "\n"


# --- plots -------------------------------------------------------------

def gnuplot(script):
    p = subprocess.run(["gnuplot"], input=script, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode:
        print("gnuplot failed: %s" % p.stdout, file=sys.stderr)


COLOURS = (0xd62728, 0x1f77b4, 0x7f7f7f, 0x2ca02c)   # virtio-dmm, anchors


def plot_times(res, png, tmp):
    data = os.path.join(tmp, "times.dat")
    n = 0
    with open(data, "w") as f:
        for d in res["scenarios"]:
            sc = BY_NAME[d["name"]]
            if sc.unit != "s" or sc.target is None:
                continue
            per = by_system(res["samples"], sc)
            for i, name in enumerate(sc.systems):
                v = bench.aggregate(sc, [s["value"] for s in per.get(name,
                                                                    [])])
                if v:
                    f.write('"%s %s" %f %d\n' % (sc.name, name, v,
                                                 COLOURS[min(i, 3)]))
                    n += 1
    plot = ('plot "%s" using 0:2:3:xtic(1) with boxes lc rgb variable '
            'notitle' % data) if n else \
        'set label "no times" at 0,0; plot [-1:1] [-1:1] NaN notitle'
    gnuplot("""set terminal pngcairo size 1300,750 noenhanced
set output "%s"
set bmargin 12
set rmargin 12
set title "virtio-dmm (red) against its anchors (blue, gray): median times"
set ylabel "seconds (log)"
set logscale y
set style fill solid 0.8
set boxwidth 0.8
set xtics rotate by -45
set grid ytics
%s
""" % (png, plot))


def plot_scaling(res, png, tmp):
    series = []
    for name in ("scale-grow", "scale-shrink"):
        if not any(d["name"] == name for d in res["scenarios"]):
            continue
        sc = BY_NAME[name]
        per = by_system(res["samples"], sc)
        for system in sc.systems:
            pts = {}
            for s in per.get(system, []):
                if s["value"] is not None:
                    pts.setdefault(s["size"], []).append(s["value"])
            if not pts:
                continue
            path = os.path.join(tmp, "%s-%d.dat" % (name, len(series)))
            with open(path, "w") as f:
                for size in sorted(pts):
                    f.write("%g %f\n" % (size / GiB,
                                         bench.aggregate(sc, pts[size])))
            series.append('"%s" using 1:2 with linespoints lw 2 title '
                          '"%s %s"' % (path, name[6:], system))
    plot = "plot " + ", ".join(series) if series else \
        'set label "no scaling runs" at 0,0; plot [-1:1] [-1:1] NaN notitle'
    gnuplot("""set terminal pngcairo size 1000,600 noenhanced
set output "%s"
set title "grow and shrink of untouched regions: time against size"
set xlabel "GiB"
set ylabel "seconds"
set key left top
set grid
%s
""" % (png, plot))


def render(res, out):
    """results.md and the plots from @res (results.json)."""
    md = table(res)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    with tempfile.TemporaryDirectory() as tmp:
        plot_times(res, os.path.join(out, "times.png"), tmp)
        plot_scaling(res, os.path.join(out, "scaling.png"), tmp)
    print("\n" + md)


# --- the run -----------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios: " + ", ".join(s.name for s in SCENARIOS))
    ap.add_argument("--runs", type=int, default=None,
                    help="repetitions per system (default 3, --quick 1)")
    ap.add_argument("--quick", action="store_true",
                    help="each scenario once, at small sizes")
    ap.add_argument("--only", nargs="+", metavar="SCENARIO", default=[])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--scale", nargs="+", type=float, metavar="GIB",
                    help="region sizes of the scaling runs (default %s, "
                    "--quick %s)" % (" ".join(map(str, bench.Scaling.SIZES)),
                                     " ".join(map(str,
                                                  bench.Scaling.QUICK_SIZES))))
    ap.add_argument("--guest-append", default=GUEST_APPEND, metavar="ARGS",
                    help="ARGS on every guest's kernel command line "
                    "(default %(default)s: the guest owner's option that "
                    "virtio-dmm uses and virtio-mem does not); add e.g. "
                    "init_on_alloc=0 to see what the allocator's clearing "
                    "of pages costs each system")
    ap.add_argument("--out", default=os.path.join(dmmvm.BUILD, "bench"))
    ap.add_argument("--render", action="store_true",
                    help="only write results.md and the plots again from "
                    "OUT/results.json")
    args = ap.parse_args()
    if args.render:
        with open(os.path.join(args.out, "results.json")) as f:
            render(json.load(f), args.out)
        return 0
    if args.list:
        for s in SCENARIOS:
            print("%-13s %s (%s)" % (s.name, s.title, ", ".join(s.systems)))
        return 0
    bad = [n for n in args.only if n not in BY_NAME]
    if bad:
        ap.error("unknown scenario(s) %s (see --list)" % " ".join(bad))
    runs = args.runs or (1 if args.quick else 3)
    dmmvm.Guest.extra_append = args.guest_append
    if args.scale:
        bench.Scaling.SIZES = bench.Scaling.QUICK_SIZES = tuple(args.scale)
    want = args.only or [s.name for s in SCENARIOS]
    exps = []
    for cls in EXPERIMENTS:
        if set(cls.produces) & set(want):
            exps.append(cls(args.quick, args.out) if cls is bench.BalancerRun
                        else cls(args.quick))
    os.makedirs(args.out, exist_ok=True)
    logf = open(os.path.join(args.out, "bench.log"), "w")

    def log(msg):
        logf.write(msg + "\n")
        logf.flush()
        print(msg, file=sys.stderr, flush=True)

    res = {"command": " ".join(["scripts/bench.py"] + sys.argv[1:]),
           "commit": git("rev-parse", "--short=12", "HEAD") +
           ("-dirty" if git("status", "--porcelain", "-uno") else ""),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
               timespec="seconds"),
           "args": {"runs": runs, "quick": args.quick, "only": args.only,
                    "guest_append": args.guest_append},
           "host": host_facts(),
           "scenarios": [{"name": s.name, "title": s.title, "unit": s.unit,
                          "systems": s.systems, "na": s.na,
                          "target": s.target_text}
                         for s in SCENARIOS if s.name in want],
           "samples": []}
    path = os.path.join(args.out, "results.json")
    t_start = time.monotonic()
    for run in range(runs):
        for exp in exps:
            for system in exp.systems:
                name = system if isinstance(system, str) else system.name
                t0 = time.monotonic()
                out = bench.run_experiment(exp, system, "%s-r%d" % (
                    type(exp).__name__.lower(), run), log)
                for sc, vals in out.items():
                    if sc not in want:
                        continue
                    for value, size, note, err in vals:
                        res["samples"].append({
                            "scenario": sc, "system": name, "size": size,
                            "run": run, "value": value,
                            "unit": BY_NAME[sc].unit, "note": note,
                            "error": err})
                        print("run %d %-13s %-16s %5d MiB %12s  %s" % (
                            run, sc, name, size // dmmvm.MiB,
                            fmt(value, BY_NAME[sc].unit), err or note),
                            flush=True)
                print("  (%s on %s: %.0f s)" % (type(exp).__name__, name,
                                                time.monotonic() - t0),
                      flush=True)
                with open(path + ".tmp", "w") as f:
                    json.dump(res, f, indent=1)
                os.replace(path + ".tmp", path)
    res["host"]["loadavg_end"] = bench.read("/proc/loadavg")
    res["seconds"] = round(time.monotonic() - t_start, 1)
    with open(path + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.replace(path + ".tmp", path)
    render(res, args.out)
    print("%.0f s; results in %s" % (res["seconds"], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
