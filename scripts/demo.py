#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The virtio-dmm demo: grow a running guest past its boot size, use the new
memory, free it (free page reporting returns it to the host), shrink back,
go below the boot size and to a size between blocks, and show what guest
and host see at each step.  Then three guests under dmm-balancer: memory
moves to the busy one, and room is made for a fourth."""

import os
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Balancer, Guest, balancer_spec


def banner(text):
    print("\n=== %s ===" % text, flush=True)


def show(g, label):
    info = g.dmm_info()
    mi = g.meminfo()
    print("%-28s guest MemTotal %5d MiB  MemFree %5d MiB | device: "
          "requested-guest-size %5d MiB = guest-size %5d MiB (size: "
          "plugged %5d MiB, pages unplugged %4d MiB) | host: QEMU RSS "
          "%5d MiB"
          % (label, mi["MemTotal"] // MiB, mi["MemFree"] // MiB,
             info["requested-guest-size"] // MiB, info["guest-size"] // MiB,
             info["size"] // MiB, info["unplugged-size"] // MiB,
             g.rss() // MiB), flush=True)


def resize(g, total):
    t0 = time.time()
    g.set_requested(total)
    g.wait_current(total)
    return time.time() - t0


def main():
    banner("booting a 512 MiB guest with a 3 GiB virtio-dmm region (TCG)")
    t0 = time.time()
    with Guest("demo", mem="512M", maxmem="4G", region="3G") as g:
        print("guest up in %.1f s; console log: %s"
              % (time.time() - t0, g.console_log))
        print(g.qmp.hmp("info memory-devices").rstrip())
        show(g, "boot:")
        print(g.out("free -m"))

        banner("grow: qom-set dmm0 requested-guest-size 2G")
        secs = resize(g, 2 * GiB)
        show(g, "grown (%.2f s):" % secs)
        print(g.out("free -m"))
        print(g.out("grep virtio_dmm /proc/iomem"))

        banner("use it: a program fills 1.5 GiB with a pattern and holds it")
        g.spawn("dmm_memfill -s %d -r %d -w /tmp/go" % (1536 * MiB, GiB),
                "/tmp/fill.log")
        while "waiting for" not in g.out("cat /tmp/fill.log"):
            time.sleep(0.5)
        print(g.out("cat /tmp/fill.log"))
        show(g, "filled and held:")

        banner("the program verifies and exits: free page reporting gives "
               "the freed memory back, no resize")
        g.run("touch /tmp/go")
        t0 = time.time()
        for _ in range(15):
            time.sleep(1)
            show(g, "%4.0f s after exit:" % (time.time() - t0))
            if g.rss() < 700 * MiB:
                break
        print(g.out("grep -E 'ok|Totals' /tmp/fill.log"))
        print("guest reported %s bytes of free pages"
              % g.counter("reported_bytes"))

        banner("shrink: qom-set dmm0 requested-guest-size 512M")
        secs = resize(g, 512 * MiB)
        time.sleep(0.5)
        show(g, "shrunk (%.2f s):" % secs)
        print(g.out("free -m"))
        print(g.qmp.hmp("info memory-devices").rstrip())

        banner("below the boot size: qom-set dmm0 requested-guest-size "
               "300M (the guest gives back 212 MiB of boot memory as pages)")
        secs = resize(g, 300 * MiB)
        show(g, "shrunk (%.2f s):" % secs)
        print(g.out("free -m; grep balloon /proc/vmstat"))

        banner("between blocks: qom-set dmm0 requested-guest-size 1001M "
               "(the pages come back, then 3 blocks, 53 sub-blocks of 2 MiB, "
               "and 1 MiB given back as pages to land exactly)")
        secs = resize(g, 1001 * MiB)
        show(g, "grown (%.2f s):" % secs)
        print(g.qmp.hmp("info memory-devices").rstrip())

        banner("a bad value is refused and changes nothing")
        try:
            g.qmp.cmd("qom-set", path="dmm0",
                      property="requested-guest-size", value=1001 * MiB + 1)
        except Exception as e:              # QMPError: the point of the demo
            print("qom-set requested-guest-size 1001M + 1 byte -> %s" % e)
        show(g, "unchanged:")
    demo_balancer()
    print("\ndemo done")


def sizes_line(t, guests):
    return "%5.0f s  " % t + "  ".join(
        "%s %4d MiB" % (g.name[5:], g.dmm_info()["guest-size"] // MiB)
        for g in guests)


def demo_balancer():
    """Three guests, a budget that cannot give all of them their max: the
    balancer moves memory to the busy one, then makes room for a fourth."""
    budget = 1536 * MiB
    banner("dmm-balancer: three 512 MiB guests, a budget of 1536 MiB")
    guests, bal = [], None
    try:
        for name in ("demo-busy", "demo-idle1", "demo-idle2"):
            guests.append(Guest(name, mem="512M", maxmem="3G",
                                region="2G").start())
        bal = Balancer("demo-balancer", budget, [
            balancer_spec(guests[0], 384 * MiB, 1536 * MiB, 2),
            balancer_spec(guests[1], 256 * MiB, 1536 * MiB),
            balancer_spec(guests[2], 256 * MiB, 1536 * MiB)])
        print("balancer log: %s, CSV: %s" % (bal.log, bal.csv))
        banner("busy runs a program that grows to 768 MiB; the idle two "
               "give their memory to it")
        guests[0].run("dmm_grow -s %d -r 16 -w /tmp/go >/tmp/grow.log "
                      "2>&1 &" % (768 * MiB))
        t0, out = time.time(), ""
        while time.time() - t0 < 240 and "ok 1" not in out:
            print(sizes_line(time.time() - t0, guests), flush=True)
            time.sleep(4)
            out = guests[0].out("cat /tmp/grow.log")
        print(sizes_line(time.time() - t0, guests))
        print(guests[0].out("grep '^ok' /tmp/grow.log").strip())
        print("the balancer's decisions:")
        decisions = [ln for ln in bal.text().splitlines()
                     if "grow" in ln or "shrink" in ln]
        print("\n".join("  " + ln for ln in decisions[:12]))
        banner("the program exits; at once, admit a fourth 384 MiB guest: "
               "the budget is full, the balancer makes room")
        print(sizes_line(time.time() - t0, guests))
        guests[0].run("touch /tmp/go")
        print("admit 384M -> %s" % bal.command("admit 384M"))
        print(sizes_line(time.time() - t0, guests))
        new = Guest("demo-new", mem="384M", maxmem="2G", region="1G").start()
        guests.append(new)
        print("add -> %s" % bal.command(
            "add " + balancer_spec(new, 256 * MiB, 1024 * MiB)))
        time.sleep(4)
        print(sizes_line(time.time() - t0, guests))
        print("admit 4G -> %s" % bal.command("admit 4G"))
        png = os.path.join(dmmvm.LOGS, "demo-balancer.png")
        os.system("%s %s %s %d >/dev/null" % (
            os.path.join(dmmvm.TOP, "scripts", "plot-balancer.sh"), bal.csv,
            png, budget // MiB))
        print("plot of the sizes over time: %s" % png)
    finally:
        if bal:
            bal.stop()
        for g in guests:
            g.stop()


if __name__ == "__main__":
    main()
