#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building and testing virtio-dmm needs on a Debian 12 host:
# apt sources (bookworm-backports binaries, trixie sources only), build
# dependencies, firmware and the guest kernel headers.  Idempotent: a second
# run installs nothing and does not touch apt's lists.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SOURCES=/etc/apt/sources.list.d/virtio-dmm.sources

# Packages from bookworm itself.
BASE_PKGS="build-essential ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev
	python3 python3-venv flex bison pkg-config bzip2 xz-utils cpio
	busybox-static sparse perl libjansson-dev gnuplot-nox dpkg-dev
	ca-certificates bc rsync python3-docutils"
# libvirt: the libvirt suite runs a domain on the patched QEMU under a
# session libvirtd; dmm-balancer links libvirt for libvirt:DOMAIN guests.
LIBVIRT_PKGS="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	libvirt-dev"
# The sanitizer and fuzzing build of QEMU (scripts/build-qemu-fuzz.sh):
# clang, its ASan/UBSan/libFuzzer runtimes, llvm-symbolizer for reports.
FUZZ_PKGS="clang libclang-rt-14-dev llvm"
# Packages that must come from bookworm-backports.
BPO_PKGS="meson python3-pycotap qemu-system-data seabios"
# The guest kernel (headers here; the image is only unpacked into build/).
KERNEL_PKGS="linux-headers-$KVER linux-source-6.12=$KPKG_VER"

# Does an apt source other than ours already name @1?
have_suite() {
	grep -rqs --exclude="$(basename "$SOURCES")" "$1" \
		/etc/apt/sources.list /etc/apt/sources.list.d/
}

write_sources() {
	local want security=""
	# The pinned guest kernel comes from bookworm-security, which keeps
	# several versions (backports keeps only its newest).
	if ! have_suite bookworm-security; then
		# A blank line separates deb822 stanzas ($(...) strips the
		# newline the stanza above ends with, hence two).
		security=$(printf '%s\n' "" "" \
			"Types: deb" \
			"URIs: http://deb.debian.org/debian-security" \
			"Suites: bookworm-security" \
			"Components: main" \
			"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg")
	fi
	want=$(cat <<-SRC
	Types: deb deb-src
	URIs: http://deb.debian.org/debian
	Suites: bookworm-backports
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

	# trixie for source packages only: never as a binary suite.
	Types: deb-src
	URIs: http://deb.debian.org/debian
	Suites: trixie
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	SRC
	)$security
	if [ -f "$SOURCES" ] && [ "$(cat "$SOURCES")" = "$want" ]; then
		return 1
	fi
	as_root mkdir -p "$(dirname "$SOURCES")"
	as_root tee "$SOURCES" >/dev/null <<<"$want"
	return 0
}

# Print each of NAME or NAME=VERSION that is not installed (at that version).
missing_pkgs() {
	local p want have
	for p in "$@"; do
		want=${p#*=}
		[ "$want" = "$p" ] && want=
		have=$(dpkg-query -W -f='${Status} ${Version}\n' "${p%%=*}" \
			2>/dev/null) || have=
		case "$have" in
		"install ok installed ${want:-}"*) ;;
		*) echo "$p" ;;
		esac
	done
}

main() {
	local changed=0 miss bpo_miss

	if write_sources; then
		changed=1
	fi
	# shellcheck disable=SC2086
	miss=$(missing_pkgs $BASE_PKGS $LIBVIRT_PKGS $FUZZ_PKGS $KERNEL_PKGS)
	# shellcheck disable=SC2086
	bpo_miss=$(missing_pkgs $BPO_PKGS)
	if [ -z "$miss$bpo_miss" ] && [ $changed = 0 ]; then
		log "host set-up: nothing to do"
		return 0
	fi
	log "host set-up: apt-get update"
	as_root apt-get update -qq
	export DEBIAN_FRONTEND=noninteractive
	if [ -n "$miss" ]; then
		log "host set-up: installing" $miss
		# shellcheck disable=SC2086
		as_root apt-get install -y -qq --no-install-recommends $miss
	fi
	if [ -n "$bpo_miss" ]; then
		log "host set-up: installing from bookworm-backports" $bpo_miss
		# NAME/suite takes only these packages from backports; a global
		# -t would pull half the system (systemd...) along with them.
		# shellcheck disable=SC2086
		as_root apt-get install -y -qq --no-install-recommends \
			$(printf '%s/bookworm-backports ' $bpo_miss)
	fi
}

main "$@"
