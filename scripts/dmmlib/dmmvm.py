#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Boot and drive virtio-dmm test guests.

A Guest is one QEMU process (KVM where it works, else TCG: use_kvm()) with:
  - its serial console (ttyS0) captured to build/logs/NAME-console.log,
  - a QMP socket (Guest.qmp),
  - the guest agent on ttyS1 (Guest.run runs a shell command in the guest),
  - a hard time limit: a watchdog kills QEMU when it is exceeded, so a hung
    guest never hangs a test.

Used by the selftest runner, the demo and the benchmarks.  Command line
use (scripts/dmmvm.py runs main()):

  scripts/dmmvm.py shell [--mem 512M] [--region 3G]   boot, then read
                  commands from stdin ("!qmp CMD {json}" sends QMP)
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("DMM_BUILD", os.path.join(TOP, "build"))
LOGS = os.path.join(BUILD, "logs")
RUN = os.path.join(BUILD, "run")

MiB = 1 << 20
GiB = 1 << 30


def _lib_var(name):
    """Read a pinned value from scripts/lib.sh (one source for versions)."""
    with open(os.path.join(TOP, "scripts", "lib.sh")) as f:
        for line in f:
            m = re.match(r'^%s=(?:"([^"]*)"|(\S+))' % name, line)
            if m:
                return m.group(1) if m.group(1) is not None else m.group(2)
    raise KeyError(name)


def _versions():
    """build/versions.env, the versions and files the set-up chose
    (scripts/resolve-versions.sh; the shell scripts read it through
    scripts/lib.sh): NAME=VALUE lines, values quoted as bash's %q."""
    found = {}
    try:
        with open(os.path.join(BUILD, "versions.env")) as f:
            for line in f:
                name, eq, value = line.rstrip("\n").partition("=")
                if eq and not name.startswith("#"):
                    found[name] = "".join(shlex.split(value))
    except OSError:
        pass
    return found


VERSIONS = _versions()
KVER = VERSIONS.get("KVER", "")
QEMU = os.environ.get("DMM_QEMU",
                      os.path.join(BUILD, "qemu-build", "qemu-system-x86_64"))
# The user's bzImage (GUEST_KERNEL=, README "Without apt") or the Debian
# kernel fetch-kernel.sh unpacked.
KERNEL = os.environ.get("GUEST_KERNEL") or VERSIONS.get("GUEST_KERNEL") or \
    os.path.join(BUILD, "kernel", "boot", "vmlinuz-" + KVER)
INITRD = os.path.join(BUILD, "initramfs.cpio.gz")
# Debian 12's stock kernels, also supported: scripts/build-guest-kernel.sh
STOCK_KVERS = _lib_var("STOCK_KVERS").split()


def kernel_files(kver=None):
    """(vmlinuz, initramfs) of guest kernel @kver: by default $DMM_KERNEL
    or else the pinned KVER (build/); a stock kernel's are under
    build/kernels/V/ (scripts/build-guest-kernel.sh)."""
    kver = kver or os.environ.get("DMM_KERNEL") or KVER
    if kver == KVER:
        return KERNEL, INITRD
    if kver in STOCK_KVERS:
        top = os.path.join(BUILD, "kernels", kver)
    else:
        raise ValueError("guest kernel %s: not %s nor one of %s"
                         % (kver, KVER, " ".join(STOCK_KVERS)))
    return (os.path.join(top, "kernel", "boot", "vmlinuz-" + kver),
            os.path.join(top, "initramfs.cpio.gz"))


def parse_size(s):
    """'512M' -> bytes; ints pass through."""
    if isinstance(s, int):
        return s
    m = re.fullmatch(r"(\d+)([KMGT]?)", str(s).strip().upper())
    if not m:
        raise ValueError("bad size %r" % s)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30,
                               "T": 40}[m.group(2)]


