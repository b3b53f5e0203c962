# SPDX-License-Identifier: GPL-2.0
"""Issue 13: dmm-balancer against hostile peers and operator mistakes.

Host-only: no guest is booted.  The guests are fake QMP peers (FakeQemu)
that claim a virtio-dmm device with whatever sizes and statistics a test
wants, follow (or not) the requested-size the balancer sets, and record
every qom-set.  World sums what the peers may hold (max of size and
requested) after every change: that sum must stay within the budget.
"""

import json
import os
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
    requested-size; @hang_after: stop answering after that many
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
                    "requested-size": d["requested"], "size": d["size"],
                    "boot-size": d.get("boot", GiB),
                    "region-size": d.get("region", 7 * GiB),
                    "block-size": 128 * MiB, "plugged-size": 0,
                    "auto-grant": d.get("auto_grant", False),
                    "max-size": d.get("max_size", d.get("boot", GiB) +
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
            if not d or args.get("property") != "requested-size":
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
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
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
             "with auto-grant: its max-size (6144 MiB) is the max (%d MiB)"
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
