#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Boot a test guest and type commands into it (the code is dmmlib.dmmvm):

  scripts/dmmvm.py shell [--mem 512M] [--region 3G] [--maxmem 4G]
      [--modules virtio_dmm,...]
"""

import sys

from dmmlib import dmmvm

if __name__ == "__main__":
    sys.exit(dmmvm.main(sys.argv[1:]))