def use_kvm():
    """KVM where it works, else TCG; DMM_ACCEL=kvm or tcg forces one
    (README, "Running a guest by hand").  KVM "works" when the CPU
    advertises hardware virtualisation (vmx or svm in /proc/cpuinfo) and
    /dev/kvm is readable and writable: a /dev/kvm alone is not enough (a
    paravirtual KVM without vmx/svm cannot run Linux guests)."""
    acc = os.environ.get("DMM_ACCEL")
    if acc:
        if acc not in ("kvm", "tcg"):
            raise ValueError("DMM_ACCEL=%s: kvm or tcg" % acc)
        return acc == "kvm"
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return bool(re.search(r"\b(vmx|svm)\b", flags)) and \
            os.access("/dev/kvm", os.R_OK | os.W_OK)
    except OSError:
        return False


def connect_unix(path, timeout):
    """Connect to a unix socket QEMU is about to create."""
    deadline = time.time() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.time() > deadline:
                raise
            time.sleep(0.05)


class QMPError(Exception):
    """A QMP command answered with an error: .cls and .desc say which."""

    def __init__(self, cls, desc):
        super().__init__("%s: %s" % (cls, desc))
        self.cls = cls
        self.desc = desc


class QMP:
    """Minimal QMP client: commands, and events kept in .events."""

    def __init__(self, path, timeout=30):
        self.sock = connect_unix(path, timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self._recv()                     # greeting
        self.cmd("qmp_capabilities")

    def _recv(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = {k.replace("_", "-") if k != "id" else k: v
                                for k, v in args.items()}
        return self.raw(msg)

    def raw(self, msg):
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._recv()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise QMPError(r["error"]["class"], r["error"]["desc"])
            return r.get("return")

    def hmp(self, line):
        return self.cmd("human-monitor-command", command_line=line)

    def poll_events(self, wait=0.0):
        """Collect pending events, waiting up to @wait seconds for one."""
        self.sock.settimeout(max(wait, 0.001))
        try:
            while True:
                self.events.append(self._recv())
                self.sock.settimeout(0.001)
        except (socket.timeout, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(30)
        return self.events

    def close(self):
        self.sock.close()


class AgentError(Exception):
    pass


class Agent:
    """The guest side shell server on ttyS1 (see selftests/guest/init)."""

    READY = b"@@DMM-READY@@"
    END = re.compile(rb"@@DMM-END (\d+)@@\r?\n")

    def __init__(self, path, timeout, wait_ready=True):
        self.sock = connect_unix(path, 10)
        self.buf = b""
        if wait_ready:
            self.wait_ready(timeout)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.time()))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AgentError("guest agent timed out")
        if not data:
            raise AgentError("guest agent connection closed")
        self.buf += data

    def wait_ready(self, timeout):
        deadline = time.time() + timeout
        while self.READY not in self.buf:
            self._fill(deadline)
        self.buf = self.buf.split(self.READY, 1)[1].lstrip(b"\r\n")

    def run(self, cmd, timeout=120):
        if "\n" in cmd:
            raise ValueError("one line per command")
        self.sock.sendall(cmd.encode() + b"\n")
        deadline = time.time() + timeout
        while True:
            m = self.END.search(self.buf)
            if m:
                out = self.buf[:m.start()]
                self.buf = self.buf[m.end():]
                return int(m.group(1)), out.decode(errors="replace")
            self._fill(deadline)


def kernel_problems(console):
    """Lines of a guest's console output that mean its kernel is unwell."""
    bad = re.compile(r"(BUG:|WARNING:|Oops|Call Trace|Kernel panic|"
                     r"general protection|Out of memory|oom-kill|"
                     r"pagealloc: memory corruption)")
    return [ln for ln in console.splitlines() if bad.search(ln)]


class Guest:
    """One test guest.  Use as a context manager.

    Guest.start_hooks: callables start() calls with each guest it boots,
    before the guest is up (the selftest harness uses it to check the
    console of every guest a suite booted).
    """

    start_hooks = []
    # added to every guest's kernel command line (scripts/bench.py
    # --guest-append)
    extra_append = ""

    def __init__(self, name, mem="512M", maxmem="4G", region="3G",
                 block_size="128M", requested=None, smp=2, dmm=True,
                 extra_args=(), append="", modules=None, timeout=900,
                 boot_timeout=120, incoming=None, pages=True, dev_opts="",
                 mem_merge=False, kernel=None, initrd=None,
                 backend="memory-backend-ram,reserve=off"):
        self.name = name
        self.mem = parse_size(mem)
        self.maxmem = parse_size(maxmem)
        self.region = parse_size(region) if region else 0
        self.block_size = parse_size(block_size)
        self.requested = requested
        self.smp = smp
        self.dmm = dmm and self.region > 0
        self.extra_args = list(extra_args)
        self.append = append
        self.modules = modules
        self.timeout = timeout
        self.boot_timeout = boot_timeout
        # a migration URI: this guest is the destination of a migration
        self.incoming = incoming
        # offer page requests (VIRTIO_DMM_F_PAGES)
        self.pages = pages
        # more virtio-dmm-pci options, "key=value,..."
        self.dev_opts = dev_opts
        # console offsets around deliberate crashes (kdump), not problems
        self.crashes = []
        # the region's memory backend: type and options (without id, size)
        self.backend = backend
        # QEMU's mem-merge: all guest RAM mergeable (KSM).  Off: only what
        # shared-page hints make mergeable.
        self.mem_merge = mem_merge
        # the guest kernel (a KVER, see kernel_files()) and, to boot it
        # with another initramfs, that initramfs
        self.kernel, initramfs = kernel_files(kernel)
        self.initrd = initrd or initramfs
        self.proc = None
        self.qmp = None
        self.agent = None
        os.makedirs(LOGS, exist_ok=True)
        os.makedirs(RUN, exist_ok=True)
        self.console_log = os.path.join(LOGS, name + "-console.log")
        self.qemu_log = os.path.join(LOGS, name + "-qemu.log")
        self.qmp_path = os.path.join(RUN, name + ".qmp")
        # a second QMP monitor for other clients (the balancer)
        self.qmp2_path = os.path.join(RUN, name + ".qmp2")
        self.agent_path = os.path.join(RUN, name + ".agent")

    def command_line(self):
        accel = ["-accel", "kvm", "-cpu", "host"] if use_kvm() else \
            ["-accel", "tcg", "-cpu", "max"]
        mods = self.modules if self.modules is not None else \
            (["virtio_dmm"] if self.dmm else [])
        # virtio_dmm.debug_checks=1: the driver checks its block states
        # after every pass of its control loop and warns if they disagree
        append = "console=ttyS0 quiet loglevel=4 " \
            "memhp_default_state=online_movable dmm.modules=%s " \
            "virtio_dmm.debug_checks=1 %s %s" % (
                ",".join(mods) or "none", self.append, Guest.extra_append)
        machine = "q35,mem-merge=%s" % ("on" if self.mem_merge else "off")
        args = [QEMU, *accel, "-machine", machine, "-smp", str(self.smp),
                "-m", "%dM,slots=4,maxmem=%dM" % (self.mem // MiB,
                                                  self.maxmem // MiB),
                "-nodefaults", "-nographic", "-no-user-config",
                "-L", "/usr/share/qemu", "-L", "/usr/share/seabios",
                "-kernel", self.kernel, "-initrd", self.initrd,
                "-append", append,
                "-serial", "file:" + self.console_log,
                "-chardev", "socket,id=agent,path=%s,server=on,wait=off"
                % self.agent_path,
                "-serial", "chardev:agent",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
                "-chardev", "socket,id=mon2,path=%s,server=on,wait=off"
                % self.qmp2_path, "-mon", "chardev=mon2,mode=control"]
        if self.dmm:
            dev = "virtio-dmm-pci,id=dmm0,memdev=dmm-mem,block-size=%d" % \
                self.block_size
            if self.requested is not None:
                dev += ",requested-guest-size=%d" % parse_size(self.requested)
            if not self.pages:
                dev += ",pages=off"
            if self.dev_opts:
                dev += "," + self.dev_opts
            # experiments: more options for every device, from the caller
            if os.environ.get("DMM_DEV_OPTS"):
                dev += "," + os.environ["DMM_DEV_OPTS"]
            btype, _, bopts = self.backend.partition(",")
            args += ["-object", "%s,id=dmm-mem,size=%dM%s"
                     % (btype, self.region // MiB,
                        "," + bopts if bopts else ""),
                     "-device", dev]
        if self.incoming:
            args += ["-incoming", self.incoming]
        return args + self.extra_args

    def start(self):
        for p in (self.qmp_path, self.qmp2_path, self.agent_path):
            if os.path.exists(p):
                os.unlink(p)
        args = self.command_line()
        with open(self.qemu_log, "w") as log:
            log.write(" ".join(shlex.quote(a) for a in args) + "\n")
            log.flush()
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        for hook in self.start_hooks:
            hook(self)
        self._watchdog = threading.Timer(self.timeout, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        try:
            self.qmp = QMP(self.qmp_path)
            # A migration destination runs a guest that booted elsewhere.
            self.agent = Agent(self.agent_path, self.boot_timeout,
                               wait_ready=not self.incoming)
        except Exception:
            self.stop()
            raise
        return self

    def _expire(self):
        if self.proc and self.proc.poll() is None:
            with open(self.qemu_log, "a") as log:
                log.write("dmmvm: time limit of %ds reached, killing QEMU\n"
                          % self.timeout)
            self.proc.kill()

    def run(self, cmd, timeout=120, check=False):
        rc, out = self.agent.run(cmd, timeout)
        if check and rc != 0:
            raise AgentError("guest command %r failed (%d): %s"
                             % (cmd, rc, out))
        return rc, out

    def out(self, cmd, timeout=120):
        return self.run(cmd, timeout, check=True)[1]

    def spawn(self, cmd, log):
        """Start guest command @cmd in the background, its output in guest
        file @log.  The log exists when this returns: the starting shell
        creates it, not the forked child, which may run later."""
        self.run(": >%s; %s >>%s 2>&1 &" % (log, cmd, log))

    def wait_migration(self, timeout=300):
        """Wait until this guest's migration ends; returns its status
        (completed, failed, cancelled, or another one at the timeout)."""
        deadline = time.time() + timeout
        while True:
            st = self.qmp.cmd("query-migrate").get("status")
            if st in ("completed", "failed", "cancelled") or \
                    time.time() > deadline:
                return st
            time.sleep(0.1)

    def migrate_to(self, dest, timeout=300):
        """Migrate this guest to @dest (a started Guest with incoming=)."""
        self.qmp.cmd("migrate", uri=dest.incoming)
        st = self.wait_migration(timeout)
        if st != "completed":
            raise RuntimeError("migration %s" % st)

    def wait_reboot(self):
        """After the guest rebooted: wait for the agent to come back."""
        self.agent.wait_ready(self.boot_timeout)

    # --- what the host sees ---

    def _proc_kib(self, name, field):
        """Field @field (in kB) of /proc/PID/@name of QEMU, bytes."""
        with open("/proc/%d/%s" % (self.proc.pid, name)) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no %s in /proc/%d/%s" % (field, self.proc.pid,
                                                     name))

    def rss(self):
        """Resident set size of the QEMU process, bytes."""
        return self._proc_kib("status", "VmRSS")

    def pss(self):
        """Proportional set size of the QEMU process, bytes."""
        return self._proc_kib("smaps_rollup", "Pss")

    def dmm_info(self):
        """This guest's virtio-dmm entry of query-memory-devices."""
        for d in self.qmp.cmd("query-memory-devices"):
            if d["type"] == "virtio-dmm":
                return d["data"]
        raise RuntimeError("no virtio-dmm in query-memory-devices")

    def set_requested(self, size):
        return self.qmp.cmd("qom-set", path="dmm0",
                            property="requested-guest-size",
                            value=parse_size(size))

    # --- what the guest sees ---

    def meminfo(self):
        out = self.out("cat /proc/meminfo")
        return {k: int(v.split()[0]) * 1024 for k, v in
                (line.split(":", 1) for line in out.splitlines()
                 if ":" in line)}

    def sysfs_dir(self):
        return self.out("echo /sys/bus/virtio/drivers/virtio_dmm/virtio*/dmm"
                        ).strip()

    def sysfs(self, attr):
        return self.out("cat %s/%s" % (self.sysfs_dir(), attr)).strip()

    def counters(self):
        """The driver's debugfs counters, {name: value as a string}."""
        out = self.out("cat /sys/kernel/debug/virtio_dmm/virtio*/counters")
        return dict(ln.split(None, 1) for ln in out.splitlines() if ln)

    def counter(self, name):
        """One of the driver's debugfs counters, as a string."""
        return self.counters()[name]

    def _wait_attr(self, attr, size, timeout):
        """Wait until sysfs @attr is @size and the driver idle.

        Returns seconds waited, or raises AgentError on timeout.
        """
        want = parse_size(size)
        d = self.sysfs_dir()
        cmd = ("t=0; while [ $t -lt %d ]; do v=$(cat %s/%s); "
               "s=$(cat %s/status); [ \"$v\" = %d ] && [ \"$s\" = idle ] && "
               "exit 0; usleep 20000; t=$((t+1)); done; echo $v $s; exit 1"
               % (timeout * 50, d, attr, d, want))
        t0 = time.time()
        rc, out = self.run(cmd, timeout + 30)
        if rc:
            raise AgentError("%s did not reach %d: %s"
                             % (attr, want, out.strip()))
        return time.time() - t0

    def wait_plugged(self, size, timeout=120):
        """Wait until the driver reports @size plugged and is idle."""
        return self._wait_attr("plugged_size", size, timeout)

    def wait_current(self, size, timeout=120):
        """Wait until the guest's RAM (sysfs current_size) is @size and the
        driver idle."""
        return self._wait_attr("current_size", size, timeout)

    def console(self):
        with open(self.console_log, errors="replace") as f:
            return f.read()

    def kernel_problems(self):
        """Lines of the console log that mean the guest kernel is unwell
        (but a deliberate crash, between the offsets in self.crashes)."""
        text = self.console()
        for start, end in reversed(self.crashes):
            text = text[:start] + text[end:]
        return kernel_problems(text)

    def console_size(self):
        return os.path.getsize(self.console_log)

    def stop(self):
        if self._watchdog_running():
            self._watchdog.cancel()
        if self.qmp:
            try:
                self.qmp.cmd("quit")
            except Exception:
                pass
            self.qmp.close()
            self.qmp = None
        if self.proc:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def _watchdog_running(self):
        return getattr(self, "_watchdog", None) is not None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


KSM = "/sys/kernel/mm/ksm/"


class HostKSM:
    """Turn the host's KSM on for a test and restore its settings after.

    KSM merges only memory marked mergeable: with mem-merge=off, what the
    guests' shared-page hints marked.  use_zero_pages maps zero pages to
    the zero page (host RSS falls, not only Pss).
    """

    KNOBS = ("run", "use_zero_pages", "pages_to_scan", "sleep_millisecs")

    def __init__(self, pages_to_scan=2000, sleep_ms=20, zero_pages=1):
        self.want = {"use_zero_pages": zero_pages,
                     "pages_to_scan": pages_to_scan,
                     "sleep_millisecs": sleep_ms, "run": 1}
        self.saved = {}

    @staticmethod
    def available():
        return os.access(KSM + "run", os.W_OK)

    @staticmethod
    def read(knob):
        with open(KSM + knob) as f:
            return f.read().strip()

    @staticmethod
    def write(knob, value):
        with open(KSM + knob, "w") as f:
            f.write(str(value))

    @staticmethod
    def ksmd_cpu_seconds():
        """CPU time ksmd has used, from /proc (0 if it is not visible)."""
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() != "ksmd":
                        continue
                with open("/proc/%s/stat" % d) as f:
                    st = f.read().rsplit(")", 1)[1].split()
                return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                continue
        return 0.0

    def __enter__(self):
        self.saved = {k: self.read(k) for k in self.KNOBS}
        # use_zero_pages can only change while KSM is stopped
        self.write("run", 0)
        for k, v in self.want.items():
            self.write(k, v)
        return self

    def __exit__(self, *exc):
        self.write("run", 0)
        for k in self.KNOBS:
            if k != "run":
                self.write(k, self.saved[k])
        self.write("run", self.saved["run"])


def cpu_seconds(pid):
    """User + system CPU time of process @pid, all its threads."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


BALANCER = os.path.join(BUILD, "balancer", "dmm-balancer")


def stop_process(proc, timeout=10):
    """Terminate @proc if it still runs; kill it after @timeout s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def balancer_command(path, line, timeout=180):
    """Send one command to the balancer's control socket @path; returns
    its answer (status: all lines, up to the final ".")."""
    sock = connect_unix(path, 10)
    sock.settimeout(timeout)
    sock.sendall(line.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n") or \
            (line == "status" and not buf.endswith(b".\n")):
        data = sock.recv(4096)
        if not data:
            break
        buf += data
    sock.close()
    return buf.decode().strip()


class Balancer:
    """dmm-balancer as a subprocess, its log in build/logs/NAME.log."""

    def __init__(self, name, budget, guests, period=1.0, extra=()):
        self.name = name
        self.csv = os.path.join(LOGS, name + ".csv")
        self.log = os.path.join(LOGS, name + ".log")
        self.sock = os.path.join(RUN, name + ".sock")
        if os.path.exists(self.csv):
            os.unlink(self.csv)
        args = [BALANCER, "--budget", "%dM" % (budget // MiB), "--period",
                str(period), "--csv", self.csv, "--control", self.sock,
                *extra, *guests]
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(args, stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        connect_unix(self.sock, 10).close()

    def command(self, line, timeout=180):
        """Send one command; returns its answer (status: all lines)."""
        return balancer_command(self.sock, line, timeout)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)
        self.logf.close()


def balancer_spec(g, mn, mx, weight=1):
    return "%s=%s,min=%dM,max=%dM,weight=%d" % (
        g.name, g.qmp2_path, mn // MiB, mx // MiB, weight)


HINT_FILE = os.path.join(BUILD, "hint-file.img")
HINT_FILE_MIB = 256


def hint_file():
    """A 256 MiB file of random bytes guests read from a disk (made once):
    the same page cache in two guests, for shared-page hints."""
    if os.path.exists(HINT_FILE) and \
            os.path.getsize(HINT_FILE) == HINT_FILE_MIB * MiB:
        return HINT_FILE
    with open(HINT_FILE + ".tmp", "wb") as f:
        for _ in range(HINT_FILE_MIB):
            f.write(os.urandom(MiB))
    os.rename(HINT_FILE + ".tmp", HINT_FILE)
    return HINT_FILE


def _shell(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="dmmvm.py shell")
    ap.add_argument("--mem", default="512M")
    ap.add_argument("--region", default="3G")
    ap.add_argument("--maxmem", default="4G")
    ap.add_argument("--modules", default=None)
    args = ap.parse_args(argv)
    mods = args.modules.split(",") if args.modules else None
    with Guest("shell", mem=args.mem, region=args.region,
               maxmem=args.maxmem, modules=mods) as g:
        print("guest up; commands run in the guest; '!qmp CMD {json}' "
              "sends QMP; '!hmp LINE' sends HMP", flush=True)
        for line in sys.stdin:
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                if line.startswith("!qmp "):
                    parts = line[5:].split(None, 1)
                    msg = {"execute": parts[0]}
                    if len(parts) > 1:
                        msg["arguments"] = json.loads(parts[1])
                    print(json.dumps(g.qmp.raw(msg), indent=1))
                elif line.startswith("!hmp "):
                    print(g.qmp.hmp(line[5:]))
                else:
                    rc, out = g.run(line, timeout=600)
                    print(out, end="")
                    print("[rc=%d]" % rc)
            except (QMPError, AgentError) as e:
                print("error:", e)
            sys.stdout.flush()


def main(argv):
    """The command line: shell [OPTIONS]."""
    if argv[:1] == ["shell"]:
        _shell(argv[1:])
        return 0
    print(__doc__)
    return 2
