# SPDX-License-Identifier: GPL-2.0
"""Host checks: the device library's tests, static checks of the
driver and of the QEMU series, QEMU's qtest (also under ASan/UBSan),
QEMU's own qom-test and device-introspect-test, and a fuzzing smoke run.
No guest.
"""

import os
import re
import subprocess
import time

from dmmlib import dmmvm
from harness import suite

TOP = dmmvm.TOP


@suite
def suite_devlib(r):
    """The portable device library's unit tests and fuzz smoke run."""
    for target in ("test", "fuzz-smoke"):
        p = subprocess.run(["make", "-s", "-C",
                            os.path.join(TOP, "virtio-dmm-device"), target],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        if target == "test":
            r.tap("devlib", p.returncode, p.stdout)
        else:
            r.ok(p.returncode == 0, "devlib: fuzz smoke run",
                 p.stdout[-3000:])
            for line in p.stdout.splitlines()[-3:]:
                r.diag("  " + line)


def check_script(r, script, name):
    """Run a static-check script of scripts/: one result, its output."""
    p = subprocess.run([os.path.join(TOP, "scripts", script)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=600)
    r.ok(p.returncode == 0, name, p.stdout[-4000:])


@suite(alone="rebuilds the module the guests' initramfs holds")
def suite_driver_checks(r):
    """checkpatch --strict and sparse C=2 on the driver."""
    check_script(r, "check-driver.sh",
                 "driver: checkpatch --strict and sparse clean")


@suite
def suite_qemu_checks(r):
    """The QEMU series: git am onto the pristine source, checkpatch.pl."""
    t0 = time.time()
    check_script(r, "check-qemu.sh",
                 "qemu: the series applies with git am, and QEMU's "
                 "checkpatch.pl passes on every patch")
    r.figure("qemu-checks: export, git am and checkpatch of the series",
             "%.1f s" % (time.time() - t0))


@suite
def suite_qtest(r):
    """QEMU's own test: malformed requests straight into the virtqueue."""
    qbuild = os.path.join(dmmvm.BUILD, "qemu-build")
    env = dict(os.environ, QTEST_QEMU_BINARY="./qemu-system-x86_64")
    p = subprocess.run(["timeout", "300", "tests/qtest/virtio-dmm-test",
                        "--tap"], cwd=qbuild, env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    r.tap("qtest", p.returncode, p.stdout)


def qtest_env():
    return dict(os.environ, QTEST_QEMU_BINARY="./qemu-system-x86_64")


@suite
def suite_qemu_default_machine(r):
    """A user's default command line starts: q35 with its default NIC."""
    qbuild = os.path.join(dmmvm.BUILD, "qemu-build")
    qmp = '{"execute": "qmp_capabilities"}\n{"execute": "quit"}\n'
    for machine in ("q35", "pc"):
        p = subprocess.run(["timeout", "60", "./qemu-system-x86_64",
                            "-machine", machine, "-accel", "tcg",
                            "-display", "none", "-S", "-qmp", "stdio"],
                           cwd=qbuild, input=qmp, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        r.ok(p.returncode == 0 and '"return"' in p.stdout,
             "qemu: qemu-system-x86_64 -machine %s starts (default NIC and "
             "its option ROM)" % machine, p.stdout[-2000:])


@suite
def suite_qemu_qtests(r):
    """QEMU's own qom-test and device-introspect-test on the patched build."""
    qbuild = os.path.join(dmmvm.BUILD, "qemu-build")
    for test in ("device-introspect-test", "qom-test"):
        t0 = time.time()
        p = subprocess.run(["timeout", "900", "tests/qtest/" + test,
                            "--tap"], cwd=qbuild, env=qtest_env(),
                           text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        r.tap(test, p.returncode, p.stdout)
        r.figure(test, "%.1f s" % (time.time() - t0))


SANITIZER_ERRORS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                    "runtime error:")


def sanitizer_reports(text):
    """The lines of @text that start a sanitizer report."""
    return [line for line in text.splitlines()
            if any(e in line for e in SANITIZER_ERRORS)]


@suite
def suite_qtest_asan(r):
    """The virtio-dmm qtest on the ASan/UBSan QEMU, LeakSanitizer on."""
    qbuild = os.path.join(dmmvm.BUILD, "qemu-fuzz")
    # QEMU and the test inherit these and write reports to the test's
    # stderr.  libqtest stops QEMU with SIGTERM: QEMU exits from main, so
    # LeakSanitizer checks it at exit (a leak makes the exit status 1,
    # which libqtest reports too).
    # fast_unwind_on_malloc=0: whole allocation stacks, through glib too.
    env = dict(os.environ, QTEST_QEMU_BINARY="./qemu-system-x86_64",
               ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0",
               LSAN_OPTIONS="suppressions=%s:print_suppressions=0" %
               os.path.join(qbuild, "lsan-suppressions.txt"),
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    p = subprocess.run(["timeout", "900", "tests/qtest/virtio-dmm-test",
                        "--tap"], cwd=qbuild, env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(os.path.join(dmmvm.LOGS, "qtest-asan.log"), "w") as f:
        f.write(p.stdout + "\n--- stderr ---\n" + p.stderr)
    r.tap("qtest-asan", p.returncode, p.stdout)
    reports = sanitizer_reports(p.stderr + p.stdout)
    first = min([p.stderr.find(e) for e in SANITIZER_ERRORS
                 if e in p.stderr] or [0])
    r.ok(not reports, "qtest-asan: no ASan, LeakSanitizer or UBSan report",
         "\n".join(reports[:10]) + "\n" + p.stderr[first:first + 6000])


@suite
def suite_fuzz_smoke(r):
    """QEMU's generic-fuzz on virtio-dmm-pci for 30 s: nothing found."""
    secs = int(os.environ.get("DMM_FUZZ_SMOKE_SECS", "30"))
    # logs, artifacts and a corpus of its own (build/fuzz/smoke/), the
    # corpus empty at the start: the same run as on a fresh clone
    rundir = os.path.join(dmmvm.BUILD, "fuzz", "smoke")
    corpus = os.path.join(rundir, "corpus")
    subprocess.run(["rm", "-rf", corpus], check=True)
    p = subprocess.run([os.path.join(TOP, "scripts", "fuzz-qemu.sh"),
                        str(secs)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True,
                       env=dict(os.environ, DMM_FUZZ_RUN="smoke",
                                DMM_FUZZ_CORPUS=corpus),
                       timeout=secs + 600)
    runlog = os.path.join(rundir, "run.log")
    log = open(runlog, errors="replace").read() \
        if os.path.exists(runlog) else ""
    for line in p.stdout.splitlines():
        if not line.startswith("  * "):
            r.diag("  " + line)
    r.ok("INITED" in log, "fuzz-smoke: generic-fuzz started",
         p.stdout[-3000:])
    regions = re.findall(r"^  \* (\S+?)(?:\[\d+\])? \(size", log, re.M)
    want = ("virtio-pci-common-virtio-dmm", "virtio-pci-notify-virtio-dmm",
            "virtio-pci-device-virtio-dmm")
    r.ok(all(w in regions for w in want),
         "fuzz-smoke: the device's BARs are fuzzed", "\n".join(regions))
    # the seeds' requests, replayed with trace events on, reached the
    # parsers of the request, report, page and hint queues
    events = dict(re.findall(r"^  (virtio_dmm_\w+) (\d+)$", p.stdout, re.M))
    want = ("virtio_dmm_request_block", "virtio_dmm_request_page",
            "virtio_dmm_request_hint", "virtio_dmm_ask",
            "virtio_dmm_report_refused")
    r.ok(all(int(events.get(w, 0)) > 0 for w in want),
         "fuzz-smoke: requests on every queue reach the device",
         "trace events: %s" % events)
    m = re.search(r"^stat::number_of_executed_units: (\d+)", log, re.M)
    runs = int(m.group(1)) if m else 0
    r.ok(runs >= 10 * secs, "fuzz-smoke: ran %d inputs in %d s" %
         (runs, secs))
    r.ok(p.returncode == 0, "fuzz-smoke: no crash, leak or sanitizer report",
         p.stdout[-4000:])
