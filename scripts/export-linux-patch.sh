#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Export the guest driver as a Linux patch against the 6.12 source tree,
# and check it:
#   scripts/export-linux-patch.sh [--check]
#
# The patch (git format-patch, build/linux-patch/0001-*.patch) adds
#   drivers/virtio/dmm/               the driver (drivers/dmm/*.[ch]) and a
#                                     Makefile made from drivers/dmm/Kbuild
#   drivers/virtio/Kconfig, Makefile  VIRTIO_DMM
#   include/uapi/linux/virtio_dmm.h   the wire format (VIRTIO_ID_DMM moved
#   include/uapi/linux/virtio_ids.h   to virtio_ids.h, as Linux keeps IDs)
#   Documentation/ABI/testing/sysfs-driver-virtio-dmm
#   MAINTAINERS                       an entry for those files
# A directory of its own under drivers/virtio/ and not virtio_dmm*.c next
# to virtio_mem.c: the driver is twelve files and a private header, split
# by concern; in a directory they keep their names and one Makefile.
#
# The tree, build/linux-tree, is the part of the linux-source-6.12 tarball
# the patch and checkpatch need (the top-level files, LICENSES, scripts,
# include, drivers/virtio, Documentation/ABI/testing; the other top-level
# directories checkpatch looks for, empty), made a git repository once
# (tag "base") and reused.  The whole tree would be 1.7 GB and about three
# minutes to extract and commit here.
#
# --check: the patch is applied with git am onto a clean checkout of
# "base", the kernel's checkpatch.pl --strict checks it (patch mode, in
# the tree) and must report nothing, and the module is built from the
# tree's drivers/virtio/dmm/ against the guest kernel's headers (KDIR),
# the tree's two uapi headers first on the include path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

LTREE=$BUILD/linux-tree
OUT=$BUILD/linux-patch
TREE_PATHS=(COPYING CREDITS Kbuild Kconfig MAINTAINERS Makefile README
	LICENSES scripts include drivers/virtio Documentation/ABI/testing)
EMPTY_DIRS=(arch fs init ipc kernel lib)
# The patch's author and committer (also its Signed-off-by).
AUTHOR_NAME="virtio-dmm developers"
AUTHOR_EMAIL="virtio-dmm@example.org"
GIT_DATE="2026-11-30T00:00:00Z"

git_tree() {
	git -C "$LTREE" -c user.name="$AUTHOR_NAME" \
		-c user.email="$AUTHOR_EMAIL" "$@"
}

# The tree, extracted and committed once per linux-source tarball.
make_tree() {
	local stamp d
	stamp=$(stat -c '%s %Y' "$LINUX_SOURCE" 2>/dev/null) ||
		die "$LINUX_SOURCE missing: run scripts/setup-host.sh"
	# reused only if whole: the stamp of this tarball and the tag
	[ -f "$LTREE/.stamp" ] && [ "$(cat "$LTREE/.stamp")" = "$stamp" ] &&
		git_tree rev-parse -q --verify base >/dev/null && return 0
	log "linux-patch: extracting the 6.12 tree (${TREE_PATHS[*]})"
	rm -rf "$LTREE"
	extract_linux_source "$LTREE" "${TREE_PATHS[@]}"
	for d in "${EMPTY_DIRS[@]}"; do mkdir -p "$LTREE/$d"; done
	# Debian's tarball ignores everything at the top level: add -f
	git_tree init -q
	git_tree add -A -f
	GIT_AUTHOR_DATE=$GIT_DATE GIT_COMMITTER_DATE=$GIT_DATE \
		git_tree commit -q -m "linux-source-6.12 (the part checked)"
	git_tree tag base
	echo "$stamp" >"$LTREE/.stamp"
}

# A clean checkout of base (the empty directories, which git does not
# keep, made again).
clean_tree() {
	local d
	git_tree am --abort >/dev/null 2>&1 || true
	git_tree checkout -q -f --detach base
	# (checkpatch's cache of the kernel's CamelCase names stays)
	git_tree clean -q -f -d -x -e /.stamp -e '/.checkpatch-camelcase.*'
	for d in "${EMPTY_DIRS[@]}"; do mkdir -p "$LTREE/$d"; done
}

