#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Stress: live migrations back and forth of one guest whose memory keeps
moving, with a pattern checker running in it the whole time.

One guest (1 GiB boot RAM, 2 GiB region) migrates N times between QEMU
processes on this host.  In the guest, dmm_churn (selftests/dmm) runs from
the first boot to the end: it keeps memory whose every page it checks
before each rewrite (a lost write shows as a page a generation behind),
zero pages it holds (for zero hints), and chunks it allocates, fills,
verifies and frees in a loop, resting between them so that free page
reporting reports the freed pages and the device discards them.  Between
and during the migrations requested-guest-size changes: above the boot
size (whole blocks, 2 MiB sub-blocks and pages) and below it (pages of
boot RAM).  Free page reporting is on, hints on (the device's default,
auto).  By default the host is loaded too (CPU hogs, one per core).

At the end it prints, and exits non-zero on any crash or corruption:

  stress-migrate: migrations D/N, crashes C, corrupted pages P, ...

A crash is an Oops, BUG, WARNING, RCU stall or panic on a guest console,
a QEMU that exited, or a guest that stopped answering; after one the run
goes on with a freshly booted guest.  Corrupted pages are what the checker
found (each printed with its physical address, lines "CORRUPT ...").

  scripts/stress-migrate.py [--migrations 30] [--smoke]
      [--no-load] [--load N] [--fpr off]
      [--bandwidth MiB] [--ksm] [--seed S]

