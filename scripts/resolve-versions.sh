#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Decide which QEMU source and guest kernel the build uses and record them
# in build/versions.env, which every script reads through scripts/lib.sh.
#
# The pins of scripts/lib.sh are used while the archive has them.  A pin
# that has left the archive falls back to the newest version of the same
# series the archive has: a 6.12.x kernel whose unsigned image, headers
# and linux-source-6.12 all have that version; a 10.0.x QEMU source
# package.  The tarball's sha256 comes from the archive's index; a file of
# the pinned name with another sha256 is an error.  QEMU_SRC, KDIR and
# GUEST_KERNEL replace what apt would give (no apt is asked for those).
#
# Reads apt's lists only (apt-cache; scripts/setup-host.sh updates them
# first): nothing is downloaded.  Resolves again when a pin or one of the
# three variables changed since the file was written.
#   scripts/resolve-versions.sh [--force | --check | --pins-only]
# --check: exit 1 if the file is missing or out of date, write nothing.
# --pins-only: exit 3 instead of falling back (the set-up then updates
# apt's lists and resolves again).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# What a resolution depends on.
inputs() {
	echo "qemu=$PIN_QEMU_DSC_VER kernel=$PIN_KPKG_VER" \
		"QEMU_SRC=$USER_QEMU_SRC KDIR=$USER_KDIR" \
		"GUEST_KERNEL=$USER_GUEST_KERNEL"
}

