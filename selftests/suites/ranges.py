# SPDX-License-Identifier: GPL-2.0
"""Issue 14: page ranges (VIRTIO_DMM_F_PAGE_RANGES) below the boot size."""

import os
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import MiB, Guest
from harness import suite
from helpers import check_sizes, gtap, resize, wait_guest_file


def _pages(g):
    """(pages in ranges, single pages) the driver holds unplugged."""
    c = g.counters()
    unplugged = int(g.sysfs("unplugged_size")) // 4096
    return int(c["range_pages"]), unplugged - int(c["range_pages"])


def _wait_traded(g, timeout=60):
    """Wait until the driver traded single pages for ranges and has no
    single page left; returns the pages traded."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _pages(g)[1] == 0:
            break
        time.sleep(1)
    return int(g.counter("pages_traded"))


def _migrate_singles(g):
    """Have the kernel migrate some of the driver's single pages: one
    compaction pass, then, if it reached none, offlining boot memory
    blocks from the top down.  Compaction's migration scanner stops where
    it meets the free scanner coming down from the zone's end: single
    pages in the top third or so (where they mostly are here: 7 to 1639 of
    11,776 reached in six runs, none in two CI runs of three passes) are
    never reached.  Offlining migrates every movable page of a block
    before it fails on an unmovable one (a range's pages among them), so
    any block without kernel allocations has its single pages moved; a
    block that goes offline is onlined again.  Returns (pages moved, how).
    """
    moves0 = int(g.counter("page_moves"))
    g.run("echo 1 > /proc/sys/vm/compact_memory", check=True)
    moves = int(g.counter("page_moves")) - moves0
    if moves:
        return moves, "by compaction"
    mem = "/sys/devices/system/memory"
    blocks = sorted(int(b) for b in g.out(
        "ls %s | sed -n 's/^memory//p'" % mem).split())
    tried = []
    for b in reversed(blocks):
        state = "%s/memory%d/state" % (mem, b)
        if g.out("cat %s" % state).strip() != "online":
            continue
        # bounded: offlining retries forever while a page is isolated
        g.run("timeout -s KILL 10 sh -c 'echo offline > %s'" % state, 60)
        if g.out("cat %s" % state).strip() == "offline":
            g.run("echo online > %s" % state, check=True)
        tried.append(b)
        moves = int(g.counter("page_moves")) - moves0
        if moves:
            return moves, "compaction reached none; offlining memory " \
                "block %s" % ", ".join(map(str, tried))
    return 0, "neither compaction nor offlining blocks %s" \
        % ", ".join(map(str, tried))


def _check_migration(r, g):
    """Single pages are movable: compaction or offlining migrates them,
    telling the device (MOVE_PAGES); once the driver is idle again the
    device counts the same.  Last in the suite, with pages scattered anew:
    offlining leaves free ranges behind, for which the driver may then
    trade single pages (a trade that finds the pages isolated for the
    migration leaves the guest below its target until the next pass)."""
    size = 1536 * MiB - 128 * MiB
    g.run("dmm_scatter -h %d -l %d -w /tmp/stop2 >/tmp/s2.log 2>&1 &"
          % (256 * MiB, 16 * MiB))
    out = wait_guest_file(g, "/tmp/s2.log", "scattered", 300)
    r.ok("scattered" in out, "dmm_scatter holds 256 MiB again", out)
    if resize(r, g, size, "fragmented again, 128 MiB below boot") is None:
        return
    singles = _pages(g)[1]
    moves, how = _migrate_singles(g)
    r.ok(singles > 0 and moves > 0, "%d of %d unplugged single pages "
         "migrated (%s)" % (moves, singles, how))
    try:
        g.wait_current(size, 120)
    except dmmvm.AgentError as e:
        r.diag("not idle at %d MiB: %s" % (size // MiB, e))
    info = g.dmm_info()
    r.ok(info["guest-size"] == size and info["unplugged-size"] == 128 * MiB,
         "after the migration: the device counts the same 128 MiB "
         "unplugged", info)
    g.run("touch /tmp/stop2")
    out = wait_guest_file(g, "/tmp/s2.log", "kept pages changed", 120)
    r.ok("\n0 kept pages changed" in "\n" + out,
         "dmm_scatter: every page it kept through the migration held its "
         "pattern", out)
    if resize(r, g, 1536 * MiB, "back to the boot size again") is None:
        return
    r.ok(_pages(g) == (0, 0) and g.dmm_info()["unplugged-size"] == 0,
         "back to the boot size again: no range or page left unplugged")


@suite
def suite_ranges(r):
    """Issue 14: below boot in ranges and single pages mixed, migrated with
    that state, single pages traded for ranges, grown back (a range split),
    a program's pattern intact throughout."""
    mig = "unix:" + os.path.join(dmmvm.RUN, "ranges-mig.sock")
    src = Guest("ranges-src", mem="1536M", maxmem="4G", region="1G",
                dev_opts="free-page-reporting=off").start()
    dst = None
    try:
        g = src
        mt0 = g.meminfo()["MemTotal"]
        r.ok(g.counter("range_pages") == "0",
             "boot: F_PAGE_RANGES negotiated, nothing unplugged")
        g.run("dmm_memfill -s %d -c -w /tmp/go >/tmp/fill.log 2>&1 &"
              % (192 * MiB))
        out = wait_guest_file(g, "/tmp/fill.log", "waiting for", 300)
        r.ok("waiting for" in out, "a program holds 192 MiB with a "
             "pattern it checks over and over", out)

        # free memory in large blocks: the shrink goes in ranges
        rss0 = g.rss()
        if resize(r, g, 1024 * MiB, "512 MiB below boot") is None:
            return
        ranges, singles = _pages(g)
        r.ok(ranges * 4096 >= 480 * MiB and
             int(g.counter("ranges_unplugged")) * 2 * MiB <= ranges * 4096,
             "512 MiB below boot: %d MiB in ranges of 2 or 4 MiB, %d single "
             "pages" % (ranges * 4096 // MiB, singles))
        check_sizes(r, g, 1024 * MiB, mt0, "512 MiB below boot")

        # fragmented: a program holds pages scattered over all free memory,
        # so that no free range is left (and the kernel does not compact
        # them away meanwhile): of the next 128 MiB, what the few free
        # ranges left do not cover goes page by page
        g.run("echo 0 > /proc/sys/vm/compaction_proactiveness", check=True)
        g.run("dmm_scatter -h %d -l %d -w /tmp/stop >/tmp/s.log 2>&1 &"
              % (256 * MiB, 16 * MiB))
        out = wait_guest_file(g, "/tmp/s.log", "scattered", 300)
        r.ok("scattered" in out, "dmm_scatter holds 256 MiB in single pages "
             "spread over the free memory", out)
        if resize(r, g, 896 * MiB, "fragmented, 128 MiB more") is None:
            return
        ranges2, singles2 = _pages(g)
        r.ok(singles2 * 4096 >= 32 * MiB,
             "fragmented: %d MiB of it went as single pages, %d MiB in "
             "ranges" % (singles2 * 4096 // MiB,
                         (ranges2 - ranges) * 4096 // MiB))
        r.ok(g.sysfs("current_size") == str(896 * MiB) and
             g.counter("pages_traded") == "0",
             "fragmented: nothing traded while no range is free")

        # migration with ranges and single pages unplugged
        before = g.dmm_info()
        dst = Guest("ranges-dst", mem="1536M", maxmem="4G", region="1G",
                    dev_opts="free-page-reporting=off", incoming=mig).start()
        src.migrate_to(dst)
        src.stop()
        g = dst
        r.ok(g.dmm_info()["unplugged-size"] == before["unplugged-size"] and
             g.dmm_info()["guest-size"] == 896 * MiB,
             "migrated: the destination holds the same %d MiB unplugged"
             % (before["unplugged-size"] // MiB))

        # the scattered memory is freed: single pages are traded for ranges
        rss1 = g.rss()
        g.run("touch /tmp/stop")
        out = wait_guest_file(g, "/tmp/s.log", "kept pages changed", 120)
        r.ok("\n0 kept pages changed" in "\n" + out,
             "dmm_scatter: every page it kept held its pattern", out)
        traded = _wait_traded(g)
        ranges3, singles3 = _pages(g)
        r.ok(traded >= singles2 and singles3 == 0,
             "load fell: %d single pages traded for ranges, none left single "
             "(%d MiB in ranges)" % (traded, ranges3 * 4096 // MiB))
        r.ok(g.dmm_info()["guest-size"] == 896 * MiB and
             g.sysfs("current_size") == str(896 * MiB),
             "trading keeps the guest's size (896 MiB)")
        r.diag("QEMU RSS %d MiB before the shrink, %d MiB after it, "
               "%d MiB after the trade" % (rss0 // MiB, rss1 // MiB,
                                          g.rss() // MiB))

        # grow by less than a range: one range becomes single pages
        splits0 = int(g.counter("range_splits"))
        if resize(r, g, 899 * MiB, "3 MiB more") is None:
            return
        r.ok(int(g.counter("range_splits")) == splits0 + 1,
             "3 MiB more: one range split into single pages")
        if resize(r, g, 1536 * MiB, "back to the boot size") is None:
            return
        r.ok(_pages(g) == (0, 0) and
             g.dmm_info()["unplugged-size"] == 0,
             "back to the boot size: no range or page left unplugged")
        check_sizes(r, g, 1536 * MiB, mt0, "back to the boot size")
        _check_migration(r, g)

        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals", 300)
        r.tap("dmm_memfill (held through shrinks, trade, migration)", 0, out)
        r.ok("pattern intact" in out,
             "the program's data stayed intact throughout")
        gtap(r, g, "dmm_memfill -s %d" % (1024 * MiB), 600)
    finally:
        src.stop()
        if dst:
            dst.stop()
