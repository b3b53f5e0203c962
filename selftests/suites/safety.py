# SPDX-License-Identifier: GPL-2.0
"""Safety: configurations the driver refuses, page poisoning, the test
hooks, hostile sysfs values, removal during compaction, a guest touching
unplugged memory.
"""

import re
import time

from dmmlib.dmmvm import GiB, MiB, Guest
from harness import suite
from helpers import (DEBUGFS_DMM, TEST_HOOKS, ask_events, debugfs_files,
                     debugfs_write, dmm_state, gtap, hook_files, last_ask,
                     resize)


@suite
def suite_bad_config(r):
    """Issue 2: a device configuration the driver cannot use adds nothing."""
    # 64 MiB blocks are valid for the device but smaller than a Linux memory
    # block on x86-64 (128 MiB): the driver must refuse the device.
    with Guest("badcfg", mem="512M", maxmem="2G", region="1G",
               block_size="64M", requested="1G") as g:
        rc, out = g.run("dmesg | grep virtio_dmm")
        r.diag(out.strip())
        r.ok("block size 0x4000000" in out and "memory block size" in out,
             "bad block size: dev_err names the value")
        rc, _ = g.run("ls /sys/bus/virtio/drivers/virtio_dmm/virtio*")
        r.ok(rc != 0, "bad block size: the driver did not bind")
        rc, out = g.run("grep -c virtio_dmm /proc/iomem")
        r.ok(out.strip() == "0", "bad block size: no memory was added", out)
        time.sleep(1)
        r.ok(g.dmm_info()["size"] == 0,
             "bad block size: the device has nothing plugged")


