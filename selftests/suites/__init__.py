# SPDX-License-Identifier: GPL-2.0
"""The test suites, one module per area.

Every module in this directory is imported; each registers its suites
with @harness.suite.  The run order (and --list) is by area: the modules
of AREAS in that order, cheap host checks first, then any other module
in alphabetical order; within a module, the order of definition.

  host      static checks, unit tests, qtest, sanitizers, fuzzing
  setup     the set-up: supported hosts, pinned versions, accelerator
  coarse    whole blocks (issue 2)
  migrate   live migration
  fine      sub-blocks and pages (issue 3)
  hints     free page reporting and shared-page hints (issue 4)
  stats     pressure reports, requests for memory (issue 5)
  balancer  the host balancer (issue 5)
  safety    bad configurations, test hooks, hostile guests, removal
  kernels   the other supported guest kernels (Debian 12's 6.1), DKMS
  topology  real guest topologies: host huge pages (issue 12)
"""

import importlib
import os
import pkgutil

AREAS = ("host", "setup", "coarse", "migrate", "fine", "hints", "stats",
         "balancer", "safety", "kernels", "topology")


def modules():
    """The names of this package's modules, in run order."""
    found = sorted(m.name for m in pkgutil.iter_modules(
        [os.path.dirname(__file__)]) if not m.name.startswith("_"))
    return [a for a in AREAS if a in found] + \
        [m for m in found if m not in AREAS]


for _name in modules():
    importlib.import_module("%s.%s" % (__name__, _name))
