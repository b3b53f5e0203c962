#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fuzz virtio-dmm-pci with QEMU's generic-fuzz target (libFuzzer, ASan,
# UBSan, LeakSanitizer) for SECONDS (default 1800):
#
#   scripts/fuzz-qemu.sh [SECONDS]
#   scripts/fuzz-qemu.sh --replay FILE...     run inputs once (reproduce)
#
# The device has every feature on (free page reporting, pages, sub-blocks,
# hints, duplicate hints, stats, auto-grant).  QEMU_FUZZ_OBJECTS matches its
# QOM types, so the fuzzer pokes its PCI BARs (common/notify/ISR/device
# configuration, MSI-X) and PCI config space; whenever the device reads
# guest RAM (rings, descriptors, requests) the input fills it.  Seeds made
# here set the device up and send one request on each virtqueue, so the
# request parsers are reached from the first second.
#
# Three steps; the corpus (build/fuzz/corpus, or $DMM_FUZZ_CORPUS) grows
# from run to run, the rest is the run's own, in build/fuzz/RUN/ (RUN:
# $DMM_FUZZ_RUN, default "last"; runner.py's fuzz-smoke uses "smoke", with
# a corpus of its own that starts empty):
#   1. fuzz for SECONDS (leak checks off: they cost 7x in speed); crash,
#      leak and timeout inputs in artifacts/, output in run.log;
#   2. leak check: every corpus input and seed run once more with
#      LeakSanitizer after each (leak-check.log);
#   3. reach check: the seeds replayed with the device's trace events on
#      (reach.log), to show the requests reached the device.
# Prints matched regions, runs, exec/s, coverage and findings; exits
# non-zero on any crash, leak, timeout or sanitizer report.  Inputs slower
# than 10 s (slow-unit-*: libFuzzer's note, not a finding) are listed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FUZZ_DIR=$BUILD/fuzz
CORPUS=${DMM_FUZZ_CORPUS:-$FUZZ_DIR/corpus}
RUN_DIR=$FUZZ_DIR/${DMM_FUZZ_RUN:-last}
SEEDS=$RUN_DIR/seeds
ARTIFACTS=$RUN_DIR/artifacts
RUNLOG=$RUN_DIR/run.log
LEAKLOG=$RUN_DIR/leak-check.log
REACHLOG=$RUN_DIR/reach.log

# q35 with its RAM in a memory backend (hints need that) and the device with
# a 1 GiB region at 4 GiB, requested-guest-size above boot size (so plugs
# can succeed) and every feature on.  generic-fuzz adds "-machine accel=qtest
# -m 512M".  No reserve=off: pristine QEMU leaks a few bytes for it at
# start-up (lsan-suppressions.txt), which a leak check unwinding fast
# cannot tell from others.
export QEMU_FUZZ_ARGS="-nodefaults -machine q35,memory-backend=ram0
 -m 512M,slots=2,maxmem=4G
 -object memory-backend-ram,id=ram0,size=512M
 -object memory-backend-ram,id=mem0,size=1G
 -device virtio-dmm-pci,id=dmm0,memdev=mem0,addr=04.0,block-size=128M
