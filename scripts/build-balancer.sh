#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the host balancer daemon (tools/balancer) and its policy tests into
# build/balancer.  Needs libjansson-dev (scripts/setup-host.sh installs it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

main() {
	make -C "$TOP/tools/balancer" BUILD="$BUILD/balancer" all
	log "balancer: $BUILD/balancer/dmm-balancer"
}

main "$@"
