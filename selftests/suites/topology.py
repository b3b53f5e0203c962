# SPDX-License-Identifier: GPL-2.0
"""Real guest topologies (issue 12): huge pages on the host."""

import subprocess
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Guest
from harness import suite
from helpers import grow, gtap

NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
HUGE_BACKEND = ("memory-backend-memfd,hugetlb=on,hugetlbsize=2M,"
                "reserve=off")
# the pool the suite adds to the host's: 1 GiB of 2 MiB pages
POOL = 512


def _hugepages(key):
    """HugePages_@key of /proc/meminfo (2 MiB pages, the default size)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_%s:" % key):
                return int(line.split()[1])
    return 0


def _set_pool(n):
    with open(NR_HUGEPAGES, "w") as f:
        f.write("%d\n" % n)
    with open(NR_HUGEPAGES) as f:
        return int(f.read())


def _wait_settled(g, timeout=180):
    """Wait until the driver's plugged size stops changing for 10 s."""
    last, since = None, time.time()
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = int(g.sysfs("plugged_size"))
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= 10:
            break
        time.sleep(1)
    return last


def _refused(r, g, want, name):
    """QEMU started with @g's command line stops, saying @want."""
    p = subprocess.run(g.command_line(), capture_output=True, text=True,
                       timeout=120)
    r.ok(p.returncode != 0 and want in p.stderr, name, p.stderr.strip())


@suite
def suite_hugepages(r):
    """Issue 12: the region on 2 MiB host huge pages with prealloc=on:
    grow, fill, shrink, the pool back; a plug beyond the pool is refused
    cleanly (NACK) and QEMU lives; page requests refused at start."""
    try:
        orig = int(open(NR_HUGEPAGES).read())
        got = _set_pool(orig + POOL)
    except OSError as e:
        r.skip("hugepages", "cannot reserve huge pages here: %s" % e)
        return
    g = None
    try:
        free0 = _hugepages("Free")
        if got < orig + POOL or free0 < POOL:
            r.skip("hugepages", "the host reserved %d of %d huge pages"
                   % (got - orig, POOL))
            return
        r.diag("pool: %d huge pages of 2 MiB, %d free" % (got, free0))
        _refused(r, Guest("hp-pages", region="2G", backend=HUGE_BACKEND,
                          dev_opts="prealloc=on"),
                 "set pages=off",
                 "page requests on huge pages: QEMU refuses to start")
        g = Guest("hp", mem="512M", maxmem="4G", region="2G", pages=False,
                  backend=HUGE_BACKEND, dev_opts="prealloc=on").start()
        r.ok(_hugepages("Free") == free0,
             "started: nothing of the pool taken (reserve=off)",
             "%d free" % _hugepages("Free"))

        grow(r, g, GiB, "grow to 1 GiB (512 MiB plugged)")
        used = free0 - _hugepages("Free")
        r.ok(used == 256, "512 MiB plugged took 256 huge pages", used)
        gtap(r, g, "dmm_memfill -s %d -r %d" % (400 * MiB, 256 * MiB))
        grow(r, g, 512 * MiB, "shrink to 512 MiB")
        r.ok(_hugepages("Free") == free0,
             "shrunk: the pool is whole again (%d free)" % free0,
             "%d free" % _hugepages("Free"))

        # 1.5 GiB plugged asked for, 1 GiB in the pool
        g.set_requested(2 * GiB)
        plugged = _wait_settled(g)
        r.figure("plugged with a pool of 1 GiB, 1.5 GiB asked for",
                 "%d MiB, %d huge pages free" % (plugged // MiB,
                                                  _hugepages("Free")))
        r.ok(plugged <= GiB and plugged >= GiB - 128 * MiB and
             g.proc.poll() is None,
             "beyond the pool: plugs refused, the guest stops at the pool "
             "(%d MiB plugged), QEMU alive" % (plugged // MiB))
        log = open(g.qemu_log).read()
        r.ok(log.count("cannot back plugged memory") == 1,
             "QEMU reported the refusal once")
        r.ok(g.sysfs("status") != "error", "the driver did not give up",
             g.sysfs("status"))
        gtap(r, g, "dmm_memfill -s %d" % (800 * MiB))
        grow(r, g, 512 * MiB, "shrink to 512 MiB again")
        r.ok(_hugepages("Free") == free0,
             "shrunk: the pool is whole again (%d free)" % free0,
             "%d free" % _hugepages("Free"))
    finally:
        if g:
            g.stop()
        _set_pool(orig)
        r.diag("pool put back to %d huge pages" % orig)
