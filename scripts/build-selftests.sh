#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the guest selftests (selftests/dmm, a kselftest directory) as
# static binaries into build/selftests with their Makefile.  lib.mk and
# kselftest.h come from the linux-source-6.12 package, extracted once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KSFT=$BUILD/kselftest
OUT=$BUILD/selftests
SELFTESTS=tools/testing/selftests
KSFT_FILES=(lib.mk kselftest.h kselftest_harness.h)

extract_kselftest() {
	local f
	for f in "${KSFT_FILES[@]}"; do
		[ -f "$KSFT/$SELFTESTS/$f" ] || break
	done
	[ -f "$KSFT/$SELFTESTS/$f" ] && return 0
	log "selftests: extracting ${KSFT_FILES[*]} from $LINUX_SOURCE"
	extract_linux_source "$KSFT" "${KSFT_FILES[@]/#/$SELFTESTS/}"
}

main() {
	extract_kselftest
	mkdir -p "$OUT"
	make -s -C "$TOP/selftests/dmm" OUTPUT="$OUT" \
		KSFT_DIR="$KSFT/$SELFTESTS"
}

main "$@"
