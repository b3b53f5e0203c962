#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the host balancer daemon (tools/balancer) and its policy tests into
# build/balancer, and its man page build/balancer/dmm-balancer.8.  Needs
# libjansson-dev and python3-docutils (scripts/setup-host.sh installs them).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

main() {
	make -C "$TOP/tools/balancer" BUILD="$BUILD/balancer" all
	log "balancer: $BUILD/balancer/dmm-balancer"
}

main "$@"
