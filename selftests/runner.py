#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""virtio-dmm test runner.

Boots guests on the patched QEMU, drives QMP, runs the guest selftests
(kselftest TAP) through the guest agent, runs the host-side suites, and
prints one TAP stream ending in "N passed, N failed, N skipped".

  selftests/runner.py [--list] [SUITE ...]

Every guest has a hard time limit (scripts/dmmvm.py); timings are printed
as diagnostics, never asserted.
"""

import os
import random
import re
import subprocess
import sys
import time
import traceback

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "scripts"))

import dmmvm  # noqa: E402
from dmmvm import GiB, MiB, Guest, QMPError  # noqa: E402


class Results:
    """One TAP stream for everything the run checks."""

    def __init__(self):
        self.n = 0
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []
        self.figures = []
        print("TAP version 13", flush=True)

    def ok(self, cond, name, diag=None):
        self.n += 1
        if cond:
            self.passed += 1
            print("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            self.failures.append(name)
            print("not ok %d - %s" % (self.n, name))
            if diag:
                for line in str(diag).splitlines():
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def skip(self, name, why):
        self.n += 1
        self.skipped += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line)
        sys.stdout.flush()

    def figure(self, name, value):
        """A measured figure: printed now and again in the summary."""
        self.figures.append((name, value))
        self.diag("%s: %s" % (name, value))

    TAP = re.compile(r"^(not )?ok \d+ (?:- )?(.*?)(\s+# (SKIP|XFAIL)\b.*)?$")

    def tap(self, prefix, rc, out):
        """Fold a kselftest program's TAP output into this stream."""
        seen = bad = 0
        for line in out.splitlines():
            m = self.TAP.match(line.strip())
            if not m:
                if line.startswith("#") and "[RUN]" not in line and \
                        "starting QEMU" not in line:
                    self.diag("  " + line.lstrip("# "))
                continue
            seen += 1
            name = "%s: %s" % (prefix, m.group(2))
            if m.group(4) == "SKIP":
                self.skip(name, line.split("# SKIP", 1)[-1].strip())
            else:
                bad += bool(m.group(1))
                self.ok(not m.group(1), name)
        if not seen or (rc not in (0, 4) and not bad):
            self.ok(False, "%s: exit status %d" % (prefix, rc), out[-2000:])

    def summary(self):
        print("1..%d" % self.n)
        for name, value in self.figures:
            print("# figure: %s: %s" % (name, value))
        for name in self.failures:
            print("# failed: %s" % name)
        print("%d passed, %d failed, %d skipped"
              % (self.passed, self.failed, self.skipped), flush=True)


def gtap(r, g, cmd, timeout=300):
    """Run a guest selftest and fold its TAP into @r."""
    rc, out = g.run(cmd, timeout)
    r.tap(cmd.split()[0], rc, out)
    return rc


# --- host suites ---

