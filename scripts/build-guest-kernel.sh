#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# For Debian 12's stock guest kernels (STOCK_KVERS, scripts/lib.sh): fetch
# and unpack the image, build the module against the installed headers and
# pack an initramfs, all under build/kernels/V/.  Reuses what is built.
# Needs what scripts/build-all.sh builds (headers installed, selftests).
#   scripts/build-guest-kernel.sh [V ...]      (default: all of STOCK_KVERS)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

main() {
	local v
	# shellcheck disable=SC2086 # a list of words
	[ $# -gt 0 ] || set -- $STOCK_KVERS
	for v in "$@"; do
		case " $STOCK_KVERS " in
		*" $v "*) ;;
		*) die "$v is not one of the stock kernels: $STOCK_KVERS" ;;
		esac
		log "guest kernel $v"
		DMM_GUEST_KVER=$v "$TOP/scripts/fetch-kernel.sh"
		DMM_GUEST_KVER=$v "$TOP/scripts/build-module.sh" >/dev/null
		DMM_GUEST_KVER=$v "$TOP/scripts/build-initramfs.sh"
	done
}

main "$@"
