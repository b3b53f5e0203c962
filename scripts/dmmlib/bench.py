# SPDX-License-Identifier: GPL-2.0
"""virtio-dmm against its anchors, side by side (scripts/bench.py).

The systems (how a guest of each is booted and resized), the experiments
(what is done to a guest and timed; one experiment gives samples for one
or more scenarios) and the scenarios (one row of the table each, with the
target of issue 14).  Every system runs on the same QEMU binary, guest
kernel and initramfs (dmmlib.dmmvm).  Nothing here asserts a timing.
"""

import os
import statistics
import time
import traceback

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Balancer, Guest, HostKSM, balancer_spec, \
    hint_file

# virtio-dmm's monitor names: the only place this module spells them
DMM_ID = "dmm0"                          # the device's id (qom path)
DMM_REQUESTED = "requested-guest-size"   # the guest's target total RAM
DMM_SIZE = "guest-size"                  # the guest's total RAM now
DMM_FPR = "free-page-reporting"          # device option: on/off
DMM_DUP_HINTS = "dup-hints"              # device option: on/off

# anchors' monitor names (QEMU's own devices)
VMEM_ID = "vm0"
BALLOON_ID = "bal0"

POLL = 0.005                             # seconds between QMP polls


def poll(fn, want, limit):
    """Seconds until fn() == want, or None after @limit s."""
    t0 = time.monotonic()
    while fn() != want:
        if time.monotonic() - t0 > limit:
            return None
        time.sleep(POLL)
    return time.monotonic() - t0


def qemu_kib(g, field):
    """@field of QEMU's /proc/PID/smaps_rollup, bytes."""
    return g._proc_kib("smaps_rollup", field)


# --- systems -----------------------------------------------------------

