# SPDX-License-Identifier: GPL-2.0
"""Issue 13: dmm-balancer against hostile peers and operator mistakes.

Host-only: no guest is booted.  The guests are fake QMP peers (FakeQemu)
that claim a virtio-dmm device with whatever sizes and statistics a test
wants, follow (or not) the requested-guest-size the balancer sets, and
record every qom-set.  World sums what the peers may hold (max of size and
requested) after every change: that sum must stay within the budget.
"""

import json
import os
import random
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import BALANCER
from harness import suite

GiB = 1 << 30
MiB = 1 << 20
HUGE = 18446744073709551615          # 2^64 - 1, as QEMU prints a uint64


class World:
    """The fake peers of one test; checks the budget at every change."""

    def __init__(self, budget):
        self.budget = budget
        self.peers = []
        self.lock = threading.Lock()
        self.worst = 0
        self.over = []

    def check(self, why):
        """Called with self.lock held."""
        total = sum(max(d["size"], d["requested"])
                    for p in self.peers if p.counts for d in p.devices
                    if d.get("counts", True))
        self.worst = max(self.worst, total)
        if total > self.budget:
            self.over.append("%s: %d MiB" % (why, total // MiB))


class FakeQemu:
    """A unix socket that speaks enough QMP to look like a QEMU with
    virtio-dmm devices.  @stubborn: its size does not follow a lower
    requested-guest-size; @hang_after: stop answering after that many
    query-memory-devices (a hung QEMU); @raw_stats: text put as is
    in the stats of the first device."""

    def __init__(self, world, path, devices, stubborn=False,
                 hang_after=None):
        self.world, self.path, self.devices = world, path, devices
        self.stubborn, self.hang_after = stubborn, hang_after
        self.queries = 0
        self.sets = []               # (device id, value), in order
        self.counts = True
        for d in devices:
            d.setdefault("requested", d["size"])
        with world.lock:
            world.peers.append(self)
            world.check("start")
        if os.path.exists(path):
            os.unlink(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.stopped = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def stop(self):
        self.stopped = True

    def accept_loop(self):
        while not self.stopped:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()
        self.srv.close()

    def hung(self):
        return self.hang_after is not None and \
            self.queries >= self.hang_after

    def info(self):
        out = []
        for d in self.devices:
            data = {"id": d["id"], "memaddr": 4 * GiB,
                    "requested-guest-size": d["requested"],
                    "guest-size": d["size"],
                    "boot-size": d.get("boot", GiB),
                    "max-size": d.get("region", 7 * GiB),
                    "block-size": 128 * MiB, "size": 0, "requested-size": 0,
                    "auto-grant": d.get("auto_grant", False),
                    "auto-grant-limit": d.get("max_size",
                                              d.get("boot", GiB) +
                                              d.get("region", 7 * GiB)),
                    "stats-interval": 1000,
                    "stats": dict({"seq": 1, "age-ms": 100,
                                   "available": d.get("available", 0),
                                   "psi-some-avg10": d.get("psi", 0.0)},
                                  **d.get("stats", {}))}
            if "id" not in d or d["id"] is None:
                del data["id"]
            out.append({"type": "virtio-dmm", "data": data})
        return out

    def serve(self, c):
        f = c.makefile("rwb", buffering=0)
        try:
            if self.hung():
                while not self.stopped and f.readline():
                    pass
                return
            f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            for line in f:
                if self.stopped:
                    return
                req = json.loads(line)
                cmd, args = req.get("execute"), req.get("arguments", {})
                if cmd == "query-memory-devices":
                    if self.hung():
                        continue             # never answers
                    self.queries += 1
                    ans = {"return": self.info()}
                elif cmd == "qom-set":
                    ans = self.qom_set(args)
                else:
                    ans = {"return": {}}
                f.write(json.dumps(ans).encode() + b"\n")
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def qom_set(self, args):
        with self.world.lock:
            d = [d for d in self.devices if d.get("id") == args["path"]]
            if not d or args.get("property") != "requested-guest-size":
                return {"error": {"class": "GenericError",
                                  "desc": "no such device"}}
            d, v = d[0], args["value"]
            self.sets.append((d["id"], v))
            d["requested"] = v
            if v > d["size"] or not self.stubborn:
                d["size"] = v
            self.world.check("qom-set %s %d MiB" % (self.path, v // MiB))
        return {"return": {}}


class Bal:
    """dmm-balancer as a subprocess in directory @top, control socket
    top/ctl.sock."""

    def __init__(self, top, args, umask=0o022, log="balancer.log"):
        self.sock = os.path.join(top, "ctl.sock")
        self.log = os.path.join(top, log)
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(
            [BALANCER, "--control", self.sock, *args], stdout=self.logf,
            stderr=subprocess.STDOUT, preexec_fn=lambda: os.umask(umask))
        deadline = time.time() + 10
        while not os.path.exists(self.sock) and time.time() < deadline \
                and self.proc.poll() is None:
            time.sleep(0.05)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.sock)
        return s

    def command(self, line):
        return dmmvm.balancer_command(self.sock, line, 10)

    def status(self):
        """{"budget":..., "reserved":..., NAME: {"state":, "size":...}}"""
        lines = self.command("status").splitlines()
        w = lines[0].split()
        st = {w[i]: int(w[i + 1]) for i in range(0, len(w) - 1, 2)}
        for ln in lines[1:]:
            w = ln.split()
            if len(w) > 2:
                g = {"state": w[1]}
                g.update({w[i]: int(w[i + 1])
                          for i in range(2, len(w) - 1, 2)})
                st[w[0]] = g
        return st

    def text(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        dmmvm.stop_process(self.proc)
        self.logf.close()


class Scene:
    """A temporary directory with the fake peers and the balancer."""

    def __init__(self, budget):
        self.top = tempfile.mkdtemp(prefix="dmmbal-")
        self.world = World(budget)
        self.budget = budget
        self.bal = None
        self.peers = []

    def peer(self, name, devices, **kw):
        p = FakeQemu(self.world, os.path.join(self.top, name + ".qmp"),
                     devices, **kw)
        self.peers.append(p)
        return p

    def start(self, guests, extra=(), umask=0o022, log="balancer.log"):
        self.bal = Bal(self.top, ["--budget", "%dM" % (self.budget // MiB),
                                  *extra, *guests], umask, log)
        return self.bal

    def close(self):
        for p in self.peers:
            p.stop()
        if self.bal:
            self.bal.stop()
        shutil.rmtree(self.top, ignore_errors=True)


def dev(size, **kw):
    return dict({"id": "dmm0", "size": size}, **kw)


def wait_for(cond, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def build():
    subprocess.run(["make", "-s", "-C", os.path.join(dmmvm.TOP, "tools",
                                                     "balancer"),
                    "BUILD=" + os.path.dirname(BALANCER), BALANCER],
                   check=False)


@suite
def suite_balancer_bigint(r):
    """Issue 13 (1): a guest's 2^64-1 in its statistics, and a guest that
    stops answering, still count at what they hold: the others are not
    grown past the budget."""
    build()
    # liar: 3 GiB, idle, every stats field 2^64-1; busy: 3 GiB under
    # pressure, would grow to 6 GiB if the liar counted as nothing
    sc = Scene(6 * GiB)
    try:
        huge = {k: HUGE for k in ("total", "free", "cache", "swap-in",
                                  "swap-out", "major-faults",
                                  "psi-some-total", "oom-kills")}
        liar = sc.peer("liar", [dev(3 * GiB, available=HUGE, stats=huge)])
        busy = sc.peer("busy", [dev(3 * GiB, psi=50.0)])
        bal = sc.start(["--period", "0.2",
                        "liar=%s,min=1G,max=3G" % liar.path,
                        "busy=%s,min=1G,max=6G" % busy.path])
        time.sleep(4)
        st = bal.status()
        r.ok(st["liar"]["state"] == "alive",
             "a guest with 2^64-1 in its stats is still read (status: "
             "%s)" % st["liar"]["state"], bal.text()[-1500:])
        r.ok(not sc.world.over,
             "liar + busy never above the budget of 6144 MiB (at most %d "
             "MiB; grants to busy: %s MiB)"
             % (sc.world.worst // MiB, [v // MiB for _, v in busy.sets]),
             "\n".join(sc.world.over[:5]) + "\n" + bal.text()[-1500:])
    finally:
        sc.close()

    # a guest that answered twice, then hangs: it still holds 3 GiB; one
    # that never answers holds its max (2 GiB)
    sc = Scene(8 * GiB)
    try:
        hung = sc.peer("hung", [dev(3 * GiB, available=2 * GiB)],
                       hang_after=2)
        busy = sc.peer("busy", [dev(3 * GiB, psi=50.0)])
        never = sc.peer("never", [dev(2 * GiB)], hang_after=0)
        bal = sc.start(["--period", "0.2",
                        "hung=%s,min=1G,max=3G" % hung.path,
                        "busy=%s,min=1G,max=8G" % busy.path,
                        "never=%s,min=512M,max=2G" % never.path])
        time.sleep(5)
        st = bal.status()
        d = hung.devices[0]
        truth = max(d["size"], d["requested"])
        r.ok(st["hung"]["state"] == "lost" and
             st["hung"].get("holds", 0) >= truth > 0 and
             st["never"].get("holds") == 2 * GiB,
             "a hung guest counts at least at what it holds (%d MiB, holds "
             "%d), one that never answered at its max (%d MiB)"
             % (st["hung"].get("holds", 0) // MiB, truth // MiB,
                st["never"].get("holds", 0) // MiB), bal.text()[-1500:])
        r.ok(not sc.world.over,
             "busy never grown past the budget while the others were lost "
             "(at most %d MiB of 8192; grants: %s MiB)"
             % (sc.world.worst // MiB, [v // MiB for _, v in busy.sets]),
             "\n".join(sc.world.over[:5]) + "\n" + bal.text()[-1500:])
        # its QEMU exits: then, and only then, its memory is free again
        hung.stop()
        time.sleep(0.5)
        os.unlink(hung.path)
        with sc.world.lock:
            hung.counts = False
        r.ok(wait_for(lambda: bal.status()["hung"].get("holds") == 0, 8),
             "once its QEMU is gone it holds nothing", bal.text()[-800:])
    finally:
        sc.close()


@suite
def suite_balancer_reserve(r):
    """Issue 13 (2): an admission pending, an add that uses part of it,
    the admitting client gone: the reservation does not wrap and the
    budget holds; admit never raises a requested size."""
    build()
    sc = Scene(6 * GiB)
    try:
        # idle can give 1 GiB (min 2G) and does; busy (heavier) must give
        # 1 GiB more but does not shrink: the admission stays pending
        idle = sc.peer("idle", [dev(3 * GiB, available=2900 * MiB)])
        busy = sc.peer("busy", [dev(3 * GiB, psi=50.0)], stubborn=True)
        bal = sc.start(["--period", "0.3", "--hysteresis", "8G",
                        "idle=%s,min=2G,max=3G,weight=1" % idle.path,
                        "busy=%s,min=512M,max=6G,weight=2" % busy.path])
        time.sleep(1.5)
        adm = bal.connect()
        adm.sendall(b"admit 2G\n")
        r.ok(wait_for(lambda: busy.sets and idle.sets, 5),
             "admit 2G: shrinks idle and busy (%s, %s)"
             % (idle.sets, busy.sets), bal.text()[-1500:])
        # the new guest of 1 GiB: what is really free now
        new = sc.peer("new", [dev(GiB, available=900 * MiB)])
        ans = bal.command("add new=%s,min=256M,max=1G" % new.path)
        r.ok(ans == "ok", "add new (1 GiB) while the admission is pending: "
             + ans)
        r.ok(wait_for(lambda: bal.status()["new"]["state"] == "alive", 5),
             "the new guest joined")
        time.sleep(0.6)
        adm.close()                  # the admitting client goes away
        time.sleep(3)
        st = bal.status()
        r.ok(0 <= st["reserved"] <= st["budget"] and
             st["pending"] == 0,
             "the reservation lapsed without wrapping: reserved %d"
             % st["reserved"], bal.text()[-1500:])
        r.ok(not sc.world.over,
             "the guests never held more than 6144 MiB (at most %d MiB; "
             "grants to busy: %s MiB)"
             % (sc.world.worst // MiB, [v // MiB for _, v in busy.sets]),
             "\n".join(sc.world.over[:5]) + "\n" + bal.text()[-2000:])
    finally:
        sc.close()

    # admit must not raise a guest that is still shrinking
    sc = Scene(4 * GiB)
    try:
        slow = sc.peer("slow", [dev(3 * GiB, requested=GiB,
                                    available=2900 * MiB)], stubborn=True)
        other = sc.peer("other", [dev(GiB, available=900 * MiB)])
        bal = sc.start(["--period", "0.3", "--hysteresis", "8G",
                        "slow=%s,min=256M,max=3G" % slow.path,
                        "other=%s,min=256M,max=1G" % other.path])
        time.sleep(1)
        adm = bal.connect()
        adm.sendall(b"admit 512M\n")
        time.sleep(1.5)
        adm.close()
        raised = [v for _, v in slow.sets if v > GiB]
        r.ok(not raised, "admit 512M: the shrinking guest's requested size "
             "(1024 MiB) was not raised (sets: %s MiB)"
             % [v // MiB for _, v in slow.sets], bal.text()[-1500:])
    finally:
        sc.close()
    p = subprocess.run(["make", "-s", "-C", os.path.join(dmmvm.TOP, "tools",
                                                         "balancer"),
                        "BUILD=" + os.path.dirname(BALANCER), "test"],
                       capture_output=True, text=True)
    r.ok(p.returncode == 0 and "0 violations" in p.stdout,
         "test_policy: randomized commands and peer failures, the invariant "
         "at every step: %s" % ([ln for ln in p.stdout.splitlines()
                                if ln.startswith("# random")] or ["?"])[0],
         p.stdout[-2000:] + p.stderr[-1000:])


def refused(args, want):
    p = subprocess.run([BALANCER, "--once", *args], capture_output=True,
                       text=True, timeout=10)
    return p.returncode == 1 and "see --help" in p.stderr and \
        want in p.stderr, p.stderr.strip().replace("\n", " ")


@suite
def suite_balancer_units(r):
    """Issue 13 (3): sizes need units, a budget below the mins is refused,
    a guest's max comes from its device, dev= selects the device."""
    build()
    for args, want in ((["--budget", "6144"], "unit"),
                       (["--budget", "6G", "--reserve", "64"], "unit"),
                       (["--budget", "6G", "a=/x,min=256"], "unit"),
                       (["--budget", "6G", "a=/x,max=4096"], "unit"),
                       (["--budget", "1G", "a=/x,min=768M", "b=/y,min=512M"],
                        "below the sum of the guests' mins")):
        ok, err = refused(args, want)
        r.ok(ok, "dmm-balancer %s: refused (%s)" % (" ".join(args), err))
    for size in ("6G", "6g", "6GB", "6GiB", "6gib", "6144M", "1.5T"):
        p = subprocess.run([BALANCER, "--budget", size, "--once"],
                           capture_output=True, text=True, timeout=10)
        r.ok(p.returncode == 0, "--budget %s accepted" % size, p.stderr)

    sc = Scene(64 * GiB)
    try:
        # 8 GiB guest (boot 1G + region 7G) using 4 GiB, under pressure
        big = sc.peer("big", [dev(8 * GiB, boot=GiB, region=7 * GiB,
                                  available=4 * GiB, psi=20.0)])
        ag = sc.peer("ag", [dev(2 * GiB, boot=GiB, region=7 * GiB,
                                auto_grant=True, max_size=6 * GiB,
                                available=GiB)])
        two = sc.peer("two", [dev(GiB, available=512 * MiB),
                              dev(5 * GiB, id="big", available=0,
                                  psi=20.0)])
        nodev = sc.peer("nodev", [dev(GiB)])
        bal = sc.start(["--period", "0.3",
                        "big=%s,min=1G" % big.path,
                        "ag=%s,min=1G" % ag.path,
                        "two=%s,min=1G,dev=big" % two.path,
                        "nodev=%s,min=512M,max=2G,dev=nope" % nodev.path])
        time.sleep(3)
        st = bal.status()
        r.ok(st["big"]["max"] == 8 * GiB and
             not [v for _, v in big.sets if v < 8 * GiB],
             "no max=: the device's boot + region (8192 MiB) is the max, "
             "the busy 8 GiB guest is not shrunk (max %d MiB, sets %s MiB)"
             % (st["big"]["max"] // MiB, [v // MiB for _, v in big.sets]),
             bal.text()[-1500:])
        r.ok(st["ag"]["max"] == 6 * GiB,
             "with auto-grant: its auto-grant-limit (6144 MiB) is the max "
             "(%d MiB)"
             % (st["ag"]["max"] // MiB))
        r.ok(st["two"]["state"] == "alive" and
             st["two"]["size"] >= 5 * GiB and two.sets and
             all(d == "big" for d, _ in two.sets),
             "dev=big selects device 'big' of two (size %d MiB, sets %s)"
             % (st["two"]["size"] // MiB, two.sets))
        r.ok(st["nodev"]["state"] != "alive" and
             "no virtio-dmm device 'nope'" in bal.text(),
             "dev=nope: an error for that guest (%s)" % st["nodev"]["state"],
             bal.text()[-1500:])
        ans = bal.command("admit 512")
        r.ok(ans.startswith("error") and "unit" in ans,
             "admit 512 (no unit): %s" % ans)
    finally:
        sc.close()


def as_user(uid, gid, sock, line):
    """Send @line to @sock as @uid/@gid; the answer, or the error."""
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX)\n"
            "s.settimeout(5)\n"
            "try:\n"
            "  s.connect(sys.argv[1])\n"
            "  try:\n"
            "    s.sendall(sys.argv[2].encode()+b'\\n')\n"
            "  except BrokenPipeError:\n"
            "    pass  # refused and closed before the line: read why\n"
            "  print(s.recv(4096).decode().strip())\n"
            "except OSError as e:\n"
            "  print('oserror: %s' % e)\n")

    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    p = subprocess.run(["python3", "-c", code, sock, line],
                       capture_output=True, text=True, preexec_fn=drop,
                       timeout=10)
    return (p.stdout + p.stderr).strip()


@suite
def suite_balancer_socket(r):
    """Issue 13 (4): the control socket is 0600 (0660 with its group),
    only root, the balancer's user and that group may talk to it, and add
    takes QMP sockets only below --qmp-dir."""
    build()
    sc = Scene(4 * GiB)
    try:
        bal = sc.start(["--period", "0.5"], umask=0o022)
        mode = stat.S_IMODE(os.stat(bal.sock).st_mode)
        r.ok(mode == 0o600, "the control socket is 0600 under umask 022 "
             "(%o)" % mode)
        if os.geteuid() == 0:
            os.chmod(sc.top, 0o755)
            os.chmod(bal.sock, 0o666)    # as if the file mode were wrong
            ans = as_user(65534, 65534, bal.sock, "status")
            r.ok(ans.startswith("error: permission denied"),
                 "uid 65534 on a world-writable socket: refused by "
                 "SO_PEERCRED (%s)" % ans, bal.text()[-800:])
        else:
            r.skip("SO_PEERCRED refusal", "needs root to switch user")
        r.ok(bal.command("status").startswith("budget"),
             "the balancer's own user is served")
        # add: below the control socket's directory only
        inside = sc.peer("in", [dev(GiB)])
        outdir = tempfile.mkdtemp(prefix="dmmbal-out-")
        try:
            outside = FakeQemu(sc.world, os.path.join(outdir, "x.qmp"),
                               [dev(GiB)])
            sc.peers.append(outside)
            os.symlink(outside.path, os.path.join(sc.top, "link.qmp"))
            for spec, why in (
                    ("o1=%s,min=256M,max=1G" % outside.path, "outside"),
                    ("o2=%s/../%s/x.qmp,min=256M,max=1G"
                     % (sc.top, os.path.basename(outdir)), ".."),
                    ("o3=%s/link.qmp,min=256M,max=1G" % sc.top, "symlink"),
                    ("o4=/etc/passwd,min=256M,max=1G", "not a socket dir")):
                ans = bal.command("add " + spec)
                r.ok(ans.startswith("error") and "qmp-dir" in ans,
                     "add through %s: refused (%s)" % (why, ans))
            ans = bal.command("add in=%s,min=256M,max=1G" % inside.path)
            r.ok(ans == "ok", "add of a socket below --qmp-dir: %s" % ans)
        finally:
            shutil.rmtree(outdir, ignore_errors=True)
    finally:
        sc.close()

    # --control-group and --qmp-dir
    sc = Scene(4 * GiB)
    try:
        qdir = os.path.join(sc.top, "qmp")
        os.mkdir(qdir)
        bal = sc.start(["--period", "0.5", "--control-group", "65534",
                        "--qmp-dir", qdir], umask=0o000)
        st = os.stat(bal.sock) if os.path.exists(bal.sock) else None
        r.ok(st and stat.S_IMODE(st.st_mode) == 0o660 and
             st.st_gid == 65534,
             "--control-group 65534: the socket is 0660, group 65534 "
             "(%s)" % ("%o gid %d" % (stat.S_IMODE(st.st_mode), st.st_gid)
                       if st else "no socket"), bal.text()[-500:])
        if os.geteuid() == 0 and st:
            os.chmod(sc.top, 0o755)
            ans = as_user(65533, 65534, bal.sock, "status")
            r.ok(ans.startswith("budget"),
                 "a member of the group is served (%s)" % ans[:60])
        p = sc.peer("qmp/g", [dev(GiB)])
        q = sc.peer("g2", [dev(GiB)])
        r.ok(bal.command("add g=%s,min=256M,max=1G" % p.path) == "ok" and
             bal.command("add g2=%s,min=256M,max=1G" % q.path)
             .startswith("error"),
             "--qmp-dir: add takes sockets below it, not beside it")
    finally:
        sc.close()


class HostileQemu(FakeQemu):
    """A fake QEMU that misbehaves as @mode says, its choices drawn from
    random.Random(@seed):
      garbage     answers that are not QMP, or not the right QMP
      hugeint     numbers beyond 64 bits, negative ones, in every field
      stall       answers (and applies qom-set) 1.5 s late, at times
      disconnect  closes halfway through an answer, or after a qom-set
      liar        honest device, random values in every stats field
    Its true sizes (what World counts) only change by qom-set."""

    def __init__(self, world, path, devices, mode, seed, **kw):
        self.mode, self.rng = mode, random.Random(seed)
        self.rlock = threading.Lock()
        self.misdeeds = 0
        super().__init__(world, path, devices, **kw)

    def chance(self, p):
        with self.rlock:
            hit = self.rng.random() < p
        self.misdeeds += hit
        return hit

    def pick(self, seq):
        with self.rlock:
            return self.rng.choice(seq)

    def odd_number(self, size_field):
        """A number a guest (or a broken QEMU) could send; for guest-size
        and requested-guest-size only ones that cannot be read as a size."""
        big = [HUGE, 1 << 64, 1 << 70, 10 ** 30, -(1 << 63) - 1, -1]
        if size_field:
            return self.pick(big)
        return self.pick(big + [1 << 63 - 1, 0, 12345, 1 << 62])

    def lie(self, data):
        """Every number of @data (and its stats) replaced, at random."""
        for k, v in list(data.items()):
            if isinstance(v, dict):
                self.lie(v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool) \
                    and self.chance(0.5):
                data[k] = self.odd_number(
                    k in ("guest-size", "requested-guest-size"))

    def random_stats(self, data):
        with self.rlock:
            r = self.rng
            data["stats"] = {
                "seq": r.randrange(1 << 64), "age-ms": r.choice(
                    [0, 5, 100, r.randrange(1 << 64), -5]),
                "available": r.randrange(1 << 65), "total":
                r.randrange(1 << 64), "free": r.randrange(1 << 64),
                "cache": r.randrange(1 << 64), "swap-in": r.randrange(1 << 64),
                "major-faults": r.randrange(1 << 64),
                "psi-some-avg10": r.choice([r.uniform(-1e6, 1e6), 1e308,
                                            -0.0, 100.0, 50.0]),
                "psi-some-total": r.randrange(1 << 64),
                "oom-kills": r.randrange(1 << 64)}

    def answer(self, f, ans):
        """Write @ans, misbehaving; False: the connection was closed."""
        text = json.dumps(ans).encode() + b"\n"
        if self.mode == "garbage" and self.chance(0.5):
            text = self.pick([
                b'{"return": [\n', b'\x00\xff\xfe not json\n',
                b'{"return": 1}\n', b'[]\n', b'"return"\n',
                b'{"return": [{"type": "virtio-dmm", "data": "x"}]}\n',
                b'{"return": [{"type": "virtio-dmm", "data": {"id": 5}}]}\n',
                b'{"foo": "' + b"a" * 70000 + b'"}\n',
                b"[" * 5000 + b"]" * 5000 + b"\n",
                b'{"return": [], "return": {}}\n',
                b'{"event": "VIRTIO_DMM_ASK", "data": {"asked-guest-size": '
                b'99999999999999999999999}}\n' + text,
                b'{"event": "VIRTIO_DMM_ASK", "data": {"asked-guest-size": '
                b'4611686018427387904, "result": 7}}\n' + text,
                b'{"event": 5}\n' + text])
        elif self.mode == "stall" and self.chance(0.3):
            time.sleep(1.5)
        elif self.mode == "disconnect" and self.chance(0.4):
            f.write(text[:len(text) // 2])
            return False
        elif self.mode == "liar" and self.chance(0.2):
            ev = {"event": "VIRTIO_DMM_ASK", "data": {
                "asked-guest-size": self.odd_number(False),
                "result": "queued"}}
            text = json.dumps(ev).encode() + b"\n" + text
        f.write(text)
        return True

    def serve(self, c):
        f = c.makefile("rwb", buffering=0)
        try:
            f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            for line in f:
                if self.stopped:
                    return
                try:
                    req = json.loads(line)
                except ValueError:
                    continue
                cmd, args = req.get("execute"), req.get("arguments", {})
                if cmd == "query-memory-devices":
                    self.queries += 1
                    with self.world.lock:
                        info = self.info()
                    if self.mode == "hugeint":
                        for d in info:
                            self.lie(d["data"])
                    if self.mode == "liar":
                        for d in info:
                            self.random_stats(d["data"])
                    ans = {"return": info}
                elif cmd == "qom-set":
                    ans = self.qom_set(args)
                else:
                    ans = {"return": {}}
                if not self.answer(f, ans):
                    return
        except (OSError, ValueError):
            pass
        finally:
            c.close()


class Abuse:
    """Control-socket clients that misbehave, in threads, until stop():
    garbage and odd commands, lines far over the limit, floods of
    connections, connections that never send or never read."""

    def __init__(self, sock, seed):
        self.sock, self.rng = sock, random.Random(seed)
        self.stopped = False
        self.counts = {"lines": 0, "errors": 0, "huge": 0, "conns": 0,
                       "idle": 0, "noread": 0, "yes": 0}
        self.held = []
        self.threads = [threading.Thread(target=t, daemon=True) for t in
                        (self.garbage, self.huge, self.flood, self.idle,
                         self.noread)]
        for t in self.threads:
            t.start()

    def conn(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        s.connect(self.sock)
        self.counts["conns"] += 1
        return s

    # admissions too: those granted lapse after --grant-timeout, those
    # pending when their client goes away at once
    LINES = [b"admit 1T", b"admit 9G", b"admit -5G", b"admit 1e30T",
             b"admit 256", b"admit", b"admit 256M", b"admit 0.5G", b"add x=/etc/passwd,min=1G",
             b"add " + b"a" * 900, b"add =", b"add y=,min=0",
             b"remove nobody", b"remove ", b"status json", b"status",
             b"status  json", b"\x00\x01status", b"", b"\r", b"\xff\xfe",
             b"admit 100000000000000000000000000000000000000000G"]

    def garbage(self):
        while not self.stopped:
            try:
                s = self.conn()
                for _ in range(self.rng.randrange(1, 6)):
                    if self.rng.random() < 0.5:
                        line = self.rng.choice(self.LINES)
                    else:
                        line = bytes(self.rng.randrange(256) for _ in
                                     range(self.rng.randrange(1, 200)))
                        line = line.replace(b"\n", b" ")
                    s.sendall(line + b"\n")
                    self.counts["lines"] += 1
                    data = s.recv(65536)
                    self.counts["errors"] += data.startswith(b"error")
                    self.counts["yes"] += data.startswith(b"yes")
                    if line == b"admit 256M" and self.rng.random() < 0.5:
                        break        # the client goes away, maybe pending
                s.close()
            except OSError:
                pass
            time.sleep(0.02)

    def huge(self):
        while not self.stopped:
            try:
                s = self.conn()
            except OSError:
                continue
            try:
                s.sendall(b"status" + b"x" * (1 << 20))
            except OSError:
                self.counts["huge"] += 1   # cut off mid-line: as wanted
            s.close()
            time.sleep(0.2)

    def flood(self):
        while not self.stopped:
            socks = []
            for _ in range(40):
                try:
                    socks.append(self.conn())
                except OSError:
                    break
            time.sleep(0.5)
            for s in socks:
                s.close()

    def noread(self):
        """Clients that ask a lot and never read the answers, for 4 s."""
        while not self.stopped:
            socks = []
            for _ in range(3):
                try:
                    s = self.conn()
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    s.settimeout(1)
                    s.sendall(b"status json\n" * 300)
                    self.counts["noread"] += 1
                    socks.append(s)
                except OSError:
                    pass
            deadline = time.time() + 4
            while time.time() < deadline and not self.stopped:
                time.sleep(0.1)
            for s in socks:
                s.close()

    def idle(self):
        while not self.stopped:
            try:
                s = self.conn()
                s.sendall(b"stat")       # half a line, then nothing
                self.held.append(s)
                self.counts["idle"] += 1
            except OSError:
                pass
            if len(self.held) > 30:
                self.held.pop(0).close()
            time.sleep(0.1)

    def stop(self):
        self.stopped = True
        for t in self.threads:
            t.join(20)
        for s in self.held:
            s.close()


@suite
def suite_balancer_hostile(r):
    """Issue 13: hostile QMP peers (garbage, huge numbers, stalls,
    disconnects, a guest lying in every stats field) and control-socket
    abuse for DMM_HOSTILE_SECS (20) s: the budget holds at every qom-set
    and a good guest is still served."""
    build()
    secs = float(os.environ.get("DMM_HOSTILE_SECS", "20"))
    seed = int(os.environ.get("DMM_HOSTILE_SEED", "13"))
    budget = 8 * GiB
    sc = Scene(budget)
    try:
        good = sc.peer("good", [dev(GiB, available=600 * MiB)])
        greedy = sc.peer("greedy", [dev(GiB, psi=50.0, available=0)])
        hostile = {}
        for i, mode in enumerate(("garbage", "hugeint", "stall",
                                  "disconnect", "liar")):
            p = HostileQemu(sc.world, os.path.join(sc.top, mode + ".qmp"),
                            [dev(GiB, available=500 * MiB)], mode,
                            seed + i, stubborn=(mode == "stall"))
            sc.peers.append(p)
            hostile[mode] = p
        specs = ["good=%s,min=512M,max=3G,weight=4" % good.path,
                 "greedy=%s,min=512M,max=4G" % greedy.path]
        specs += ["%s=%s,min=512M%s" % (m, p.path,
                                        "" if m == "liar" else ",max=2G")
                  for m, p in hostile.items()]
        bal = sc.start(["--period", "0.2", "--grant-timeout", "3", *specs])
        time.sleep(1)
        abuse = Abuse(bal.sock, seed)
        worst, t_end = 0.0, time.time() + secs
        probes, failed, retries = 0, [], 0
        while time.time() < t_end:
            t0 = time.time()
            # a client that has not sent its line yet may be evicted by
            # the flood (it is then the idlest): like any client, the
            # probe tries again once
            for attempt in (1, 2):
                ans = "-"
                try:
                    ans = bal.command("status json")
                    json.loads(ans)["guests"]
                    probes += 1
                    break
                except (OSError, ValueError) as e:
                    if attempt == 2:
                        failed.append("%s (%.80r ... %r)"
                                      % (e, ans, ans[-150:]))
                    else:
                        retries += 1
            worst = max(worst, time.time() - t0)
            time.sleep(0.5)
        abuse.stop()
        alive = bal.proc.poll() is None
        txt = bal.text()
        nsets = sum(len(p.sets) for p in sc.peers)
        r.ok(alive, "the balancer survived %.0f s of hostile peers and "
             "clients" % secs, txt[-1500:])
        r.ok(not sc.world.over,
             "0 violations: the guests never held more than %d MiB at any "
             "of %d qom-sets (at most %d MiB)"
             % (budget // MiB, nsets, sc.world.worst // MiB),
             "\n".join(sc.world.over[:5]) + "\n" + txt[-2000:])
        misdeeds = {m: p.misdeeds for m, p in hostile.items()}
        r.ok(all(misdeeds.values()) and "garbage: dropped" in txt and
             "disconnect: dropped" in txt and "stall: dropped" in txt and
             "out of range" in txt,
             "every hostile peer misbehaved (%s) and the balancer dropped "
             "and reconnected them" % misdeeds, txt[-2000:])
        c = abuse.counts
        r.ok(not failed and worst < 3.5,
             "status json was answered every time under abuse, within "
             "3.5 s (%d probes, %d tried twice, the slowest %.1f s)"
             % (probes, retries, worst),
             "\n".join(failed[:5]))
        r.ok(probes > 0 and c["lines"] > 50 and c["errors"] > 10 and
             c["huge"] > 5 and c["conns"] > 100,
             "control abuse: %d connections, %d odd lines (%d errors, %d "
             "admissions granted), %d lines of 1 MiB, %d idle and %d "
             "never-reading clients; status json answered %d times, the "
             "slowest in %.1f s"
             % (c["conns"], c["lines"], c["errors"], c["yes"], c["huge"],
                c["idle"], c["noread"], probes, worst))
        r.figure("balancer-hostile: slowest status json under abuse",
                 "%.2f s (%d probes, %.0f s)" % (worst, probes, secs))
        # the good guest is still served: under pressure it grows
        before = good.devices[0]["requested"]
        with sc.world.lock:
            good.devices[0].update(available=0, psi=50.0)
        grew = wait_for(lambda: good.devices[0]["requested"] > before, 12)
        st = json.loads(bal.command("status json"))
        g = {x["name"]: x for x in st["guests"]}
        r.ok(grew and g["good"]["state"] == "alive",
             "afterwards a good guest under pressure is served: %d -> %d "
             "MiB" % (before // MiB, good.devices[0]["requested"] // MiB),
             bal.text()[-2000:])
        r.ok(not sc.world.over,
             "and still 0 violations (at most %d MiB of %d)"
             % (sc.world.worst // MiB, budget // MiB),
             "\n".join(sc.world.over[:5]))
    finally:
        sc.close()
