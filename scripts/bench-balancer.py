#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark: dmm-balancer against a static split of the same budget.

Three guests of 512 MiB boot memory share a budget of 1536 MiB.  One runs
a program that grows to 768 MiB at 16 MiB/s (dmm_grow); the other two are
idle.

  static    each guest keeps a third of the budget (512 MiB)
  balancer  dmm-balancer moves memory by predicted demand (busy guest
            weight 2, min 384 MiB; idle guests min 256 MiB)

Reported: whether the program completed, its runtime, OOM kills in the
busy guest, the largest sum of the guests' sizes (the budget must hold),
and the sizes over time (CSV and a PNG plot for the balancer run).  Not a
test: nothing is asserted.

  scripts/bench-balancer.py
"""

import os
import re
import subprocess
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import MiB, Balancer, Guest, balancer_spec

BUDGET = 1536 * MiB


def run(use_balancer):
    guests, bal = [], None
    tag = "bal" if use_balancer else "static"
    try:
        for name in ("busy", "idle1", "idle2"):
            guests.append(Guest("bench-%s-%s" % (tag, name), mem="512M",
                                maxmem="3G", region="2G").start())
        if use_balancer:
            bal = Balancer("bench-balancer", BUDGET, [
                balancer_spec(guests[0], 384 * MiB, 1536 * MiB, 2),
                balancer_spec(guests[1], 256 * MiB, 1536 * MiB),
                balancer_spec(guests[2], 256 * MiB, 1536 * MiB)])
        busy = guests[0]
        busy.run("dmm_grow -s %d -r 16 >/tmp/grow.log 2>&1 &" % (768 * MiB))
        t0, peak, out, samples = time.time(), 0, "", []
        while time.time() - t0 < 240:
            sz = [g.dmm_info()["guest-size"] for g in guests]
            samples.append((time.time() - t0, sz))
            peak = max(peak, sum(sz))
            out = busy.out("cat /tmp/grow.log")
            if "# Totals" in out or busy.run(
                    "pidof dmm_grow >/dev/null")[0] != 0:
                break
            time.sleep(1)
        secs = time.time() - t0
        ooms = len(re.findall(r"oom-kill|Out of memory", busy.console()))
        return dict(mode=tag, done="ok 1" in out, secs=secs, ooms=ooms,
                    peak=peak, samples=samples,
                    csv=bal.csv if bal else None)
    finally:
        if bal:
            bal.stop()
        for g in guests:
            g.stop()


def main():
    results = [run(False), run(True)]
    for r in results:
        print("%-8s program %s after %5.1f s, OOM kills in the busy guest: "
              "%d, largest sum of sizes %d MiB (budget %d)" % (
                  r["mode"], "completed" if r["done"] else "did NOT complete",
                  r["secs"], r["ooms"], r["peak"] // MiB, BUDGET // MiB))
        print("         sizes (s: busy/idle1/idle2 MiB): " + " ".join(
            "%d:%s" % (t, "/".join(str(x // MiB) for x in sz))
            for t, sz in r["samples"][::6]))
    bal = results[1]
    png = os.path.join(dmmvm.LOGS, "bench-balancer.png")
    subprocess.run([os.path.join(dmmvm.TOP, "scripts", "plot-balancer.sh"),
                    bal["csv"], png, str(BUDGET // MiB)], check=False)
    print("plot: %s" % png)


if __name__ == "__main__":
    main()
