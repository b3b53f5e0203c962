# SPDX-License-Identifier: GPL-2.0
"""The benchmark (scripts/bench.py) runs and writes complete results.

``bench.py --quick`` into its own directory (build/bench-quick): every
scenario once, at small sizes, for virtio-dmm and each anchor.  Checked:
the files are complete, never the timings (a shared machine's timings
say nothing).
"""

import glob
import json
import os
import re
import subprocess
import sys
import time

from dmmlib import bench, dmmvm
from harness import suite

OUT = os.path.join(dmmvm.BUILD, "bench-quick")
PNG = b"\x89PNG\r\n\x1a\n"


def check_files(r, out, proc_out):
    """results.json, results.md and the plots in @out are complete."""
    try:
        with open(os.path.join(out, "results.json")) as f:
            res = json.load(f)
    except (OSError, ValueError) as e:
        r.ok(False, "bench-quick: results.json parses", "%s\n%s"
             % (e, proc_out[-3000:]))
        return
    r.ok(True, "bench-quick: results.json parses")
    declared = [d["name"] for d in res.get("scenarios", [])]
    r.ok(declared == [s.name for s in bench.SCENARIOS],
         "bench-quick: results.json declares every scenario",
         "declared: %s" % declared)
    have = {(s["scenario"], s["system"]) for s in res.get("samples", [])}
    missing = ["%s × %s" % (d["name"], system)
               for d in res.get("scenarios", []) for system in d["systems"]
               if (d["name"], system) not in have]
    r.ok(not missing, "bench-quick: a sample for every scenario × system",
         "missing: %s" % ", ".join(missing))
    errors = ["%s × %s: %s" % (s["scenario"], s["system"], s["error"])
              for s in res.get("samples", []) if s.get("error")]
    r.ok(not errors, "bench-quick: no run failed", "\n".join(errors) +
         "\n(tracebacks: %s/bench.log)" % out)
    keys = {"scenario", "system", "size", "run", "value", "unit"}
    r.ok(all(keys <= set(s) for s in res.get("samples", [])) and
         res.get("commit") and res.get("host", {}).get("thp_enabled"),
         "bench-quick: samples carry scenario, system, size, run, value, "
         "unit; the commit and host facts are recorded")
    try:
        with open(os.path.join(out, "results.md")) as f:
            md = f.read()
    except OSError as e:
        md = str(e)
    rows = [s.name for s in bench.SCENARIOS
            if not any(ln.startswith("| %s: " % s.name)
                       for ln in md.splitlines())]
    r.ok(not rows, "bench-quick: results.md has a row per scenario",
         "no row for: %s\n%s" % (", ".join(rows), md[-2000:]))
    for png in ("times.png", "scaling.png"):
        try:
            with open(os.path.join(out, png), "rb") as f:
                head = f.read(8)
        except OSError:
            head = b""
        r.ok(head == PNG, "bench-quick: %s is a PNG" % png)


def check_profile(r):
    """scripts/profile-scale.py at one small size: the UNPLUG requests of
    a shrink traced by QEMU and the guest's function profile of a grow are
    there, so that the script behind design.rst's figures cannot break
    unnoticed."""
    p = subprocess.run([sys.executable, os.path.join(
        dmmvm.TOP, "scripts", "profile-scale.py"), "--sizes", "0.25",
        "--memslots", "on", "--out", os.path.join(dmmvm.BUILD,
                                                  "profile-quick")],
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=600)
    m = re.search(r"shrink [0-9.]+ s, (\d+) UNPLUG", p.stdout)
    r.ok(p.returncode == 0 and m and int(m.group(1)) == 2 and
         "vmemmap_alloc_block" in p.stdout,
         "bench-quick: profile-scale.py traced 2 UNPLUG requests of a "
         "256 MiB shrink and profiled the grow's vmemmap_alloc_block()",
         p.stdout[-3000:])


# what an OOM kill prints (dmmvm.kernel_problems() counts it)
OOM_LINE = re.compile(r"Out of memory|oom-kill")
# the console logs of the anchors in the fragmented scenario, by system
FRAGMENTED_LOGS = {"virtio-mem/2M": "bench-fragmented-r0-vmem2-console.log",
                   "virtio-balloon": "bench-fragmented-r0-balloon-console.log"}


def fragmented_ooms(out):
    """Console logs of anchors whose fragmented run results.json reports
    as ended by an OOM kill: an anchor without a floor (virtio-balloon)
    may kill the program, which the table reports.  virtio-dmm's may
    not."""
    try:
        with open(os.path.join(out, "results.json")) as f:
            samples = json.load(f).get("samples", [])
    except (OSError, ValueError):
        return set()
    return {FRAGMENTED_LOGS[s["system"]] for s in samples
            if s["scenario"] == "fragmented" and s["run"] == 0 and
            s["system"] in FRAGMENTED_LOGS and
            (s.get("note") or "").startswith("OOM kill")}


@suite(uses="ksm")
def suite_bench_quick(r):
    """scripts/bench.py --quick: results.json, results.md and plots complete
    (timings are not checked)."""
    t0 = time.time()
    p = subprocess.run([sys.executable, os.path.join(dmmvm.TOP, "scripts",
                                                     "bench.py"),
                        "--quick", "--out", OUT], text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=1800)
    r.figure("bench --quick wall time", "%.0f s" % (time.time() - t0))
    r.ok(p.returncode == 0, "bench-quick: scripts/bench.py --quick exits 0",
         p.stdout[-3000:])
    check_files(r, OUT, p.stdout)
    check_profile(r)
    # the guests bench.py and profile-scale.py booted are not the
    # harness's: check their logs
    oom_ok = fragmented_ooms(OUT)
    bad = []
    for log in glob.glob(os.path.join(dmmvm.LOGS, "bench-*-console.log")):
        if os.path.getmtime(log) >= t0:
            with open(log, errors="replace") as f:
                bad += ["%s: %s" % (os.path.basename(log), ln) for ln in
                        dmmvm.kernel_problems(f.read())
                        if not (os.path.basename(log) in oom_ok and
                                OOM_LINE.search(ln))]
    r.ok(not bad, "bench-quick: the benchmark guests' kernel logs have no "
         "warnings or oopses (an anchor's OOM kill only where results.json "
         "reports it: %s)" % (", ".join(sorted(oom_ok)) or "none"),
         "\n".join(bad[:40]))
