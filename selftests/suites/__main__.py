# SPDX-License-Identifier: GPL-2.0
"""python3 -m suites [--list] [SUITE ...]: run the suites (see runner.py)."""

import sys

import harness
import suites  # noqa: F401 (registers every suite)

sys.exit(harness.main(sys.argv[1:]))
