#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""virtio-dmm test runner.

Boots guests on the patched QEMU, drives QMP, runs the guest selftests
(kselftest TAP, selftests/dmm) through the guest agent, runs the host-side
suites, and prints one TAP stream ending in "N passed, N failed, N skipped".

  selftests/runner.py [--list] [-j N] [SUITE ...]

-j N runs N suites at once, each in its own process, and prints their
output in suite order (selftests/harness.py says which suites run alone).

The code: selftests/harness.py (TAP, suite registry, the kernel-log check
of every guest a suite booted), selftests/suites/AREA.py (the suites),
selftests/helpers.py, and scripts/dmmlib (guests, wire constants).  This
file only runs ``python3 -m suites`` with PYTHONPATH set to scripts/ and
selftests/, the one place the import path is set.

Every guest has a hard time limit (dmmlib.dmmvm); timings are printed
as diagnostics, never asserted.
"""

import os
import sys


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = [os.path.join(top, "scripts"), os.path.join(top, "selftests")]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    os.execve(sys.executable, [sys.executable, "-m", "suites", *sys.argv[1:]],
              env)


if __name__ == "__main__":
    main()
