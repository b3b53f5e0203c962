# SPDX-License-Identifier: GPL-2.0
"""Checks and guest helpers that suites of more than one area use."""

import os
import re
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB


def kselftest_timeout():
    """The time limit of a guest selftest: timeout= of selftests/dmm/settings
    (as kselftest's runner reads it)."""
    path = os.path.join(dmmvm.TOP, "selftests", "dmm", "settings")
    with open(path) as f:
        return int(re.search(r"^timeout=(\d+)$", f.read(), re.M).group(1))


TIMEOUT = kselftest_timeout()


def gtap(r, g, cmd, timeout=TIMEOUT):
    """Run a guest selftest and fold its TAP into @r."""
    rc, out = g.run(cmd, timeout)
    r.tap(cmd.split()[0], rc, out)
    return rc


DMM_STATE = ("requested-size", "size", "max-size", "requested-guest-size",
             "guest-size", "sub-block-plugged-size", "unplugged-size",
             "memaddr", "boot-size", "block-size", "sub-block-size", "node",
             "memdev")


def dmm_state(g):
    """The device's block, sub-block and page state from QMP, without the
    counters and reports that change on their own."""
    info = g.dmm_info()
    return {k: info[k] for k in DMM_STATE}


def grow(r, g, total, label):
    """Set requested-guest-size to @total and wait; returns seconds."""
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
    r.ok(info["size"] == plugged and info["requested-size"] == plugged and
         info["requested-guest-size"] == total,
         "%s: QMP reports plugged %d MiB, requested %d MiB of %d MiB"
         % (label, plugged // MiB, plugged // MiB, total // MiB), info)
    r.ok(int(g.sysfs("requested_size")) == total,
         "%s: sysfs requested_size is %d" % (label, total))
    gtap(r, g, "dmm_state_check %d" % plugged)
    return secs


def wait_guest_file(g, path, text, timeout=120):
    """Wait until guest file @path contains @text; returns its content."""
    deadline = time.time() + timeout
    while True:
        out = g.run("cat %s 2>/dev/null" % path)[1]
        if text in out or time.time() > deadline:
            return out
        time.sleep(0.2)


def wait_guest_exit(g, comm, timeout=60):
    """Wait until no guest process is called @comm: a program prints its
    last line before its memory is freed, which takes a while under TCG.
    Returns whether it is gone."""
    deadline = time.time() + timeout
    while g.run("grep -qx %s /proc/[0-9]*/comm" % comm)[0] == 0:
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


def resize(r, g, total, label, timeout=120):
    """Set requested-guest-size to @total; wait until the guest has exactly
    that much RAM and is idle.  Returns seconds, or None after a failed
    check."""
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
    r.ok(info["guest-size"] == total and
         info["requested-guest-size"] == total and
         cur == total and g.counter("gap_size") == "0" and
         info["boot-size"] + info["size"] -
         info["unplugged-size"] == total,
         "%s: QMP and sysfs agree the guest has %d MiB (plugged %d MiB, "
         "unplugged pages %d MiB)" % (label, total // MiB,
                                      info["size"] // MiB,
                                      info["unplugged-size"] // MiB),
         "QMP %s\nsysfs current_size %d gap %s" % (info, cur,
                                                   g.counter("gap_size")))
    want = mt0 + info["size"] - info["unplugged-size"]
    r.ok(want - info["size"] * 0.03 - MiB <= mt <= want + MiB,
         "%s: MemTotal %d MiB matches (boot %d MiB %+d MiB)"
         % (label, mt // MiB, mt0 // MiB, (want - mt0) // MiB),
         "MemTotal %d, expected about %d" % (mt, want))
    r.ok(int(g.sysfs("unplugged_size")) == info["unplugged-size"] and
         int(g.sysfs("plugged_size")) == info["size"] and
         int(g.counter("sub_block_plugged_size")) ==
         info["sub-block-plugged-size"],
         "%s: guest and device agree per granularity: blocks %d MiB, "
         "sub-blocks %d MiB plugged, pages %d KiB unplugged"
         % (label, (info["size"] -
                    info["sub-block-plugged-size"]) // MiB,
            info["sub-block-plugged-size"] // MiB,
            info["unplugged-size"] // 1024))


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


def debugfs_write(g, f, line, timeout=120):
    """Write @line to the driver's debugfs file @f, then read its answer:
    (exit status, answer)."""
    return g.run("echo %s > %s && cat %s" % (line, f, f), timeout)


def grown_guest(name):
    """A guest of 1 GiB with a 2 GiB region, grown to 2 GiB at boot."""
    return dmmvm.Guest(name, mem="1G", maxmem="4G", region="2G",
                       requested="2G")


def boot_memtotal(g):
    """Wait until grown_guest @g has its 2 GiB; returns its MemTotal less
    the 1 GiB plugged: what check_sizes() compares against."""
    g.wait_current(2 * GiB)
    return g.meminfo()["MemTotal"] - GiB


# The driver's debugfs test hooks (page_request, hint_request,
# touch_region) exist only with this module parameter; the guest's /init
# passes virtio_dmm.* of the kernel command line to insmod.
TEST_HOOKS = "virtio_dmm.test_hooks=1"


DEBUGFS_DMM = "/sys/kernel/debug/virtio_dmm"


def debugfs_files(g):
    """The files in the device's debugfs directory, sorted ([] if none)."""
    rc, out = g.run("ls %s/virtio*/ 2>/dev/null" % DEBUGFS_DMM)
    return sorted(out.split()) if rc == 0 else []


def hook_files(g):
    """The test hooks in the device's debugfs directory (test_hooks=1):
    every file but ``blocks`` and ``counters``, which are always there."""
    return [f for f in debugfs_files(g) if f not in ("blocks", "counters")]


def last_ask(g):
    """The driver's last request for memory, "SIZE RESULT" (debugfs)."""
    c = g.counters()
    return "%s %s" % (c["last_ask_size"], c["last_ask_result"])


def dmm_size_events(g, guest_size, wait=3.0):
    """VIRTIO_DMM_SIZE_CHANGE data for dmm0, waiting up to @wait seconds
    for one with @guest_size (the monitor sends the latest within 1 s)."""
    deadline = time.time() + wait
    while True:
        evs = [e["data"] for e in g.qmp.poll_events(0.2)
                if e.get("event") == "VIRTIO_DMM_SIZE_CHANGE" and
                e["data"].get("id") == "dmm0"]
        if (evs and evs[-1]["guest-size"] == guest_size) or \
                time.time() > deadline:
            return evs


def ask_events(g, wait=0.5):
    return [e["data"] for e in g.qmp.poll_events(wait)
            if e["event"] == "VIRTIO_DMM_ASK"]


def rmmod_dmm(g, tries=20):
    """rmmod virtio_dmm, again every 0.5 s while it fails with EAGAIN.

    busybox rmmod asks with O_NONBLOCK: a module reference held for a
    moment (an open sysfs or debugfs file, a work item finishing) makes
    it fail with "Resource temporarily unavailable" instead of waiting.
    A reference that stays, or any other error, still fails.
    Returns (rc, output of the last try).
    """
    rc, out = 1, ""
    for _ in range(tries):
        rc, out = g.run("rmmod virtio_dmm 2>&1")
        if rc == 0 or "temporarily unavailable" not in out:
            break
        time.sleep(0.5)
    return rc, out
