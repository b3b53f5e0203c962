# SPDX-License-Identifier: GPL-2.0
"""Issue 5: the host balancer."""

import os
import subprocess
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import BALANCER, MiB, Balancer, Guest, balancer_spec
from harness import suite

TOP = dmmvm.TOP


def sizes(guests):
    return [g.dmm_info()["guest-size"] for g in guests]


@suite
def suite_balancer_policy(r):
    """Issue 5: the balancer's policy, unit-tested on the host."""
    p = subprocess.run(["make", "-s", "-C", os.path.join(TOP, "tools",
                                                         "balancer"),
                        "BUILD=" + os.path.join(dmmvm.BUILD, "balancer"),
                        "test"], capture_output=True, text=True)
    r.tap("balancer policy", p.returncode, p.stdout + p.stderr)
    p = subprocess.run([BALANCER, "--help"], capture_output=True, text=True)
    r.ok(p.returncode == 0 and "SYNOPSIS" in p.stdout and
         "admit SIZE" in p.stdout, "dmm-balancer --help is a manual page")
    for bad in (["--budget", "lots"], ["--period", "0"], [],
                ["--budget", "1G", "noequals"],
                ["--budget", "1G", "a=/x,min=2G,max=1G"],
                ["--budget", "1G", "a=/x,weight=0"]):
        p = subprocess.run([BALANCER, *bad], capture_output=True, text=True)
        r.ok(p.returncode == 1 and "see --help" in p.stderr,
             "dmm-balancer %s: refused (%s)" % (" ".join(bad),
                                                p.stderr.splitlines()[0]
                                                if p.stderr else "?"))


