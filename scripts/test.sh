#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run every test: install and build what is missing, then the host suites
# (device library unit tests and fuzz smoke run, driver checks) and the
# guest suites on the patched QEMU.  Ends with "N passed, N failed".
#
#   scripts/test.sh [SUITE ...]      (selftests/runner.py --list)
#   DMM_TEST_JOBS=1 scripts/test.sh  one suite at a time
set -uo pipefail
. "$(dirname "$0")/lib.sh"

t0=$(date +%s)
"$TOP/scripts/build-all.sh"
rc=$?
# 2: a host the set-up does not support; its one line said so
[ $rc = 2 ] && exit 2
if [ $rc != 0 ]; then
	echo "0 passed, 1 failed"
	exit 1
fi
# two suites at a time (selftests/harness.py: guests under TCG leave a
# core idle much of the time; a suite marked "alone" runs by itself)
python3 "$TOP/selftests/runner.py" -j "${DMM_TEST_JOBS:-2}" "$@" |
	tee "$BUILD/logs/tests.tap"
rc=${PIPESTATUS[0]}
log "tests: $(( $(date +%s) - t0 )) s in all (phases: build/logs/phases.txt)"
exit "$rc"