# Insert the text of file @3 into file @1 before the first line matching
# the regular expression @2.
insert_before() {
	local file=$1 re=$2 text=$3 tmp
	tmp=$(mktemp)
	awk -v re="$re" -v text="$text" \
		'!done && $0 ~ re { while ((getline l < text) > 0) print l; done = 1 }
		 { print }
		 END { if (!done) exit 1 }' "$file" >"$tmp" ||
		die "no line matching $re in $file"
	cat "$tmp" >"$file"
	rm -f "$tmp" "$text"
}

snippet() {
	local f
	f=$(mktemp)
	cat >"$f"
	echo "$f"
}

# dmm_compat.h for Linux @1.@2: every "#if/#elif DMM_LINUX_BEFORE(a, b)"
# decided, the macro and <linux/version.h> gone, the rest unchanged.
resolve_compat() {
	python3 -c '
import re, sys
major, minor = int(sys.argv[1]), int(sys.argv[2])
cond = re.compile(r"^#(if|elif) DMM_LINUX_BEFORE\((\d+), (\d+)\)\s*$")
out, stack = [], []   # stack: [ours, taken, keeping] per #if level
def keeping():
    return all(s[2] for s in stack)
lines = sys.stdin.read().split("\n")
i = 0
while i < len(lines):
    line = lines[i]
    m = cond.match(line)
    if line.startswith("#define DMM_LINUX_BEFORE("):
        i += 2      # the macro and its continuation line
        continue
    if line == "#include <linux/version.h>":
        i += 1
        continue
    if m:
        before = (major, minor) < (int(m.group(2)), int(m.group(3)))
        if m.group(1) == "if":
            stack.append([True, before, before])
        else:
            top = stack[-1]
            top[2] = before and not top[1]
            top[1] = top[1] or before
    elif stack and stack[-1][0] and line.startswith("#else"):
        top = stack[-1]
        top[2] = not top[1]
    elif stack and stack[-1][0] and line.startswith("#endif"):
        stack.pop()
    elif line.startswith("#if"):
        if keeping():
            out.append(line)
        stack.append([False, True, True])
    elif line.startswith("#endif") and stack:
        stack.pop()
        if keeping():
            out.append(line)
    elif keeping():
        out.append(line)
    i += 1
# a comment whose code went with its version check goes too
res, i = [], 0
while i < len(out):
    if out[i].startswith("/*"):
        j = i
        while not out[j].rstrip().endswith("*/"):
            j += 1
        if j + 1 < len(out) and out[j + 1] == "" and i > 0:
            i = j + 2
            continue
        res.extend(out[i:j + 1])
        i = j + 1
        continue
    res.append(out[i])
    i += 1
sys.stdout.write("\n".join(res))
' "$1" "$2"
}

