# SPDX-License-Identifier: GPL-2.0
"""Live migration of guests with virtio-dmm memory."""

import os
import re
import subprocess
import sys
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Guest
from harness import suite
from helpers import (DMM_STATE, boot_memtotal, check_sizes, grow,
                     grown_guest, gtap, resize, wait_guest_exit,
                     wait_guest_file)

TOP = dmmvm.TOP
# suite_migrate measures what the destination's unplug discards
NO_FPR = "free-page-reporting=off"


def _ram_stats(g):
    """The source's RAM figures of its last migration (query-migrate)."""
    return g.qmp.cmd("query-migrate")["ram"]


def _grow_and_fill(r, src):
    """Grow @src to 1.5 GiB and hold 1 GiB filled (512 MiB of it in the
    region) until /tmp/go exists."""
    grow(r, src, 1536 * MiB, "source: grow to 1.5 GiB")
    src.run("dmm_memfill -s %d -r %d -w /tmp/go >/tmp/fill.log 2>&1 &"
            % (GiB, 512 * MiB))
    out = wait_guest_file(src, "/tmp/fill.log", "waiting for")
    r.ok("waiting for" in out, "source: 1 GiB filled and held", out)


@suite
def suite_migrate(r):
    """Live migration with memory plugged: state and data survive."""
    mig = "unix:" + os.path.join(dmmvm.RUN, "migrate.sock")
    src = Guest("mig-src", mem="512M", maxmem="4G", region="3G",
                dev_opts=NO_FPR).start()
    dst = None
    try:
        _grow_and_fill(r, src)

        dst = Guest("mig-dst", mem="512M", maxmem="4G", region="3G",
                    dev_opts=NO_FPR, incoming=mig).start()
        failures0 = int(src.counter("plug_failures"))
        t0 = time.time()
        src.migrate_to(dst)
        secs = time.time() - t0
        ram = _ram_stats(src)
        pages = ram["normal"] + ram["duplicate"]
        r.figure("migration of a 1.5 GiB guest (1 GiB plugged of a 3 GiB "
                 "region, filled)", "%.1f s, %d MiB transferred, %d pages "
                 "sent (%d zero)" % (secs, ram["transferred"] // MiB, pages,
                                     ram["duplicate"]))
        # Issue 12: boot RAM, the plugged blocks, firmware and video RAM
        # are under 1.75 GiB of pages; without the RamDiscardManager the
        # unplugged 2 GiB went too, as zero pages (3.5 GiB in all).
        r.ok(pages * 4096 < 1792 * MiB,
             "the 2 GiB unplugged were not migrated (%d MiB of pages sent)"
             % (pages * 4096 // MiB), ram)
        src.stop()
        r.ok(failures0 == 0, "source: no plug failure before the migration")
        info = dst.dmm_info()
        r.ok(info["size"] == GiB and
             info["requested-guest-size"] == 1536 * MiB,
             "destination: QMP shows 1 GiB plugged of 1.5 GiB requested",
             info)
        r.ok(dst.sysfs("plugged_size") == str(GiB) and
             dst.sysfs("status") == "idle",
             "destination: the guest still has 1 GiB plugged, idle")
        gtap(r, dst, "dmm_state_check %d" % GiB)
        dst.run("touch /tmp/go")
        out = wait_guest_file(dst, "/tmp/fill.log", "# Totals")
        r.tap("dmm_memfill (across migration)", 0, out)
        # its gigabyte free before the shrink: blocks still held by the
        # exiting program are busy, and the driver takes boot pages in
        # their place, which this destination never populated (zero pages
        # were not sent)
        r.ok(wait_guest_exit(dst, "dmm_memfill"),
             "destination: dmm_memfill has exited")

        # free page reporting is off on these guests: it would discard the
        # freed gigabyte 2 s after the exit, before or during the shrink,
        # and the RSS would fall without the unplug discarding anything
        # (on a slower machine it fell by 529 MiB, by 21 MiB 4 s later)
        rss = dst.rss()
        grow(r, dst, 512 * MiB, "destination: shrink to 512 MiB")
        time.sleep(0.5)
        r.ok(rss - dst.rss() >= 768 * MiB,
             "destination: QEMU RSS fell by %d MiB" % ((rss - dst.rss())
                                                      // MiB))
        grow(r, dst, 2 * GiB, "destination: grow to 2 GiB")

        # A resize asked for during a migration: the device answers BUSY,
        # the driver backs off and finishes on the next destination.
        dst2 = Guest("mig-dst2", mem="512M", maxmem="4G", region="3G",
                     dev_opts=NO_FPR,
                     incoming=mig.replace(".sock", "2.sock")).start()
        dst.qmp.cmd("migrate-set-parameters", max_bandwidth=64 * MiB)
        dst.qmp.cmd("migrate", uri=dst2.incoming)
        time.sleep(1)
        dst.set_requested(3 * GiB)
        busy_seen = False
        while dst.qmp.cmd("query-migrate").get("status") == "active":
            busy_seen = busy_seen or int(dst.counter("plug_failures")) > 0
            time.sleep(0.2)
        r.ok(busy_seen and dst.dmm_info()["size"] == 1536 * MiB,
             "during migration: the device refused to plug (BUSY), nothing "
             "changed")
        dst.stop()
        try:
            secs = dst2.wait_plugged(2560 * MiB, timeout=180)
            r.ok(True, "after migration: the driver retried and reached "
                 "3 GiB on the new destination (%.1f s)" % secs)
        except dmmvm.AgentError as e:
            r.ok(False, "after migration: the driver retried and reached "
                 "3 GiB on the new destination", e)
        r.ok(dst2.dmm_info()["size"] == 2560 * MiB,
             "new destination: QMP shows 2.5 GiB plugged")
        gtap(r, dst2, "dmm_state_check %d" % (2560 * MiB))
        dst2.stop()
    finally:
        src.stop()
        if dst:
            dst.stop()


def _postcopy_on(g):
    g.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "postcopy-ram", "state": True}])


@suite
def suite_migrate_postcopy(r):
    """Issue 12: a migration switched to postcopy keeps memory and state;
    resizes are BUSY until it completes."""
    mig = "unix:" + os.path.join(dmmvm.RUN, "migrate-pc.sock")
    # blocks carry their memory map: on the destination it faults in from
    # the source with the rest of the block
    mom = "memory_hotplug.memmap_on_memory=1"
    src = Guest("pc-src", mem="512M", maxmem="4G", region="3G",
                append=mom).start()
    dst = None
    try:
        _grow_and_fill(r, src)
        r.ok(src.counter("blocks_memmap_on_memory") == "8",
             "source: the 8 blocks carry their memory map")
        dst = Guest("pc-dst", mem="512M", maxmem="4G", region="3G",
                    append=mom, incoming=mig).start()
        try:
            _postcopy_on(src)
            _postcopy_on(dst)
        except dmmvm.QMPError as e:
            r.skip("postcopy migration", "this host cannot: %s" % e)
            return
        src.qmp.cmd("migrate-set-parameters", max_bandwidth=32 * MiB)
        src.qmp.cmd("migrate", uri=dst.incoming)
        time.sleep(2)
        src.qmp.cmd("migrate-start-postcopy")
        src.qmp.cmd("migrate-set-parameters", max_bandwidth=1 << 40)
        seen, sizes, deadline = set(), set(), time.time() + 300
        asked = False
        while time.time() < deadline:
            st = src.qmp.cmd("query-migrate").get("status")
            seen.add(st)
            if st == "postcopy-active":
                # the destination runs; its device must not change state
                if not asked:
                    dst.set_requested(2 * GiB)
                    asked = True
                sizes.add(dst.dmm_info()["size"])
            if st in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.1)
        r.ok(st == "completed" and "postcopy-active" in seen,
             "the migration went through postcopy and completed",
             sorted(seen))
        src.stop()
        r.ok(asked and sizes == {GiB},
             "during postcopy: 2 GiB asked of the destination, its device "
             "stayed at 1 GiB plugged", sorted(sizes))
        busy = int(dst.counter("plug_failures")) > 0
        try:
            secs = dst.wait_plugged(1536 * MiB, timeout=180)
            r.ok(True, "after postcopy: the driver reached 2 GiB "
                 "(%.1f s)" % secs)
        except dmmvm.AgentError as e:
            r.ok(False, "after postcopy: the driver reached 2 GiB", e)
        r.diag("plug refusals seen by the driver during postcopy: %s"
               % ("yes" if busy else "none (asked after the switch "
                  "ended)"))
        gtap(r, dst, "dmm_state_check %d" % (1536 * MiB))
        dst.run("touch /tmp/go")
        out = wait_guest_file(dst, "/tmp/fill.log", "# Totals")
        r.tap("dmm_memfill (across postcopy)", 0, out)
        r.ok(wait_guest_exit(dst, "dmm_memfill"),
             "destination: dmm_memfill has exited")
        grow(r, dst, 512 * MiB, "after postcopy: shrink to the boot size")
        r.ok(dst.counter("blocks_memmap_on_memory") == "0" and
             dst.dmm_info()["size"] == 0,
             "after postcopy: the blocks and their memory maps are gone")
    finally:
        src.stop()
        if dst:
            dst.stop()


