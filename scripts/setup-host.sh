#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building and testing virtio-dmm needs on a Debian 12 host:
# apt sources (bookworm-backports binaries, trixie sources only), build
# dependencies, firmware and the guest kernel headers; the versions in use
# resolved into build/versions.env (scripts/resolve-versions.sh).
# Idempotent: a second run installs nothing and does not touch apt's lists.
#
# Any other system is refused with one line, unless QEMU_SRC, KDIR and
# GUEST_KERNEL are all set: then no apt is run at all (README, "Without
# apt").  DMM_OS_RELEASE and DMM_ARCH stand in for /etc/os-release and
# uname -m (for the tests).
#   scripts/setup-host.sh [--check-host]   (--check-host: the check alone)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SOURCES=/etc/apt/sources.list.d/virtio-dmm.sources

# Packages from bookworm itself (python3-ply and python3-git: the
# kernel's spdxcheck.py, run by checkpatch on the Linux patch).
BASE_PKGS="build-essential ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev
	python3 python3-venv flex bison pkg-config bzip2 xz-utils cpio
	busybox-static sparse perl libjansson-dev gnuplot-nox dpkg-dev
	ca-certificates bc rsync python3-docutils python3-ply python3-git dkms
	ipxe-qemu"
# libvirt: the libvirt suite runs a domain on the patched QEMU under a
# session libvirtd; dmm-balancer links libvirt for libvirt:DOMAIN guests.
LIBVIRT_PKGS="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	libvirt-dev"
# The sanitizer and fuzzing build of QEMU (scripts/build-qemu-fuzz.sh):
# clang, its ASan/UBSan/libFuzzer runtimes, llvm-symbolizer for reports.
FUZZ_PKGS="clang libclang-rt-14-dev llvm"
# Packages that must come from bookworm-backports.
BPO_PKGS="meson python3-pycotap qemu-system-data seabios"

# Debian 12 on x86-64, or exit 2 with one line saying what to do instead.
check_host() {
	local osr=${DMM_OS_RELEASE:-/etc/os-release} arch=${DMM_ARCH:-$(uname -m)}
	local id=unknown version_id="" pretty="" name
	if [ -r "$osr" ]; then
		# shellcheck source=/dev/null
		id=$(. "$osr" && echo "${ID:-unknown}")
		# shellcheck source=/dev/null
		version_id=$(. "$osr" && echo "${VERSION_ID:-}")
		# shellcheck source=/dev/null
		pretty=$(. "$osr" && echo "${PRETTY_NAME:-}")
	fi
	[ "$id" = debian ] && [ "$version_id" = 12 ] && [ "$arch" = x86_64 ] &&
		return 0
	name=${pretty:-$id $version_id}
	echo "virtio-dmm set-up: $name on $arch is not supported (Debian 12 x86-64 only); elsewhere install the build dependencies yourself and set QEMU_SRC=, KDIR= and GUEST_KERNEL= (README, \"Without apt\")" >&2
	exit 2
}

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

# Did apt-get update run less than a day ago?
lists_fresh() {
	[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*InRelease' \
		-mmin -1440 2>/dev/null | head -n 1)" ]
}

# Nothing from apt: the versions from the user's trees.
no_apt() {
	log "host set-up: QEMU_SRC, KDIR and GUEST_KERNEL set: no apt"
	[ -f "$USER_GUEST_KERNEL" ] ||
		die "GUEST_KERNEL=$USER_GUEST_KERNEL: no such file"
	[ -d "$USER_KDIR" ] || die "KDIR=$USER_KDIR: no such directory"
	"$TOP/scripts/resolve-versions.sh"
}

main() {
	local changed=0 updated=0 miss bpo_miss kernel_pkgs

	if [ -n "$USER_QEMU_SRC" ] && [ -n "$USER_KDIR" ] &&
		[ -n "$USER_GUEST_KERNEL" ]; then
		[ "${1:-}" = --check-host ] || no_apt
		return 0
	fi
	check_host
	[ "${1:-}" = --check-host ] && return 0
	if write_sources; then
		changed=1
	fi
	# The versions, once per build/: the pins if apt's lists have them
	# and are less than a day old; else the lists are updated first (a
	# fallback is chosen from fresh lists only).
	if ! "$TOP/scripts/resolve-versions.sh" --check &&
		! { lists_fresh &&
			"$TOP/scripts/resolve-versions.sh" --pins-only; }; then
		log "host set-up: apt-get update (resolving the versions)"
		as_root apt-get update -qq
		updated=1
		"$TOP/scripts/resolve-versions.sh"
	fi
	# shellcheck source=/dev/null
	. "$VERSIONS"
	# The guest kernel: headers (unless KDIR is given) and the source
	# package (checkpatch, kselftest); the image is only unpacked into
	# build/ by scripts/fetch-kernel.sh.
	kernel_pkgs=
	[ -n "$USER_KDIR" ] || kernel_pkgs="linux-headers-$KVER"
	# headers of the stock kernels the module also builds for (lib.sh)
	[ -n "$USER_KDIR" ] || kernel_pkgs+=$(printf \
		' linux-headers-%s='"$STOCK_KPKG_VER" $STOCK_KVERS)
	[ -z "$KPKG_VER" ] ||
		kernel_pkgs="$kernel_pkgs linux-source-$KSERIES=$KPKG_VER"
	# shellcheck disable=SC2086
	miss=$(missing_pkgs $BASE_PKGS $LIBVIRT_PKGS $FUZZ_PKGS $kernel_pkgs)
	# shellcheck disable=SC2086
	bpo_miss=$(missing_pkgs $BPO_PKGS)
	if [ -z "$miss$bpo_miss" ] && [ $changed = 0 ]; then
		log "host set-up: nothing to do"
		return 0
	fi
	if [ $updated = 0 ]; then
		log "host set-up: apt-get update"
		as_root apt-get update -qq
	fi
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