class Dmm:
    """virtio-dmm: the region is the memory above the boot size."""

    name = "virtio-dmm"

    def guest(self, tag, boot, top, start=None, fpr=False, opts="",
              **kw):
        opts = ["%s=%s" % (DMM_FPR, "on" if fpr else "off")] + \
            ([opts] if opts else [])
        if start is not None:
            opts.append("%s=%d" % (DMM_REQUESTED, start))
        region = max(top - boot, GiB)
        return Guest("bench-%s-dmm" % tag, mem="%dM" % (boot // MiB),
                     maxmem="%dM" % ((boot + region + GiB) // MiB),
                     region="%dM" % (region // MiB), dev_opts=",".join(opts),
                     **kw)

    def size(self, g):
        return g.qmp.cmd("qom-get", path=DMM_ID, property=DMM_SIZE)

    def set(self, g, total):
        g.qmp.cmd("qom-set", path=DMM_ID, property=DMM_REQUESTED, value=total)


class VirtioMem:
    """virtio-mem with block size @bs (QEMU's default: 2 MiB)."""

    def __init__(self, bs=2 * MiB):
        self.bs = bs
        self.name = "virtio-mem/%dM" % (bs // MiB)
        self.boot = None

    def guest(self, tag, boot, top, start=None, fpr=False, opts="", **kw):
        self.boot = boot
        req = (start or boot) - boot
        region = max(top - boot, GiB)
        return Guest("bench-%s-vmem%d" % (tag, self.bs // MiB),
                     mem="%dM" % (boot // MiB),
                     maxmem="%dM" % ((boot + region + GiB) // MiB),
                     region=None, modules=["virtio_mem"], extra_args=[
                         "-object", "memory-backend-ram,id=vmem0,size=%d,"
                         "reserve=off" % region, "-device",
                         "virtio-mem-pci,id=%s,memdev=vmem0,block-size=%d,"
                         "requested-size=%d" % (VMEM_ID, self.bs, req)],
                     **kw)

    def size(self, g):
        return self.boot + g.qmp.cmd("qom-get", path=VMEM_ID,
                                     property="size")

    def set(self, g, total):
        g.qmp.cmd("qom-set", path=VMEM_ID, property="requested-size",
                  value=total - self.boot)


class Balloon:
    """virtio-balloon: boots at its largest size and inflates from there."""

    def __init__(self, fpr=False):
        self.fpr = fpr
        self.name = "virtio-balloon" + (" FPR" if fpr else "")

    def guest(self, tag, boot, top, start=None, fpr=False, **kw):
        dev = "virtio-balloon-pci,id=%s" % BALLOON_ID
        if self.fpr:
            dev += ",free-page-reporting=on"
        return Guest("bench-%s-balloon" % tag, mem="%dM" % (top // MiB),
                     maxmem="%dM" % ((top + GiB) // MiB), region=None,
                     modules=["virtio_balloon"], extra_args=["-device", dev],
                     **kw)

    def size(self, g):
        return g.qmp.cmd("query-balloon")["actual"]

    def set(self, g, total):
        g.qmp.cmd("balloon", value=total)


DMM, VMEM2, VMEM128 = Dmm(), VirtioMem(), VirtioMem(128 * MiB)
BALLOON, BALLOON_FPR = Balloon(), Balloon(fpr=True)


def resize(sys, g, total, limit):
    """Ask for @total, seconds until the guest has it (None: not within
    @limit s)."""
    t0 = time.monotonic()
    sys.set(g, total)
    t = poll(lambda: sys.size(g), total, limit)
    return None if t is None else time.monotonic() - t0


def background(g, cmd, log, ready, limit=600):
    """Start guest program @cmd in the background, its output in @log;
    return when @log says @ready."""
    g.run("%s >%s 2>&1 &" % (cmd, log))
    t0 = time.monotonic()
    while ready not in g.out("cat " + log):
        if time.monotonic() - t0 > limit:
            raise RuntimeError("%s: %s" % (cmd, g.out("cat " + log)))
        time.sleep(0.5)


def settle(sys, g, total, limit=300):
    """Wait until what the guest booted with is plugged."""
    if poll(lambda: sys.size(g), total, limit) is None:
        raise RuntimeError("%s: %d MiB not plugged after %d s"
                           % (sys.name, total // MiB, limit))


def rss_returned(g, rss0, settle_s):
    """After a shrink reached its target: percent of what QEMU's RSS fell
    by (after @settle_s more seconds) that it had fallen by 1 s after the
    target was reached, and that fall in bytes."""
    time.sleep(1)
    rss1 = g.rss()
    time.sleep(settle_s)
    fell = rss0 - g.rss()
    if fell < 16 * MiB:
        return None, fell
    return min(100.0, 100.0 * (rss0 - rss1) / fell), fell


# --- experiments -------------------------------------------------------
#
# An experiment is run once per system per repetition and returns
# {scenario: (value, size, note)}; None as value means the system did not
# get there within the time limit (the note says why).

class Experiment:
    systems = ()
    produces = ()

    def __init__(self, quick):
        self.quick = quick

    def run(self, sys, tag):
        raise NotImplementedError


class Resize(Experiment):
    """Grow an untouched guest, touch, free, shrink back (issue 14 rows 1,
    2; RSS after the shrink)."""

    systems = (DMM, VMEM128, VMEM2)
    produces = ("grow", "shrink", "rss-1s")

    def run(self, sys, tag):
        boot = 512 * MiB
        delta = 512 * MiB if self.quick else 2 * GiB
        touch = delta // 2 if self.quick else delta * 9 // 10
        with sys.guest(tag, boot, boot + delta) as g:
            g.run("sleep 1")
            grow = resize(sys, g, boot + delta, 300)
            g.out("dmm_memfill -s %d" % touch, timeout=600)
            rss0 = g.rss()
            shrink = resize(sys, g, boot, 300)
            pct, fell = rss_returned(g, rss0, 1 if self.quick else 4) \
                if shrink else (None, 0)
        return {"grow": (grow, delta, ""),
                "shrink": (shrink, delta, "%d MiB touched and freed first"
                           % (touch // MiB)),
                "rss-1s": (pct, delta, "after shrink: RSS fell %d MiB"
                           % (fell // MiB))}


class BelowBoot(Experiment):
    """Shrink below the boot size and grow back; QEMU's huge pages before
    and after (rows 3, 4, 8; RSS after the shrink)."""

    systems = (DMM, BALLOON)
    produces = ("shrink-below", "grow-back", "thp", "rss-1s")

    def run(self, sys, tag):
        low = 384 * MiB if self.quick else 512 * MiB
        delta = 256 * MiB if self.quick else 2 * GiB
        top = low + delta
        touch = 256 * MiB if self.quick else top - 320 * MiB
        with sys.guest(tag, top, top) as g:
            g.run("sleep 1")
            g.out("dmm_memfill -s %d" % touch, timeout=600)
            time.sleep(1)
            thp0, rss0 = qemu_kib(g, "AnonHugePages"), g.rss()
            shrink = resize(sys, g, low, 300)
            pct, fell = rss_returned(g, rss0, 1 if self.quick else 4) \
                if shrink else (None, 0)
            grow = resize(sys, g, top, 300) if shrink else None
            thp = None
            note = "THP %s" % thp_setting()
            if grow is not None:
                g.out("dmm_memfill -s %d" % touch, timeout=600)
                time.sleep(1)
                thp1 = qemu_kib(g, "AnonHugePages")
                note += ": AnonHugePages %d -> %d MiB" % (thp0 // MiB,
                                                         thp1 // MiB)
                thp = 100.0 * thp1 / thp0 if thp0 else None
        return {"shrink-below": (shrink, delta, "%d MiB touched and freed "
                                 "first" % (touch // MiB)),
                "grow-back": (grow, delta, ""),
                "thp": (thp, delta, note),
                "rss-1s": (pct, delta, "after shrink below boot: RSS fell "
                           "%d MiB" % (fell // MiB))}


def oom_kills(g):
    """The guest kernel's count of OOM kills (/proc/vmstat oom_kill)."""
    return int(g.out("grep -w oom_kill /proc/vmstat").split()[1])


# the note of a fragmented run that ended where the driver's floor stopped
# it (its floor_stops counter rose), not short of it
AT_FLOOR = "stopped at its floor"


def floor_stops(sys, g):
    """virtio-dmm's count of unplugs stopped at its floor (debugfs); 0
    for the anchors, which have none."""
    return int(g.counter("floor_stops")) if sys is DMM else 0


class Fragmented(Experiment):
    """Shrink while a program holds 60 % of RAM in scattered 4 KiB pages
    (row 5)."""

    systems = (DMM, VMEM2, BALLOON)
    produces = ("fragmented",)

    def run(self, sys, tag):
        boot = 512 * MiB
        top = 768 * MiB if self.quick else 2560 * MiB
        delta = 256 * MiB if self.quick else GiB
        quiet, limit = (3, 10) if self.quick else (5, 90)
        with sys.guest(tag, boot, top, start=top) as g:
            settle(sys, g, top)
            g.run("sleep 1")
            hold = top * 6 // 10
            background(g, "dmm_scatter -h %d -w /tmp/stop" % hold,
                       "/tmp/s.log", "scattered")
            kills0 = oom_kills(g)
            stops0 = floor_stops(sys, g)
            t0 = time.monotonic()
            sys.set(g, top - delta)
            last, t_last = top, 0.0
            while True:
                now = time.monotonic() - t0
                size = sys.size(g)
                if size != last:
                    last, t_last = size, now
                if size == top - delta or now - t_last > quiet or \
                        now > limit:
                    break
                time.sleep(POLL)
            got = top - last
            kills = oom_kills(g) - kills0
            at_floor = floor_stops(sys, g) > stops0
        # a system without a floor gets further by killing the program
        # (virtio-balloon, seen once): no value, and the table says why
        if kills:
            return {"fragmented": (None, delta, "OOM kill: the program "
                                   "was killed (%d kills); %d MiB given "
                                   "back by then" % (kills, got // MiB))}
        if got <= 0:
            return {"fragmented": (None, delta, "gave back nothing within "
                                   "%d s" % limit)}
        return {"fragmented": (t_last, got, "%s: %d of %d MiB" % (
            "target" if got == delta else
            AT_FLOOR if at_floor else "stopped", got // MiB,
            delta // MiB))}


class FreePageReporting(Experiment):
    """A program frees memory: time until QEMU's RSS fell by 95 % of it
    (row 6; free page reporting reports free blocks of 2 MiB and more,
    a few scattered pages of what was freed stay)."""

    systems = (DMM, BALLOON_FPR)
    produces = ("fpr",)

    def run(self, sys, tag):
        size = 256 * MiB if self.quick else GiB
        boot = size + 512 * MiB
        limit = 10 if self.quick else 60
        with sys.guest(tag, boot, boot, fpr=True) as g:
            g.run("sleep 2")
            background(g, "dmm_memfill -s %d -w /tmp/free" % size,
                       "/tmp/f.log", "waiting")
            time.sleep(1)
            rss0 = g.rss()
            want = size * 95 // 100
            t0 = time.monotonic()
            g.run("touch /tmp/free")
            while rss0 - g.rss() < want:
                if time.monotonic() - t0 > limit:
                    return {"fpr": (None, size, "RSS fell %d MiB in %d s"
                                    % ((rss0 - g.rss()) // MiB, limit))}
                time.sleep(0.05)
            t = time.monotonic() - t0
        return {"fpr": (t, size, "until RSS fell by 95 %% (%d MiB)"
                        % (want // MiB))}


class Scaling(Experiment):
    """Grow and shrink untouched regions of growing size (row 9)."""

    systems = (DMM, VMEM2)
    produces = ("scale-grow", "scale-shrink")

    SIZES = (8, 16, 32, 64)              # GiB; scripts/bench.py --scale
    QUICK_SIZES = (0.25, 0.5)

    def sizes(self):
        return self.QUICK_SIZES if self.quick else self.SIZES

    def run(self, sys, tag):
        big = int(max(self.sizes()) * GiB)
        # the memmap of the largest region (64 B per 4 KiB page) comes
        # out of boot memory
        boot = 512 * MiB + big // 32
        out = {"scale-grow": [], "scale-shrink": []}
        with sys.guest(tag, boot, boot + big, timeout=3600) as g:
            g.run("sleep 1")
            for gib in self.sizes():
                size = int(gib * GiB)
                grow = resize(sys, g, boot + size, 900)
                shrink = resize(sys, g, boot, 900) if grow else None
                out["scale-grow"].append((grow, size, ""))
                out["scale-shrink"].append((shrink, size, ""))
        return out


class Hints(Experiment):
    """Duplicate and zero hints against KSM on all guest memory (row 10;
    from the former bench-hints.py)."""

    systems = ("virtio-dmm", "KSM defaults", "KSM fast")
    produces = ("hints",)
    KSM = {"virtio-dmm": dict(pages_to_scan=2000, sleep_ms=20, zero_pages=1),
           "KSM defaults": dict(pages_to_scan=100, sleep_ms=20,
                                zero_pages=0),
           "KSM fast": dict(pages_to_scan=2000, sleep_ms=20, zero_pages=1)}

    def guest(self, sys, tag, i):
        dmm = sys == "virtio-dmm"
        mods = ["virtio_blk"] + (["virtio_dmm"] if dmm else [])
        return Guest("bench-%s-%s-%d" % (tag, sys.split()[-1].lower(), i),
                     mem="1G", maxmem="3G",
                     region="1G" if dmm else None, modules=mods,
                     mem_merge=not dmm, extra_args=[
                         "-drive", "file=%s,format=raw,if=virtio,"
                         "snapshot=on" % hint_file()],
                     dev_opts="%s=on" % DMM_DUP_HINTS if dmm else "")

    def prepare(self, g, dmm, part):
        """Page cache, zeroed memory, memory about to be freed; held."""
        if dmm:
            g.out("echo 0 > %s/hint_budget" % g.sysfs_dir())
        g.run("sleep 100000 </dev/vda >/dev/null 2>&1 &")
        g.out("dd if=/dev/vda of=/dev/null bs=1M count=%d 2>/dev/null"
              % (part // MiB), 600)
        background(g, "dmm_zerohold -s %d -w /tmp/never" % part,
                   "/tmp/z.log", "zeroed")
        background(g, "dmm_memfill -s %d -w /tmp/free" % part, "/tmp/f.log",
                   "waiting")

    @staticmethod
    def scan_seconds(guests, dmm):
        if not dmm:
            return 0.0
        return sum(int(g.counter("hint_scan_ms")) for g in guests) / 1000

    def run(self, sys, tag):
        if not HostKSM.available():
            return {"hints": (None, 0, "no writable /sys/kernel/mm/ksm")}
        seconds = 8 if self.quick else 120
        part = 32 * MiB if self.quick else 256 * MiB
        # --quick: one guest (zero hints and freed memory, no sharing
        # between guests), to keep CI short
        nguests = 1 if self.quick else 2
        dmm = sys == "virtio-dmm"
        guests = []
        with HostKSM(**self.KSM[sys]) as ksm:
            ksm.write("run", 0)
            try:
                for i in range(nguests):
                    guests.append(self.guest(sys, tag, i).start())
                for g in guests:
                    self.prepare(g, dmm, part)
                time.sleep(3)
                peak = sum(g.pss() for g in guests)
                ksmd0 = HostKSM.ksmd_cpu_seconds()
                scan0 = self.scan_seconds(guests, dmm)
                t0 = time.monotonic()
                ksm.write("run", 1)
                for g in guests:
                    if dmm:
                        g.out("echo 50 > %s/hint_budget" % g.sysfs_dir())
                    g.run("touch /tmp/free")
                samples = []
                while time.monotonic() - t0 < seconds:
                    time.sleep(1)
                    cpu = HostKSM.ksmd_cpu_seconds() - ksmd0 + \
                        self.scan_seconds(guests, dmm) - scan0
                    samples.append((time.monotonic() - t0,
                                    sum(g.pss() for g in guests), cpu))
            finally:
                for g in guests:
                    g.stop()
        saved = peak - samples[-1][1]
        t90, cpu90 = next(((t, u) for t, p, u in samples
                           if peak - p >= 0.9 * saved), (None, None))
        if saved < MiB or t90 is None:
            return {"hints": (0.0, part, "saved nothing in %d s" % seconds)}
        value = 0.9 * saved / MiB / max(cpu90, 0.05)
        return {"hints": (value, part, "saved %d MiB, 90 %% of it after "
                          "%.1f s and %.2f CPU s" % (saved // MiB, t90,
                                                    cpu90))}


class BalancerRun(Experiment):
    """Three guests share a budget; one runs a growing program (from the
    former bench-balancer.py)."""

    systems = ("dmm-balancer", "static split")
    produces = ("balancer",)
    BUDGET = 1536 * MiB

    def __init__(self, quick, out=None):
        super().__init__(quick)
        self.out = out

    def run(self, sys, tag):
        use = sys == "dmm-balancer"
        grow = 128 * MiB if self.quick else 768 * MiB
        rate = 32 if self.quick else 16
        # --quick: one idle guest instead of two, a budget of 1 GiB
        names = ("busy", "idle1") if self.quick else ("busy", "idle1",
                                                      "idle2")
        budget = self.BUDGET * len(names) // 3
        guests, bal = [], None
        try:
            for name in names:
                guests.append(Guest("bench-%s-%s-%s" % (
                    tag, "bal" if use else "static", name), mem="512M",
                    maxmem="3G", region="2G").start())
            if use:
                bal = Balancer("bench-balancer", budget, [
                    balancer_spec(guests[0], 384 * MiB, 1536 * MiB, 2)] + [
                    balancer_spec(g, 256 * MiB, 1536 * MiB)
                    for g in guests[1:]])
            busy = guests[0]
            busy.spawn("dmm_grow -s %d -r %d" % (grow, rate), "/tmp/grow.log")
            t0, peak, out = time.time(), 0, ""
            while time.time() - t0 < 240:
                sizes = [g.qmp.cmd("qom-get", path=DMM_ID, property=DMM_SIZE)
                         for g in guests]
                if not all(isinstance(s, int) for s in sizes):
                    raise RuntimeError("qom-get %s answered %r" % (DMM_SIZE,
                                                                  sizes))
                peak = max(peak, sum(sizes))
                out = busy.out("cat /tmp/grow.log")
                if "# Totals" in out or busy.run(
                        "pidof dmm_grow >/dev/null")[0] != 0:
                    break
                time.sleep(1)
            secs = time.time() - t0
            ooms = busy.console().count("oom-kill")
            if bal and self.out:
                png = os.path.join(self.out, "balancer.png")
                os.system("%s %s %s %d >/dev/null" % (
                    os.path.join(dmmvm.TOP, "scripts", "plot-balancer.sh"),
                    bal.csv, png, budget // MiB))
        finally:
            if bal:
                bal.stop()
            for g in guests:
                g.stop()
        note = "program of %d MiB, %d OOM kills, largest sum of sizes %d " \
            "MiB (budget %d)" % (grow // MiB, ooms, peak // MiB,
                                 budget // MiB)
        return {"balancer": (secs if "ok 1" in out else None, grow,
                             ("completed; " if "ok 1" in out else
                              "did not complete; ") + note)}


# --- scenarios: the rows of the table ----------------------------------

class Scenario:
    """One row: @ours against @anchors; @na: {system: why not};
    @target(ours, anchors) -> (ratio text, met text)."""

    def __init__(self, name, title, unit, ours, anchors, target_text,
                 target, na=None, lower=True, agg="median"):
        self.name, self.title, self.unit = name, title, unit
        self.ours, self.anchors = ours, list(anchors)
        self.target_text, self.target = target_text, target
        self.na = na or {}
        self.lower, self.agg = lower, agg

    @property
    def systems(self):
        return [self.ours] + self.anchors


def fmt(v, unit):
    if v is None:
        return "—"
    if unit == "s":
        return "%.3f s" % v if v < 10 else "%.1f s" % v
    if unit == "%":
        return "%.1f %%" % v
    return "%.0f %s" % (v, unit)


def best_ratio(limit, lower=True):
    """Ratio ours / the best anchor, met if <= @limit (>= if not
    @lower)."""
    def target(ours, anchors):
        vals = [v for v in anchors.values() if v]
        if ours is None or not vals:
            return "n/a", "n/a (no value)"
        r = ours / (min(vals) if lower else max(vals))
        return "%.2f" % r, "yes" if (r <= limit if lower else
                                     r >= limit) else "no"
    return target


def at_least(limit):
    def target(ours, anchors):
        if ours is None:
            return "—", "n/a (no value)"
        return "—", "yes" if ours >= limit else "no"
    return target


def each_ratio(limits):
    """Ours / each anchor, each at least its limit (higher is better)."""
    def target(ours, anchors):
        texts, met = [], []
        for name, limit in limits.items():
            a = anchors.get(name)
            if ours is None or a is None:
                texts.append("%s n/a" % name)
                met.append(None)
            elif a == 0:
                texts.append("%s: anchor 0" % name)
                met.append(ours > 0)
            else:
                texts.append("%.1f× %s" % (ours / a, name))
                met.append(ours / a >= limit)
        if None in met:
            return ", ".join(texts), "n/a (no value)"
        return ", ".join(texts), "yes" if all(met) else "no"
    return target


def completes(ours, anchors):
    """No ratio target: the program completes under the balancer."""
    return "%.2f" % (ours / anchors["static split"]) if ours and \
        anchors.get("static split") else "—", \
        "yes" if ours is not None else "no"


def fragmented(got, ended):
    """@got: {system: median MiB given back}; @ended: {system: it reached
    the target or stopped at its floor in every run}.  Met if ours ended
    so and took at most half the time of the faster anchor to where that
    one stopped (the issue's "reaches the target (or the floor) first");
    how far each got is in its cell (a target object: the table passes
    both)."""
    def target(ours, anchors):
        if ours is None or got.get(DMM.name) is None:
            return "n/a", "n/a (no value)"
        if not ended.get(DMM.name):
            return "—", "no (stopped short of its floor)"
        times = [t for t in anchors.values() if t is not None]
        if not times:
            return "—", "yes (no anchor got to an end)"
        r = ours / min(times)
        return "%.2f" % r, "yes" if r <= 0.5 else "no"
    return target


NA_VMEM = "virtio-mem cannot shrink below its boot size"
SCENARIOS = [
    Scenario("grow", "grow 2 GiB, untouched", "s", DMM.name,
             [VMEM128.name, VMEM2.name], "≤ 0.8 × the faster",
             best_ratio(0.8)),
    Scenario("shrink", "shrink 2 GiB, touched then freed", "s", DMM.name,
             [VMEM128.name, VMEM2.name], "≤ 0.25", best_ratio(0.25)),
    Scenario("shrink-below", "shrink 2 GiB below the boot size, touched "
             "then freed", "s", DMM.name, [BALLOON.name], "≤ 0.1",
             best_ratio(0.1), na={"virtio-mem": NA_VMEM}),
    Scenario("grow-back", "grow back 2 GiB after that", "s", DMM.name,
             [BALLOON.name], "≤ 0.2", best_ratio(0.2),
             na={"virtio-mem": NA_VMEM}),
    Scenario("fragmented", "shrink 1 GiB while a program holds 60 % of RAM "
             "scattered (time to the target, or to where it stopped)", "s",
             DMM.name, [VMEM2.name, BALLOON.name],
             "reaches the target or its floor first, ≤ 0.5 × the faster "
             "anchor (time to where it stopped)", fragmented),
    Scenario("fpr", "free page reporting: 1 GiB freed until QEMU's RSS fell "
             "by 95 % of it", "s", DMM.name, [BALLOON_FPR.name], "≤ 0.5",
             best_ratio(0.5)),
    Scenario("rss-1s", "host RSS returned within 1 s of reaching the "
             "target, % of what the shrink returned (lowest of all shrinks)",
             "%", DMM.name, [VMEM128.name, VMEM2.name, BALLOON.name],
             "≥ 99 %", at_least(99), lower=False, agg="min"),
    Scenario("thp", "host huge pages: QEMU's AnonHugePages after shrink "
             "below boot + grow back (and touching again), % of before",
             "%", DMM.name, [BALLOON.name], "≥ 90 %", at_least(90),
             lower=False, na={"virtio-mem": NA_VMEM}),
    Scenario("scale-grow", "scaling: grow an untouched region "
             "(reserve=off)", "s", DMM.name, [VMEM2.name],
             "ratio at the largest size ≤ ratio at the smallest", None),
    Scenario("scale-shrink", "scaling: shrink it back", "s", DMM.name,
             [VMEM2.name], "ratio at the largest size ≤ ratio at the "
             "smallest", None),
    Scenario("hints", "duplicate and zero hints: MiB shared per host "
             "CPU-second", "MiB/CPU-s", "virtio-dmm",
             ["KSM defaults", "KSM fast"],
             "≥ 20× KSM defaults, ≥ 2× KSM fast", each_ratio({"KSM defaults": 20, "KSM fast": 2}),
             lower=False),
    Scenario("balancer", "balancer: a program growing to 768 MiB in one "
             "of three guests sharing 1536 MiB, its run time", "s",
             "dmm-balancer", ["static split"], "completes (no target in "
             "issue 14)", completes),
]
BY_NAME = {s.name: s for s in SCENARIOS}
EXPERIMENTS = [Resize, BelowBoot, Fragmented, FreePageReporting, Scaling,
               Hints, BalancerRun]


def aggregate(sc, values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return min(vals) if sc.agg == "min" else statistics.median(vals)


# --- host facts --------------------------------------------------------

def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def thp_setting():
    """The host's THP mode: the bracketed word of .../enabled."""
    s = read("/sys/kernel/mm/transparent_hugepage/enabled")
    return s[s.find("[") + 1:s.find("]")] if "[" in s else "unknown"


def run_experiment(exp, sys, tag, log):
    """One run of @exp on @sys: {scenario: [(value, size, note, error)]}."""
    name = sys if isinstance(sys, str) else sys.name
    try:
        res = exp.run(sys, tag)
    except Exception as e:   # a broken run is a sample with an error
        log("%s on %s failed:\n%s" % (type(exp).__name__, name,
                                      traceback.format_exc()))
        err = "%s: %s" % (type(e).__name__, e)
        return {sc: [(None, 0, "", err)] for sc in exp.produces}
    out = {}
    for sc, v in res.items():
        out[sc] = [x + ("",) for x in (v if isinstance(v, list) else [v])]
    return out
