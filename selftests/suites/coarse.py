# SPDX-License-Identifier: GPL-2.0
"""Issue 2: grow and shrink by whole blocks."""

import os
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Guest, QMPError
from harness import suite
from helpers import (DEBUGFS_DMM, dmm_state, grow, gtap, resize,
                     rmmod_dmm, wait_guest_file)


def bad_requested_sizes(g):
    """(value, why) pairs of requested-guest-size that QMP must refuse."""
    boot, region = g.mem, g.region
    return [
        (boot + MiB, "not a multiple of the block size above boot size"),
        (boot + region + g.block_size, "above boot size plus region"),
        (boot - g.block_size, "below boot size"),
        (-1, "negative"),
        ("2G", "a string"),
        ("lots", "garbage"),
        (1.5, "a fraction"),
    ]


def check_bad_qmp_values(r, g):
    before = dmm_state(g)
    sysfs_before = g.sysfs("requested_size")
    for value, why in bad_requested_sizes(g):
        try:
            g.qmp.cmd("qom-set", path="dmm0",
                      property="requested-guest-size", value=value)
            r.ok(False, "qmp: requested-guest-size %r (%s) refused"
                 % (value, why), "qom-set succeeded")
            continue
        except QMPError as e:
            msg = e.desc
        after = dmm_state(g)
        r.ok(after == before and msg,
             "qmp: requested-guest-size %r (%s) refused, nothing changed"
             % (value, why), "error %r\nbefore %s\nafter %s"
             % (msg, before, after))
        r.diag("  -> %s" % msg)
    time.sleep(0.5)
    out = g.qmp.hmp("qom-set dmm0 requested-guest-size 513M")
    r.ok("not boot-size" in out and dmm_state(g) == before,
         "hmp: qom-set requested-guest-size 513M refused, nothing changed",
         out)
    # requested-size is virtio-mem's: region memory, at most the memdev
    out = g.qmp.hmp("qom-set dmm0 requested-size %d"
                    % (g.region + g.block_size))
    r.ok("exceeds the memdev size" in out and dmm_state(g) == before,
         "hmp: qom-set requested-size beyond the region refused, nothing "
         "changed", out)
    r.ok(g.sysfs("requested_size") == sysfs_before,
         "qmp: guest saw no change after refused values")


def size_events(g, size, wait=3.0):
    """MEMORY_DEVICE_SIZE_CHANGE events for dmm0 with @size, waiting."""
    deadline = time.time() + wait
    while True:
        evs = [e for e in g.qmp.poll_events(0.2)
               if e.get("event") == "MEMORY_DEVICE_SIZE_CHANGE" and
               e["data"].get("id") == "dmm0"]
        if any(e["data"]["size"] == size for e in evs) or \
                time.time() > deadline:
            return evs


