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


def check_bad_qmp_values(r, g):
    before = g.dmm_info()
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
        after = g.dmm_info()
        r.ok(after == before and msg,
             "qmp: requested-size %r (%s) refused, nothing changed"
             % (value, why), "error %r\nbefore %s\nafter %s"
             % (msg, before, after))
        r.diag("  -> %s" % msg)
    time.sleep(0.5)
    out = g.qmp.hmp("qom-set dmm0 requested-size 513M")
    r.ok("not boot-size" in out and g.dmm_info() == before,
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
    with Guest("coarse", mem="512M", maxmem="4G", region="3G") as g:
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


def suite_busy_shrink(r):
    """Issue 2: a shrink that memory in use blocks backs off, loses nothing."""
    with Guest("busy", mem="512M", maxmem="4G", region="3G") as g:
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
        r.ok(g.sysfs("status") == "busy" and
             int(g.sysfs("unplug_failures")) > 0,
             "shrink while held: status busy, unplug failures counted")
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


SUITES = {
    "devlib": suite_devlib,
    "driver-checks": suite_driver_checks,
    "qemu-checks": suite_qemu_checks,
    "qtest": suite_qtest,
    "coarse": suite_coarse,
    "bad-config": suite_bad_config,
    "busy-shrink": suite_busy_shrink,
    "migrate": suite_migrate,
    "free-page-reporting": suite_free_page_reporting,
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