def suite_devlib(r):
    """The portable device library's unit tests and fuzz smoke run."""
    for target in ("test", "fuzz-smoke"):
        p = subprocess.run(["make", "-s", "-C",
                            os.path.join(TOP, "virtio-dmm-device"), target],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        if target == "test":
            r.tap("devlib", p.returncode, p.stdout)
        else:
            r.ok(p.returncode == 0, "devlib: fuzz smoke run",
                 p.stdout[-3000:])
            for line in p.stdout.splitlines()[-3:]:
                r.diag("  " + line)


def check_script(r, script, name):
    """Run a static-check script of scripts/: one result, its output."""
    p = subprocess.run([os.path.join(TOP, "scripts", script)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=600)
    r.ok(p.returncode == 0, name, p.stdout[-4000:])


def suite_driver_checks(r):
    """checkpatch --strict and sparse C=2 on the driver."""
    check_script(r, "check-driver.sh",
                 "driver: checkpatch --strict and sparse clean")


def suite_qemu_checks(r):
    """QEMU's checkpatch.pl on the files qemu-device/ adds."""
    check_script(r, "check-qemu.sh",
                 "qemu: checkpatch clean on the new QEMU files")


def suite_qtest(r):
    """QEMU's own test: malformed requests straight into the virtqueue."""
    qbuild = os.path.join(dmmvm.BUILD, "qemu-build")
    env = dict(os.environ, QTEST_QEMU_BINARY="./qemu-system-x86_64")
    p = subprocess.run(["timeout", "300", "tests/qtest/virtio-dmm-test",
                        "--tap"], cwd=qbuild, env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    r.tap("qtest", p.returncode, p.stdout)


# --- guest suites ---

def bad_requested_sizes(g):
    """(value, why) pairs that QMP must refuse."""
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


DMM_STATE = ("requested-size", "plugged-size", "sub-block-plugged-size",
             "unplugged-size", "size", "memaddr", "region-size", "boot-size",
             "block-size", "sub-block-size", "node", "memdev")


def dmm_state(g):
    """The device's block, sub-block and page state from QMP, without the
    counters and reports that change on their own."""
    info = g.dmm_info()
    return {k: info[k] for k in DMM_STATE}


def check_bad_qmp_values(r, g):
    before = dmm_state(g)
    sysfs_before = g.sysfs("requested_size")
    for value, why in bad_requested_sizes(g):
        try:
            g.qmp.cmd("qom-set", path="dmm0", property="requested-size",
                      value=value)
            r.ok(False, "qmp: requested-size %r (%s) refused" % (value, why),
                 "qom-set succeeded")
            continue
        except QMPError as e:
            msg = e.desc
        after = dmm_state(g)
        r.ok(after == before and msg,
             "qmp: requested-size %r (%s) refused, nothing changed"
             % (value, why), "error %r\nbefore %s\nafter %s"
             % (msg, before, after))
        r.diag("  -> %s" % msg)
    time.sleep(0.5)
    out = g.qmp.hmp("qom-set dmm0 requested-size 513M")
    r.ok("not boot-size" in out and dmm_state(g) == before,
         "hmp: qom-set requested-size 513M refused, nothing changed", out)
    r.ok(g.sysfs("requested_size") == sysfs_before,
         "qmp: guest saw no change after refused values")


def grow(r, g, total, label):
    """Set requested-size to @total and wait; returns seconds."""
    plugged = total - g.mem
    g.set_requested(total)
    try:
        secs = g.wait_plugged(plugged)
    except dmmvm.AgentError as e:
        r.ok(False, "%s: plugged size reaches %d MiB" % (label,
                                                           plugged // MiB), e)
        return None
    r.ok(True, "%s: plugged size reaches %d MiB" % (label, plugged // MiB))
    info = g.dmm_info()
    r.ok(info["plugged-size"] == plugged and info["requested-size"] == total,
         "%s: QMP reports plugged %d MiB, requested %d MiB"
         % (label, plugged // MiB, total // MiB), info)
    r.ok(int(g.sysfs("requested_size")) == total,
         "%s: sysfs requested_size is %d" % (label, total))
    gtap(r, g, "dmm_state_check %d" % plugged)
    return secs


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


def suite_coarse(r):
    """Issue 2: grow and shrink by whole blocks, bad input, reboot, unload."""
    with Guest("coarse", mem="512M", maxmem="4G", region="3G",
               pages=False, dev_opts="sub-blocks=off") as g:
        boot = g.mem
        info = g.dmm_info()
        r.ok(info["plugged-size"] == 0 and info["boot-size"] == boot and
             info["region-size"] == g.region and
             info["block-size"] == g.block_size,
             "boot: QMP shows region %d MiB, boot %d MiB, nothing plugged"
             % (g.region // MiB, boot // MiB), info)
        r.ok(int(g.sysfs("region_addr"), 0) == info["memaddr"] and
             int(g.sysfs("region_size")) == info["region-size"] and
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
        r.ok('Memory device [virtio-dmm]: "dmm0"' in hmp and
             "plugged-size: %d" % added in hmp and
             "requested-size: %d" % (2 * GiB) in hmp,
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

        # 4. bad values change nothing
        check_bad_qmp_values(r, g)

        # 5. unload with memory plugged: refused, or clean
        grow(r, g, boot + 512 * MiB, "grow to 1 GiB")
        rc, out = g.run("rmmod virtio_dmm")
        if rc:
            r.diag("  rmmod refused: " + out.strip())
            r.ok(g.dmm_info()["plugged-size"] == 512 * MiB and
                 g.sysfs("status") == "idle",
                 "unload with memory plugged is refused, nothing changes")
        else:
            r.ok(g.dmm_info()["plugged-size"] == 0,
                 "unload with memory plugged gives all memory back")
            g.run("insmod /lib/modules/virtio_dmm.ko", check=True)
            g.wait_plugged(512 * MiB)

        # 5b. with nothing plugged, unload works and a reload starts over
        grow(r, g, boot, "shrink to 512 MiB before unload")
        rc, out = g.run("rmmod virtio_dmm")
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

        problems = g.kernel_problems()
        r.ok(not problems, "guest kernel log has no warnings or oopses",
             "\n".join(problems[:40]))


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
        r.ok(g.dmm_info()["plugged-size"] == 0,
             "bad block size: the device has nothing plugged")
        problems = g.kernel_problems()
        r.ok(not problems, "bad block size: no warnings or oopses",
             "\n".join(problems[:40]))


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
        r.ok(g.dmm_info()["plugged-size"] == 0,
             "virtio_mem loaded first: nothing plugged", g.dmm_info())
    with Guest("cbconflict-off", mem="512M", maxmem="4G", region="1G",
               requested="768M", modules=["virtio_mem", "virtio_dmm"],
               extra_args=vmem, dev_opts="sub-blocks=off") as g:
        try:
            g.wait_current(768 * MiB, 60)
            ok = True
        except dmmvm.AgentError:
            ok = False
        r.ok(ok and g.sysfs("sub_block_size") == str(128 * MiB),
             "sub-blocks=off: virtio_dmm binds next to virtio_mem and plugs "
             "to 768 MiB")
        problems = g.kernel_problems()
        r.ok(not problems, "callback conflict: no warnings or oopses",
             "\n".join(problems[:40]))


def wait_guest_file(g, path, text, timeout=120):
    """Wait until guest file @path contains @text; returns its content."""
    deadline = time.time() + timeout
    while True:
        out = g.run("cat %s 2>/dev/null" % path)[1]
        if text in out or time.time() > deadline:
            return out
        time.sleep(0.2)


def suite_migrate(r):
    """Live migration with memory plugged: state and data survive."""
    mig = "unix:" + os.path.join(dmmvm.RUN, "migrate.sock")
    src = Guest("mig-src", mem="512M", maxmem="4G", region="3G").start()
    dst = None
    try:
        grow(r, src, 1536 * MiB, "source: grow to 1.5 GiB")
        src.run("dmm_memfill -s %d -r %d -w /tmp/go >/tmp/fill.log 2>&1 &"
                % (GiB, 512 * MiB))
        out = wait_guest_file(src, "/tmp/fill.log", "waiting for")
        r.ok("waiting for" in out, "source: 1 GiB filled and held", out)

        dst = Guest("mig-dst", mem="512M", maxmem="4G", region="3G",
                    incoming=mig).start()
        failures0 = int(src.sysfs("plug_failures"))
        t0 = time.time()
        src.migrate_to(dst)
        r.figure("migration of a 1.5 GiB guest (1 GiB plugged, filled)",
                 "%.1f s" % (time.time() - t0))
        src.stop()
        r.ok(failures0 == 0, "source: no plug failure before the migration")
        info = dst.dmm_info()
        r.ok(info["plugged-size"] == GiB and
             info["requested-size"] == 1536 * MiB,
             "destination: QMP shows 1 GiB plugged of 1.5 GiB requested",
             info)
        r.ok(dst.sysfs("plugged_size") == str(GiB) and
             dst.sysfs("status") == "idle",
             "destination: the guest still has 1 GiB plugged, idle")
        gtap(r, dst, "dmm_state_check %d" % GiB)
        dst.run("touch /tmp/go")
        out = wait_guest_file(dst, "/tmp/fill.log", "# Totals")
        r.tap("dmm_memfill (across migration)", 0, out)

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
                     incoming=mig.replace(".sock", "2.sock")).start()
        dst.qmp.cmd("migrate-set-parameters", max_bandwidth=64 * MiB)
        dst.qmp.cmd("migrate", uri=dst2.incoming)
        time.sleep(1)
        dst.set_requested(3 * GiB)
        busy_seen = False
        while dst.qmp.cmd("query-migrate").get("status") == "active":
            busy_seen = busy_seen or int(dst.sysfs("plug_failures")) > 0
            time.sleep(0.2)
        r.ok(busy_seen and dst.dmm_info()["plugged-size"] == 1536 * MiB,
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
        r.ok(dst2.dmm_info()["plugged-size"] == 2560 * MiB,
             "new destination: QMP shows 2.5 GiB plugged")
        gtap(r, dst2, "dmm_state_check %d" % (2560 * MiB))
        problems = dst2.kernel_problems()
        dst2.stop()
        problems += dst.kernel_problems() + src.kernel_problems()
        r.ok(not problems, "migration: no warnings or oopses",
             "\n".join(problems[:40]))
    finally:
        src.stop()
        if dst:
            dst.stop()


def suite_free_page_reporting(r):
    """Issue 4 (part): freed guest memory leaves the host without a resize."""
    with Guest("fpr", mem="512M", maxmem="4G", region="3G") as g:
        grow(r, g, 2 * GiB, "grow to 2 GiB")
        g.run("dmm_memfill -s %d -w /tmp/go >/tmp/fill.log 2>&1 &" % GiB)
        out = wait_guest_file(g, "/tmp/fill.log", "waiting for")
        r.ok("waiting for" in out, "1 GiB allocated, touched and held", out)
        peak = g.rss()
        reported0 = int(g.sysfs("reported_bytes"))
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals")
        r.tap("dmm_memfill (then freed)", 0, out)
        t0 = time.time()
        while g.rss() > peak - 900 * MiB and time.time() - t0 < 60:
            time.sleep(0.25)
        secs, fell = time.time() - t0, peak - g.rss()
        r.figure("free page reporting: RSS fall after freeing 1 GiB",
                 "%d MiB in %.1f s" % (fell // MiB, secs))
        r.ok(fell >= 900 * MiB, "QEMU RSS fell by %d MiB (>= 900) without "
             "a resize" % (fell // MiB))
        reported = int(g.sysfs("reported_bytes")) - reported0
        qom = g.qmp.cmd("qom-get", path="dmm0", property="reported-size")
        r.ok(reported >= 900 * MiB and qom >= reported,
             "guest reported %d MiB, the device discarded %d MiB"
             % (reported // MiB, qom // MiB))
        r.ok(g.qmp.cmd("qom-get", path="dmm0", property="refused-reports")
             == 0, "the device refused no report from a correct guest")
        r.ok(g.dmm_info()["plugged-size"] == 1536 * MiB,
             "no memory was unplugged: plugged size unchanged")
        gtap(r, g, "dmm_memfill -s %d" % GiB, 600)
        problems = g.kernel_problems()
        r.ok(not problems, "free page reporting: no warnings or oopses",
             "\n".join(problems[:40]))


def suite_page_poison(r):
    """Free page reporting stays off when the guest poisons free pages."""
    # page_poison=1: the kernel fills free pages with a pattern and checks
    # it when it hands them out again.  A reported page comes back from
    # the device zeroed, which the check would call corruption.
    with Guest("poison", mem="1G", maxmem="4G", region="1G",
               append="page_poison=1") as g:
        reported0 = int(g.sysfs("reported_bytes"))
        # allocate, touch and free 512 MiB twice, waiting in between for
        # the framework (2 s delay) to report what was freed
        for i in range(2):
            gtap(r, g, "dmm_memfill -s %d" % (512 * MiB), 600)
            time.sleep(6)
        reported = int(g.sysfs("reported_bytes")) - reported0
        r.ok(reported == 0, "page_poison=1: no free page reported "
             "(%d MiB were)" % (reported // MiB))
        r.ok(g.qmp.cmd("qom-get", path="dmm0", property="reported-size")
             == 0, "page_poison=1: the device discarded no free page")
        msg = [ln for ln in g.run("dmesg")[1].splitlines()
               if "free page reporting" in ln]
        r.ok(any("poison" in ln for ln in msg),
             "the driver says why it does not report free pages",
             "\n".join(msg))
        problems = g.kernel_problems()
        r.ok(not problems, "page_poison=1: no poison check failure, warning "
             "or oops", "\n".join(problems[:40]))


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
        time.sleep(8)
        plugged = int(g.sysfs("plugged_size"))
        r.diag("  held: plugged %d MiB, status %s, unplug_failures %s"
               % (plugged // MiB, g.sysfs("status"),
                  g.sysfs("unplug_failures")))
        r.ok(0 < plugged < 1536 * MiB,
             "shrink while held: partial progress (%d MiB still plugged)"
             % (plugged // MiB))
        stops = int(g.sysfs("unplug_failures")) + \
            int(g.sysfs("floor_stops"))
        r.ok(g.sysfs("status") == "busy" and stops > 0,
             "shrink while held: status busy, the blocks that could not go "
             "counted (unplug_failures + floor_stops = %d)" % stops)
        r.ok(g.dmm_info()["plugged-size"] == plugged,
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
        problems = g.kernel_problems()
        r.ok(not problems, "busy shrink: no OOM kill, warning or oops",
             "\n".join(problems[:40]))


# --- fine-grained: pages (issue 3) ---

def resize(r, g, total, label, timeout=120):
    """Set requested-size to @total; wait until the guest has exactly that
    much RAM and is idle.  Returns seconds, or None after a failed check."""
    g.set_requested(total)
    try:
        secs = g.wait_current(total, timeout)
    except dmmvm.AgentError as e:
        r.ok(False, "%s: the guest reaches %d MiB" % (label, total // MiB), e)
        return None
    r.ok(True, "%s: the guest reaches %d MiB" % (label, total // MiB))
    return secs


def check_sizes(r, g, total, mt0, label):
    """QMP, sysfs and MemTotal agree on a guest of @total bytes of RAM.

    MemTotal counts managed pages: unplugged pages come off it one for one;
    an added block adds its size less its struct pages (up to 3 %).
    """
    info = g.dmm_info()
    mt = g.meminfo()["MemTotal"]
    cur = int(g.sysfs("current_size"))
    r.ok(info["size"] == total and info["requested-size"] == total and
         cur == total and g.sysfs("gap_size") == "0" and
         info["boot-size"] + info["plugged-size"] -
         info["unplugged-size"] == total,
         "%s: QMP and sysfs agree the guest has %d MiB (plugged %d MiB, "
         "unplugged pages %d MiB)" % (label, total // MiB,
                                      info["plugged-size"] // MiB,
                                      info["unplugged-size"] // MiB),
         "QMP %s\nsysfs current_size %d gap %s" % (info, cur,
                                                   g.sysfs("gap_size")))
    want = mt0 + info["plugged-size"] - info["unplugged-size"]
    r.ok(want - info["plugged-size"] * 0.03 - MiB <= mt <= want + MiB,
         "%s: MemTotal %d MiB matches (boot %d MiB %+d MiB)"
         % (label, mt // MiB, mt0 // MiB, (want - mt0) // MiB),
         "MemTotal %d, expected about %d" % (mt, want))
    r.ok(int(g.sysfs("unplugged_size")) == info["unplugged-size"] and
         int(g.sysfs("plugged_size")) == info["plugged-size"] and
         int(g.sysfs("sub_block_plugged_size")) ==
         info["sub-block-plugged-size"],
         "%s: guest and device agree per granularity: blocks %d MiB, "
         "sub-blocks %d MiB plugged, pages %d KiB unplugged"
         % (label, (info["plugged-size"] -
                    info["sub-block-plugged-size"]) // MiB,
            info["sub-block-plugged-size"] // MiB,
            info["unplugged-size"] // 1024))


def bad_page_sizes(g):
    """requested-size values QMP must refuse on a device with pages."""
    return [
        (32 * MiB, "below the 64 MiB minimum"),
        (g.mem + g.region + 4096, "above boot size plus region"),
        (g.mem - 512, "not a multiple of 4 KiB"),
        (0, "zero"),
    ]


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

        secs = resize(r, g, 384 * MiB, "shrink below boot to 384 MiB")
        if secs is not None:
            r.figure("shrink 1 GiB -> 384 MiB (640 MiB of boot RAM as "
                     "pages)", "%.2f s" % secs)
        check_sizes(r, g, 384 * MiB, mt0, "384 MiB")
        time.sleep(0.5)
        rss1 = g.rss()
        r.figure("QEMU RSS at 1 GiB (memory dirtied) -> at 384 MiB",
                 "%d MiB -> %d MiB" % (rss0 // MiB, rss1 // MiB))
        r.ok(rss0 - rss1 >= 400 * MiB,
             "384 MiB: QEMU RSS fell by %d MiB (>= 400)"
             % ((rss0 - rss1) // MiB))
        vm = g.out("grep balloon_inflate /proc/vmstat").split()
        r.ok(len(vm) == 2 and int(vm[1]) >= 640 * MiB // 4096,
             "384 MiB: the pages are balloon pages (%s)" % " ".join(vm))
        hmp = g.qmp.hmp("info memory-devices")
        r.ok("unplugged-size: %d" % (640 * MiB) in hmp and
             "size: %d" % (384 * MiB) in hmp,
             "384 MiB: HMP info memory-devices shows unplugged-size and size",
             hmp)

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
        r.ok(info["plugged-size"] == 202 * MiB and
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
                r.ok(False, "qmp: requested-size %d (%s) refused"
                     % (value, why))
            except QMPError as e:
                r.ok(dmm_state(g) == before,
                     "qmp: requested-size %d (%s) refused, nothing changed"
                     % (value, why), e.desc)
                r.diag("  -> %s" % e.desc)

        # unload gives the pages back; reload starts over
        resize(r, g, 700 * MiB, "shrink to 700 MiB before unload")
        rc, out = g.run("rmmod virtio_dmm")
        info = g.dmm_info()
        r.ok(rc == 0 and info["unplugged-size"] == 0 and
             info["size"] == GiB,
             "unload with pages unplugged: the device has them back", out)
        r.ok(abs(g.meminfo()["MemTotal"] - mt0) <= MiB,
             "unload: MemTotal back to boot")
        g.run("insmod /lib/modules/virtio_dmm.ko", check=True)
        resize(r, g, 700 * MiB, "after reload: back to 700 MiB")
        problems = g.kernel_problems()
        r.ok(not problems, "no warnings or oopses", "\n".join(problems[:40]))


def settle(g, timeout=60):
    """Wait until the driver stops making progress; returns current_size."""
    last, same, deadline = None, 0, time.time() + timeout
    while time.time() < deadline:
        cur = int(g.sysfs("current_size"))
        same = same + 1 if cur == last else 0
        if same >= 6 or g.sysfs("status") == "idle":
            return cur
        last = cur
        time.sleep(0.5)
    return int(g.sysfs("current_size"))


def suite_fine_load(r):
    """Issue 3: a shrink under load goes as far as the floor, loses nothing."""
    with Guest("fine-load", mem="1G", maxmem="4G", region="2G",
               requested="2G") as g:
        g.wait_current(2 * GiB)
        mt0 = g.meminfo()["MemTotal"] - GiB
        g.run("echo 100 > %s/retry_interval_ms" % g.sysfs_dir(), check=True)
        held = int(0.6 * 2 * GiB)
        g.run("dmm_memfill -s %d -c -w /tmp/go >/tmp/fill.log 2>&1 &" % held)
        out = wait_guest_file(g, "/tmp/fill.log", "waiting for", 300)
        r.ok("waiting for" in out, "a program holds %d MiB (60 %%) with a "
             "pattern it checks over and over" % (held // MiB), out)

        # below boot size and between blocks: blocks alone cannot do it
        target = 900 * MiB
        g.set_requested(target)
        cur = settle(g)
        info = g.dmm_info()
        r.diag("achieved %d MiB of %d MiB requested; plugged %d MiB, pages "
               "%d MiB, floor %s, status %s" % (
                   cur // MiB, target // MiB, info["plugged-size"] // MiB,
                   info["unplugged-size"] // MiB, g.sysfs("floor_size"),
                   g.sysfs("status")))
        r.figure("shrink 2 GiB -> 900 MiB with 1229 MiB held: achieved",
                 "%d MiB (plugged %d MiB + pages %d MiB off)"
                 % (cur // MiB, info["plugged-size"] // MiB,
                    info["unplugged-size"] // MiB))
        r.ok(target < cur < 2 * GiB - 256 * MiB,
             "under load: the shrink got %d MiB of the way, not all"
             % ((2 * GiB - cur) // MiB))
        r.ok(info["plugged-size"] < GiB - 128 * MiB and
             (info["plugged-size"] % (128 * MiB) or
              info["unplugged-size"] > 0),
             "under load: whole blocks went first, then sub-blocks or "
             "pages", info)
        r.ok(info["size"] == cur and
             int(g.sysfs("gap_size")) == target - cur and
             g.sysfs("status") == "busy",
             "under load: QMP size, sysfs current_size and gap_size report "
             "the achieved size honestly; status busy")
        r.ok(int(g.sysfs("floor_stops")) > 0,
             "under load: sysfs counts the unplugs stopped at the floor "
             "(%s)" % g.sysfs("floor_stops"))
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
        check_sizes(r, g, target, mt0, "900 MiB")
        problems = g.kernel_problems()
        r.ok(not problems, "under load: no OOM kill, warning or oops",
             "\n".join(problems[:40]))


def suite_fine_frag(r):
    """Issue 3: pinned pages in every block; sub-blocks and pages still go."""
    with Guest("fine-frag", mem="1G", maxmem="4G", region="2G",
               requested="2G") as g:
        g.wait_current(2 * GiB)
        mt0 = g.meminfo()["MemTotal"] - GiB
        addr = int(g.sysfs("region_addr"), 0)
        # a page in every other sub-block of every block: no block can go,
        # half the sub-blocks can, the rest must come as pages
        rc, out = g.run("insmod /lib/modules/dmm_test_pin.ko start=%d "
                        "size=%d per_block=32 spread=%d && dmesg | "
                        "grep dmm_test_pin | tail -2"
                        % (addr, GiB, 2 * MiB), 300)
        r.ok(rc == 0, "32 pages pinned in 32 sub-blocks of each of the 8 "
             "plugged blocks", out)
        fails0 = int(g.sysfs("unplug_failures"))
        t0 = time.time()
        secs = resize(r, g, 1280 * MiB, "fragmented: shrink by 768 MiB")
        if secs is not None:
            r.figure("shrink 2 GiB -> 1.25 GiB, every block pinned",
                     "%.2f s" % (time.time() - t0))
        info = g.dmm_info()
        iomem = g.out("grep -c 'System RAM (virtio_dmm)' /proc/iomem; "
                      "cat /proc/iomem | grep virtio_dmm")
        r.diag("plugged %d MiB, pages %d MiB; iomem: %s" % (
            info["plugged-size"] // MiB, info["unplugged-size"] // MiB,
            iomem.strip().replace("\n", "; ")))
        r.ok(GiB - info["plugged-size"] <= 512 * MiB and
             info["plugged-size"] < GiB and info["unplugged-size"] > 0,
             "fragmented: no block went; sub-blocks (%d MiB) and pages "
             "(%d MiB) did" % ((GiB - info["plugged-size"]) // MiB,
                               info["unplugged-size"] // MiB), info)
        gtap(r, g, "dmm_state_check")
        r.ok(int(g.sysfs("unplug_failures")) > fails0 and
             int(g.sysfs("sub_block_unplug_failures")) > 0,
             "fragmented: sysfs counts the blocks (%s) and sub-blocks (%s) "
             "that could not go" % (g.sysfs("unplug_failures"),
                                    g.sysfs("sub_block_unplug_failures")))
        check_sizes(r, g, 1280 * MiB, mt0, "fragmented 1.25 GiB")

        # unplugged pages are movable: compaction migrates them
        moves0 = int(g.sysfs("page_moves"))
        g.run("echo 1 > /proc/sys/vm/compact_memory")
        moves = int(g.sysfs("page_moves")) - moves0
        vmstat = g.out("grep balloon_migrate /proc/vmstat").strip()
        r.ok(moves > 0, "compaction migrated %d unplugged pages (%s)"
             % (moves, vmstat))
        info2 = g.dmm_info()
        r.ok(info2["unplugged-size"] == info["unplugged-size"] and
             info2["size"] == 1280 * MiB and g.sysfs("status") == "idle",
             "after compaction: the device counts the same pages unplugged",
             info2)
        gtap(r, g, "dmm_memfill -l %d" % (64 * MiB), 600)

        g.run("rmmod dmm_test_pin", check=True)
        resize(r, g, 2 * GiB, "unpinned: grow back to 2 GiB")
        check_sizes(r, g, 2 * GiB, mt0, "2 GiB again")
        resize(r, g, 1024 * MiB, "unpinned: shrink to 1 GiB")
        r.ok(g.dmm_info()["plugged-size"] == 0,
             "unpinned: blocks can go again", g.dmm_info())
        problems = g.kernel_problems()
        r.ok(not problems, "fragmented: no warnings or oopses",
             "\n".join(problems[:40]))


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
        gtap(r, g, "dmm_state_check %d" % g.dmm_info()["plugged-size"])
        problems = g.kernel_problems()
        r.ok(not problems, "%d random resizes: no warnings or oopses" % count,
             "\n".join(problems[:40]))


def suite_fine_migrate(r):
    """Issue 3: migrate a guest with a partial block and unplugged pages."""
    mig = "unix:" + os.path.join(dmmvm.RUN, "migrate-fine.sock")
    src = Guest("finemig-src", mem="1G", maxmem="4G", region="2G",
                requested="2G").start()
    dst = None
    try:
        src.wait_current(2 * GiB)
        mt0 = src.meminfo()["MemTotal"] - GiB
        odd = GiB + 200 * MiB + 3 * 4096
        resize(r, src, odd, "source: shrink to 1224 MiB + 12 KiB")
        before = src.dmm_info()
        r.ok(before["plugged-size"] % (128 * MiB) and
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
        gtap(r, dst, "dmm_state_check %d" % before["plugged-size"])
        # the migrated bitmaps must let every request through
        resize(r, dst, 700 * MiB, "destination: shrink to 700 MiB")
        resize(r, dst, 1536 * MiB + 4096, "destination: grow to 1.5 GiB "
               "+ 4 KiB")
        check_sizes(r, dst, 1536 * MiB + 4096, mt0, "destination 1.5 GiB")
        dst.run("touch /tmp/go")
        out = wait_guest_file(dst, "/tmp/fill.log", "# Totals", 300)
        r.tap("dmm_memfill (across migration and resizes)", 0, out)
        problems = dst.kernel_problems() + src.kernel_problems()
        r.ok(not problems, "fine migration: no warnings or oopses",
             "\n".join(problems[:40]))
    finally:
        src.stop()
        if dst:
            dst.stop()


def debugfs_and_pattern_pages(r, g, name):
    """The driver's debugfs file @name, and the physical addresses of 4
    pages of a program that holds 64 MiB with a pattern (checked until
    /tmp/go exists).  Returns (path, addrs), or (path, None)."""
    g.run("mount -t debugfs none /sys/kernel/debug 2>/dev/null")
    f = g.out("echo /sys/kernel/debug/virtio_dmm/virtio*/" + name).strip()
    g.run("dmm_memfill -s %d -a 4 -c -w /tmp/go >/tmp/fill.log 2>&1 &"
          % (64 * MiB))
    out = wait_guest_file(g, "/tmp/fill.log", "waiting for", 300)
    addrs = [int(w, 16) for w in re.findall(r"addr (0x[0-9a-f]+)", out)]
    ok = r.ok(len(addrs) == 4 and g.run("test -w " + f)[0] == 0,
              "a program holds 64 MiB with a pattern; 4 of its pages "
              "found; debugfs %s present" % name, out)
    return f, addrs if ok else None


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
        unplug, plug, move = 4, 5, 6
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
            rc, out = g.run("echo %s > %s && cat %s" % (line, f, f))
            after = dmm_state(g)
            r.ok(rc == 0 and out.strip() == "error" and after == before,
                 "malformed page list (%s): ERROR, nothing changed" % what,
                 "answer %r\nbefore %s\nafter %s" % (out, before, after))
        # beyond requested: the guest unplugged pages and is at its target;
        # plugging two of them back would exceed it
        resize(r, g, GiB - 4 * MiB, "shrink by 4 MiB of pages")
        info = dmm_state(g)
        off = g.out("dmm_offline_pages 2 %d" % GiB).split()
        rc, out = g.run("echo %d 2 %s > %s && cat %s"
                        % (plug, " ".join(x[2:] for x in off), f, f))
        r.ok(len(off) == 2 and out.strip() == "nack" and
             dmm_state(g) == info,
             "PLUG_PAGES beyond requested-size (2 of the guest's unplugged "
             "pages, %s): NACK, nothing changed" % " ".join(off), out)
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals", 300)
        r.tap("dmm_memfill (the pages named in the bad lists)", 0, out)
        r.ok("pattern intact" in out,
             "the pages named in malformed lists kept their content")
        r.ok(g.sysfs("status") == "idle" and
             int(g.sysfs("current_size")) == GiB - 4 * MiB,
             "the driver is unaffected: idle at 1020 MiB")
        problems = g.kernel_problems()
        r.ok(not problems, "malformed lists: no warnings or oopses",
             "\n".join(problems[:40]))


# --- shared-page hints (issue 4) ---

def hint_counters(g):
    """The guest's hint counters (sysfs) as a dict of ints."""
    names = ("hints_zero_sent", "hints_dup_sent", "hints_accepted",
             "hints_rejected", "hint_errors", "hint_passes", "hint_scan_ms",
             "hint_pages_scanned")
    out = g.out("cd %s && cat %s" % (g.sysfs_dir(), " ".join(names)))
    return dict(zip(names, (int(v) for v in out.split())))


def wait_host(cond, timeout, step=0.5):
    """Poll @cond until true or @timeout s; returns (result, seconds)."""
    t0 = time.time()
    while True:
        v = cond()
        if v or time.time() - t0 > timeout:
            return v, time.time() - t0
        time.sleep(step)


def suite_hint_zero(r):
    """Issue 4: zero pages a program still holds leave the host (hints)."""
    if not dmmvm.HostKSM.available():
        r.ok(False, "host KSM is writable (/sys/kernel/mm/ksm/run)")
        return
    with dmmvm.HostKSM(), Guest("hint-zero", mem="1G", maxmem="4G",
                                region="1G") as g:
        r.ok(g.run("echo 101 > %s/hint_budget" % g.sysfs_dir())[0] != 0 and
             g.sysfs("hint_budget") == "5",
             "hint_budget refuses 101 and keeps the default 5 %")
        g.out("echo 50 > %s/hint_budget" % g.sysfs_dir())
        g.run("dmm_zerohold -s %d -f /tmp/zero -w /tmp/go >/tmp/z.log 2>&1 &"
              % (512 * MiB))
        wait_guest_file(g, "/tmp/z.log", "filled", 300)
        time.sleep(2)
        peak, ksm0 = g.rss(), dmmvm.HostKSM.ksmd_cpu_seconds()
        c0 = hint_counters(g)
        g.run("touch /tmp/zero")
        wait_guest_file(g, "/tmp/z.log", "zeroed", 300)
        fell, secs = wait_host(lambda: peak - g.rss() >= 450 * MiB, 180)
        c1 = hint_counters(g)
        info = g.dmm_info()
        r.figure("zero-page hints: RSS fall after zeroing 512 MiB",
                 "%d MiB in %.1f s; guest scan %d ms; ksmd %.1f s CPU; "
                 "%d zero hints accepted" % (
                     (peak - g.rss()) // MiB, secs,
                     c1["hint_scan_ms"] - c0["hint_scan_ms"],
                     dmmvm.HostKSM.ksmd_cpu_seconds() - ksm0,
                     c1["hints_accepted"] - c0["hints_accepted"]))
        r.ok(fell, "QEMU RSS fell by %d MiB (>= 450) with the memory still "
             "allocated" % ((peak - g.rss()) // MiB))
        # one hint per 2 MiB range is enough (VIRTIO_DMM_HINT_RANGE_SIZE)
        r.ok(c1["hints_zero_sent"] >= 256 and info["hints-accepted"] >= 256
             and
             info["hint-mergeable-size"] >= 512 * MiB,
             "the guest hinted the zero pages and the device took them "
             "(%d sent, %d accepted, %d MiB mergeable)" % (
                 c1["hints_zero_sent"], info["hints-accepted"],
                 info["hint-mergeable-size"] // MiB))
        r.ok(c1["hint_errors"] == 0 and info["hint-errors"] == 0,
             "no hint list refused as invalid")
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/z.log", "# Totals", 300)
        r.tap("dmm_zerohold (after the host shared its zero pages)", 0, out)
        problems = g.kernel_problems()
        r.ok(not problems, "zero-page hints: no warnings or oopses",
             "\n".join(problems[:40]))


HINT_FILE = os.path.join(dmmvm.BUILD, "hint-file.img")
HINT_FILE_MIB = 256


def hint_file():
    """A 256 MiB file of random bytes both guests read (made once)."""
    if os.path.exists(HINT_FILE) and \
            os.path.getsize(HINT_FILE) == HINT_FILE_MIB * MiB:
        return HINT_FILE
    with open(HINT_FILE + ".tmp", "wb") as f:
        for _ in range(HINT_FILE_MIB):
            f.write(os.urandom(MiB))
    os.rename(HINT_FILE + ".tmp", HINT_FILE)
    return HINT_FILE


def disk_guest(name):
    """A guest with the hint file as a disk; its writes go to a throwaway
    overlay (snapshot=on), so both guests share the same base file.
    Duplicate hints are the operator's choice (dup-hints=on)."""
    return Guest(name, mem="512M", maxmem="2G", region="1G",
                 dev_opts="dup-hints=on",
                 modules=["virtio_dmm", "virtio_blk"],
                 extra_args=["-drive", "file=%s,format=raw,if=virtio,"
                             "snapshot=on" % hint_file()])


def suite_hint_dup(r):
    """Issue 4: two guests reading the same file share host memory."""
    if not dmmvm.HostKSM.available():
        r.ok(False, "host KSM is writable (/sys/kernel/mm/ksm/run)")
        return
    import hashlib
    with open(hint_file(), "rb") as f:
        want = hashlib.md5(f.read()).hexdigest()
    with dmmvm.HostKSM() as ksm, disk_guest("hint-dup-a") as a, \
            disk_guest("hint-dup-b") as b:
        for g in (a, b):
            g.out("echo 50 > %s/hint_budget" % g.sysfs_dir())
            # Linux drops a block device's page cache on its last close
            g.run("sleep 100000 </dev/vda >/dev/null 2>&1 &")
        # both guests settle: their boot memory is hinted first
        wait_host(lambda: all(hint_counters(g)["hint_passes"] >= 2
                              for g in (a, b)), 120, 2)
        # the baseline: both hold the file, nothing of it hinted or shared
        ksm.write("run", 0)
        for g in (a, b):
            g.out("echo 0 > %s/hint_budget" % g.sysfs_dir())
            out = g.out("md5sum /dev/vda", 600).split()[0]
            r.ok(out == want, "%s read the 256 MiB file into its page "
                 "cache (md5 %s)" % (g.name, out))
        time.sleep(2)
        pss0, ksm0 = a.pss() + b.pss(), dmmvm.HostKSM.ksmd_cpu_seconds()
        ksm.write("run", 1)
        for g in (a, b):
            g.out("echo 50 > %s/hint_budget" % g.sysfs_dir())
        fell, secs = wait_host(
            lambda: pss0 - a.pss() - b.pss() >= 200 * MiB, 60)
        drop = pss0 - a.pss() - b.pss()
        shared = a.dmm_info()["shared-size"] + b.dmm_info()["shared-size"]
        ca, cb = hint_counters(a), hint_counters(b)
        r.figure("duplicate hints: Pss fall of two guests with the same "
                 "256 MiB in page cache",
                 "%d MiB in %.1f s; KSM shares %d MiB; ksmd %.1f s CPU; "
                 "dup hints sent %d + %d" % (
                     drop // MiB, secs, shared // MiB,
                     dmmvm.HostKSM.ksmd_cpu_seconds() - ksm0,
                     ca["hints_dup_sent"], cb["hints_dup_sent"]))
        r.ok(fell, "the two QEMUs' Pss fell by %d MiB (>= 200) within a "
             "minute" % (drop // MiB))
        # 256 MiB are 128 ranges of 2 MiB: one hint each is enough
        r.ok(ca["hints_dup_sent"] >= 100 and cb["hints_dup_sent"] >= 100
             and shared >= 200 * MiB,
             "both guests sent duplicate hints; KSM shares %d MiB"
             % (shared // MiB))
        # writes break the sharing for the writer only
        a.out("dd if=/dev/urandom of=/tmp/pat bs=1M count=16 2>/dev/null")
        pat = a.out("md5sum /tmp/pat").split()[0]
        a.out("dd if=/tmp/pat of=/dev/vda bs=1M seek=8 conv=notrunc "
              "2>/dev/null; sync")
        got = a.out("dd if=/dev/vda bs=1M skip=8 count=16 2>/dev/null | "
                    "md5sum").split()[0]
        r.ok(got == pat, "guest A wrote 16 MiB into its shared page cache "
             "and reads its own data back")
        r.ok(b.out("md5sum /dev/vda", 600).split()[0] == want,
             "guest B still reads the original file")
        a.out("sync; echo 3 > /proc/sys/vm/drop_caches")
        got = a.out("dd if=/dev/vda bs=1M skip=8 count=16 2>/dev/null | "
                    "md5sum").split()[0]
        r.ok(got == pat, "guest A reads its data back from its disk too")
        for g in (a, b):
            problems = g.kernel_problems()
            r.ok(not problems, "%s: no warnings or oopses" % g.name,
                 "\n".join(problems[:40]))


def suite_hint_bad(r):
    """Issue 4: wrong, stale and hostile hints from inside a guest are
    rejected and change nothing (through the driver's debugfs file)."""
    with Guest("hint-bad", mem="1G", maxmem="4G", region="2G",
               append=TEST_HOOKS,
               dev_opts="dup-hints=on") as g:
        g.out("echo 0 > %s/hint_budget" % g.sysfs_dir())
        time.sleep(3)              # the scanner finishes its batch
        f, addrs = debugfs_and_pattern_pages(r, g, "hint_request")
        if not addrs:
            return
        a, b = addrs[0], addrs[1]
        region = g.dmm_info()["memaddr"]
        zero, dup = 0, 1
        many = " ".join("%x 0" % (a + 4096 * i) for i in range(256))
        errors = [
            ("unaligned", "%d 1 %x 0" % (zero, a + 8)),
            ("not RAM (local APIC)", "%d 1 fee00000 0" % zero),
            ("not RAM (PCI hole)", "%d 1 80000000 0" % dup),
            ("in an unplugged block of the region",
             "%d 1 %x 0" % (zero, region)),
            ("beyond guest RAM", "%d 1 %x 0" % (dup, 1 << 46)),
            ("a good page, then a bad one",
             "%d 2 %x 0 %x 0" % (zero, b, 0xfee00000)),
            ("a zero hint with a hash", "%d 1 %x 1" % (zero, a)),
            ("no hints", "%d 0" % zero),
            ("more hints claimed than sent", "%d 3 %x 0 %x 0" % (zero, a, b)),
            ("more than 256 hints", "%d 257 %s" % (zero, many)),
            ("an unknown kind", "7 1 %x 0" % a),
        ]
        before = g.dmm_info()
        for what, line in errors:
            rc, out = g.run("echo %s > %s && cat %s" % (line, f, f))
            after = g.dmm_info()
            r.ok(rc == 0 and out.strip() == "error" and
                 after["hint-mergeable-size"] ==
                 before["hint-mergeable-size"] and
                 after["hints-accepted"] == before["hints-accepted"],
                 "hostile hint list (%s): ERROR, nothing shared" % what,
                 "answer %r\nbefore %s\nafter %s" % (out, before, after))
        after = g.dmm_info()
        r.ok(after["hint-errors"] - before["hint-errors"] == len(errors),
             "QMP counts %d refused hint lists"
             % (after["hint-errors"] - before["hint-errors"]))
        # well-formed but wrong: the content is not as the hint says
        wrong = [
            ("a zero hint for pages holding a pattern",
             "%d 2 %x 0 %x 0" % (zero, a, b)),
            ("a duplicate hint whose hash does not match",
             "%d 2 %x 123456789abcdef %x 0" % (dup, a, b)),
        ]
        for what, line in wrong:
            before = g.dmm_info()
            rc, out = g.run("echo %s > %s && cat %s" % (line, f, f))
            after = g.dmm_info()
            r.ok(out.strip() == "ack 0 2" and
                 after["hints-rejected"] - before["hints-rejected"] == 2 and
                 after["hint-mergeable-size"] ==
                 before["hint-mergeable-size"],
                 "%s: both rejected, nothing made mergeable" % what,
                 "answer %r\nbefore %s\nafter %s" % (out, before, after))
        g.run("touch /tmp/go")
        out = wait_guest_file(g, "/tmp/fill.log", "# Totals", 300)
        r.tap("dmm_memfill (the pages named in the hostile hints)", 0, out)
        r.ok("pattern intact" in out,
             "the pages named in hostile hints kept their content")
        r.ok(g.sysfs("status") == "idle" and
             int(g.sysfs("current_size")) == GiB,
             "the driver is unaffected: idle at 1 GiB")
        problems = g.kernel_problems()
        r.ok(not problems, "hostile hints: no warnings or oopses",
             "\n".join(problems[:40]))
    # a device with hints off: the driver runs without them
    with Guest("hint-off", mem="512M", maxmem="2G", region="1G",
               append=TEST_HOOKS, dev_opts="hints=off") as g:
        rc, out = g.run("echo 10 > %s/hint_budget" % g.sysfs_dir())
        r.ok(rc != 0 and "No such device" in out and
             hook_files(g) == ["page_request", "touch_region"],
             "hints=off: no scanner (hint_budget -ENODEV), no hint_request",
             out)


# --- pressure reports and requests for memory (issue 5) ---

def dmm_stats(g):
    """The latest report as QMP shows it (query-memory-devices), or None."""
    return g.dmm_info().get("stats")


def suite_stats(r):
    """Issue 5: pressure reports arrive at the set interval and follow a
    guest program's memory."""
    with Guest("stats", mem="1G", maxmem="3G", region="1G",
               modules=["virtio_dmm", "virtio_blk"],
               extra_args=["-drive", "file=%s,format=raw,if=virtio,"
                           "snapshot=on" % hint_file()]) as g:
        info = g.dmm_info()
        r.ok(info["stats-interval"] == 1000 and g.sysfs("stats_interval_ms")
             == "1000", "default interval 1 s, in QMP and the guest's sysfs")
        for bad in (1, 99, 3600001, -1, "x"):
            try:
                g.qmp.cmd("qom-set", path="dmm0", property="stats-interval",
                          value=bad)
                r.ok(False, "stats-interval %r refused" % (bad,))
            except QMPError as e:
                r.ok(g.dmm_info()["stats-interval"] == 1000,
                     "stats-interval %r refused, unchanged (%s)"
                     % (bad, e.desc))
        g.qmp.cmd("qom-set", path="dmm0", property="stats-interval",
                  value=250)
        time.sleep(1)
        s0, t0 = dmm_stats(g), time.time()
        time.sleep(5)
        s1, t1 = dmm_stats(g), time.time()
        n = s1["seq"] - s0["seq"]
        r.figure("stats: reports in 5 s at 250 ms", "%d" % n)
        r.ok(g.sysfs("stats_interval_ms") == "250" and 16 <= n <= 22,
             "at 250 ms the guest sent %d reports in %.1f s (about 20)"
             % (n, t1 - t0))
        r.ok(s1["age-ms"] <= 600 and s1["total"] > 900 * MiB and
             0 < s1["available"] <= s1["total"] and s1["free"] > 0,
             "a report is fresh and sane: %s" % s1)
        ev = [e for e in g.qmp.poll_events(0.5)
              if e["event"] == "VIRTIO_DMM_STATS"]
        r.ok(ev and ev[-1]["data"]["stats"]["seq"] > s0["seq"] and
             ev[-1]["data"]["id"] == "dmm0",
             "VIRTIO_DMM_STATS events arrive for dmm0")
        # the events are rate-limited to one per second
        g.qmp.events.clear()
        time.sleep(4)
        ev = [e for e in g.qmp.poll_events(0.5)
              if e["event"] == "VIRTIO_DMM_STATS"]
        r.ok(3 <= len(ev) <= 6, "%d events in 4 s at 4 reports a second: "
             "rate-limited to 1/s" % len(ev))
        # available memory follows a program
        avail0 = dmm_stats(g)["available"]
        g.run("dmm_memfill -s %d -w /tmp/go >/tmp/fill.log 2>&1 &"
              % (512 * MiB))
        samples = []
        for _ in range(60):
            samples.append(dmm_stats(g)["available"])
            if "waiting for" in g.out("cat /tmp/fill.log"):
                break
            time.sleep(0.5)
        time.sleep(1)
        avail1 = dmm_stats(g)["available"]
        r.figure("stats: MemAvailable in QMP while a program takes 512 MiB",
                 " ".join(str(a // MiB) for a in samples + [avail1]))
        r.ok(avail0 - avail1 >= 450 * MiB,
             "QMP's available fell by %d MiB (>= 450) as the program grew"
             % ((avail0 - avail1) // MiB))
        g.run("touch /tmp/go")
        wait_guest_file(g, "/tmp/fill.log", "# Totals", 300)
        # memory pressure: page cache to reclaim, then memory for all of it;
        # PSI as the guest's /proc shows it
        g.run("sleep 100000 </dev/vda >/dev/null 2>&1 &")
        g.out("cat /dev/vda >/dev/null", 300)
        g.run("dmm_memfill -l %d -w /tmp/go2 >/tmp/fill2.log 2>&1 &"
              % (8 * MiB))
        wait_guest_file(g, "/tmp/fill2.log", "waiting for", 300)
        psi = g.out("cat /proc/pressure/memory")
        m = re.search(r"some .* total=(\d+)", psi)
        time.sleep(1.5)
        st = dmm_stats(g)
        r.figure("stats: PSI after filling all but 8 MiB",
                 "guest %s us, QMP %d us; available %d MiB" % (
                     m.group(1) if m else "?", st["psi-some-total"],
                     st["available"] // MiB))
        r.ok(m and 0 < int(m.group(1)) <= st["psi-some-total"] and
             st["available"] < 128 * MiB and st["oom-kills"] == 0,
             "under pressure QMP's PSI some total (%d us) follows the "
             "guest's /proc/pressure/memory (%s us)" % (
                 st["psi-some-total"], m.group(1) if m else "?"), psi)
        g.run("touch /tmp/go2")
        wait_guest_file(g, "/tmp/fill2.log", "# Totals", 300)
        # off, and on again
        g.qmp.cmd("qom-set", path="dmm0", property="stats-interval", value=0)
        time.sleep(1)
        seq = dmm_stats(g)["seq"]
        time.sleep(2)
        r.ok(dmm_stats(g)["seq"] == seq and g.sysfs("stats_interval_ms") ==
             "0", "interval 0: the guest stops reporting")
        g.qmp.cmd("qom-set", path="dmm0", property="stats-interval",
                  value=1000)
        time.sleep(2.5)
        r.ok(dmm_stats(g)["seq"] > seq, "and starts again at 1 s")
        problems = g.kernel_problems()
        r.ok(not problems, "stats: no warnings or oopses",
             "\n".join(problems[:40]))


def ask_events(g, wait=0.5):
    return [e["data"] for e in g.qmp.poll_events(wait)
            if e["event"] == "VIRTIO_DMM_ASK"]


def suite_ask(r):
    """Issue 5: a guest under pressure asks for memory: granted up to
    max-size with auto-grant, passed on as an event without."""
    with Guest("ask", mem="512M", maxmem="3G", region="2G",
               dev_opts="auto-grant=on,max-size=1536M") as g:
        d = g.sysfs_dir()
        for attr, bad in (("ask_size", "abc"), ("ask_size", "0"),
                          ("ask_psi_above", "101"),
                          ("ask_psi_above", "1.234"),
                          ("ask_step", "0"), ("ask_available_below", "-1")):
            rc, out = g.run("echo %s > %s/%s" % (bad, d, attr))
            r.ok(rc != 0 and "Invalid argument" in out,
                 "sysfs %s refuses %r" % (attr, bad), out)
        r.ok(g.dmm_info()["requested-size"] == 512 * MiB,
             "bad writes asked for nothing")
        g.qmp.cmd("qom-set", path="dmm0", property="stats-interval",
                  value=200)
        g.out("echo %d > %s/ask_available_below" % (160 * MiB, d))
        g.out("echo %d > %s/ask_step" % (256 * MiB, d))
        g.out("echo 10 > %s/ask_psi_above" % d)
        r.ok(g.sysfs("ask_psi_above") == "10.00",
             "ask_psi_above reads back 10.00")
        t0 = time.time()
        g.run("dmm_grow -s %d -r 24 -w /tmp/go >/tmp/grow.log 2>&1 &"
              % (900 * MiB))
        # sample QMP: when the guest fell below its threshold, when the
        # host granted (requested-size rose), when the guest had it
        low = grant = None
        armed = True            # available was above the threshold
        lat, reached, psi_max = [], [], 0.0
        last_req, out = 512 * MiB, ""
        while time.time() - t0 < 300 and "ok 1" not in out:
            info = g.dmm_info()
            st = info.get("stats") or {}
            now = time.time()
            psi_max = max(psi_max, st.get("psi-some-avg10", 0))
            avail = st.get("available", GiB)
            armed = armed or avail >= 192 * MiB
            if armed and low is None and avail < 160 * MiB:
                low = now
            if info["requested-size"] > last_req:
                last_req, grant = info["requested-size"], now
                if low is not None:
                    lat.append(now - low)
                low, armed = None, False
            if grant and info["size"] == last_req:
                reached.append(now - grant)
                grant = None
            if int(now * 10) % 10 == 0:
                out = g.out("cat /tmp/grow.log")
            time.sleep(0.1)
        secs = time.time() - t0
        r.figure("ask: from MemAvailable below the threshold to the grant",
                 " ".join("%.2f s" % x for x in lat))
        r.figure("ask: from the grant to the memory plugged in the guest",
                 " ".join("%.2f s" % x for x in reached))
        r.figure("ask: highest PSI some avg10 seen", "%.2f %%" % psi_max)
        evs = ask_events(g)
        info = g.dmm_info()
        r.tap("dmm_grow (900 MiB in a 512 MiB guest)", 0, out + "\n# Totals")
        r.ok("not ok" not in out and not g.kernel_problems(),
             "the program grew to 900 MiB with no OOM kill")
        r.ok(info["requested-size"] > 512 * MiB and
             info["requested-size"] <= 1536 * MiB and
             int(g.sysfs("asks_granted")) >= 2,
             "the guest asked %s times, %s granted: requested-size now "
             "%d MiB (max-size 1536 MiB)" % (
                 g.sysfs("asks_sent"), g.sysfs("asks_granted"),
                 info["requested-size"] // MiB))
        r.ok(evs and all(e["result"] == "granted" and e["pressure"]
                         for e in evs),
             "VIRTIO_DMM_ASK events say granted, for pressure", evs)
        r.figure("ask: 900 MiB program in a 512 MiB guest with auto-grant",
                 "done in %.1f s; %s asks granted; requested-size %d MiB"
                 % (secs, g.sysfs("asks_granted"),
                    info["requested-size"] // MiB))
        # beyond max-size: refused, shown in sysfs
        rc, out = g.run("echo %d > %s/ask_size" % (2560 * MiB, d))
        r.ok(rc != 0 and "No space left" in out and
             g.sysfs("last_ask").endswith("refused") and
             g.dmm_info()["requested-size"] == info["requested-size"],
             "asking beyond max-size: refused, the guest's sysfs says so, "
             "requested-size unchanged", out)
        g.run("touch /tmp/go")
    with Guest("ask-off", mem="512M", maxmem="3G", region="2G") as g:
        d = g.sysfs_dir()
        r.ok(g.dmm_info()["auto-grant"] is False,
             "auto-grant is off by default")
        g.qmp.events.clear()
        rc, out = g.run("echo %d > %s/ask_size" % (1024 * MiB, d))
        evs = ask_events(g, 2)
        r.ok(rc != 0 and "Resource temporarily unavailable" in out and
             g.sysfs("last_ask") == "%d forwarded" % (1024 * MiB) and
             g.dmm_info()["requested-size"] == 512 * MiB,
             "without auto-grant the request is passed on; nothing changes",
             out)
        r.ok(len(evs) == 1 and evs[0]["result"] == "forwarded" and
             evs[0]["size"] == 1024 * MiB and not evs[0]["pressure"] and
             evs[0]["current-size"] == 512 * MiB,
             "QMP event VIRTIO_DMM_ASK: 1 GiB asked by the admin, forwarded",
             evs)
        # the management layer grants it
        g.set_requested(1024 * MiB)
        g.wait_current(1024 * MiB)
        r.ok(True, "the management layer granted it with requested-size")

# --- the balancer (issue 5) ---

BALANCER = dmmvm.BALANCER
Balancer = dmmvm.Balancer
balancer_spec = dmmvm.balancer_spec


def sizes(guests):
    return [g.dmm_info()["size"] for g in guests]


def suite_balancer_policy(r):
    """Issue 5: the balancer's policy, unit-tested on the host."""
    p = subprocess.run(["make", "-s", "-C", os.path.join(TOP, "tools",
                                                         "balancer"),
                        "BUILD=" + os.path.join(dmmvm.BUILD, "balancer"),
                        "test"], capture_output=True, text=True)
    r.tap("balancer policy", p.returncode, p.stdout + p.stderr)
    p = subprocess.run([BALANCER, "--help"], capture_output=True, text=True)
    r.ok(p.returncode == 0 and "SYNOPSIS" in p.stdout and
         "admit SIZE" in p.stdout, "dmm-balancer --help is a manual page")
    for bad in (["--budget", "lots"], ["--period", "0"], [],
                ["--budget", "1G", "noequals"],
                ["--budget", "1G", "a=/x,min=2G,max=1G"],
                ["--budget", "1G", "a=/x,weight=0"]):
        p = subprocess.run([BALANCER, *bad], capture_output=True, text=True)
        r.ok(p.returncode == 1 and "see --help" in p.stderr,
             "dmm-balancer %s: refused (%s)" % (" ".join(bad),
                                                p.stderr.splitlines()[0]
                                                if p.stderr else "?"))


def suite_balancer(r):
    """Issue 5: three guests, a budget below their maxima: the balancer
    moves memory to the busy one, the idle ones shrink, the budget holds."""
    budget = 1536 * MiB
    guests = []
    bal = None
    try:
        for name in ("bal-busy", "bal-idle1", "bal-idle2"):
            guests.append(Guest(name, mem="512M", maxmem="3G",
                                region="2G").start())
        busy, idle = guests[0], guests[1:]
        bal = Balancer("balancer", budget, [
            balancer_spec(busy, 384 * MiB, 1536 * MiB, 2),
            balancer_spec(idle[0], 256 * MiB, 1536 * MiB),
            balancer_spec(idle[1], 256 * MiB, 1536 * MiB)])
        busy.run("dmm_grow -s %d -r 16 -w /tmp/go >/tmp/grow.log 2>&1 &"
                 % (768 * MiB))
        t0, over, samples, out = time.time(), [], [], ""
        while time.time() - t0 < 300 and "ok 1" not in out:
            sz = sizes(guests)
            samples.append((time.time() - t0, sz))
            if sum(sz) > budget:
                over.append((time.time() - t0, sz))
            out = busy.out("cat /tmp/grow.log")
            time.sleep(1)
        busy_secs = time.time() - t0
        time.sleep(8)
        final = sizes(guests)
        r.tap("dmm_grow on the busy guest (768 MiB in a 512 MiB guest)", 0,
              out + "\n# Totals")
        r.ok("ok 1" in out and not busy.kernel_problems(),
             "the busy guest's program completed, no OOM kill (%.0f s)"
             % busy_secs, busy.console()[-2000:])
        r.ok(not over, "the guests held at most the budget (%d MiB) at all "
             "%d samples" % (budget // MiB, len(samples)), over[:5])
        r.ok(max(s[1][0] for s in samples) >= 900 * MiB,
             "the busy guest grew to %d MiB" % (max(s[1][0]
                                                    for s in samples) // MiB))
        r.ok(all(x <= 256 * MiB + 64 * MiB for x in final[1:]),
             "the idle guests shrank toward their min of 256 MiB: %s MiB"
             % [x // MiB for x in final[1:]])
        r.ok(all(not g.kernel_problems() for g in idle),
             "no OOM kill or warning in the idle guests")
        r.figure("balancer: busy guest's program", "%.0f s, sizes at the "
                 "end %s MiB" % (busy_secs, [x // MiB for x in final]))
        r.figure("balancer: sizes over time (s: busy, idle1, idle2 MiB)",
                 " ".join("%d:%s" % (t, "/".join(str(x // MiB) for x in sz))
                          for t, sz in samples[::5]))
        txt = bal.text()
        r.ok(bal.alive() and "grow" in txt and "shrink" in txt,
             "the balancer logged its decisions", txt[-1500:])
        png = os.path.join(dmmvm.LOGS, "balancer.png")
        p = subprocess.run([os.path.join(TOP, "scripts", "plot-balancer.sh"),
                            bal.csv, png, str(budget // MiB)],
                           capture_output=True, text=True)
        r.ok(p.returncode == 0 and os.path.getsize(png) > 10000,
             "plot of the sizes over time: %s" % png, p.stderr)
        busy.run("touch /tmp/go")
    finally:
        if bal:
            bal.stop()
        for g in guests:
            g.stop()


def suite_balancer_admit(r):
    """Issue 5: admission: room for a fourth guest is made by shrinking
    the others; a request that cannot be met changes nothing."""
    budget = 1536 * MiB
    guests = []
    bal = None
    try:
        for i in range(3):
            guests.append(Guest("adm-%d" % i, mem="512M", maxmem="2G",
                                region="1G").start())
        # a hysteresis this large keeps the guests where they are: the
        # budget stays full until the admission shrinks them
        bal = Balancer("balancer-admit", budget, [
            balancer_spec(g, 256 * MiB, 1024 * MiB, w)
            for g, w in zip(guests, (3, 1, 1))],
            extra=["--hysteresis", "512M"])
        time.sleep(3)
        st = bal.command("status")
        r.ok(st.startswith("budget %d committed %d" % (budget, budget)),
             "the budget is full: three guests of 512 MiB", st)
        before = [g.dmm_info()["requested-size"] for g in guests]
        t0 = time.time()
        ans = bal.command("admit 4G")
        time.sleep(2)
        r.ok(ans.startswith("no") and
             [g.dmm_info()["requested-size"] for g in guests] == before,
             "admit 4G: refused, nothing changed (%s)" % ans)
        ans = bal.command("admit 384M")
        secs = time.time() - t0
        after = sizes(guests)
        r.ok(ans == "yes" and sum(after) + 384 * MiB <= budget,
             "admit 384M: yes after the others shrank to %s MiB"
             % [x // MiB for x in after], ans)
        r.ok(after[0] == 512 * MiB,
             "the heaviest guest (weight 3) was not shrunk")
        r.figure("balancer: admission of a 384 MiB guest", "%.1f s" % secs)
        new = Guest("adm-new", mem="384M", maxmem="2G", region="1G").start()
        guests.append(new)
        r.ok(new.run("true")[0] == 0, "the fourth guest booted")
        r.ok(bal.command("add " + balancer_spec(new, 256 * MiB, 1024 * MiB))
             == "ok", "and joined the balancer")
        time.sleep(4)
        st = bal.command("status")
        total = sum(sizes(guests))
        r.ok(total <= budget and "adm-new alive" in st,
             "four guests within the budget: %d MiB" % (total // MiB), st)
        ans = bal.command("admit lots")
        r.ok(ans.startswith("error"), "admit with a bad size: %s" % ans)
    finally:
        if bal:
            bal.stop()
        for g in guests:
            g.stop()


def fake_qmp(path, mode):
    """A unix socket peer that is not a good QEMU: 'garbage' sends junk,
    'hang' never answers.  Runs in a thread until the socket is removed."""
    import socket
    import threading
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    srv.settimeout(0.5)

    def loop():
        conns = []
        while os.path.exists(path):
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            conns.append(c)
            if mode == "garbage":
                try:
                    c.sendall(b'{"QMP": {"version": {}}}\n{{{ not json ]\n'
                              b'\x00\xff garbage\n')
                except OSError:
                    pass
        for c in conns:
            c.close()
        srv.close()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def suite_balancer_faults(r):
    """Issue 5: a guest killed mid-run, a peer sending garbage and one that
    hangs do not stop the balancer serving the others."""
    guests = []
    bal = None
    junk = os.path.join(dmmvm.RUN, "fake-garbage.qmp")
    hang = os.path.join(dmmvm.RUN, "fake-hang.qmp")
    try:
        for i in range(2):
            guests.append(Guest("flt-%d" % i, mem="512M", maxmem="2G",
                                region="1G").start())
        fake_qmp(junk, "garbage")
        fake_qmp(hang, "hang")
        bal = Balancer("balancer-faults", 4096 * MiB, [
            balancer_spec(guests[0], 256 * MiB, 1024 * MiB),
            balancer_spec(guests[1], 256 * MiB, 1024 * MiB),
            "junk=%s,min=256M,max=1G" % junk,
            "hang=%s,min=256M,max=1G" % hang,
            "gone=%s,min=256M,max=1G" % os.path.join(dmmvm.RUN, "none.qmp")])
        time.sleep(3)
        guests[1].proc.kill()
        guests[1].proc.wait()
        # the survivor is idle: the balancer still shrinks it to its min
        t0 = time.time()
        while time.time() - t0 < 60 and \
                guests[0].dmm_info()["size"] > 320 * MiB:
            time.sleep(1)
        size = guests[0].dmm_info()["size"]
        st = bal.command("status")
        txt = bal.text()
        r.ok(bal.alive(), "the balancer is still running")
        r.ok(size <= 320 * MiB,
             "it still served the live guest: shrank it to %d MiB"
             % (size // MiB), txt[-2000:])
        r.ok("flt-1 lost" in st and "junk lost" in st and "hang lost" in st
             and "gone lost" in st and "flt-0 alive" in st,
             "status: the killed guest and the bad peers are skipped", st)
        r.ok("flt-1: dropped" in txt and "junk: dropped" in txt and
             "hang: dropped" in txt,
             "it logged why it dropped each", txt[-2000:])
        r.ok(bal.command("bogus").startswith("error") and
             bal.command("remove nobody").startswith("error") and
             bal.command("add x").startswith("error"),
             "bad control commands get an error and change nothing")
    finally:
        for p in (junk, hang):
            if os.path.exists(p):
                os.unlink(p)
        if bal:
            bal.stop()
        for g in guests:
            g.stop()


# --- security issue: test hooks, sysfs values, removal, unplugged memory ---

# The driver's debugfs test hooks (page_request, hint_request,
# touch_region) exist only with this module parameter; the guest's /init
# passes virtio_dmm.* of the kernel command line to insmod.
TEST_HOOKS = "virtio_dmm.test_hooks=1"
DEBUGFS_DMM = "/sys/kernel/debug/virtio_dmm"
HOOK_FILES = ["hint_request", "page_request", "touch_region"]


def wait_bound(g, timeout=60):
    """Wait until virtio_dmm is bound to the device again (after insmod or
    a PCI rescan); True if it is."""
    rc, _ = g.run("t=0; while [ $t -lt %d ]; do ls -d /sys/bus/virtio/"
                  "drivers/virtio_dmm/virtio*/dmm >/dev/null 2>&1 && exit 0;"
                  " usleep 50000; t=$((t+1)); done; exit 1" % (timeout * 20),
                  timeout + 30)
    return rc == 0


def hook_files(g):
    """The files in the device's debugfs directory, sorted ([] if none)."""
    rc, out = g.run("ls %s/virtio*/ 2>/dev/null" % DEBUGFS_DMM)
    return sorted(out.split()) if rc == 0 else []


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
        rc, out = g.run("ls -R %s" % DEBUGFS_DMM)
        r.ok(rc != 0 and not hook_files(g),
             "without test_hooks: no %s, so no page_request, hint_request "
             "or touch_region" % DEBUGFS_DMM, out)
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
        r.ok(rc == 0 and wait_bound(g) and not hook_files(g) and
             g.run("test -e " + DEBUGFS_DMM)[0] != 0,
             "reloaded without the parameter: the hooks are gone", out)
        problems = g.kernel_problems()
        r.ok(not problems, "test hooks: no warnings or oopses",
             "\n".join(problems[:40]))


def suite_sysfs_bad_values(r):
    """Security: huge and garbage values in every writable sysfs file fail
    with EINVAL and change nothing; ask_size sends no request."""
    # auto-grant: a bad ask_size that reached the device would be granted
    # and show as a new requested-size
    with Guest("sysfs-bad", mem="512M", maxmem="2G", region="1G",
               dev_opts="auto-grant=on") as g:
        d = g.sysfs_dir()
        before = dmm_state(g)
        g.qmp.events.clear()
        gtap(r, g, "dmm_sysfs_bad")
        evs = ask_events(g, 1)
        after = dmm_state(g)
        r.ok(after == before,
             "bad sysfs values: QMP requested-size %d MiB and the device's "
             "state unchanged" % (after["requested-size"] // MiB),
             "before %s\nafter %s" % (before, after))
        r.ok(not evs, "bad sysfs values: no VIRTIO_DMM_ASK event (no "
             "request, neither for memory nor to shrink)", evs)
        r.ok(g.sysfs("asks_sent") == "0" and g.sysfs("last_ask") == "0 none",
             "bad sysfs values: the guest sent no request (asks_sent %s, "
             "last_ask %s)" % (g.sysfs("asks_sent"), g.sysfs("last_ask")))
        # the largest valid size is still accepted and granted as it is
        top = g.mem + g.region
        g.qmp.events.clear()
        rc, out = g.run("echo %d > %s/ask_size" % (top, d))
        evs = ask_events(g, 1)
        r.ok(rc == 0 and len(evs) == 1 and evs[0]["size"] == top and
             evs[0]["result"] == "granted" and
             g.dmm_info()["requested-size"] == top,
             "ask_size of boot size + region (%d MiB, the largest valid): "
             "granted as asked" % (top // MiB), "%s\n%s" % (out, evs))
        g.set_requested(g.mem)
        problems = g.kernel_problems()
        r.ok(not problems, "bad sysfs values: no warnings or oopses",
             "\n".join(problems[:40]))


def pci_of_dmm(g):
    """The PCI address of the virtio-dmm device (0000:00:NN.N)."""
    return g.out("basename $(readlink -f /sys/bus/virtio/drivers/virtio_dmm/"
                 "virtio*/..)").strip()


def suite_remove_compaction(r):
    """Security: removing the driver (rmmod, PCI remove) while compaction
    migrates its unplugged pages leaves no page isolated behind."""
    with Guest("remove-compact", mem="1G", maxmem="2G", region="1G",
               dev_opts="free-page-reporting=off") as g:
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
                 info["size"] == GiB,
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
                rc, out = g.run("insmod /lib/modules/virtio_dmm.ko")
            else:
                rc, out = g.run("echo 1 > /sys/bus/pci/rescan")
            if not r.ok(rc == 0 and wait_bound(g),
                        "%s: the driver binds again" % label, out):
                return
        r.ok(moved > 0, "compaction migrated %d unplugged pages around the "
             "removals (the race was there to lose)" % moved)
        problems = g.kernel_problems()
        r.ok(not problems, "removal during compaction: no warnings or "
             "oopses", "\n".join(problems[:40]))


def touch_region(g, off, length):
    """Touch [@off, @off + @length) of the region through the driver's
    debugfs hook: (exit status, output, (written, read back) or None)."""
    # the shell does not expand a pattern after ">"
    f = g.out("echo %s/virtio*/touch_region" % DEBUGFS_DMM).strip()
    rc, out = g.run("echo %d %d > %s && cat %s" % (off, length, f, f), 600)
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
        problems = g.kernel_problems()
        r.ok(not problems, "unplugged access: no warnings or oopses",
             "\n".join(problems[:40]))


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


# --- sanitizer QEMU (scripts/build-qemu-fuzz.sh) ---

SANITIZER_ERRORS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                    "runtime error:")


def sanitizer_reports(text):
    """The lines of @text that start a sanitizer report."""
    return [line for line in text.splitlines()
            if any(e in line for e in SANITIZER_ERRORS)]


def suite_qtest_asan(r):
    """The virtio-dmm qtest on the ASan/UBSan QEMU, LeakSanitizer on."""
    qbuild = os.path.join(dmmvm.BUILD, "qemu-fuzz")
    # QEMU and the test inherit these and write reports to the test's
    # stderr.  libqtest stops QEMU with SIGTERM: QEMU exits from main, so
    # LeakSanitizer checks it at exit (a leak makes the exit status 1,
    # which libqtest reports too).
    # fast_unwind_on_malloc=0: whole allocation stacks, through glib too.
    env = dict(os.environ, QTEST_QEMU_BINARY="./qemu-system-x86_64",
               ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0",
               LSAN_OPTIONS="suppressions=%s:print_suppressions=0" %
               os.path.join(qbuild, "lsan-suppressions.txt"),
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    p = subprocess.run(["timeout", "900", "tests/qtest/virtio-dmm-test",
                        "--tap"], cwd=qbuild, env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(os.path.join(dmmvm.LOGS, "qtest-asan.log"), "w") as f:
        f.write(p.stdout + "\n--- stderr ---\n" + p.stderr)
    r.tap("qtest-asan", p.returncode, p.stdout)
    reports = sanitizer_reports(p.stderr + p.stdout)
    first = min([p.stderr.find(e) for e in SANITIZER_ERRORS
                 if e in p.stderr] or [0])
    r.ok(not reports, "qtest-asan: no ASan, LeakSanitizer or UBSan report",
         "\n".join(reports[:10]) + "\n" + p.stderr[first:first + 6000])


def suite_fuzz_smoke(r):
    """QEMU's generic-fuzz on virtio-dmm-pci for a minute: nothing found."""
    secs = int(os.environ.get("DMM_FUZZ_SMOKE_SECS", "60"))
    # logs, artifacts and a corpus of its own (build/fuzz/smoke/), the
    # corpus empty at the start: the same run as on a fresh clone
    rundir = os.path.join(dmmvm.BUILD, "fuzz", "smoke")
    corpus = os.path.join(rundir, "corpus")
    subprocess.run(["rm", "-rf", corpus], check=True)
    p = subprocess.run([os.path.join(TOP, "scripts", "fuzz-qemu.sh"),
                        str(secs)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True,
                       env=dict(os.environ, DMM_FUZZ_RUN="smoke",
                                DMM_FUZZ_CORPUS=corpus),
                       timeout=secs + 600)
    runlog = os.path.join(rundir, "run.log")
    log = open(runlog, errors="replace").read() \
        if os.path.exists(runlog) else ""
    for line in p.stdout.splitlines():
        if not line.startswith("  * "):
            r.diag("  " + line)
    r.ok("INITED" in log, "fuzz-smoke: generic-fuzz started",
         p.stdout[-3000:])
    regions = re.findall(r"^  \* (\S+?)(?:\[\d+\])? \(size", log, re.M)
    want = ("virtio-pci-common-virtio-dmm", "virtio-pci-notify-virtio-dmm",
            "virtio-pci-device-virtio-dmm")
    r.ok(all(w in regions for w in want),
         "fuzz-smoke: the device's BARs are fuzzed", "\n".join(regions))
    # the seeds' requests, replayed with trace events on, reached the
    # parsers of the request, report, page and hint queues
    events = dict(re.findall(r"^  (virtio_dmm_\w+) (\d+)$", p.stdout, re.M))
    want = ("virtio_dmm_request", "virtio_dmm_ask", "virtio_dmm_page_request",
            "virtio_dmm_hint_request", "virtio_dmm_report_refused")
    r.ok(all(int(events.get(w, 0)) > 0 for w in want),
         "fuzz-smoke: requests on every queue reach the device",
         "trace events: %s" % events)
    m = re.search(r"^stat::number_of_executed_units: (\d+)", log, re.M)
    runs = int(m.group(1)) if m else 0
    r.ok(runs >= 10 * secs, "fuzz-smoke: ran %d inputs in %d s" %
         (runs, secs))
    r.ok(p.returncode == 0, "fuzz-smoke: no crash, leak or sanitizer report",
         p.stdout[-4000:])


SUITES = {
    "devlib": suite_devlib,
    "driver-checks": suite_driver_checks,
    "qemu-checks": suite_qemu_checks,
    "qtest": suite_qtest,
    "qtest-asan": suite_qtest_asan,
    "fuzz-smoke": suite_fuzz_smoke,
    "coarse": suite_coarse,
    "bad-config": suite_bad_config,
    "page-poison": suite_page_poison,
    "busy-shrink": suite_busy_shrink,
    "migrate": suite_migrate,
    "free-page-reporting": suite_free_page_reporting,
    "fine": suite_fine,
    "fine-load": suite_fine_load,
    "fine-frag": suite_fine_frag,
    "fine-random": suite_fine_random,
    "fine-migrate": suite_fine_migrate,
    "callback-conflict": suite_callback_conflict,
    "fine-bad-lists": suite_fine_bad_lists,
    "hint-zero": suite_hint_zero,
    "hint-dup": suite_hint_dup,
    "hint-bad": suite_hint_bad,
    "stats": suite_stats,
    "ask": suite_ask,
    "balancer-policy": suite_balancer_policy,
    "balancer": suite_balancer,
    "balancer-admit": suite_balancer_admit,
    "balancer-faults": suite_balancer_faults,
    "test-hooks": suite_test_hooks,
    "sysfs-bad-values": suite_sysfs_bad_values,
    "remove-compaction": suite_remove_compaction,
    "unplugged-access": suite_unplugged_access,
    "stress-migrate-smoke": suite_stress_migrate_smoke,
}


def main(argv):
    if "--list" in argv:
        for name, fn in SUITES.items():
            print("%-14s %s" % (name, fn.__doc__.strip().splitlines()[0]))
        return 0
    names = [a for a in argv if not a.startswith("-")] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print("unknown suite(s): %s (see --list)" % " ".join(unknown),
              file=sys.stderr)
        return 2
    r = Results()
    for name in names:
        t0 = time.time()
        r.diag("suite %s: %s" % (name, SUITES[name].__doc__.strip()))
        try:
            SUITES[name](r)
        except Exception as e:       # a broken suite fails, the run goes on
            r.ok(False, "suite %s ran to the end" % name,
                 "".join(traceback.format_exception(e)))
        r.diag("suite %s: %.1f s" % (name, time.time() - t0))
    r.summary()
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