@suite
def suite_page_poison(r):
    """Free page reporting stays off when the guest poisons free pages."""
    # page_poison=1: the kernel fills free pages with a pattern and checks
    # it when it hands them out again.  A reported page comes back from
    # the device zeroed, which the check would call corruption.
    with Guest("poison", mem="1G", maxmem="4G", region="1G",
               append="page_poison=1") as g:
        reported0 = int(g.counter("reported_bytes"))
        # allocate, touch and free 512 MiB twice, waiting in between for
        # the framework (2 s delay) to report what was freed
        for i in range(2):
            gtap(r, g, "dmm_memfill -s %d" % (512 * MiB), 600)
            time.sleep(6)
        reported = int(g.counter("reported_bytes")) - reported0
        r.ok(reported == 0, "page_poison=1: no free page reported "
             "(%d MiB were)" % (reported // MiB))
        r.ok(g.dmm_info()["reported-size"] == 0,
             "page_poison=1: the device discarded no free page")
        msg = [ln for ln in g.run("dmesg")[1].splitlines()
               if "free page reporting" in ln]
        r.ok(any("poison" in ln for ln in msg),
             "the driver says why it does not report free pages",
             "\n".join(msg))


def wait_bound(g, timeout=60):
    """Wait until virtio_dmm is bound to the device again (after insmod or
    a PCI rescan); True if it is."""
    rc, _ = g.run("t=0; while [ $t -lt %d ]; do ls -d /sys/bus/virtio/"
                  "drivers/virtio_dmm/virtio*/dmm >/dev/null 2>&1 && exit 0;"
                  " usleep 50000; t=$((t+1)); done; exit 1" % (timeout * 20),
                  timeout + 30)
    return rc == 0


HOOK_FILES = ["hint_request", "page_request", "touch_region"]


@suite
def suite_test_hooks(r):
    """Security: the debugfs request injectors and touch_region exist only
    with the module parameter test_hooks=1, read-only after load."""
    with Guest("test-hooks", mem="512M", maxmem="2G", region="1G") as g:
        param = "/sys/module/virtio_dmm/parameters/test_hooks"

        def value():
            return g.run("cat " + param)[1].strip()

        out = value()
        r.ok(out == "N", "loaded without parameters: test_hooks reads N",
             out)
        files = debugfs_files(g)
        r.ok(files == ["blocks", "counters"],
             "without test_hooks: only blocks and counters in the device's "
             "debugfs directory, no page_request, hint_request or "
             "touch_region",
             files)
        rc, out = g.run("echo 1 > " + param)
        r.ok(rc != 0 and value() == "N" and not hook_files(g),
             "test_hooks cannot be set after load (read-only)", out)
        rc, out = g.run("rmmod virtio_dmm && insmod "
                        "/lib/modules/virtio_dmm.ko test_hooks=1")
        r.ok(rc == 0 and wait_bound(g) and value() == "Y",
             "insmod virtio_dmm.ko test_hooks=1: loaded, test_hooks reads Y",
             out)
        files = hook_files(g)
        r.ok(files == HOOK_FILES,
             "with test_hooks=1: %s in the device's debugfs directory"
             % ", ".join(HOOK_FILES), files)
        rc, out = g.run("dmesg | grep 'test hooks'")
        r.ok(rc == 0 and "test_hooks=1" in out,
             "with test_hooks=1: the kernel log says so", out)
        rc, out = g.run("rmmod virtio_dmm && insmod "
                        "/lib/modules/virtio_dmm.ko")
        r.ok(rc == 0 and wait_bound(g) and
             debugfs_files(g) == ["blocks", "counters"],
             "reloaded without the parameter: the hooks are gone", out)


@suite
def suite_sysfs_bad_values(r):
    """Security: huge and garbage values in every writable sysfs file fail
    with EINVAL and change nothing; ask_size sends no request."""
    # auto-grant: a bad ask_size that reached the device would be granted
    # and show as a new requested-guest-size
    with Guest("sysfs-bad", mem="512M", maxmem="2G", region="1G",
               dev_opts="auto-grant=on") as g:
        d = g.sysfs_dir()
        before = dmm_state(g)
        g.qmp.events.clear()
        gtap(r, g, "dmm_sysfs_bad")
        evs = ask_events(g, 1)
        after = dmm_state(g)
        r.ok(after == before,
             "bad sysfs values: QMP requested-guest-size %d MiB and the "
             "device's state unchanged"
             % (after["requested-guest-size"] // MiB),
             "before %s\nafter %s" % (before, after))
        r.ok(not evs, "bad sysfs values: no VIRTIO_DMM_ASK event (no "
             "request, neither for memory nor to shrink)", evs)
        r.ok(g.counter("asks_sent") == "0" and last_ask(g) == "0 none",
             "bad sysfs values: the guest sent no request (asks_sent %s, "
             "last_ask %s)" % (g.counter("asks_sent"), last_ask(g)))
        # the largest valid size is still accepted and granted as it is
        top = g.mem + g.region
        g.qmp.events.clear()
        rc, out = g.run("echo %d > %s/ask_size" % (top, d))
        evs = ask_events(g, 1)
        r.ok(rc == 0 and len(evs) == 1 and
             evs[0]["asked-guest-size"] == top and
             evs[0]["result"] == "granted" and
             g.dmm_info()["requested-guest-size"] == top,
             "ask_size of boot size + region (%d MiB, the largest valid): "
             "granted as asked" % (top // MiB), "%s\n%s" % (out, evs))
        g.set_requested(g.mem)


def pci_of_dmm(g):
    """The PCI address of the virtio-dmm device (0000:00:NN.N)."""
    return g.out("basename $(readlink -f /sys/bus/virtio/drivers/virtio_dmm/"
                 "virtio*/..)").strip()


@suite
def suite_remove_compaction(r):
    """Security: removing the driver (rmmod, PCI remove) while compaction
    migrates its unplugged pages leaves no page isolated behind."""
    # single pages only: ranges are not movable, compaction would have
    # nothing of ours to migrate
    with Guest("remove-compact", mem="1G", maxmem="2G", region="1G",
               dev_opts="free-page-reporting=off",
               append="virtio_dmm.page_ranges=0") as g:
        mt0 = g.meminfo()["MemTotal"]
        stop = "/tmp/compact.stop"
        how = ["rmmod", "rmmod", "PCI remove", "rmmod"]
        moved = 0

        def migrations():
            st = dict(ln.split() for ln in g.out(
                "grep -E '^(balloon_migrate|pgmigrate_fail) ' /proc/vmstat"
            ).splitlines())
            return int(st["balloon_migrate"]), int(st["pgmigrate_fail"])

        for i, way in enumerate(how):
            label = "round %d (%s)" % (i + 1, way)
            if resize(r, g, 384 * MiB, "%s: unplug 640 MiB as pages"
                      % label) is None:
                return
            vm0 = migrations()
            pci = pci_of_dmm(g)
            # two loops: compaction keeps isolating pages on both vCPUs
            g.run("rm -f %s; for n in 1 2; do (while [ ! -e %s ]; do echo 1 >"
                  " /proc/sys/vm/compact_memory; done) >/dev/null 2>&1 & done"
                  % (stop, stop))
            time.sleep(0.3)
            if way == "rmmod":
                rc, out = g.run("rmmod virtio_dmm", 300)
            else:
                rc, out = g.run("echo 1 > /sys/bus/pci/devices/%s/remove"
                                % pci, 300)
            g.run("touch %s; sleep 1" % stop)
            vm1 = migrations()
            moved += vm1[0] - vm0[0]
            info = g.dmm_info()
            vmstat = dict(ln.split() for ln in g.out(
                "grep balloon_ /proc/vmstat").splitlines())
            mt = g.meminfo()["MemTotal"]
            r.diag("  %s: unplugged pages migrated %d, migrations failed %d"
                   " (refused while the device went away); %s" % (
                       label, vm1[0] - vm0[0], vm1[1] - vm0[1],
                       " ".join("%s %s" % kv
                                for kv in sorted(vmstat.items()))))
            r.ok(rc == 0 and info["unplugged-size"] == 0 and
                 info["guest-size"] == GiB,
                 "%s during compaction: done, the device has every page "
                 "back" % label, "%s\n%s" % (out, info))
            r.ok(vmstat["balloon_inflate"] == vmstat["balloon_deflate"] and
                 abs(mt - mt0) <= MiB,
                 "%s: every unplugged page freed (balloon_inflate = "
                 "balloon_deflate), MemTotal back to %d MiB"
                 % (label, mt0 // MiB), "%s\nMemTotal %d, at boot %d"
                 % (vmstat, mt, mt0))
            rc, out = g.run("dmesg | grep -iE 'isolated|page request'")
            r.ok(rc != 0, "%s: no page left isolated, no page request after "
                 "the device was told UNPLUG_ALL" % label, out)
            # compaction over the freed pages must not reach into the module
            rc, _ = g.run("echo 1 > /proc/sys/vm/compact_memory", 300)
            r.ok(rc == 0 and g.run("true")[0] == 0,
                 "%s: the guest is alive and compacts again" % label)
            if way == "rmmod":
                rc, out = g.run("insmod /lib/modules/virtio_dmm.ko "
                                "page_ranges=0")
            else:
                rc, out = g.run("echo 1 > /sys/bus/pci/rescan")
            if not r.ok(rc == 0 and wait_bound(g),
                        "%s: the driver binds again" % label, out):
                return
        r.ok(moved > 0, "compaction migrated %d unplugged pages around the "
             "removals (the race was there to lose)" % moved)


def touch_region(g, off, length):
    """Touch [@off, @off + @length) of the region through the driver's
    debugfs hook: (exit status, output, (written, read back) or None)."""
    # the shell does not expand a pattern after ">"
    f = g.out("echo %s/virtio*/touch_region" % DEBUGFS_DMM).strip()
    rc, out = debugfs_write(g, f, "%d %d" % (off, length), 600)
    m = re.search(r"pages_written (\d+) pages_readback_ok (\d+)", out)
    return rc, out, (int(m.group(1)), int(m.group(2))) if m else None


def qemu_alive(g):
    """QEMU still runs and answers QMP."""
    try:
        return g.proc.poll() is None and \
            g.qmp.cmd("query-status")["status"] == "running"
    except Exception:
        return False


def check_touch(r, g, off, length, label):
    """Touch unplugged memory; the host must neither keep the writes nor
    back them.  Returns the RSS growth in bytes."""
    rss0 = g.rss()
    t0 = time.time()
    rc, out, counts = touch_region(g, off, length)
    secs = time.time() - t0
    time.sleep(0.5)
    rss1 = g.rss()
    grew = rss1 - rss0
    pages = length // 4096
    r.figure("unplugged-access: QEMU RSS before -> after touching %s"
             % label, "%d MiB -> %d MiB (%+d MiB), %s in %.1f s"
             % (rss0 // MiB, rss1 // MiB, grew // MiB, out.strip(), secs))
    r.ok(rc == 0 and counts and counts[0] == pages,
         "%s: the guest wrote a pattern into all %d pages" % (label, pages),
         out)
    r.ok(qemu_alive(g) and g.run("true")[0] == 0,
         "%s: QEMU still runs and answers QMP, the guest is alive" % label)
    r.ok(counts is not None and grew < 64 * MiB,
         "%s: QEMU RSS grew by %d MiB (< 64 MiB)" % (label, grew // MiB))
    r.ok(counts is not None and counts[1] == 0,
         "%s: no write to unplugged memory stuck (pages_readback_ok %s)"
         % (label, counts[1] if counts else "?"), out)
    return grew


@suite
def suite_unplugged_access(r):
    """Security: a guest writing to unplugged blocks of the region gains
    nothing: QEMU's RSS stays, the writes do not stick, QEMU survives."""
    with Guest("unplugged-access", mem="512M", maxmem="2G", region="1G",
               append=TEST_HOOKS, dev_opts="free-page-reporting=off") as g:
        bs = g.block_size
        # the hook refuses what is not unplugged region
        bad = [(4096 + 8, 4096, "Invalid argument", "unaligned offset"),
               (0, 100, "Invalid argument", "unaligned length"),
               (0, 0, "Invalid argument", "no length"),
               (g.region - 4096, 8192, "Invalid argument", "past the end"),
               (1 << 63, 4096, "Invalid argument", "offset 2^63"),
               (4096, (1 << 64) - 4096, "Invalid argument",
                "length wrapping around")]
        for off, length, err, what in bad:
            rc, out, _ = touch_region(g, off, length)
            r.ok(rc != 0 and err in out,
                 "touch_region refuses %s (%s)" % (what, err), out)

        # 1. 768 MiB of blocks never plugged
        check_touch(r, g, 2 * bs, g.region - 2 * bs,
                    "768 MiB never plugged")

        # 2. two blocks plugged, then unplugged again
        g.set_requested(g.mem + 2 * bs)
        g.wait_plugged(2 * bs)
        added = g.out("grep 'System RAM (virtio_dmm)' /proc/iomem").split()
        start = int(added[0].split("-")[0], 16) - g.dmm_info()["memaddr"]
        rc, out, _ = touch_region(g, start, 4096)
        r.ok(rc != 0 and "busy" in out,
             "touch_region refuses plugged memory Linux uses (EBUSY)", out)
        g.set_requested(g.mem)
        g.wait_plugged(0)
        check_touch(r, g, start, 2 * bs, "2 blocks plugged and unplugged")