@suite
def suite_fine_migrate(r):
    """Issue 3: migrate a guest with a partial block and unplugged pages."""
    mig = "unix:" + os.path.join(dmmvm.RUN, "migrate-fine.sock")
    src = grown_guest("finemig-src").start()
    dst = None
    try:
        mt0 = boot_memtotal(src)
        odd = GiB + 200 * MiB + 3 * 4096
        resize(r, src, odd, "source: shrink to 1224 MiB + 12 KiB")
        before = src.dmm_info()
        r.ok(before["size"] % (128 * MiB) and
             before["unplugged-size"],
             "source: a partially plugged block and unplugged pages",
             before)
        src.run("dmm_memfill -s %d -c -w /tmp/go >/tmp/fill.log 2>&1 &"
                % (256 * MiB))
        wait_guest_file(src, "/tmp/fill.log", "waiting for", 300)
        dst = Guest("finemig-dst", mem="1G", maxmem="4G", region="2G",
                    incoming=mig).start()
        src.migrate_to(dst)
        src.stop()
        after = dst.dmm_info()
        r.ok(all(after[k] == before[k] for k in DMM_STATE),
             "destination: QMP shows the same blocks, sub-blocks and pages",
             "before %s\nafter %s" % (before, after))
        check_sizes(r, dst, odd, mt0, "destination")
        gtap(r, dst, "dmm_state_check %d" % before["size"])
        # the migrated bitmaps must let every request through
        resize(r, dst, 700 * MiB, "destination: shrink to 700 MiB")
        resize(r, dst, 1536 * MiB + 4096, "destination: grow to 1.5 GiB "
               "+ 4 KiB")
        check_sizes(r, dst, 1536 * MiB + 4096, mt0, "destination 1.5 GiB")
        dst.run("touch /tmp/go")
        out = wait_guest_file(dst, "/tmp/fill.log", "# Totals", 300)
        r.tap("dmm_memfill (across migration and resizes)", 0, out)
    finally:
        src.stop()
        if dst:
            dst.stop()