The device discards reported free pages and unplugged pages while a
migration runs, as at any other time.
--smoke: 2 migrations, short, for the runner (suite stress-migrate-smoke).
Logs: build/logs/stress-*-console.log, build/logs/stress-*-qemu.log.
Set DMM_QEMU to run another QEMU binary.
"""

import argparse
import glob
import os
import random
import re
import signal
import subprocess
import sys
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Guest

PAGE = 4096
CRASH = re.compile(r"(BUG:|WARNING:|Oops|Kernel panic|general protection|"
                   r"Call Trace|rcu: INFO|rcu_\w+ (self-)?detected stall|"
                   r"detected stalls|soft lockup|hard LOCKUP|"
                   r"unable to handle)")
OOM = re.compile(r"(Out of memory|oom-kill)")
CHURN_LOG = "/tmp/churn%d.log"
STOP = "/tmp/churn.stop"


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Crash(Exception):
    pass


class Stress:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.boot_size = dmmvm.parse_size(args.mem)
        self.region = dmmvm.parse_size(args.region)
        self.hop = 0
        self.done = 0
        self.failed = 0
        self.crashes = []
        self.boot_failures = []
        self.ooms = 0
        self.corrupt = 0
        self.corrupt_lines = []
        self.rounds = 0
        self.passes = 0
        self.checked = 0
        self.resizes = 0
        self.resizes_reached = 0
        self.discarded = 0
        self.guests = []

    # --- guests ---

    def dev_opts(self):
        opts = ["free-page-reporting=%s" % self.a.fpr]
        return ",".join(opts)

    def new_guest(self, incoming=None):
        name = "%s-%d" % (self.a.name, self.hop)
        self.hop += 1
        for f in glob.glob(os.path.join(dmmvm.LOGS, name + "-*.log")):
            os.unlink(f)
        g = Guest(name, mem=self.a.mem, maxmem="4G", region=self.a.region,
                  dev_opts=self.dev_opts(), incoming=incoming,
                  timeout=self.a.guest_limit, boot_timeout=300)
        self.guests.append(g)
        return g.start()

    def boot(self):
        """A fresh source with the checker running."""
        g = self.new_guest()
        d = g.sysfs_dir()
        g.run("echo 100 > %s/retry_interval_ms" % d)
        # zero hints: scan faster than the default 5 % of a CPU, so that
        # hints are in flight around the migrations
        g.run("echo %d > %s/hint_budget" % (self.a.hint_budget, d))
        g.run("rm -f %s" % STOP)
        for i in range(self.a.checkers):
            g.run("dmm_churn -h %d -z %d -c %d -i %d -p %d -s 5 -w %s "
                  ">%s 2>&1 &" % (self.a.held * MiB, self.a.zero * MiB,
                                  self.a.churn * MiB, self.a.rest_ms,
                                  self.rng.randrange(1, 1 << 30), STOP,
                                  CHURN_LOG % i), timeout=30)
        for i in range(self.a.checkers):
            deadline = time.time() + 60
            while True:
                out = g.run("cat %s" % (CHURN_LOG % i), timeout=30)[1]
                if "# churn:" in out:
                    break
                if time.time() > deadline:
                    raise Crash("%s: checker %d did not start: %s"
                                % (g.name, i, out))
                time.sleep(0.5)
        log("%s: booted, %d checker(s) running" % (g.name, self.a.checkers))
        return g

    def problems(self, g):
        try:
            text = g.console()
        except OSError:
            return [], 0
        lines = text.splitlines()
        return ([ln for ln in lines if CRASH.search(ln)],
                sum(1 for ln in lines if OOM.search(ln)))

    def alive(self, g, timeout=60):
        """QEMU runs and the guest answers; raises Crash otherwise."""
        if g.proc.poll() is not None:
            raise Crash("%s: QEMU exited with %s" % (g.name,
                                                     g.proc.returncode))
        token = "alive-%d" % self.rng.randrange(1 << 30)
        out = ""
        try:
            # after a guest command timed out, its answer comes first
            for _ in range(3):
                rc, out = g.run("echo " + token, timeout=timeout)
                if token in out:
                    return
        except (dmmvm.AgentError, OSError) as e:
            raise Crash("%s: guest does not answer: %s" % (g.name, e))
        raise Crash("%s: guest answered %r" % (g.name, out))

    def check(self, g, what):
        """Console and liveness of @g; raises Crash."""
        bad, _ = self.problems(g)
        if bad:
            raise Crash("%s (%s): %s" % (g.name, what, " | ".join(bad[:6])))
        self.alive(g)
        bad, _ = self.problems(g)
        if bad:
            raise Crash("%s (%s): %s" % (g.name, what, " | ".join(bad[:6])))

    def read_checkers(self, g, final=False):
        """Fold the checkers' logs into the counts (the latest status line
        of each; its CORRUPT lines)."""
        rounds = passes = checked = corrupt = 0
        lines = []
        for i in range(self.a.checkers):
            out = g.run("grep -E '^(CORRUPT|# )' %s | tail -n 400"
                        % (CHURN_LOG % i), timeout=60)[1]
            lines += [ln for ln in out.splitlines()
                      if ln.startswith("CORRUPT")]
            st = [ln for ln in out.splitlines() if ln.startswith("# status")
                  or ln.startswith("# churn totals")]
            if st:
                m = re.search(r"rounds (\d+) passes (\d+)", st[-1])
                rounds += int(m.group(1))
                passes += int(m.group(2))
                m = re.search(r"corrupt-pages (\d+)", st[-1])
                corrupt += int(m.group(1))
                m = re.search(r"pages-checked (\d+)", st[-1])
                if m:
                    checked += int(m.group(1))
            if final and not any("totals" in s for s in st):
                raise Crash("%s: checker %d ended without totals: %s"
                            % (g.name, i, out[-500:]))
        running = g.run("pidof dmm_churn", timeout=30)[1].split()
        if not final and len(running) < self.a.checkers:
            raise Crash("%s: only %d of %d checkers still run"
                        % (g.name, len(running), self.a.checkers))
        return rounds, passes, checked, corrupt, lines

    def fold(self, counts):
        rounds, passes, checked, corrupt, lines = counts
        self.life_counts = (rounds, passes, checked, corrupt)
        seen = set(self.corrupt_lines)
        new = [ln for ln in lines if ln not in seen]
        for ln in new[:10]:
            log("checker: " + ln)
        if len(new) > 10:
            log("checker: ... %d more CORRUPT lines (%d pages corrupt in "
                "this guest so far)" % (len(new) - 10, corrupt))
        self.corrupt_lines += new

    def end_life(self):
        """The guest that ran the current checkers is gone: add its
        counts."""
        r, p, c, k = getattr(self, "life_counts", (0, 0, 0, 0))
        self.rounds += r
        self.passes += p
        self.checked += c
        self.corrupt += k
        self.life_counts = (0, 0, 0, 0)

    # --- sizes ---

    def pick_size(self, kind):
        bs = 128 * MiB
        if kind == "grow":          # past boot: blocks, a sub-block, pages
            size = self.boot_size + self.rng.randrange(2, 12) * bs + \
                self.rng.randrange(0, 64) * 2 * MiB + \
                self.rng.randrange(0, 512) * PAGE
        elif kind == "shrink":      # below boot: pages of boot RAM
            size = self.boot_size - self.rng.randrange(64, 256) * MiB - \
                self.rng.randrange(0, 512) * PAGE
        else:                       # back near boot, partial block
            size = self.boot_size + self.rng.randrange(0, 128) * MiB + \
                self.rng.randrange(0, 512) * PAGE
        return min(size, self.boot_size + self.region)

    def resize(self, g, kind, wait):
        size = self.pick_size(kind)
        g.set_requested(size)
        self.resizes += 1
        if not wait:
            log("%s: requested %d MiB (%s) during the migration"
                % (g.name, size // MiB, kind))
            return
        # polled on the host: a slow guest must not desynchronise the agent
        t0 = time.time()
        cur = None
        while time.time() - t0 < wait:
            cur = self.info(g, "guest-size")
            if cur == size:
                self.resizes_reached += 1
                log("%s: %s to %.1f MiB in %.1f s" % (
                    g.name, kind, size / MiB, time.time() - t0))
                return
            time.sleep(0.2)
        log("%s: %s to %.1f MiB not reached in %d s (at %s MiB)"
            % (g.name, kind, size / MiB, wait,
               "%.1f" % (cur / MiB) if cur is not None else "?"))

    # --- one migration ---

    def migrate(self, src, i):
        uri = "unix:" + os.path.join(dmmvm.RUN, "%s-mig-%d.sock"
                                     % (self.a.name, i))
        dst = self.new_guest(incoming=uri)
        bw = self.a.bandwidth or self.rng.choice([0, 0, 256, 512])
        if bw:
            src.qmp.cmd("migrate-set-parameters", max_bandwidth=bw * MiB)
        before = self.info(src, "reported-size")
        t0 = time.time()
        src.qmp.cmd("migrate", uri=uri)
        resized = False
        deadline = t0 + self.a.mig_limit
        st = None
        while True:
            st = src.qmp.cmd("query-migrate").get("status")
            if st in ("completed", "failed", "cancelled"):
                break
            if time.time() > deadline:
                src.qmp.cmd("migrate_cancel")
                st = "timed out"
                break
            if not resized and time.time() - t0 > 0.5:
                # a resize while the migration runs: BUSY for blocks and
                # sub-blocks, the driver retries on the destination
                self.resize(src, self.rng.choice(["grow", "shrink"]), 0)
                resized = True
            time.sleep(0.05)
        secs = time.time() - t0
        discarded = self.info(src, "reported-size") - before
        self.discarded += max(discarded, 0)
        log("migration %d: %s -> %s %s in %.1f s (%s), %d MiB of reports "
            "discarded on the source meanwhile"
            % (i + 1, src.name, dst.name, st, secs,
               "%d MiB/s" % bw if bw else "no bandwidth limit",
               discarded // MiB))
        if st != "completed":
            self.failed += 1
            dst.stop()
            self.check(src, "after a failed migration")
            return src
        self.done += 1
        bad, ooms = self.problems(src)
        self.ooms += ooms
        src.stop()
        if bad:
            dst.stop()
            raise Crash("%s (source, before switchover): %s"
                        % (src.name, " | ".join(bad[:6])))
        return dst

    @staticmethod
    def info(g, field):
        """@field of query-memory-devices; 0 if QMP fails."""
        try:
            return g.dmm_info()[field]
        except Exception:
            return 0

    # --- the run ---

    def life(self, g):
        """Checks after a migration (or boot): crash, checker, sizes."""
        self.check(g, "after migration")
        self.fold(self.read_checkers(g))

    def boot_retry(self):
        """boot(), again if a guest does not come up (a crash too)."""
        while True:
            try:
                return self.boot()
            except (Crash, dmmvm.AgentError, dmmvm.QMPError, EOFError,
                    OSError) as e:
                # a guest that does not come up (a loaded host, or a crash
                # at boot: see its console)
                self.boot_failures.append(str(e) or repr(e))
                bad = [p for x in self.guests[-1:] for p in
                       self.problems(x)[0]]
                log("boot failed: %s %s" % (e, " | ".join(bad[:4])))
                self.stop_all()
                if len(self.boot_failures) > self.a.max_crashes:
                    raise

    def stop_all(self):
        for x in self.guests:
            if x.proc and x.proc.poll() is None:
                x.stop()

    def run(self):
        kinds = ["grow", "shrink", "near"]
        try:
            g = self.boot_retry()
            while self.done + self.failed < self.a.migrations:
                i = self.done + self.failed
                try:
                    # resizes between migrations, with time to settle
                    self.resize(g, kinds[i % 3], self.a.resize_wait)
                    time.sleep(self.a.dwell)
                    self.life(g)
                    g = self.migrate(g, i)
                    time.sleep(self.a.dwell)
                    self.life(g)
                except (Crash, dmmvm.AgentError, dmmvm.QMPError, EOFError,
                        OSError) as e:
                    # a guest or QEMU that stopped answering is a crash too
                    self.crashes.append(str(e) or repr(e))
                    log("CRASH: %s" % e)
                    try:
                        self.fold(self.read_checkers(g))
                    except Exception:
                        pass
                    self.end_life()
                    _, ooms = self.problems(g)
                    self.ooms += ooms
                    g.stop()
                    if len(self.crashes) > self.a.max_crashes:
                        log("too many crashes, giving up")
                        return
                    g = self.boot_retry()
            # the end: stop the checkers, read their totals
            try:
                g.run("touch %s" % STOP)
                deadline = time.time() + 120
                while time.time() < deadline and \
                        g.run("pidof dmm_churn", timeout=30)[1].strip():
                    time.sleep(0.5)
                self.check(g, "at the end")
                self.fold(self.read_checkers(g, final=True))
                c = g.counters()
                log("%s: guest counters: %s" % (g.name, " ".join(
                    "%s=%s" % (a, c[a])
                    for a in ("reported_bytes", "hint_passes",
                              "hint_pages_scanned", "hint_zero_sent",
                              "hint_accepted", "hint_rejected",
                              "plug_failures", "page_moves"))))
            except Crash as e:
                self.crashes.append(str(e))
                log("CRASH: %s" % e)
            self.end_life()
            _, ooms = self.problems(g)
            self.ooms += ooms
        except Exception as e:
            self.crashes.append("giving up: %s" % (str(e) or repr(e)))
            log("giving up: %r" % e)
        finally:
            self.stop_all()

    def summary(self):
        log("crashes:")
        for c in self.crashes:
            print("  " + c[:600])
        for c in self.boot_failures:
            print("  boot failure: " + c[:300])
        print("stress-migrate: migrations %d/%d (%d failed), crashes %d, "
              "corrupted pages %d, checker rounds %d passes %d pages-checked "
              "%d, resizes %d (%d reached), reports discarded during "
              "migrations %d MiB, OOM lines %d, discard-migrating %s, "
              "free-page-reporting %s, load %d, boot failures %d"
              % (self.done, self.a.migrations, self.failed,
                 len(self.crashes), self.corrupt, self.rounds, self.passes,
                 self.checked, self.resizes, self.resizes_reached,
                 self.discarded // MiB, self.ooms,
                 "on" if self.a.discard_migrating else "off", self.a.fpr,
                 self.a.load, len(self.boot_failures)), flush=True)
        if getattr(self, "interrupted", False):
            print("stress-migrate: interrupted before the end")
            return 1
        return 1 if self.crashes or self.corrupt or self.boot_failures or \
            self.done < self.a.migrations else 0


def start_load(n):
    hogs = []
    for _ in range(n):
        hogs.append(subprocess.Popen([sys.executable, "-c",
                                      "while True: pass"]))
    return hogs


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--migrations", type=int, default=30)
    ap.add_argument("--smoke", action="store_true",
                    help="2 migrations, short (about 2 minutes)")
    ap.add_argument("--fpr", choices=("on", "off"), default="on",
                    help="free page reporting (default on)")
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2,
                    help="host CPU hogs (default: one per core)")
    ap.add_argument("--no-load", dest="load", action="store_const", const=0)
    ap.add_argument("--bandwidth", type=int, default=None,
                    help="max-bandwidth in MiB/s (default: varies)")
    ap.add_argument("--ksm", action="store_true",
                    help="run the host's KSM (restored after) so hinted "
                    "ranges merge during migrations")
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--region", default="2G")
    ap.add_argument("--hint-budget", type=int, default=25,
                    help="the guest's hint_budget (percent of a CPU)")
    ap.add_argument("--checkers", type=int, default=2)
    ap.add_argument("--held", type=int, default=24, help="MiB per checker")
    ap.add_argument("--zero", type=int, default=8, help="MiB per checker")
    ap.add_argument("--churn", type=int, default=64, help="MiB per checker")
    ap.add_argument("--rest-ms", type=int, default=3000)
    ap.add_argument("--dwell", type=float, default=6.0,
                    help="seconds between a migration and the next step")
    ap.add_argument("--resize-wait", type=int, default=30)
    ap.add_argument("--mig-limit", type=int, default=240,
                    help="seconds one migration may take")
    ap.add_argument("--max-crashes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--name", default="stress",
                    help="guest name prefix (logs, sockets): runs at the "
                    "same time need different names")
    args = ap.parse_args(argv)
    if args.smoke:
        args.migrations = 2
        args.dwell = min(args.dwell, 3.0)
        args.resize_wait = min(args.resize_wait, 10)
        args.mig_limit = min(args.mig_limit, 60)
        args.max_crashes = 0
    # every QEMU has a hard limit: generous for one hop, never unbounded
    args.guest_limit = args.mig_limit * 2 + 300
    # discards are no longer held back while a migration runs
    args.discard_migrating = True
    log("stress-migrate: %d migrations, seed %d, discard-migrating %s, "
        "free-page-reporting %s, %d host CPU hog(s)%s"
        % (args.migrations, args.seed,
           "on" if args.discard_migrating else "off", args.fpr, args.load,
           ", KSM on" if args.ksm else ""))
    st = Stress(args)
    # SIGTERM too must stop the guests (their time limit lives here)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    hogs = start_load(args.load)
    ksm = dmmvm.HostKSM() if args.ksm and dmmvm.HostKSM.available() else None
    t0 = time.time()
    try:
        if ksm:
            ksm.__enter__()
        st.run()
    except (KeyboardInterrupt, SystemExit):
        log("interrupted: counts so far")
        st.interrupted = True
    finally:
        st.stop_all()
        for h in hogs:
            h.kill()
            h.wait()
        if ksm:
            ksm.__exit__(None, None, None)
    log("done in %.0f s" % (time.time() - t0))
    return st.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
