#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo: build what is missing, boot a 512 MiB guest on the patched
# QEMU, grow it to 2 GiB, fill the new memory, shrink it back, and show
# what the guest and the host see at each step.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TOP/scripts/build-all.sh"
exec python3 "$TOP/scripts/demo.py" "$@"