@suite
def suite_stress_migrate_smoke(r):
    """Issue 7: scripts/stress-migrate.py --smoke: 2 live migrations with
    free page reporting, hints, resizes and a pattern checker running."""
    try:
        p = subprocess.run([sys.executable,
                            os.path.join(TOP, "scripts", "stress-migrate.py"),
                            "--smoke"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=600)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace"), -1
    m = re.search(r"stress-migrate: migrations (\d+)/(\d+) .*crashes (\d+), "
                  r"corrupted pages (\d+), checker rounds (\d+) passes "
                  r"(\d+)", out)
    if not r.ok(m is not None, "stress-migrate --smoke ran to its summary "
                "(exit %d)" % rc, out[-3000:]):
        return
    done, want, crashes, corrupt, rounds, passes = map(int, m.groups())
    r.diag(m.group(0))
    r.ok(done == want, "smoke: %d of %d migrations completed" % (done, want),
         out[-3000:])
    r.ok(crashes == 0, "smoke: no guest crash (%d)" % crashes, out[-3000:])
    r.ok(corrupt == 0 and rc == 0, "smoke: the checker found no corrupted "
         "page (%d)" % corrupt, out[-3000:])
    r.ok(rounds >= 4 and passes >= 20, "smoke: the checker ran all along "
         "(%d churn rounds, %d passes)" % (rounds, passes))