add_files() {
	local t=$LTREE f
	mkdir -p "$t/drivers/virtio/dmm"
	for f in "$TOP"/drivers/dmm/*.[ch]; do
		cp "$f" "$t/drivers/virtio/dmm/"
	done
	# In the tree the driver is for that kernel only: resolve the version
	# checks of dmm_compat.h for it (checkpatch: LINUX_VERSION_CODE
	# should be avoided, code should be for the version it is merged to).
	resolve_compat 6 12 <"$TOP/drivers/dmm/dmm_compat.h" \
		>"$t/drivers/virtio/dmm/dmm_compat.h"
	# the out-of-tree Kbuild, minus its include path, under the option
	grep -v -e '^ccflags-y .*virtio-dmm-device' \
		-e '^# The uapi header of virtio-dmm-device' \
		"$TOP/drivers/dmm/Kbuild" |
		sed 's/^obj-m += virtio_dmm\.o$/obj-$(CONFIG_VIRTIO_DMM) += virtio_dmm.o/' \
		>"$t/drivers/virtio/dmm/Makefile"
	grep -q 'CONFIG_VIRTIO_DMM' "$t/drivers/virtio/dmm/Makefile" ||
		die "drivers/dmm/Kbuild: no obj-m += virtio_dmm.o line"
	# the uapi header without VIRTIO_ID_DMM (its comment and define)
	awk '/^\/\*$/ { held = $0; next }
	     held != "" && /Virtio device ID/ { skip = 1 }
	     held != "" { if (!skip) print held; held = "" }
	     skip { if (/^#define VIRTIO_ID_DMM/) { skip = 2; next }
		    if (skip == 2 && /^$/) { skip = 0; next } next }
	     { print }' "$TOP/virtio-dmm-device/include/uapi/linux/virtio_dmm.h" \
		>"$t/include/uapi/linux/virtio_dmm.h"
	! grep -q VIRTIO_ID_DMM "$t/include/uapi/linux/virtio_dmm.h" ||
		die "VIRTIO_ID_DMM still in the exported virtio_dmm.h"
	f=$(sed -n 's/^#define VIRTIO_ID_DMM[[:space:]]*\([0-9]*\).*/\1/p' \
		"$TOP/virtio-dmm-device/include/uapi/linux/virtio_dmm.h")
	[ -n "$f" ] || die "no VIRTIO_ID_DMM in virtio_dmm.h"
	awk -v id="$f" '
		/^#define VIRTIO_ID_/ { last = NR }
		{ line[NR] = $0 }
		END { for (i = 1; i <= NR; i++) { print line[i]
			if (i == last) printf "#define VIRTIO_ID_DMM\t\t\t%s /* virtio dynamic memory (provisional) */\n", id } }' \
		"$t/include/uapi/linux/virtio_ids.h" >"$t/virtio_ids.tmp"
	mv "$t/virtio_ids.tmp" "$t/include/uapi/linux/virtio_ids.h"
	# the ABI file from its first entry (the lines above are for readers
	# of this repository), without blank lines at the end
	sed -n '/^What:/,$p' "$TOP/Documentation/ABI/testing/sysfs-driver-virtio-dmm" |
		awk '/^$/ { blank++; next } { while (blank) { print ""; blank-- } print }' \
		>"$t/Documentation/ABI/testing/sysfs-driver-virtio-dmm"
	insert_before "$t/drivers/virtio/Kconfig" '^config VIRTIO_INPUT$' \
		"$(snippet <<'EOF'
config VIRTIO_DMM
	tristate "Virtio dynamic memory driver"
	depends on X86_64
	depends on VIRTIO
	depends on MEMORY_HOTPLUG
	depends on MEMORY_HOTREMOVE
	select XXHASH
	help
	 This driver provides access to virtio-dmm dynamic memory devices:
	 the host sets the guest's total RAM and the driver plugs or unplugs
	 memory blocks of a device region, sub-blocks of them and single
	 pages of any RAM until the guest's RAM matches it, so a guest can
	 also shrink below its boot size.  With the device's features it
	 reports free pages, hints zero and duplicate pages and reports
	 memory pressure to the host.

	 If unsure, say M.

EOF
	)"
	printf 'obj-$(CONFIG_VIRTIO_DMM) += dmm/\n' >>"$t/drivers/virtio/Makefile"
	insert_before "$t/MAINTAINERS" '^VIRTIO DRIVERS FOR S390$' "$(snippet <<EOF
VIRTIO DMM DRIVER
M:	$AUTHOR_NAME <$AUTHOR_EMAIL>
L:	virtualization@lists.linux.dev
S:	Maintained
F:	Documentation/ABI/testing/sysfs-driver-virtio-dmm
F:	drivers/virtio/dmm/
F:	include/uapi/linux/virtio_dmm.h

EOF
	)"
}

commit_message() {
	cat <<-EOF
	virtio: add virtio-dmm, a dynamic memory driver

	virtio-dmm lets a host grow a running guest past its boot size and
	shrink it again, below its boot size too.  The host sets one number,
	the guest's target total RAM; the driver plugs or unplugs whole memory
	blocks of a device-managed region (added with
	add_memory_driver_managed()), 2 MiB sub-blocks of them and single
	4 KiB pages of any of its RAM (held as balloon pages), until its RAM
	matches the target to the page.  Unplugged memory is discarded by the
	host.

	Optional features, each a feature bit: free page reporting, zero and
	duplicate page hints, memory pressure reports with requests for more
	memory.  The sysfs interface is documented in
	Documentation/ABI/testing/sysfs-driver-virtio-dmm.

	The device ID, VIRTIO_ID_DMM ($1), is provisional: it is taken from the
	range the virtio specification leaves unassigned.

	Signed-off-by: $AUTHOR_NAME <$AUTHOR_EMAIL>
	EOF
}

