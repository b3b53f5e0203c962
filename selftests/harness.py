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
"""

import re
import sys
import time
import traceback

from dmmlib import dmmvm


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


SUITES = {}


def suite(fn):
    """Register suite function @fn (suite_NAME) as suite NAME."""
    name = fn.__name__[len("suite_"):].replace("_", "-")
    if not fn.__name__.startswith("suite_") or not fn.__doc__:
        raise ValueError("%s: a suite is suite_NAME with a docstring"
                         % fn.__name__)
    if name in SUITES:
        raise ValueError("suite %s defined twice" % name)
    SUITES[name] = fn
    return fn


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


def main(argv):
    """selftests/runner.py [--list] [SUITE ...]"""
    if "--list" in argv:
        for name, fn in SUITES.items():
            print("%-14s %s" % (name, summary_line(fn)))
        return 0
    names = [a for a in argv if not a.startswith("-")] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print("unknown suite(s): %s (see --list)" % " ".join(unknown),
              file=sys.stderr)
        return 2
    r = Results()
    for name in names:
        run_suite(r, name)
    r.summary()
    return 1 if r.failed else 0
