# SPDX-License-Identifier: GPL-2.0
"""The selftest harness: one TAP stream, the suite registry, the fixture
that checks every guest's kernel log, and the runner's main().

A suite is a function of one argument, the Results to report into,
registered with @suite in a module of selftests/suites/; its name is the
function's name without "suite_", "_" as "-"; its docstring's first line
is what --list shows.  Every guest a suite boots (dmmvm.Guest.start) is
tracked; when the suite ends the harness stops those still running and
checks each one's console log for warnings, oopses and OOM kills: one
result per guest.

With -j N, N suites run at once, each in its own process (python3 -m
suites --child NAME, its TAP in build/logs/suites/NAME.tap); their
output is printed in suite order, numbered as one stream.  Guests under
TCG leave a core idle much of the time (a serial run used 0.85 of the 2
cores: 219 CPU-s in 258 s for coarse, balancer, ask, hint-dup).  A suite
registered with @suite(alone="why") runs with no other beside it: it
changes host-wide settings (the huge page pool, /etc, DKMS) or rebuilds
what the others use; one registered with @suite(uses="ksm") runs beside
any suite but another that uses the host's KSM.
"""

import json
import os
import re
import subprocess
import sys
import time
import traceback

from dmmlib import dmmvm


class Results:
    """One TAP stream for everything the run checks."""

    def __init__(self, header=True):
        self.n = 0
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []
        self.figures = []
        if header:
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

    def absorb(self, name, text):
        """Fold the TAP a child run of suite @name printed into this
        stream, numbered on from here; its figures and failures are in
        its last line (see child())."""
        last = None
        for line in text.splitlines():
            if line.startswith(CHILD_RESULT):
                last = json.loads(line[len(CHILD_RESULT):])
                continue
            m = re.match(r"^(not )?ok \d+\b(.*)$", line)
            if not m:
                print(line)
                continue
            self.n += 1
            if m.group(1):
                self.failed += 1
            elif " # SKIP " in m.group(2):
                self.skipped += 1
            else:
                self.passed += 1
            print("%sok %d%s" % (m.group(1) or "", self.n, m.group(2)))
        sys.stdout.flush()
        if last is None:
            self.ok(False, "suite %s ran to the end (its process exited "
                    "without a result)" % name, text[-2000:])
            return
        self.failures += last["failures"]
        self.figures += [tuple(f) for f in last["figures"]]

    def summary(self):
        print("1..%d" % self.n)
        for name, value in self.figures:
            print("# figure: %s: %s" % (name, value))
        for name in self.failures:
            print("# failed: %s" % name)
        print("%d passed, %d failed, %d skipped"
              % (self.passed, self.failed, self.skipped), flush=True)


SUITES = {}
# suites that run with no other beside them: name -> why
ALONE = {}
# host resources a suite changes: name -> set; two suites that share one
# do not run at once
USES = {}
CHILD_RESULT = "# child result: "


def suite(fn=None, *, alone=None, uses=()):
    """Register suite function @fn (suite_NAME) as suite NAME; as
    @suite(alone="why"), one that -j runs with no other beside it; as
    @suite(uses="ksm"), one that -j runs beside no other that uses it."""
    def register(fn):
        name = fn.__name__[len("suite_"):].replace("_", "-")
        if not fn.__name__.startswith("suite_") or not fn.__doc__:
            raise ValueError("%s: a suite is suite_NAME with a docstring"
                             % fn.__name__)
        if name in SUITES:
            raise ValueError("suite %s defined twice" % name)
        SUITES[name] = fn
        if alone:
            ALONE[name] = alone
        USES[name] = {uses} if isinstance(uses, str) else set(uses)
        return fn
    return register(fn) if fn else register


def summary_line(fn):
    """The first line of a suite's docstring."""
    return fn.__doc__.strip().splitlines()[0]


def check_kernel_log(r, suite_name, g):
    """The fixture's check of one guest: its console log shows no warning,
    oops, BUG, panic or OOM kill (dmmvm.Guest.kernel_problems)."""
    try:
        problems = g.kernel_problems()
    except OSError as e:
        problems = ["no console log: %s" % e]
    return r.ok(not problems, "%s: guest %s: kernel log has no warnings or "
                "oopses" % (suite_name, g.name), "\n".join(problems[:40]))


def run_suite(r, name):
    """Run suite @name, then the kernel-log fixture for each guest it
    booted."""
    fn, guests = SUITES[name], []
    t0 = time.time()
    r.diag("suite %s: %s" % (name, fn.__doc__.strip()))
    dmmvm.Guest.start_hooks.append(guests.append)
    try:
        fn(r)
    except Exception as e:       # a broken suite fails, the run goes on
        r.ok(False, "suite %s ran to the end" % name,
             "".join(traceback.format_exception(e)))
    finally:
        dmmvm.Guest.start_hooks.remove(guests.append)
    logs = set()
    for g in guests:
        g.stop()
        if g.console_log not in logs:
            logs.add(g.console_log)
            check_kernel_log(r, name, g)
    r.diag("suite %s: %.1f s" % (name, time.time() - t0))


def child(name):
    """Run suite @name alone in this process (for -j): its TAP, then one
    line with its failures and figures for the parent (Results.absorb)."""
    r = Results(header=False)
    run_suite(r, name)
    print(CHILD_RESULT + json.dumps({"failures": r.failures,
                                     "figures": r.figures}), flush=True)
    return 0


def _start(name):
    """Start a child run of suite @name: (name, process, its TAP file)."""
    d = os.path.join(dmmvm.LOGS, "suites")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name + ".tap")
    with open(path, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "suites", "--child",
                              name], stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    return name, p, path


def run_parallel(r, names, jobs):
    """Run @names in order, up to @jobs at once (a suite in ALONE by
    itself, none beside another that USES the same), and print each one's
    output in the order of @names as it is complete."""
    pending, running, done, shown = list(names), [], {}, 0

    def clash(name):
        return any(name in ALONE or n in ALONE or USES[name] & USES[n]
                   for n, _, _ in running)

    while shown < len(names):
        while pending and len(running) < jobs and not clash(pending[0]):
            running.append(_start(pending.pop(0)))
        time.sleep(0.2)
        for job in [j for j in running if j[1].poll() is not None]:
            running.remove(job)
            with open(job[2], errors="replace") as f:
                done[job[0]] = f.read()
        while shown < len(names) and names[shown] in done:
            r.absorb(names[shown], done.pop(names[shown]))
            shown += 1


def main(argv):
    """selftests/runner.py [--list] [-j N] [SUITE ...]"""
    if "--list" in argv:
        for name, fn in SUITES.items():
            print("%-14s %s%s%s" % (
                name, summary_line(fn),
                " (alone: %s)" % ALONE[name] if name in ALONE else "",
                " (uses %s)" % ", ".join(sorted(USES[name]))
                if USES[name] else ""))
        return 0
    if "--child" in argv:
        return child(argv[argv.index("--child") + 1])
    jobs = 1
    if "-j" in argv:
        i = argv.index("-j")
        try:
            jobs = int(argv[i + 1])
        except (IndexError, ValueError):
            jobs = 0
        if jobs < 1:
            print("-j wants a number of suites to run at once, at least 1",
                  file=sys.stderr)
            return 2
        argv = argv[:i] + argv[i + 2:]
    names = [a for a in argv if not a.startswith("-")] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print("unknown suite(s): %s (see --list)" % " ".join(unknown),
              file=sys.stderr)
        return 2
    r = Results()
    if jobs > 1:
        run_parallel(r, names, jobs)
    else:
        for name in names:
            run_suite(r, name)
    r.summary()
    return 1 if r.failed else 0
