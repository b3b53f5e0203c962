#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the guest selftests as static binaries into build/selftests.
# kselftest.h comes from the linux-source-6.12 package, extracted once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KSFT=$BUILD/kselftest
OUT=$BUILD/selftests
SRC=$TOP/selftests/dmm

extract_kselftest() {
	[ -f "$KSFT/tools/testing/selftests/kselftest.h" ] && return 0
	log "selftests: extracting kselftest.h from $LINUX_SOURCE"
	extract_linux_source "$KSFT" tools/testing/selftests/kselftest.h
}

main() {
	local c bin
	extract_kselftest
	mkdir -p "$OUT"
	for c in "$SRC"/*.c; do
		bin=$OUT/$(basename "$c" .c)
		if [ -f "$bin" ] && [ "$bin" -nt "$c" ] &&
		   [ "$bin" -nt "$SRC/dmm_util.h" ]; then
			continue
		fi
		log "selftests: $(basename "$bin")"
		gcc -static -O2 -Wall -Wextra -Werror \
			-I"$KSFT/tools/testing/selftests" -o "$bin" "$c"
	done
}

main "$@"
