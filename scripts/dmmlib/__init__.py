# SPDX-License-Identifier: GPL-2.0
"""Python shared by virtio-dmm's tests and tools.

  dmmlib.dmmvm   boot and drive test guests (QEMU, QMP, guest agent),
                 host KSM, the balancer as a subprocess
  dmmlib.wire    the wire constants, read from virtio_dmm.h
  dmmlib.bench   the benchmark's systems, experiments and scenarios
                 (scripts/bench.py)

How programs find it: the package lives in scripts/, and Python puts the
directory of the script it runs first on sys.path, so the programs in
scripts/ (demo.py, stress-migrate.py, bench.py, dmmvm.py) just
``from dmmlib import dmmvm``.  selftests/runner.py, the one entry point
outside scripts/, runs the test suites as ``python3 -m suites`` with
PYTHONPATH set to scripts/ and selftests/.  Nothing edits sys.path.
"""