@suite
def suite_coarse(r):
    """Issue 2: grow and shrink by whole blocks, bad input, reboot, unload."""
    with Guest("coarse", mem="512M", maxmem="4G", region="3G",
               pages=False, dev_opts="sub-blocks=off") as g:
        boot = g.mem
        info = g.dmm_info()
        r.ok(info["size"] == 0 and info["boot-size"] == boot and
             info["max-size"] == g.region and
             info["block-size"] == g.block_size,
             "boot: QMP shows region %d MiB, boot %d MiB, nothing plugged"
             % (g.region // MiB, boot // MiB), info)
        r.ok(int(g.sysfs("region_addr"), 0) == info["memaddr"] and
             int(g.sysfs("region_size")) == info["max-size"] and
             int(g.sysfs("boot_size")) == boot,
             "boot: guest sysfs agrees with QMP on region and boot size")
        gtap(r, g, "dmm_sysfs_test")
        gtap(r, g, "dmm_state_check 0")

        # 1. grow past boot size
        m0 = g.meminfo()["MemTotal"]
        rss0 = g.rss()
        secs = grow(r, g, 2 * GiB, "grow to 2 GiB")
        if secs is not None:
            r.figure("grow 512 MiB -> 2 GiB (guest plugged and idle)",
                     "%.2f s" % secs)
        m1 = g.meminfo()["MemTotal"]
        added = 2 * GiB - boot
        r.ok(added * 0.97 <= m1 - m0 <= added,
             "grow to 2 GiB: MemTotal grew by %d MiB (of %d MiB plugged)"
             % ((m1 - m0) // MiB, added // MiB), "MemTotal %d -> %d"
             % (m0, m1))
        hmp = g.qmp.hmp("info memory-devices")
        fields = dict((k.strip(), v.strip()) for k, v in
                      (line.split(":", 1) for line in hmp.splitlines()
                       if ":" in line))
        r.ok('Memory device [virtio-dmm]: "dmm0"' in hmp and
             fields.get("size") == str(added) and
             fields.get("requested-size") == str(added) and
             fields.get("requested-guest-size") == str(2 * GiB) and
             fields.get("guest-size") == str(2 * GiB),
             "grow to 2 GiB: HMP info memory-devices agrees", hmp)
        evs = size_events(g, added)
        r.ok(any(e["data"]["size"] == added for e in evs),
             "grow to 2 GiB: MEMORY_DEVICE_SIZE_CHANGE reports %d MiB"
             % (added // MiB), evs)

        # 2. the new memory holds data
        gtap(r, g, "dmm_memfill -l %d -r %d" % (96 * MiB, GiB), 600)
        rss1 = g.rss()
        r.diag("QEMU RSS: %d MiB at boot, %d MiB after fill"
               % (rss0 // MiB, rss1 // MiB))

        # 3. shrink back
        g.qmp.events.clear()
        secs = grow(r, g, boot, "shrink to 512 MiB")
        if secs is not None:
            r.figure("shrink 2 GiB -> 512 MiB (guest plugged and idle)",
                     "%.2f s" % secs)
        m2 = g.meminfo()["MemTotal"]
        r.ok(abs(m2 - m0) <= 8 * MiB,
             "shrink to 512 MiB: MemTotal back to %d MiB" % (m0 // MiB),
             "MemTotal %d -> %d -> %d" % (m0, m1, m2))
        time.sleep(0.5)
        rss2 = g.rss()
        r.figure("QEMU RSS after fill -> after shrink",
                 "%d MiB -> %d MiB" % (rss1 // MiB, rss2 // MiB))
        r.ok(rss1 - rss2 >= GiB,
             "shrink to 512 MiB: QEMU RSS fell by %d MiB (>= 1024)"
             % ((rss1 - rss2) // MiB))
        evs = size_events(g, 0)
        r.ok(any(e["data"]["size"] == 0 for e in evs),
             "shrink to 512 MiB: MEMORY_DEVICE_SIZE_CHANGE reports 0", evs)
        # issue 14: the program that filled the blocks has exited, so most
        # of them are free and are removed without being vacated (cleared
        # page by page through the allocator) first
        c = g.counters()
        r.ok(int(c["blocks_removed_free"]) >= 8,
             "shrink to 512 MiB: %s of the 12 blocks removed straight away "
             "(free), %s vacated first" % (c["blocks_removed_free"],
                                           c["blocks_vacated"]))

        # 4. bad values change nothing
        check_bad_qmp_values(r, g)

        # 5. unload with memory plugged: refused, or clean
        grow(r, g, boot + 512 * MiB, "grow to 1 GiB")
        rc, out = rmmod_dmm(g, tries=1)
        if rc:
            r.diag("  rmmod refused: " + out.strip())
            r.ok(g.dmm_info()["size"] == 512 * MiB and
                 g.sysfs("status") == "idle",
                 "unload with memory plugged is refused, nothing changes")
        else:
            r.ok(g.dmm_info()["size"] == 0,
                 "unload with memory plugged gives all memory back")
            g.run("insmod /lib/modules/virtio_dmm.ko", check=True)
            g.wait_plugged(512 * MiB)

        # 5b. with nothing plugged, unload works and a reload starts over
        grow(r, g, boot, "shrink to 512 MiB before unload")
        rc, out = rmmod_dmm(g)
        r.ok(rc == 0 and g.run("test -e /sys/bus/virtio/drivers/virtio_dmm"
                               )[0] != 0,
             "unload with nothing plugged works", out)
        rc, out = g.run("insmod /lib/modules/virtio_dmm.ko")
        r.ok(rc == 0, "reload the driver", out)
        grow(r, g, boot + 512 * MiB, "after reload: grow to 1 GiB")

        # 6. reboot with memory plugged
        g.qmp.events.clear()
        g.agent.sock.sendall(b"reboot -f\n")
        g.wait_reboot()
        r.ok(True, "reboot with 512 MiB plugged: guest came back")
        try:
            g.wait_plugged(512 * MiB)
            ok = True
        except dmmvm.AgentError as e:
            ok, why = False, e
        r.ok(ok, "reboot: driver plugs back to the requested 1 GiB",
             None if ok else why)
        gtap(r, g, "dmm_state_check %d" % (512 * MiB))
        grow(r, g, 2 * GiB, "after reboot: grow to 2 GiB")
        gtap(r, g, "dmm_memfill -s %d -r %d" % (GiB, 256 * MiB), 600)
        grow(r, g, boot, "after reboot: shrink to 512 MiB")



@suite
def suite_busy_shrink(r):
    """Issue 2: a shrink that memory in use blocks backs off, loses nothing."""
    with Guest("busy", mem="512M", maxmem="4G", region="3G",
               pages=False, dev_opts="sub-blocks=off") as g:
        g.run("echo 200 > %s/retry_interval_ms" % g.sysfs_dir(), check=True)
        grow(r, g, 2 * GiB, "grow to 2 GiB")
        g.run("dmm_memfill -s %d -w /tmp/go >/tmp/fill.log 2>&1 &"
              % (1400 * MiB))
        out = wait_guest_file(g, "/tmp/fill.log", "waiting for")
        r.ok("waiting for" in out, "a program holds 1400 MiB", out)

        g.set_requested(512 * MiB)
        # sysfs does not wait for the control loop: wait until it has
        # counted a block that could not go (offlining under TCG is slow)
        # and the plugged size has stayed put for 3 s
        deadline, seen = time.time() + 120, []
        while time.time() < deadline:
            seen = (seen + [int(g.sysfs("plugged_size"))])[-4:]
            if len(seen) == 4 and len(set(seen)) == 1 and \
                    int(g.counter("unplug_failures")) + \
                    int(g.counter("floor_stops")):
                break
            time.sleep(1)
        plugged = int(g.sysfs("plugged_size"))
        r.diag("  held: plugged %d MiB, status %s, unplug_failures %s"
               % (plugged // MiB, g.sysfs("status"),
                  g.counter("unplug_failures")))
        r.ok(0 < plugged < 1536 * MiB,
             "shrink while held: partial progress (%d MiB still plugged)"
             % (plugged // MiB))
        stops = int(g.counter("unplug_failures")) + \
            int(g.counter("floor_stops"))
        r.ok(g.sysfs("status") == "busy" and stops > 0,
             "shrink while held: status busy, the blocks that could not go "
             "counted (unplug_failures + floor_stops = %d)" % stops)
        r.ok(g.dmm_info()["size"] == plugged,
             "shrink while held: QMP agrees on what is still plugged")

        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals")
        r.tap("dmm_memfill (held through the shrink)", 0, out)
        try:
            secs = g.wait_plugged(0, timeout=120)
            r.ok(True, "after release: the retry finished the shrink "
                 "(%.1f s)" % secs)
        except dmmvm.AgentError as e:
            r.ok(False, "after release: the retry finished the shrink", e)
        gtap(r, g, "dmm_state_check 0")


@suite
def suite_new_target_in_backoff(r):
    """Issue 11: a new target that comes while a pass runs into back-off
    is acted on when the pass ends, not after the back-off."""
    with Guest("newtarget", mem="512M", maxmem="4G", region="3G",
               pages=False, dev_opts="sub-blocks=off") as g:
        grow(r, g, 2 * GiB, "grow to 2 GiB")
        # a back-off far longer than the test waits
        g.run("echo 120000 > %s/retry_interval_ms" % g.sysfs_dir(),
              check=True)
        g.run("dmm_memfill -s %d -w /tmp/go >/tmp/fill.log 2>&1 &"
              % (1400 * MiB))
        out = wait_guest_file(g, "/tmp/fill.log", "waiting for")
        r.ok("waiting for" in out, "a program holds 1400 MiB", out)

        # the shrink's pass offlines block after block (seconds each under
        # TCG) until the floor stops it: send the new target as soon as
        # the first block went, while the pass still runs
        plugged = int(g.sysfs("plugged_size"))
        g.set_requested(512 * MiB)
        deadline = time.time() + 120
        while (int(g.sysfs("plugged_size")) == plugged and
               time.time() < deadline):
            time.sleep(0.1)
        c0 = g.counters()
        g.set_requested(2 * GiB)
        mid_pass = c0["floor_stops"] == "0" and c0["unplug_failures"] == "0"
        r.ok(mid_pass, "the new target came while the shrink's pass ran "
             "(no block stopped yet)", c0)
        # the guest's wait loop is slow under TCG: time it on the host
        try:
            secs = g.wait_plugged(2 * GiB - 512 * MiB, timeout=90)
            r.ok(secs < 90, "grown back to 2 GiB %.1f s after the new "
                 "target, not after the 120 s back-off" % secs)
        except dmmvm.AgentError as e:
            r.ok(False, "grown back to 2 GiB before the 120 s back-off", e)
        stops = int(g.counter("floor_stops")) + \
            int(g.counter("unplug_failures"))
        r.ok(stops > 0, "the pass did end in back-off (%d blocks stopped)"
             % stops)
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals")
        r.tap("dmm_memfill (held through both resizes)", 0, out)


def block_states(g):
    """The driver's count of blocks per state (debugfs blocks)."""
    out = g.out("cat %s/virtio*/blocks" % DEBUGFS_DMM)
    st = dict(ln.split(None, 1) for ln in out.splitlines() if ln.strip())
    if "consistent" not in st:
        raise AssertionError("debugfs blocks: unexpected output %r" % out)
    return st


@suite
def suite_block_states(r):
    """Issue 11: the driver's block states follow plugs, sub-blocks and an
    administrator's offline and online, and its own check agrees."""
    with Guest("blkstate", mem="1G", maxmem="4G", region="2G") as g:
        want = {"unplugged": "16", "online": "0", "online_partial": "0"}
        st = block_states(g)
        r.ok(all(st[k] == v for k, v in want.items()) and
             st["consistent"] == "yes", "at boot: 16 blocks unplugged", st)
        # 10 whole blocks and 22 sub-blocks of an 11th
        resize(r, g, 2 * GiB + 300 * MiB, "grow to 2348 MiB")
        st = block_states(g)
        r.ok(st["online"] == "10" and st["online_partial"] == "1" and
             st["unplugged"] == "5" and st["consistent"] == "yes",
             "2348 MiB: 10 blocks online, 1 online and partial, 5 unplugged",
             st)
        resize(r, g, GiB + 256 * MiB, "shrink to 1280 MiB")
        st = block_states(g)
        r.ok(st["online"] == "2" and st["online_partial"] == "0" and
             st["consistent"] == "yes", "1280 MiB: 2 blocks online", st)
        # an administrator takes the last Linux memory block offline
        mem = g.out("ls /sys/devices/system/memory | grep '^memory' | "
                    "sort -V | tail -n 1").strip()
        state = "/sys/devices/system/memory/%s/state" % mem
        rc, out = g.run("echo offline > %s && cat %s" % (state, state))
        st = block_states(g)
        r.ok(rc == 0 and "offline" in out and st["online"] == "1" and
             st["offline"] == "1" and st["consistent"] == "yes",
             "%s offlined by hand: the driver counts 1 block offline" % mem,
             "%s\n%s" % (out, st))
        rc, out = g.run("echo online_movable > %s && cat %s" % (state, state))
        st = block_states(g)
        r.ok(rc == 0 and st["online"] == "2" and st["offline"] == "0" and
             st["consistent"] == "yes",
             "onlined again: 2 blocks online", "%s\n%s" % (out, st))
        resize(r, g, GiB, "shrink to boot size")
        st = block_states(g)
        r.ok(st["unplugged"] == "16" and st["consistent"] == "yes",
             "back at boot size: 16 blocks unplugged", st)
        gtap(r, g, "dmm_state_check %d" % 0)


def _memmap_state(r, g, plugged, blocks, sb_plugged, label):
    """The driver's and Linux's view after a resize of a guest whose
    blocks carry their memory map: @blocks of them, @sb_plugged bytes in
    partially plugged blocks, @plugged bytes in all."""
    st = block_states(g)
    c = g.counters()
    r.ok(c["blocks_memmap_on_memory"] == str(blocks) and
         c["sub_block_plugged_size"] == str(sb_plugged) and
         g.sysfs("plugged_size") == str(plugged) and
         g.dmm_info()["size"] == plugged and st["consistent"] == "yes",
         "%s: %d blocks carry their memory map, %d MiB in partial blocks, "
         "%d MiB plugged" % (label, blocks, sb_plugged // MiB, plugged // MiB),
         "%s\n%s" % (c, st))
    gtap(r, g, "dmm_state_check %d" % plugged)


@suite
def suite_memmap_on_memory(r):
    """Issue 14: with memory_hotplug.memmap_on_memory=1 whole blocks carry
    their memory map; the map's sub-block leaves last, with the block."""
    memmap = 2 * MiB    # 128 MiB of 64-byte struct pages
    # without pages, so that a shrink moves the program's pages out of
    # the blocks it fills (with pages, pages stand in: suite fine-load)
    with Guest("memmap", mem="512M", maxmem="4G", region="2G",
               append="memory_hotplug.memmap_on_memory=1", pages=False,
               dev_opts="free-page-reporting=off") as g:
        probe = g.out("dmesg | grep 'virtio_dmm.*region'")
        r.ok("memmap on memory" in probe,
             "probe: the driver adds blocks with their memory map", probe)
        mt0 = g.meminfo()["MemTotal"]
        grow(r, g, 1536 * MiB, "grow by 1 GiB")
        mt = g.meminfo()["MemTotal"]
        # the map is not managed memory: each block adds 126 MiB
        r.ok(mt - mt0 == 8 * (128 * MiB - memmap),
             "grow by 1 GiB: MemTotal grew by %d KiB (8 blocks less their "
             "memory maps: %d KiB)" % ((mt - mt0) // 1024,
                                       8 * (128 * MiB - memmap) // 1024))
        _memmap_state(r, g, GiB, 8, 0, "grow by 1 GiB")

        g.run("dmm_memfill -s %d -w /tmp/go >/tmp/fill.log 2>&1 &"
              % (320 * MiB))
        out = wait_guest_file(g, "/tmp/fill.log", "waiting for")
        r.ok("waiting for" in out, "a program holds 320 MiB", out)
        vacated0 = int(g.counter("blocks_vacated"))
        # the last block down to its map's sub-block, then without it
        resize(r, g, 1536 * MiB - 126 * MiB, "126 MiB less")
        _memmap_state(r, g, 898 * MiB, 8, memmap,
                      "126 MiB less: the last block keeps its map")
        resize(r, g, 1408 * MiB, "2 MiB less")
        _memmap_state(r, g, 896 * MiB, 7, 0,
                      "2 MiB less: the block and its map are gone")
        # whole blocks holding the program's pages are vacated around
        # their maps
        resize(r, g, 640 * MiB, "shrink to one block")
        _memmap_state(r, g, 128 * MiB, 1, 0, "shrink to one block")
        vacated = int(g.counter("blocks_vacated")) - vacated0
        r.ok(vacated > 0, "shrink to one block: %d blocks were vacated "
             "(the program's pages migrated)" % vacated)
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals")
        r.tap("dmm_memfill (held through the shrinks)", 0, out)
        resize(r, g, 512 * MiB, "shrink to the boot size")
        _memmap_state(r, g, 0, 0, 0, "boot size")

        # less than a block is added without: its first sub-block may go
        resize(r, g, 522 * MiB, "grow by 10 MiB")
        _memmap_state(r, g, 10 * MiB, 0, 10 * MiB,
                      "10 MiB: a partial block carries no map")
        resize(r, g, 512 * MiB, "back to the boot size")
        _memmap_state(r, g, 0, 0, 0, "back to the boot size")
        _memmap_refused(r, g)


def _memmap_refused(r, g):
    """The device refuses the map's UNPLUG_SB (BUSY while a migration
    runs) after Linux let go of the block: the block goes back to Linux
    with its map (dmm_sb_remove_memmap()), and leaves on the destination
    once the migration is over."""
    mig = "unix:" + os.path.join(dmmvm.RUN, "memmap-mig.sock")
    resize(r, g, 640 * MiB, "one block more")
    resize(r, g, 514 * MiB, "down to its map's sub-block")
    _memmap_state(r, g, 2 * MiB, 1, 2 * MiB, "the map's sub-block left")
    dst = Guest("memmap-dst", mem="512M", maxmem="4G", region="2G",
                append="memory_hotplug.memmap_on_memory=1", pages=False,
                dev_opts="free-page-reporting=off", incoming=mig).start()
    try:
        # slow enough for the driver to try while it runs
        g.qmp.cmd("migrate-set-parameters", max_bandwidth=8 * MiB)
        g.qmp.cmd("migrate", uri=dst.incoming)
        time.sleep(1)
        g.set_requested(512 * MiB)
        deadline, tried = time.time() + 30, False
        while time.time() < deadline and not tried:
            tried = g.sysfs("requested_size") == str(512 * MiB) and \
                g.sysfs("status") == "busy"
            time.sleep(0.2)
        running = g.qmp.cmd("query-migrate").get("status") == "active"
        # busy without this warning: Linux let go of the block, the device
        # refused, and the driver added the block back
        warned = g.out("dmesg | grep -c 'memory map all it has plugged, "
                       "failed' || true").strip()
        r.ok(tried and running and warned == "0",
             "during migration: Linux let go of the block, the device "
             "refused its map's sub-block (busy)", "tried %s, migration "
             "running %s, removal failures %s" % (tried, running, warned))
        if running:
            _memmap_state(r, g, 2 * MiB, 1, 2 * MiB,
                          "refused: the block is back in Linux with its map")
        g.qmp.cmd("migrate-set-parameters", max_bandwidth=1 << 40)
        g.wait_migration()
        g.stop()
        try:
            dst.wait_plugged(0, timeout=120)
        except dmmvm.AgentError as e:
            r.diag("destination: %s" % e)
        _memmap_state(r, dst, 0, 0, 0,
                      "destination: the block and its map are gone")
    finally:
        dst.stop()