,requested-guest-size=1G,free-page-reporting=on,pages=on,sub-blocks=on
,hints=on,dup-hints=on,stats=on,auto-grant=on"
QEMU_FUZZ_ARGS=${QEMU_FUZZ_ARGS//$'\n'/}
# QOM type names (virtio-dmm-pci, virtio-dmm): every MemoryRegion under them.
export QEMU_FUZZ_OBJECTS="virtio-dmm*"
# Guest RAM the device reads twice in one command keeps its first content
# (as QEMU's own fuzz configs do).  Without it the ring's index changes on
# every read, a queue never runs empty, and a command that maps large
# buffers runs for many seconds: timeouts of the harness, not the device.
export QEMU_AVOID_DOUBLE_FETCH=1
# Any sanitizer report is fatal, so libFuzzer saves the input.
export ASAN_OPTIONS=detect_leaks=1:handle_abort=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$QEMU_LSAN_SUPP:print_suppressions=0

# What counts as a finding in the output (beside artifacts and exit status).
REPORTS='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
REPORTS+='|==ERROR:|ERROR: libFuzzer|SUMMARY: [A-Za-z]*Sanitizer'

# generic-fuzz inputs: commands separated by "FUZZ".  Each seed enables the
# device (VERSION_1 and features 1-6, all five queues), adds DMA patterns
# that make guest RAM, as the device reads it, hold one descriptor chain
# with a request, and kicks one queue.  The regions are numbered in address
# order: msix-table, msix-pba, then the modern BAR's common, ISR, device and
# notify configuration.
make_seeds() {
	rm -rf "$SEEDS"
	mkdir -p "$SEEDS"
	python3 - "$SEEDS" <<-'PY'
	import os, struct, sys
	out = sys.argv[1]
	OP_WRITE, OP_ADD_DMA_PATTERN, OP_CLOCK_STEP = 3, 7, 9
	B, W, L = 0, 1, 2
	COMMON, NOTIFY = 2, 5
	REGION = 0x100000000

	def wr(size, base, off, val):
	    return bytes([OP_WRITE, size, base, 0, 0]) + struct.pack("<IQ", off, val)

	def pat(data):
	    return bytes([OP_ADD_DMA_PATTERN, 0, 0]) + data

	def desc(addr, ln, flags, nxt):
	    return struct.pack("<QIHH", addr, ln, flags, nxt)

	# Guest RAM keeps what an input wrote into the next input (a reset
	# does not clear it), and enabling the device kicks every queue: each
	# seed has rings and buffers of its own, so that one seed's request
	# is not found again by the next.
	n = 0

	def base():
	    return 0x2000000 + n * 0x200000

	def setup():
	    ops = [wr(L, COMMON, 8, 1), wr(L, COMMON, 12, 1),
	           wr(L, COMMON, 8, 0), wr(L, COMMON, 12, 0x7e),
	           wr(B, COMMON, 20, 0x0b)]
	    for q in range(5):
	        d = base() + q * 0x10000
	        ops += [wr(W, COMMON, 22, q), wr(L, COMMON, 32, d),
	                wr(L, COMMON, 40, d + 0x1000), wr(L, COMMON, 48, d + 0x2000),
	                wr(W, COMMON, 28, 1)]
	    return ops + [wr(B, COMMON, 20, 0x0f)]

	def write(name, q, chain):
	    global n
	    # the device reads: avail idx, ring[0], then each descriptor and
	    # the buffer it points at (mapping it fills it too)
	    ops = setup() + [pat(struct.pack("<H", 1)), pat(struct.pack("<H", 0))]
	    ops += [pat(p) for p in chain]
	    ops += [wr(W, NOTIFY, 4 * q, q), bytes([OP_CLOCK_STEP])]
	    with open(os.path.join(out, name), "wb") as f:
	        f.write(b"FUZZ".join(ops))
	    n += 1

	def seed(name, q, req):
	    buf = base() + 0x100000
	    write(name, q, [desc(buf, len(req), 1, 1), req,
	                    desc(buf + 0x1000, 24, 2, 0), b"\xff" * 8])

	def req(t, a=0, b=0):
	    return struct.pack("<H6xQQ", t, a, b)

	def hints(t, *pairs):
	    return struct.pack("<HHI", t, 0, len(pairs) // 2) + \
	        struct.pack("<%dQ" % len(pairs), *pairs)

	seed("request-plug", 0, req(0, REGION, 1))
	seed("request-unplug", 0, req(1, REGION, 1))
	seed("request-unplug-all", 0, req(2))
	seed("request-state", 0, req(3, REGION, 2))
	seed("request-plug-sb", 0, req(7, REGION + 0x200000, 1))
	seed("request-ask", 0, req(9, 0x30000000, 1))
	seed("pages-unplug", 2, struct.pack("<HHIQQ", 4, 0, 2, 0x1000000, 0x1001000))
	seed("pages-plug", 2, struct.pack("<HHIQ", 5, 0, 1, 0x1000000))
	seed("hint-zero", 3, hints(0, 0x1000000, 0))
	seed("hint-dup", 3, hints(1, 0x1000000, 0x9b3c41cea4709588))
	seed("stats", 4, struct.pack("<QQQ", 1, 0x20000000, 0x1000000) + bytes(88))
	# free page reports: boot RAM (discarded), unaligned (refused), an
	# unplugged block (not guest memory: the device breaks)
	for name, addr, ln in (("report-ram", 0x1000000, 0x200000),
	                       ("report-unaligned", 0x1000800, 0x1000),
	                       ("report-unplugged", REGION, 0x200000)):
	    write(name, 1, [desc(addr, ln, 2, 0)])
	PY
}

# Replay the seeds with the device's trace events on: which requests got
# to the device's parsers.  Prints "EVENT COUNT" lines; requests count
# by queue (virtio_dmm_request_block, _page, _hint).
reach_check() {
	local ev args=""
	for ev in virtio_dmm_request virtio_dmm_ask virtio_dmm_report_refused; do
		args+=" -trace $ev"
	done
	QEMU_FUZZ_ARGS="$QEMU_FUZZ_ARGS$args" "$QEMU_FUZZER" \
		--fuzz-target=generic-fuzz "$SEEDS"/* >"$REACHLOG" 2>&1 || true
	grep -oE 'virtio_dmm_[a-z_]+ (queue=[a-z]+|type|size|addr)' \
		"$REACHLOG" | sed 's/ queue=/_/; s/ [a-z]*$//' | sort | uniq -c |
		awk '{ printf "  %s %d\n", $2, $1 }'
}

# Print the run's figures from libFuzzer's output and check its findings.
summary() {
	local rc=$1 lrc=$2 new=$3 reach=$4 last nrep slow
	echo "== fuzz summary ($RUN_DIR: run.log, leak-check.log) =="
	sed -n 's/^Matching objects by name /matched objects: /p' "$RUNLOG"
	echo "fuzzed regions:"
	grep -E '^  \* ' "$RUNLOG" || echo "  (none)"
	echo "device requests the seeds got to the device (trace events):"
	echo "${reach:-  (none)}"
	last=$(grep -E '^#[0-9]+[[:space:]]+(pulse|DONE|NEW|REDUCE|INITED)' \
		"$RUNLOG" | tail -n 1 || true)
	echo "last status: ${last:-none}"
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' \
		"$RUNLOG" || true
	grep -E '^stat::(new_units_added|peak_rss_mb)' "$RUNLOG" || true
	echo "corpus: $(find "$CORPUS" -type f | wc -l) inputs"
	grep -E '^#[0-9]+[[:space:]]+INITED' "$LEAKLOG" |
		sed 's/^/leak check: /' || true
	nrep=$(cat "$RUNLOG" "$LEAKLOG" | grep -cE "$REPORTS" || true)
	echo "sanitizer/libFuzzer reports: $nrep"
	slow=$(echo "$new" | grep '^slow-unit-' || true)
	new=$(echo "$new" | grep -v '^slow-unit-' || true)
	echo "new artifacts (crashes, leaks, timeouts):" \
		"$(echo "$new" | grep -c . || true)"
	[ -z "$new" ] || echo "$new" | sed "s|^|  $ARTIFACTS/|"
	[ -z "$slow" ] || echo "$slow" | sed "s|^|  slower than 10 s: $ARTIFACTS/|"
	echo "libFuzzer exit status: fuzzing $rc, leak check $lrc"
	[ "$rc" = 0 ] && [ "$lrc" = 0 ] && [ "$nrep" = 0 ] && [ -z "$new" ]
}

main() {
	local secs=${1:-1800} rc lrc before after new reach
	[ -x "$QEMU_FUZZER" ] ||
		die "$QEMU_FUZZER missing: run scripts/build-qemu-fuzz.sh"
	mkdir -p "$CORPUS" "$ARTIFACTS"
	if [ "$secs" = --replay ]; then
		shift
		exec "$QEMU_FUZZER" --fuzz-target=generic-fuzz "$@"
	fi
	# one run per RUN_DIR at a time (fd 9 stays open until we exit)
	exec 9>"$RUN_DIR/lock"
	flock -n 9 || die "another fuzz-qemu.sh uses $RUN_DIR (DMM_FUZZ_RUN)"
	make_seeds
	before=$(ls "$ARTIFACTS")
	log "fuzz: generic-fuzz on virtio-dmm-pci for $secs s (log: $RUNLOG)"
	set +e
	"$QEMU_FUZZER" --fuzz-target=generic-fuzz \
		-max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 \
		-detect_leaks=0 -print_final_stats=1 \
		-artifact_prefix="$ARTIFACTS/" "$CORPUS" "$SEEDS" >"$RUNLOG" 2>&1
	rc=$?
	log "fuzz: leak check of $(find "$CORPUS" -type f | wc -l) corpus inputs"
	"$QEMU_FUZZER" --fuzz-target=generic-fuzz -runs=0 -timeout=30 \
		-rss_limit_mb=4096 -detect_leaks=1 \
		-artifact_prefix="$ARTIFACTS/" "$CORPUS" "$SEEDS" >"$LEAKLOG" 2>&1
	lrc=$?
	set -e
	reach=$(reach_check)
	after=$(ls "$ARTIFACTS")
	new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
	if summary "$rc" "$lrc" "$new" "$reach"; then
		log "fuzz: $secs s, nothing found"
		return 0
	fi
	log "fuzz: FOUND something or failed; see $RUNLOG, $LEAKLOG, $ARTIFACTS"
	cat "$RUNLOG" "$LEAKLOG" | grep -E -A 40 "$REPORTS" | head -n 120 >&2 ||
		true
	return 1
}

main "$@"
