#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The virtio-dmm demo: grow a running guest past its boot size, use the new
memory, free it (free page reporting returns it to the host), shrink back,
go below the boot size and to a size between blocks, and show what guest
and host see at each step."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmmvm import GiB, MiB, Guest  # noqa: E402


def banner(text):
    print("\n=== %s ===" % text, flush=True)


def show(g, label):
    info = g.dmm_info()
    mi = g.meminfo()
    print("%-28s guest MemTotal %5d MiB  MemFree %5d MiB | device: "
          "requested %5d MiB = size %5d MiB (plugged %5d MiB, pages "
          "unplugged %4d MiB) | host: QEMU RSS %5d MiB"
          % (label, mi["MemTotal"] // MiB, mi["MemFree"] // MiB,
             info["requested-size"] // MiB, info["size"] // MiB,
             info["plugged-size"] // MiB, info["unplugged-size"] // MiB,
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

        banner("grow: qom-set dmm0 requested-size 2G")
        secs = resize(g, 2 * GiB)
        show(g, "grown (%.2f s):" % secs)
        print(g.out("free -m"))
        print(g.out("grep virtio_dmm /proc/iomem"))

        banner("use it: a program fills 1.5 GiB with a pattern and holds it")
        g.run("dmm_memfill -s %d -r %d -w /tmp/go >/tmp/fill.log 2>&1 &"
              % (1536 * MiB, GiB))
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
              % g.sysfs("reported_bytes"))

        banner("shrink: qom-set dmm0 requested-size 512M")
        secs = resize(g, 512 * MiB)
        time.sleep(0.5)
        show(g, "shrunk (%.2f s):" % secs)
        print(g.out("free -m"))
        print(g.qmp.hmp("info memory-devices").rstrip())

        banner("below the boot size: qom-set dmm0 requested-size 300M "
               "(the guest gives back 212 MiB of boot memory as pages)")
        secs = resize(g, 300 * MiB)
        show(g, "shrunk (%.2f s):" % secs)
        print(g.out("free -m; grep balloon /proc/vmstat"))

        banner("between blocks: qom-set dmm0 requested-size 1001M (the "
               "pages come back, then 3 blocks, 53 sub-blocks of 2 MiB, "
               "and 1 MiB given back as pages to land exactly)")
        secs = resize(g, 1001 * MiB)
        show(g, "grown (%.2f s):" % secs)
        print(g.qmp.hmp("info memory-devices").rstrip())

        banner("a bad value is refused and changes nothing")
        try:
            g.qmp.cmd("qom-set", path="dmm0", property="requested-size",
                      value=1001 * MiB + 1)
        except Exception as e:              # QMPError: the point of the demo
            print("qom-set requested-size 1001M + 1 byte -> %s" % e)
        show(g, "unchanged:")
    print("\ndemo done")


if __name__ == "__main__":
    main()