@suite
def suite_balancer(r):
    """Issue 5: three guests, a budget below their maxima: the balancer
    moves memory to the busy one, the idle ones shrink, the budget holds."""
    budget = 1536 * MiB
    guests = []
    bal = None
    try:
        for name in ("bal-busy", "bal-idle1", "bal-idle2"):
            guests.append(Guest(name, mem="512M", maxmem="3G",
                                region="2G").start())
        busy, idle = guests[0], guests[1:]
        bal = Balancer("balancer", budget, [
            balancer_spec(busy, 384 * MiB, 1536 * MiB, 2),
            balancer_spec(idle[0], 256 * MiB, 1536 * MiB),
            balancer_spec(idle[1], 256 * MiB, 1536 * MiB)])
        busy.spawn("dmm_grow -s %d -r 16 -w /tmp/go" % (768 * MiB),
                   "/tmp/grow.log")
        t0, over, samples, out = time.time(), [], [], ""
        while time.time() - t0 < 300 and "ok 1" not in out:
            sz = sizes(guests)
            samples.append((time.time() - t0, sz))
            if sum(sz) > budget:
                over.append((time.time() - t0, sz))
            out = busy.out("cat /tmp/grow.log")
            time.sleep(1)
        busy_secs = time.time() - t0
        time.sleep(8)
        final = sizes(guests)
        r.tap("dmm_grow on the busy guest (768 MiB in a 512 MiB guest)", 0,
              out + "\n# Totals")
        r.ok("ok 1" in out and not busy.kernel_problems(),
             "the busy guest's program completed, no OOM kill (%.0f s)"
             % busy_secs, busy.console()[-2000:])
        r.ok(not over, "the guests held at most the budget (%d MiB) at all "
             "%d samples" % (budget // MiB, len(samples)), over[:5])
        r.ok(max(s[1][0] for s in samples) >= 900 * MiB,
             "the busy guest grew to %d MiB" % (max(s[1][0]
                                                    for s in samples) // MiB))
        r.ok(all(x <= 256 * MiB + 64 * MiB for x in final[1:]),
             "the idle guests shrank toward their min of 256 MiB: %s MiB"
             % [x // MiB for x in final[1:]])
        r.figure("balancer: busy guest's program", "%.0f s, sizes at the "
                 "end %s MiB" % (busy_secs, [x // MiB for x in final]))
        r.figure("balancer: sizes over time (s: busy, idle1, idle2 MiB)",
                 " ".join("%d:%s" % (t, "/".join(str(x // MiB) for x in sz))
                          for t, sz in samples[::5]))
        txt = bal.text()
        r.ok(bal.alive() and "grow" in txt and "shrink" in txt,
             "the balancer logged its decisions", txt[-1500:])
        png = os.path.join(dmmvm.LOGS, "balancer.png")
        p = subprocess.run([os.path.join(TOP, "scripts", "plot-balancer.sh"),
                            bal.csv, png, str(budget // MiB)],
                           capture_output=True, text=True)
        r.ok(p.returncode == 0 and os.path.getsize(png) > 10000,
             "plot of the sizes over time: %s" % png, p.stderr)
        busy.run("touch /tmp/go")
    finally:
        if bal:
            bal.stop()
        for g in guests:
            g.stop()


@suite
def suite_balancer_admit(r):
    """Issue 5: admission: room for a fourth guest is made by shrinking
    the others; a request that cannot be met changes nothing."""
    budget = 1536 * MiB
    guests = []
    bal = None
    try:
        for i in range(3):
            guests.append(Guest("adm-%d" % i, mem="512M", maxmem="2G",
                                region="1G").start())
        # a hysteresis this large keeps the guests where they are: the
        # budget stays full until the admission shrinks them
        bal = Balancer("balancer-admit", budget, [
            balancer_spec(g, 256 * MiB, 1024 * MiB, w)
            for g, w in zip(guests, (3, 1, 1))],
            extra=["--hysteresis", "512M"])
        time.sleep(3)
        st = bal.command("status")
        r.ok(st.startswith("budget %d committed %d" % (budget, budget)),
             "the budget is full: three guests of 512 MiB", st)
        before = [g.dmm_info()["requested-guest-size"] for g in guests]
        t0 = time.time()
        ans = bal.command("admit 4G")
        time.sleep(2)
        r.ok(ans.startswith("no") and
             [g.dmm_info()["requested-guest-size"] for g in guests] == before,
             "admit 4G: refused, nothing changed (%s)" % ans)
        ans = bal.command("admit 384M")
        secs = time.time() - t0
        after = sizes(guests)
        r.ok(ans == "yes" and sum(after) + 384 * MiB <= budget,
             "admit 384M: yes after the others shrank to %s MiB"
             % [x // MiB for x in after], ans)
        r.ok(after[0] == 512 * MiB,
             "the heaviest guest (weight 3) was not shrunk")
        r.figure("balancer: admission of a 384 MiB guest", "%.1f s" % secs)
        new = Guest("adm-new", mem="384M", maxmem="2G", region="1G").start()
        guests.append(new)
        r.ok(new.run("true")[0] == 0, "the fourth guest booted")
        r.ok(bal.command("add " + balancer_spec(new, 256 * MiB, 1024 * MiB))
             == "ok", "and joined the balancer")
        time.sleep(4)
        st = bal.command("status")
        total = sum(sizes(guests))
        r.ok(total <= budget and "adm-new alive" in st,
             "four guests within the budget: %d MiB" % (total // MiB), st)
        ans = bal.command("admit lots")
        r.ok(ans.startswith("error"), "admit with a bad size: %s" % ans)
    finally:
        if bal:
            bal.stop()
        for g in guests:
            g.stop()


def fake_qmp(path, mode):
    """A unix socket peer that is not a good QEMU: 'garbage' sends junk,
    'hang' never answers.  Runs in a thread until the socket is removed."""
    import socket
    import threading
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    srv.settimeout(0.5)

    def loop():
        conns = []
        while os.path.exists(path):
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            conns.append(c)
            if mode == "garbage":
                try:
                    c.sendall(b'{"QMP": {"version": {}}}\n{{{ not json ]\n'
                              b'\x00\xff garbage\n')
                except OSError:
                    pass
        for c in conns:
            c.close()
        srv.close()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


@suite
def suite_balancer_faults(r):
    """Issue 5: a guest killed mid-run, a peer sending garbage and one that
    hangs do not stop the balancer serving the others."""
    guests = []
    bal = None
    junk = os.path.join(dmmvm.RUN, "fake-garbage.qmp")
    hang = os.path.join(dmmvm.RUN, "fake-hang.qmp")
    try:
        for i in range(2):
            guests.append(Guest("flt-%d" % i, mem="512M", maxmem="2G",
                                region="1G").start())
        fake_qmp(junk, "garbage")
        fake_qmp(hang, "hang")
        bal = Balancer("balancer-faults", 4096 * MiB, [
            balancer_spec(guests[0], 256 * MiB, 1024 * MiB),
            balancer_spec(guests[1], 256 * MiB, 1024 * MiB),
            "junk=%s,min=256M,max=1G" % junk,
            "hang=%s,min=256M,max=1G" % hang,
            "gone=%s,min=256M,max=1G" % os.path.join(dmmvm.RUN, "none.qmp")])
        time.sleep(3)
        guests[1].proc.kill()
        guests[1].proc.wait()
        # the survivor is idle: the balancer still shrinks it to its min
        t0 = time.time()
        while time.time() - t0 < 60 and \
                guests[0].dmm_info()["guest-size"] > 320 * MiB:
            time.sleep(1)
        size = guests[0].dmm_info()["guest-size"]
        st = bal.command("status")
        txt = bal.text()
        r.ok(bal.alive(), "the balancer is still running")
        r.ok(size <= 320 * MiB,
             "it still served the live guest: shrank it to %d MiB"
             % (size // MiB), txt[-2000:])
        r.ok("flt-1 lost" in st and "junk lost" in st and "hang lost" in st
             and "gone lost" in st and "flt-0 alive" in st,
             "status: the killed guest and the bad peers are skipped", st)
        r.ok("flt-1: dropped" in txt and "junk: dropped" in txt and
             "hang: dropped" in txt,
             "it logged why it dropped each", txt[-2000:])
        r.ok(bal.command("bogus").startswith("error") and
             bal.command("remove nobody").startswith("error") and
             bal.command("add x").startswith("error"),
             "bad control commands get an error and change nothing")
    finally:
        for p in (junk, hang):
            if os.path.exists(p):
                os.unlink(p)
        if bal:
            bal.stop()
        for g in guests:
            g.stop()
