# SPDX-License-Identifier: GPL-2.0
"""Issue 3: sub-blocks and pages, below boot size and back."""

import os
import random
import time

from dmmlib import dmmvm, wire
from dmmlib.dmmvm import GiB, MiB, Guest, QMPError
from harness import suite
from helpers import (TEST_HOOKS, boot_memtotal, check_sizes,
                     debugfs_and_pattern_pages, debugfs_write,
                     dmm_size_events, dmm_state, grown_guest, gtap, resize,
                     rmmod_dmm, wait_guest_file)


def bad_page_sizes(g):
    """requested-guest-size values QMP must refuse on a device with pages."""
    return [
        (32 * MiB, "below the 64 MiB minimum"),
        (g.mem + g.region + 4096, "above boot size plus region"),
        (g.mem - 512, "not a multiple of 4 KiB"),
        (0, "zero"),
    ]


@suite
def suite_fine(r):
    """Issue 3: below boot size and back with pages, QMP = MemTotal, RSS."""
    # no free page reporting here: the RSS must fall because of the shrink
    with Guest("fine", mem="1G", maxmem="4G", region="2G",
               dev_opts="free-page-reporting=off") as g:
        mt0 = g.meminfo()["MemTotal"]
        r.ok(g.sysfs("unplugged_size") == "0" and
             int(g.sysfs("current_size")) == GiB,
             "boot: 1 GiB of RAM, no page unplugged")
        # dirty most of boot memory, so that the host backs it
        gtap(r, g, "dmm_memfill -l %d" % (64 * MiB), 600)
        rss0 = g.rss()

        g.qmp.events.clear()
        secs = resize(r, g, 384 * MiB, "shrink below boot to 384 MiB")
        if secs is not None:
            r.figure("shrink 1 GiB -> 384 MiB (640 MiB of boot RAM as "
                     "pages)", "%.2f s" % secs)
        check_sizes(r, g, 384 * MiB, mt0, "384 MiB")
        # a shrink in pages changes no plugged size, but is an event
        evs = dmm_size_events(g, 384 * MiB)
        r.ok(evs and evs[-1]["size"] == 0 and
             evs[-1]["unplugged-size"] == 640 * MiB,
             "384 MiB: VIRTIO_DMM_SIZE_CHANGE says guest-size 384 MiB, "
             "size 0, unplugged-size 640 MiB", evs)
        time.sleep(0.5)
        rss1 = g.rss()
        r.figure("QEMU RSS at 1 GiB (memory dirtied) -> at 384 MiB",
                 "%d MiB -> %d MiB" % (rss0 // MiB, rss1 // MiB))
        r.ok(rss0 - rss1 >= 400 * MiB,
             "384 MiB: QEMU RSS fell by %d MiB (>= 400)"
             % ((rss0 - rss1) // MiB))
        # free memory in large blocks goes as ranges, the rest as balloon
        # pages (issue 14)
        vm = g.out("grep balloon_inflate /proc/vmstat").split()
        ranges = int(g.counter("range_pages"))
        r.ok(len(vm) == 2 and ranges + int(vm[1]) >= 640 * MiB // 4096 and
             ranges * 4096 >= 320 * MiB,
             "384 MiB: %d MiB unplugged in ranges, the rest as balloon pages "
             "(%s)" % (ranges * 4096 // MiB, " ".join(vm)))
        hmp = g.qmp.hmp("info memory-devices")
        r.ok("unplugged-size: %d" % (640 * MiB) in hmp and
             "guest-size: %d" % (384 * MiB) in hmp,
             "384 MiB: HMP info memory-devices shows unplugged-size and "
             "guest-size", hmp)

        # Unload gives the pages back; reload starts over.  Here, and not
        # after the region was used: while any of the region is plugged
        # the module holds itself (dmm_plugged_add()), and a shrink may
        # take boot pages in place of region sub-blocks Linux still uses.
        rc, out = rmmod_dmm(g)
        info = g.dmm_info()
        r.ok(rc == 0 and info["unplugged-size"] == 0 and
             info["guest-size"] == GiB,
             "unload with pages unplugged: the device has them back", out)
        r.ok(abs(g.meminfo()["MemTotal"] - mt0) <= MiB,
             "unload: MemTotal back to boot")
        g.run("insmod /lib/modules/virtio_dmm.ko", check=True)
        resize(r, g, 384 * MiB, "after reload: back to 384 MiB")

        secs = resize(r, g, GiB, "grow back to 1 GiB")
        if secs is not None:
            r.figure("grow 384 MiB -> 1 GiB (pages plugged back)",
                     "%.2f s" % secs)
        check_sizes(r, g, GiB, mt0, "back at 1 GiB")
        resize(r, g, 2 * GiB, "grow on to 2 GiB")
        check_sizes(r, g, 2 * GiB, mt0, "2 GiB")
        gtap(r, g, "dmm_state_check %d" % GiB)
        # a size between blocks: a block plus pages given back
        odd = GiB + 200 * MiB + 3 * 4096
        resize(r, g, odd, "shrink to 1224 MiB + 12 KiB")
        check_sizes(r, g, odd, mt0, "1224 MiB + 12 KiB")
        info = g.dmm_info()
        r.ok(info["size"] == 202 * MiB and
             info["unplugged-size"] == 2 * MiB - 3 * 4096,
             "1224 MiB + 12 KiB: whole blocks, then 2 MiB sub-blocks, the "
             "rest in pages (plugged 202 MiB, 2 MiB - 12 KiB of pages)",
             info)
        gtap(r, g, "dmm_state_check %d" % (202 * MiB))
        gtap(r, g, "dmm_memfill -l %d" % (64 * MiB), 600)

        # bad values change nothing
        before = dmm_state(g)
        for value, why in bad_page_sizes(g):
            try:
                g.set_requested(value)
                r.ok(False, "qmp: requested-guest-size %d (%s) refused"
                     % (value, why))
            except QMPError as e:
                r.ok(dmm_state(g) == before,
                     "qmp: requested-guest-size %d (%s) refused, nothing "
                     "changed"
                     % (value, why), e.desc)
                r.diag("  -> %s" % e.desc)


def settle(g, target, timeout=90):
    """Wait until the driver has seen @target as its requested size and
    then stops making progress; returns current_size.

    The config change reaches the guest some time after QMP's qom-set
    returns: until sysfs requested_size shows @target, "idle" and an
    unchanged current_size only mean the driver has not started yet.
    Under TCG, offlining the first block of a busy guest migrates up to
    128 MiB and takes seconds, so an unchanged size only counts as the end
    once the driver has stopped at its floor (floor_stops grew) and made
    no progress for 8 s (the suite's back-off reaches 32 x 100 ms: 3 s
    was less than one retry, and a run of 2026-12-01 took a pause there
    for the end, 256 MiB into a shrink that went on to 490 MiB), or after
    15 s without progress.
    """
    deadline = time.time() + timeout
    stops0 = int(g.counter("floor_stops"))
    while (int(g.sysfs("requested_size")) != target and
           time.time() < deadline):
        time.sleep(0.2)
    last, since = None, time.time()
    while time.time() < deadline:
        cur = int(g.sysfs("current_size"))
        if cur != last:
            last, since = cur, time.time()
        if g.sysfs("status") == "idle":
            return cur
        quiet = time.time() - since
        if quiet >= 15 or (quiet >= 8 and
                           int(g.counter("floor_stops")) > stops0):
            return cur
        time.sleep(0.5)
    return int(g.sysfs("current_size"))


def wait_traded_region(g, size, timeout=120):
    """Wait until guest @g is idle at @size with nothing left to trade
    (no region memory plugged while pages are unplugged, dmm_main.c
    dmm_region_tradable()); returns its query-dmm."""
    deadline, info = time.time() + timeout, {}
    while time.time() < deadline:
        info = g.dmm_info()
        if info["guest-size"] == size and g.sysfs("status") == "idle" and \
                min(info["size"], info["unplugged-size"]) < 2 * MiB:
            break
        time.sleep(0.5)
    return info


@suite
def suite_fine_load(r):
    """Issue 3: a shrink under load goes as far as the floor, loses nothing."""
    with grown_guest("fine-load") as g:
        mt0 = boot_memtotal(g)
        g.run("echo 100 > %s/retry_interval_ms" % g.sysfs_dir(), check=True)
        held = int(0.6 * 2 * GiB)
        g.run("dmm_memfill -s %d -c -w /tmp/go >/tmp/fill.log 2>&1 &" % held)
        out = wait_guest_file(g, "/tmp/fill.log", "waiting for", 300)
        r.ok("waiting for" in out, "a program holds %d MiB (60 %%) with a "
             "pattern it checks over and over" % (held // MiB), out)

        # below boot size and between blocks: blocks alone cannot do it
        target = 900 * MiB
        vacated0 = int(g.counter("blocks_vacated"))
        g.set_requested(target)
        cur = settle(g, target)
        info = g.dmm_info()
        r.diag("achieved %d MiB of %d MiB requested; plugged %d MiB, pages "
               "%d MiB, floor %s, status %s" % (
                   cur // MiB, target // MiB, info["size"] // MiB,
                   info["unplugged-size"] // MiB, g.counter("floor_size"),
                   g.sysfs("status")))
        r.figure("shrink 2 GiB -> 900 MiB with 1229 MiB held: achieved",
                 "%d MiB (plugged %d MiB + pages %d MiB off)"
                 % (cur // MiB, info["size"] // MiB,
                    info["unplugged-size"] // MiB))
        r.ok(target < cur < 2 * GiB - 256 * MiB,
             "under load: the shrink got %d MiB of the way, not all"
             % ((2 * GiB - cur) // MiB))
        # the program fills the region (ZONE_MOVABLE is allocated from
        # first): moving its pages out would cost three times what free
        # pages cost, so pages stand in for the blocks
        deferred = int(g.counters().get("region_deferred", 0))
        r.ok(deferred > 0 and info["unplugged-size"] >= 256 * MiB and
             int(g.counter("blocks_vacated")) == vacated0,
             "under load: the blocks the program fills stay (%d left to "
             "the trade), %d MiB of pages stand in, none of its pages "
             "moved" % (deferred, info["unplugged-size"] // MiB), info)
        r.ok(info["guest-size"] == cur and
             int(g.counter("gap_size")) == target - cur and
             g.sysfs("status") == "busy",
             "under load: QMP size, sysfs current_size and gap_size report "
             "the achieved size honestly; status busy")
        r.ok(int(g.counter("floor_stops")) > 0,
             "under load: sysfs counts the unplugs stopped at the floor "
             "(%s)" % g.counter("floor_stops"))
        avail = g.meminfo()["MemAvailable"]
        r.ok(avail >= 48 * MiB, "under load: MemAvailable kept at %d MiB"
             % (avail // MiB))
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals", 300)
        r.tap("dmm_memfill (held through the shrink)", 0, out)
        r.ok(" checks of the whole pattern" in out and
             "pattern intact" in out,
             "under load: the program's data stayed intact throughout")
        try:
            secs = g.wait_current(target, 120)
            r.ok(True, "after the program exits: the shrink completes "
                 "(%.1f s)" % secs)
        except dmmvm.AgentError as e:
            r.ok(False, "after the program exits: the shrink completes", e)
        # the region, free now, is traded for the pages that stood in
        info = wait_traded_region(g, target)
        r.ok(info["size"] == 0 and int(g.counter("region_traded")) > 0,
             "after the program exits: the region went for the pages that "
             "stood in (%d MiB traded, %d MiB of pages left below the "
             "boot size)" % (int(g.counter("region_traded")) // MiB,
                             info["unplugged-size"] // MiB), info)
        check_sizes(r, g, target, mt0, "900 MiB")


@suite
def suite_fine_frag(r):
    """Issue 3: pinned pages in every block; sub-blocks and pages still go."""
    with grown_guest("fine-frag") as g:
        mt0 = boot_memtotal(g)
        addr = int(g.sysfs("region_addr"), 0)
        # retries every 100 ms (the region trade's: 60 of them)
        g.run("echo 100 > %s/retry_interval_ms" % g.sysfs_dir(), check=True)
        # a page in every other sub-block of every block: no block can go,
        # half the sub-blocks can, the rest must come as pages
        rc, out = g.run("insmod /lib/modules/dmm_test_pin.ko start=%d "
                        "size=%d per_block=32 spread=%d && dmesg | "
                        "grep dmm_test_pin | tail -2"
                        % (addr, GiB, 2 * MiB), 300)
        r.ok(rc == 0, "32 pages pinned in 32 sub-blocks of each of the 8 "
             "plugged blocks", out)
        fails0 = int(g.counter("unplug_failures"))
        t0 = time.time()
        secs = resize(r, g, 1280 * MiB, "fragmented: shrink by 768 MiB")
        if secs is not None:
            r.figure("shrink 2 GiB -> 1.25 GiB, every block pinned",
                     "%.2f s" % (time.time() - t0))
        info = g.dmm_info()
        iomem = g.out("grep -c 'System RAM (virtio_dmm)' /proc/iomem; "
                      "cat /proc/iomem | grep virtio_dmm")
        r.diag("plugged %d MiB, pages %d MiB; iomem: %s" % (
            info["size"] // MiB, info["unplugged-size"] // MiB,
            iomem.strip().replace("\n", "; ")))
        r.ok(GiB - info["size"] <= 512 * MiB and
             info["size"] < GiB and info["unplugged-size"] > 0,
             "fragmented: no block went; sub-blocks (%d MiB) and pages "
             "(%d MiB) did" % ((GiB - info["size"]) // MiB,
                               info["unplugged-size"] // MiB), info)
        gtap(r, g, "dmm_state_check")
        r.ok(int(g.counter("unplug_failures")) > fails0 and
             int(g.counter("sub_block_unplug_failures")) > 0,
             "fragmented: sysfs counts the blocks (%s) and sub-blocks (%s) "
             "that could not go" % (g.counter("unplug_failures"),
                                    g.counter("sub_block_unplug_failures")))
        check_sizes(r, g, 1280 * MiB, mt0, "fragmented 1.25 GiB")

        # compaction may move unplugged single pages (suite ranges checks
        # that it does); whatever it moves, the device counts the same
        g.run("echo 1 > /proc/sys/vm/compact_memory")
        # (an attempt to trade pages for the region is busy for a while)
        g.wait_current(1280 * MiB, 60)
        info2 = g.dmm_info()
        # (a trade of the region for pages changes both sizes alike)
        r.ok(info2["unplugged-size"] - info["unplugged-size"] ==
             info2["size"] - info["size"] and
             info2["guest-size"] == 1280 * MiB and
             g.sysfs("status") == "idle",
             "after compaction: the device counts the same pages unplugged",
             info2)
        gtap(r, g, "dmm_memfill -l %d" % (64 * MiB), 600)

        # unpinned, the region's sub-blocks can go: the driver trades the
        # pages it took in their place for them, at the same size
        g.run("rmmod dmm_test_pin", check=True)
        # attempts 6 s after the target, then 12, 24, 48 s apart
        deadline, info3 = time.time() + 120, {}
        while time.time() < deadline:
            info3 = g.dmm_info()
            if info3["unplugged-size"] < 2 * MiB:
                break
            time.sleep(1)
        traded = int(g.counter("region_traded"))
        r.ok(info3["unplugged-size"] < 2 * MiB and traded > 0,
             "unpinned: %d MiB of region sub-blocks traded for the pages "
             "taken in their place (%d KiB of pages left)"
             % (traded // MiB, info3["unplugged-size"] // 1024), info3)
        g.wait_current(1280 * MiB, 60)
        check_sizes(r, g, 1280 * MiB, mt0, "traded 1.25 GiB")
        gtap(r, g, "dmm_state_check")
        resize(r, g, 2 * GiB, "unpinned: grow back to 2 GiB")
        check_sizes(r, g, 2 * GiB, mt0, "2 GiB again")
        resize(r, g, 1024 * MiB, "unpinned: shrink to 1 GiB")
        r.ok(g.dmm_info()["size"] == 0,
             "unpinned: blocks can go again", g.dmm_info())


@suite
def suite_fine_random(r):
    """Issue 3: random resizes (20; $DMM_RESIZES) with a checker running."""
    rng = random.Random(int(os.environ.get("DMM_SEED", "3")))
    # 20 in CI (every kind of size five times); a stress run takes more
    count = int(os.environ.get("DMM_RESIZES", "20"))
    with Guest("fine-random", mem="1G", maxmem="4G", region="2G") as g:
        mt0 = g.meminfo()["MemTotal"]
        g.run("echo 100 > %s/retry_interval_ms" % g.sysfs_dir(), check=True)
        g.run("dmm_memfill -s %d -c -w /tmp/go >/tmp/fill.log 2>&1 &"
              % (256 * MiB))
        wait_guest_file(g, "/tmp/fill.log", "waiting for", 300)
        sizes, failed, t0 = [], 0, time.time()
        for i in range(count):
            kind = i % 4
            if kind == 0:       # below boot
                size = rng.randrange(640 * MiB, GiB, 4096)
            elif kind == 1:     # above boot, any page multiple
                size = rng.randrange(GiB, 3 * GiB, 4096)
            elif kind == 2:     # whole blocks above boot
                size = GiB + rng.randrange(0, 17) * 128 * MiB
            else:               # anywhere
                size = rng.randrange(640 * MiB, 3 * GiB + 1, 4096)
            sizes.append(size)
            g.set_requested(size)
            try:
                g.wait_current(size, 120)
            except dmmvm.AgentError as e:
                failed += 1
                r.diag("cycle %d: %d MiB not reached: %s" % (i, size // MiB,
                                                              e))
        r.figure("%d random resizes between 640 MiB and 3 GiB" % count,
                 "%.1f s" % (time.time() - t0))
        r.diag("sizes (MiB): " + " ".join(str(s // MiB) for s in sizes))
        r.ok(not failed, "%d random resizes: every size reached (%d missed)"
             % (count, failed))
        check_sizes(r, g, sizes[-1], mt0, "after %d resizes" % count)
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals", 300)
        r.tap("dmm_memfill (checking through %d resizes)" % count, 0, out)
        r.ok("pattern intact" in out and " checks of the whole" in out,
             "%d random resizes: the checker saw no corruption" % count)
        gtap(r, g, "dmm_state_check %d" % g.dmm_info()["size"])


@suite
def suite_callback_conflict(r):
    """Issue 3: sub-blocks need the one online_page callback; virtio_mem
    holding it makes probe fail clearly, sub-blocks=off still binds."""
    vmem = ["-object", "memory-backend-ram,id=vmem0,size=512M,reserve=off",
            "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,"
            "requested-size=128M"]
    with Guest("cbconflict", mem="512M", maxmem="4G", region="1G",
               requested="768M", modules=["virtio_mem", "virtio_dmm"],
               extra_args=vmem) as g:
        rc, out = g.run("dmesg | grep virtio_dmm")
        r.diag(out.strip())
        r.ok("holds the kernel's online_page callback" in out and
             "virtio_mem" in out,
             "virtio_mem loaded first: probe says who holds the callback")
        rc, _ = g.run("ls /sys/bus/virtio/drivers/virtio_dmm/virtio*")
        r.ok(rc != 0, "virtio_mem loaded first: virtio_dmm did not bind")
        time.sleep(1)
        r.ok(g.dmm_info()["size"] == 0,
             "virtio_mem loaded first: nothing plugged", g.dmm_info())
    with Guest("cbconflict-off", mem="512M", maxmem="4G", region="1G",
               requested="768M", modules=["virtio_mem", "virtio_dmm"],
               extra_args=vmem, dev_opts="sub-blocks=off") as g:
        try:
            g.wait_current(768 * MiB, 60)
            ok = True
        except dmmvm.AgentError:
            ok = False
        no_sb = g.run("test -e %s/sub_block_size" % g.sysfs_dir())[0] != 0
        r.ok(ok and no_sb,
             "sub-blocks=off: virtio_dmm binds next to virtio_mem (no "
             "sub_block_size in sysfs) and plugs to 768 MiB")


@suite
def suite_fine_bad_lists(r):
    """Issue 3: malformed page lists sent from inside a guest are refused
    by QEMU and change nothing (through the driver's debugfs test file)."""
    with Guest("fine-badlists", mem="1G", maxmem="4G", region="2G",
               append=TEST_HOOKS) as g:
        f, addrs = debugfs_and_pattern_pages(r, g, "page_request")
        if not addrs:
            return
        a, b = addrs[0], addrs[1]
        region = g.dmm_info()["memaddr"]
        unplug, plug, move = (wire.REQ_UNPLUG_PAGES, wire.REQ_PLUG_PAGES,
                              wire.REQ_MOVE_PAGES)
        many = " ".join("%x" % (a + 4096 * i) for i in range(1025))
        cases = [
            ("unaligned", "%d 1 %x" % (unplug, a + 8)),
            ("not RAM (local APIC)", "%d 1 fee00000" % unplug),
            ("not RAM (PCI hole)", "%d 1 80000000" % unplug),
            ("in an unplugged block of the region",
             "%d 1 %x" % (unplug, region)),
            ("beyond guest RAM", "%d 1 %x" % (unplug, 1 << 46)),
            ("listed twice", "%d 2 %x %x" % (unplug, a, a)),
            ("a good page, then a bad one", "%d 2 %x %x" % (unplug, b,
                                                             a + 1)),
            ("plugging a page that is plugged", "%d 1 %x" % (plug, a)),
            ("moving a plugged page", "%d 2 %x %x" % (move, a, b)),
            ("an odd MOVE list", "%d 1 %x" % (move, a)),
            ("no pages", "%d 0" % unplug),
            ("more pages claimed than sent", "%d 3 %x %x" % (unplug, a, b)),
            ("more than max_pages", "%d 1025 %s" % (unplug, many)),
            ("an unknown type", "9 1 %x" % a),
        ]
        before = dmm_state(g)
        for what, line in cases:
            rc, out = debugfs_write(g, f, line)
            after = dmm_state(g)
            r.ok(rc == 0 and out.strip() == "error" and after == before,
                 "malformed page list (%s): ERROR, nothing changed" % what,
                 "answer %r\nbefore %s\nafter %s" % (out, before, after))
        # beyond requested: the guest unplugged pages and is at its target;
        # plugging two of them back would exceed it
        resize(r, g, GiB - 4 * MiB, "shrink by 4 MiB of pages")
        info = dmm_state(g)
        off = g.out("dmm_offline_pages 2 %d" % GiB).split()
        rc, out = debugfs_write(g, f, "%d 2 %s" % (
            plug, " ".join(x[2:] for x in off)))
        r.ok(len(off) == 2 and out.strip() == "nack" and
             dmm_state(g) == info,
             "PLUG_PAGES beyond requested-guest-size (2 of the guest's "
             "unplugged pages, %s): NACK, nothing changed" % " ".join(off),
             out)
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals", 300)
        r.tap("dmm_memfill (the pages named in the bad lists)", 0, out)
        r.ok("pattern intact" in out,
             "the pages named in malformed lists kept their content")
        r.ok(g.sysfs("status") == "idle" and
             int(g.sysfs("current_size")) == GiB - 4 * MiB,
             "the driver is unaffected: idle at 1020 MiB")