export_patch() {
	local id
	id=$(sed -n 's/^#define VIRTIO_ID_DMM[[:space:]]*\([0-9]*\).*/\1/p' \
		"$TOP/virtio-dmm-device/include/uapi/linux/virtio_dmm.h")
	clean_tree
	add_files
	git_tree add -A -f drivers/virtio include/uapi/linux \
		Documentation/ABI/testing MAINTAINERS
	GIT_AUTHOR_DATE=$GIT_DATE GIT_COMMITTER_DATE=$GIT_DATE \
		git_tree commit -q -F <(commit_message "$id")
	rm -rf "$OUT"
	mkdir -p "$OUT"
	git_tree format-patch -q -o "$OUT" base..HEAD
	log "linux-patch: $(ls "$OUT"/*.patch)"
}

# checkpatch calls the page-type helpers CamelCase (__SetPageOffline):
# PAGE_TYPE_OPS() makes them, so its seeding from include/ misses them.
# Such a CHECK is accepted only for a name made by one of the kernel's
# page-flag macros (include/linux/page-flags.h: __SetPage##uname ...).
kernel_camelcase() {
	local name rc=0
	while IFS= read -r name; do
		case "$name" in
		__SetPage*|__ClearPage*|SetPage*|ClearPage*|Page*)
			grep -q "PAGE_TYPE_OPS(${name#*Page}," \
				"$LTREE/include/linux/page-flags.h" && continue ;;
		esac
		echo "CamelCase <$name> is not a kernel page-flag helper"
		rc=1
	done < <(echo "$1" | sed -n 's/^CHECK:CAMELCASE: Avoid CamelCase: <\(.*\)>$/\1/p')
	return $rc
}

check_patch() {
	local p out rc=0 overlay=$OUT/uapi-overlay
	clean_tree
	git_tree am -q "$OUT"/*.patch || die "git am failed"
	log "linux-patch: applied with git am"
	for p in "$OUT"/*.patch; do
		# Debian's python3 for spdxcheck.py (python3-ply is its)
		out=$(cd "$LTREE" && PATH=/usr/bin:$PATH \
			scripts/checkpatch.pl --strict --show-types "$p" 2>&1) ||
			true
		echo "$out" | grep -E '^total:' >&2
		kernel_camelcase "$out" || rc=1
		if echo "$out" | grep -E '^(ERROR|WARNING|CHECK):|Traceback' |
			grep -v '^CHECK:CAMELCASE:'; then
			rc=1
		fi
	done
	[ $rc = 0 ] || { echo "$out"; die "checkpatch --strict: not clean"; }
	# <linux/virtio_ids.h> and <linux/virtio_dmm.h> exist in uapi only:
	# the tree's, ahead of the headers package's.
	mkdir -p "$overlay/linux"
	cp "$LTREE"/include/uapi/linux/virtio_{ids,dmm}.h "$overlay/linux/"
	log "linux-patch: building drivers/virtio/dmm against $KDIR"
	make -s -C "$KDIR" M="$LTREE/drivers/virtio/dmm" CONFIG_VIRTIO_DMM=m \
		NOSTDINC_FLAGS="-nostdinc -I$overlay" W=1 modules
	[ -f "$LTREE/drivers/virtio/dmm/virtio_dmm.ko" ] ||
		die "no virtio_dmm.ko built"
	log "linux-patch: $LTREE/drivers/virtio/dmm/virtio_dmm.ko" \
		"(version $(modinfo -F version "$LTREE/drivers/virtio/dmm/virtio_dmm.ko"))"
}

main() {
	make_tree
	export_patch
	[ "${1:-}" = --check ] && check_patch
	return 0
}

main "$@"