# "VERSION ABI" of each 6.12.x kernel the archive has as unsigned amd64
# image, headers and linux-source, newest first.
kernel_candidates() {
	local names headers
	names=$(apt-cache pkgnames "linux-image-$KSERIES." |
		grep -E "^linux-image-${KSERIES//./\\.}\.[0-9]+\+[a-z0-9]+-amd64-unsigned$" |
		sort) || true
	[ -n "$names" ] || return 0
	headers=${names//linux-image-/linux-headers-}
	headers=${headers//-unsigned/}
	# shellcheck disable=SC2086 # (a package it does not know: no line)
	{ apt-cache madison "linux-source-$KSERIES" $names $headers || :; } |
	awk -F' *[|] *' -v src="linux-source-$KSERIES" '
		{ sub(/^ */, "", $1); have[$1 " " $2] = 1 }
		$1 ~ /^linux-image-.*-unsigned$/ { img[$1 " " $2] = 1 }
		END {
			for (k in img) {
				split(k, a, " ")
				abi = a[1]; sub(/^linux-image-/, "", abi)
				sub(/-unsigned$/, "", abi)
				if (have["linux-headers-" abi " " a[2]] &&
				    have[src " " a[2]])
					print a[2], abi
			}
		}' | sort -t' ' -k1,1Vr
}

# "VERSION ORIG SHA256" of each 10.0.x QEMU source package, newest first.
qemu_candidates() {
	apt-cache showsrc qemu 2>/dev/null | awk -v series="$QEMU_SERIES" '
		/^Version: / { ver = $2 }
		/^Checksums-Sha256:/ { sums = 1; next }
		/^[^ ]/ { sums = 0 }
		sums && $3 ~ /\.orig\.tar\.xz$/ {
			up = ver; sub(/^[0-9]+:/, "", up)
			if (index(up, series ".") == 1)
				print ver, $3, $1
		}' | sort -u | sort -t' ' -k1,1Vr
}

resolve_kernel() {
	local cands line
	# the module must match the kernel it is loaded into
	if [ -n "$USER_KDIR$USER_GUEST_KERNEL" ]; then
		if [ -z "$USER_KDIR" ] || [ -z "$USER_GUEST_KERNEL" ]; then
			die "KDIR and GUEST_KERNEL: set both or neither"
		fi
		[ -f "$USER_KDIR/include/config/kernel.release" ] ||
			die "KDIR=$USER_KDIR: no include/config/kernel.release (run make modules_prepare there)"
		KVER=$(cat "$USER_KDIR/include/config/kernel.release")
		KPKG_VER=
		KNOTE="kernel: KDIR and GUEST_KERNEL given, no package"
		return 0
	fi
	cands=$(kernel_candidates)
	line=$(awk -v pin="$PIN_KPKG_VER" '$1 == pin' <<<"$cands")
	if [ -n "$line" ]; then
		KNOTE="kernel: the pin"
	elif [ "$MODE" = --pins-only ]; then
		exit 3
	else
		line=$(head -n 1 <<<"$cands")
		[ -n "$line" ] ||
			die "no $KSERIES.x kernel (unsigned image, headers, linux-source) in apt's lists: run scripts/setup-host.sh"
		KNOTE="kernel: pinned $PIN_KPKG_VER is not in the archive, the newest $KSERIES.x is used"
		log "$KNOTE: ${line%% *}"
	fi
	KPKG_VER=${line%% *}
	KVER=${line#* }
}

resolve_qemu() {
	local cands line
	if [ -n "$USER_QEMU_SRC" ]; then
		QEMU_DSC_VER='' QEMU_ORIG='' QEMU_ORIG_SHA256=''

		QEMU_VER=$(cat "$USER_QEMU_SRC/VERSION" 2>/dev/null) ||
			die "QEMU_SRC=$USER_QEMU_SRC: not a QEMU source tree (no VERSION)"
		QNOTE="qemu: QEMU_SRC given, no package"
		return 0
	fi
	cands=$(qemu_candidates)
	line=$(awk -v pin="$PIN_QEMU_DSC_VER" '$1 == pin' <<<"$cands")
	if [ -n "$line" ]; then
		QNOTE="qemu: the pin"
	elif [ "$MODE" = --pins-only ]; then
		exit 3
	else
		line=$(head -n 1 <<<"$cands")
		[ -n "$line" ] ||
			die "no qemu $QEMU_SERIES.x source package in apt's lists: run scripts/setup-host.sh"
		QNOTE="qemu: pinned $PIN_QEMU_DSC_VER is not in the archive, the newest $QEMU_SERIES.x is used"
		log "$QNOTE: ${line%% *}"
	fi
	read -r QEMU_DSC_VER QEMU_ORIG QEMU_ORIG_SHA256 <<<"$line"
	if [ "$QEMU_ORIG" = "$PIN_QEMU_ORIG" ] &&
		[ "$QEMU_ORIG_SHA256" != "$PIN_QEMU_ORIG_SHA256" ]; then
		die "$QEMU_ORIG: the archive says sha256 $QEMU_ORIG_SHA256, pinned $PIN_QEMU_ORIG_SHA256"
	fi
	QEMU_VER=${QEMU_ORIG#qemu_}
	QEMU_VER=${QEMU_VER%%+*}
}

write_versions() {
	local tmp k
	tmp=$(mktemp "$VERSIONS.XXXXXX")
	{
		echo "# Written by scripts/resolve-versions.sh; read by scripts/lib.sh."
		echo "# $QNOTE"
		echo "# $KNOTE"
		for k in RESOLVED_FROM QEMU_DSC_VER QEMU_ORIG QEMU_ORIG_SHA256 \
			QEMU_VER KPKG_VER KVER QEMU_SRC KDIR GUEST_KERNEL; do
			printf '%s=%q\n' "$k" "${!k}"
		done
	} >"$tmp"
	mv "$tmp" "$VERSIONS"
}

main() {
	local want
	MODE=${1:-}
	want=$(inputs)
	if [ "$MODE" != --force ] && [ -f "$VERSIONS" ] &&
		[ "${RESOLVED_FROM:-}" = "$want" ]; then
		return 0
	fi
	[ "$MODE" != --check ] || return 1
	mkdir -p "$BUILD"
	resolve_qemu
	resolve_kernel
	# shellcheck disable=SC2034 # written out by write_versions
	RESOLVED_FROM=$want
	# the user's trees and files; empty: lib.sh's defaults for $KVER
	# shellcheck disable=SC2034 # written out by write_versions
	QEMU_SRC=$USER_QEMU_SRC KDIR=$USER_KDIR GUEST_KERNEL=$USER_GUEST_KERNEL
	write_versions
	log "versions: qemu ${QEMU_DSC_VER:-$QEMU_SRC ($QEMU_VER)}, kernel ${KPKG_VER:-$KVER} ($VERSIONS)"
}

main "$@"
