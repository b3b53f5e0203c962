# SPDX-License-Identifier: GPL-2.0
"""Issue 13, beyond the fixes: dmm-balancer as a host service.

Host-only, against the fake QMP peers of balancer_hostile.py: the config
file, status json, wall-clock log times, state across restarts (SIGTERM
and SIGKILL), make install, the systemd unit (systemd-analyze verify and
its command line run by hand: systemd is not PID 1 here) and the man
page.
"""

import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import BALANCER
from harness import suite
from suites.balancer_hostile import GiB, MiB, Scene, build, dev, wait_for

TOOLS = os.path.join(dmmvm.TOP, "tools", "balancer")
BUILDDIR = os.path.dirname(BALANCER)
MANPAGE = os.path.join(BUILDDIR, "dmm-balancer.8")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z \d+\.\d ")


def status_json(bal):
    return json.loads(bal.command("status json"))


def settle(peers, quiet, limit):
    """Wait until no peer got a qom-set for @quiet s (at most @limit s)."""
    deadline = time.time() + limit
    last, since = sum(len(p.sets) for p in peers), time.time()
    while time.time() < deadline:
        time.sleep(0.2)
        n = sum(len(p.sets) for p in peers)
        if n != last:
            last, since = n, time.time()
        elif time.time() - since >= quiet:
            return True
    return False


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          **kw)


def check_config(r, sc):
    """The config file: command-line equivalent, overridden by it, errors
    name file and line."""
    a = sc.peer("a", [dev(GiB, available=700 * MiB)])
    b = sc.peer("b", [dev(GiB, available=700 * MiB)])
    conf = os.path.join(sc.top, "bal.conf")
    with open(conf, "w") as f:
        f.write("# dmm-balancer test config\n\n"
                "budget = 4G\n"
                "period=0.2\n"
                "  hysteresis   128M\n"
                "guest a=%s,min=512M,max=2G,weight=3\n" % a.path)
    bal = sc.start(["--config", conf, "b=%s,min=256M,max=1G" % b.path],
                   log="config.log")
    try:
        ok = wait_for(lambda: os.path.exists(bal.sock) and
                      all(g["state"] == "alive"
                          for g in status_json(bal)["guests"]), 5)
        st = status_json(bal)
        g = {x["name"]: x for x in st["guests"]}
        r.ok(ok and st["budget"] == 6 * GiB and
             g["a"]["min"] == 512 * MiB and g["a"]["max"] == 2 * GiB and
             g["a"]["weight"] == 3 and g["b"]["max"] == GiB,
             "--config: its guest line and keys apply, --budget 6G on the "
             "command line overrides its budget = 4G (budget %d MiB, a: "
             "min %d max %d weight %d)"
             % (st["budget"] // MiB, g["a"]["min"] // MiB,
                g["a"]["max"] // MiB, g["a"]["weight"]), bal.text()[-1500:])
    finally:
        bal.stop()
    base = "budget = 4G\nguest a=%s\n" % a.path
    for extra, want in (("bogus = 1\n", ":3: unknown key"),
                        ("budget = 6144\n", ":3: bad --budget"),
                        ("period\n", ":3: a value is missing"),
                        ("once = 1\n", ":3: unknown key"),
                        ("guest a=%s\n" % b.path, ":3: guest 'a' exists"),
                        ("guest c=%s,min=256\n" % b.path, ":3: guest 'c': "
                         "bad size")):
        with open(conf, "w") as f:
            f.write(base + extra)
        p = run([BALANCER, "--config", conf, "--once"])
        r.ok(p.returncode == 1 and conf + want in p.stderr,
             "config line %r refused, naming %s (%s)"
             % (extra.strip(), os.path.basename(conf) + want,
                p.stderr.strip().splitlines()[0] if p.stderr else "-"))
    p = run([BALANCER, "--config", conf + ".none", "--once"])
    r.ok(p.returncode == 1 and "No such file" in p.stderr,
         "a missing config file is refused (%s)" % p.stderr.strip()[:80])


def check_status_json(r, sc, bal):
    """status json against status: same numbers, more fields; the text
    status keeps its format."""
    st = status_json(bal)
    text = bal.command("status").splitlines()
    guests = st.get("guests", [])
    keys = {"name", "state", "size", "requested", "want", "target", "min",
            "max", "weight", "holds", "available", "psi", "report-age-ms",
            "answer-age-ms"}
    r.ok(guests and all(keys <= set(g) for g in guests) and
         {"budget", "committed", "reserved", "pending", "room"} <= set(st),
         "status json: one object, totals and %d guests with %s"
         % (len(guests), ", ".join(sorted(keys))), json.dumps(st)[:1500])
    r.ok(st["committed"] == sum(g["holds"] for g in guests) and
         st["room"] == st["budget"] - st["committed"] - st["reserved"] and
         all(g["state"] == "alive" and g["report-age-ms"] is not None and
             0 <= g["report-age-ms"] < 5000 and 0 <= g["psi"] <= 100 and
             g["want"] >= g["min"] for g in guests),
         "status json: committed is the sum of holds, room what is left, "
         "each guest alive with a fresh report (ages %s ms)"
         % [g["report-age-ms"] for g in guests], json.dumps(st)[:1500])
    head = re.match(r"^budget (\d+) committed (\d+) reserved (\d+) "
                    r"pending (\d+)$", text[0])
    line = re.compile(r"^\S+ (alive|lost) size \d+ requested \d+ want \d+ "
                      r"min \d+ max \d+ weight \d+ holds \d+$")
    r.ok(head and int(head.group(1)) == st["budget"] and
         text[-1] == "." and all(line.match(ln) for ln in text[1:-1]) and
         len(text) == len(guests) + 2,
         "the text status keeps its format", "\n".join(text))


def check_stamps(r, bal):
    lines = [ln for ln in bal.text().splitlines() if ln.strip()]
    bad = [ln for ln in lines if not STAMP.match(ln)]
    first = STAMP.match(lines[0]) if lines else None
    skew = None
    if first:
        t = datetime.datetime.strptime(first.group(1),
                                       "%Y-%m-%dT%H:%M:%S.%f")
        skew = abs((datetime.datetime.now(datetime.timezone.utc)
                    .replace(tzinfo=None) - t).total_seconds())
    r.ok(lines and not bad and skew is not None and skew < 120,
         "every log line starts with the UTC time, ISO 8601 with ms (%s; "
         "%s s ago)" % (lines[0][:24] if lines else "-",
                        "%.0f" % skew if skew is not None else "?"),
         "\n".join(bad[:5]))


def sizes_of(peers):
    return {p.path: p.devices[0]["requested"] for p in peers}


def restart(r, sc, args, how, peers, periods, new):
    """Stop the balancer with @how, start it again: no qom-set changes a
    size for @periods periods, the added guest @new is still managed."""
    bal = sc.bal
    before = sizes_of(peers)
    nsets = {p.path: len(p.sets) for p in peers}
    t0 = time.time()
    if how == "TERM":
        bal.proc.send_signal(signal.SIGTERM)
        rc = bal.proc.wait(10)
        txt = bal.text()
        r.ok(rc == 0 and not os.path.exists(bal.sock) and
             txt.rstrip().endswith("exit"),
             "SIGTERM: exit 0, the control socket removed (rc %d)" % rc,
             txt[-500:])
    else:
        bal.proc.kill()
        bal.proc.wait(10)
    bal.logf.close()
    state = os.path.join(sc.top, "state", "state")
    try:
        with open(state) as f:
            saved = json.load(f)
        names = sorted(g["name"] for g in saved["guests"])
    except (OSError, ValueError) as e:
        names = "unreadable: %s" % e
    r.ok(isinstance(names, list) and "new" in names and
         not os.path.exists(state + ".tmp"),
         "after SIG%s the state file is whole and holds the added guest "
         "(%s)" % (how, names))
    bal = sc.start(args, log="after-%s.log" % how)
    ok = wait_for(lambda: os.path.exists(bal.sock) and
                  all(g["state"] == "alive"
                      for g in status_json(bal)["guests"]), 5)
    time.sleep(periods * 0.2)
    changed = ["%s: %d -> %s MiB" % (os.path.basename(p.path),
                                     before[p.path] // MiB,
                                     [v // MiB for _, v in
                                      p.sets[nsets[p.path]:]])
               for p in peers
               if any(v != before[p.path] for _, v in p.sets[nsets[p.path]:])]
    st = status_json(bal)
    g = {x["name"]: x for x in st["guests"]}
    r.ok(ok and not changed,
         "SIG%s and start again: no qom-set changed a guest's size in %d "
         "periods (%.1f s after the signal)"
         % (how, periods, time.time() - t0),
         "\n".join(changed) + "\n" + bal.text()[-2000:])
    r.ok("new" in g and g["new"]["state"] == "alive" and
         g["new"]["added"] and "state: new (added)" in bal.text(),
         "the guest added at run time is managed again after SIG%s (%s)"
         % (how, g.get("new", {}).get("state", "missing")),
         bal.text()[-1500:])
    r.ok(not sc.world.over,
         "the guests never held more than the budget across the SIG%s "
         "restart (at most %d MiB of %d)"
         % (how, sc.world.worst // MiB, sc.budget // MiB),
         "\n".join(sc.world.over[:5]))
    return bal


def check_restart(r):
    """State across restarts, with fake peers that want more than the
    budget: if the balancer forgot a guest after a restart, the others
    would grow into its memory."""
    sc = Scene(6 * GiB)
    try:
        a = sc.peer("a", [dev(2 * GiB, psi=50.0, available=0)])
        b = sc.peer("b", [dev(2 * GiB, psi=50.0, available=0)])
        idle = sc.peer("idle", [dev(GiB, available=700 * MiB)])
        os.mkdir(os.path.join(sc.top, "state"))
        args = ["--period", "0.2", "--state-dir",
                os.path.join(sc.top, "state"),
                "a=%s,min=1G,max=3G" % a.path,
                "b=%s,min=1G,max=3G" % b.path,
                "idle=%s,min=512M,max=1G" % idle.path]
        bal = sc.start(args)
        settle(sc.peers, 1.5, 10)
        check_status_json(r, sc, bal)
        check_stamps(r, bal)
        ans = bal.command("admit 1G")
        r.ok(ans == "yes", "admit 1G in a full budget: %s" % ans,
             bal.text()[-1500:])
        new = sc.peer("new", [dev(GiB, available=500 * MiB)])
        ans = bal.command("add new=%s,min=512M,max=1G" % new.path)
        r.ok(ans == "ok", "add new: %s" % ans)
        r.ok(settle(sc.peers, 1.5, 15),
             "the four guests settled (sizes %s MiB)"
             % [p.devices[0]["requested"] // MiB for p in sc.peers],
             bal.text()[-1500:])
        state = os.path.join(sc.top, "state", "state")
        m0 = os.stat(state).st_mtime_ns
        time.sleep(1.2)
        r.ok(os.stat(state).st_mtime_ns == m0,
             "settled, the state file is not rewritten (6 periods): it is "
             "written only when it changes")
        bal = restart(r, sc, args, "TERM", sc.peers, 15, new)
        bal = restart(r, sc, args, "KILL", sc.peers, 15, new)
        # the added guest is still balanced: under pressure, it grows
        before = new.devices[0]["requested"]
        with sc.world.lock:
            new.devices[0].update(available=0, psi=50.0)
        r.ok(wait_for(lambda: new.devices[0]["requested"] > before, 8),
             "after the restarts the added guest still grows under "
             "pressure (%d -> %d MiB)"
             % (before // MiB, new.devices[0]["requested"] // MiB),
             bal.text()[-1500:])
        r.ok(not sc.world.over, "within the budget at every qom-set "
             "(at most %d MiB)" % (sc.world.worst // MiB),
             "\n".join(sc.world.over[:5]))
        # a damaged state file refuses the start, naming it
        with open(os.path.join(sc.top, "state", "state"), "w") as f:
            f.write("{ not json")
        p = run([BALANCER, "--budget", "6G", "--once", "--state-dir",
                 os.path.join(sc.top, "state")])
        r.ok(p.returncode == 1 and "state: line 1" in p.stderr,
             "a damaged state file refuses the start (%s)"
             % (p.stderr.strip().splitlines() or ["-"])[0][:120])
    finally:
        sc.close()


def check_grant(r):
    """A granted reservation survives a restart, and lapses after
    --grant-timeout if no add uses it."""
    sc = Scene(4 * GiB)
    try:
        a = sc.peer("a", [dev(3 * GiB, available=2900 * MiB)])
        os.mkdir(os.path.join(sc.top, "state"))
        args = ["--period", "0.2", "--grant-timeout", "4", "--state-dir",
                os.path.join(sc.top, "state"), "a=%s,min=512M" % a.path]
        bal = sc.start(args)
        time.sleep(0.6)
        ans = bal.command("admit 1G")
        t0 = time.time()
        reserved = status_json(bal)["reserved"]
        bal.proc.send_signal(signal.SIGTERM)
        bal.proc.wait(10)
        bal.logf.close()
        bal = sc.start(args, log="after.log")
        wait_for(lambda: os.path.exists(bal.sock), 5)
        kept = status_json(bal)["reserved"]
        r.ok(ans == "yes" and reserved == kept == GiB and
             "state: 1024 MiB reserved" in bal.text(),
             "admit 1G: yes, and its reservation survives a restart "
             "(reserved %d MiB, after the restart %d MiB)"
             % (reserved // MiB, kept // MiB), bal.text()[-800:])
        lapsed = wait_for(lambda: status_json(bal)["reserved"] == 0, 10)
        r.ok(lapsed and time.time() - t0 >= 4 and
             "not used by an add within 4 s, released" in bal.text(),
             "no add used it: it lapses after --grant-timeout 4 (%.1f s)"
             % (time.time() - t0), bal.text()[-800:])
        r.ok(not sc.world.over, "within the budget throughout")
    finally:
        sc.close()


def check_install(r):
    top = tempfile.mkdtemp(prefix="dmmbal-inst-")
    try:
        mk = ["make", "-s", "-C", TOOLS, "BUILD=" + BUILDDIR, "install",
              "DESTDIR=" + top, "PREFIX=/usr"]
        p = run(mk)
        files = sorted(os.path.relpath(os.path.join(d, f), top)
                       for d, _, fs in os.walk(top) for f in fs)
        want = ["etc/dmm-balancer.conf",
                "usr/lib/systemd/system/dmm-balancer.service",
                "usr/sbin/dmm-balancer",
                "usr/share/man/man8/dmm-balancer.8"]
        r.ok(p.returncode == 0 and files == want,
             "make install DESTDIR=... PREFIX=/usr: %s" % " ".join(files),
             p.stdout + p.stderr)
        unit = os.path.join(top, want[1])
        exe = []
        if os.path.exists(unit):
            with open(unit) as f:
                exe = [ln for ln in f if ln.startswith("ExecStart=")]
        r.ok(exe and exe[0].split("=", 1)[1].startswith(
            "/usr/sbin/dmm-balancer --config /etc/dmm-balancer.conf"),
            "the installed unit runs /usr/sbin/dmm-balancer with "
            "/etc/dmm-balancer.conf")
        conf = os.path.join(top, want[0])
        with open(conf, "a") as f:
            f.write("# the operator's own\n")
        p = run(mk)
        with open(conf) as f:
            kept = f.read().endswith("# the operator's own\n")
        r.ok(p.returncode == 0 and kept,
             "a second make install leaves an existing config alone")
        p = run(["make", "-s", "-C", TOOLS, "BUILD=" + BUILDDIR, "install",
                 "DESTDIR=" + top + "/l"])
        r.ok(p.returncode == 0 and os.path.exists(
            top + "/l/usr/local/sbin/dmm-balancer") and os.path.exists(
            top + "/l/usr/local/lib/systemd/system/dmm-balancer.service"),
            "make install without PREFIX: /usr/local", p.stderr)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def unit_lines(path):
    keys = {}
    with open(path) as f:
        for ln in f:
            ln = ln.strip()
            if ln and not ln.startswith(("#", "[")) and "=" in ln:
                k, v = ln.split("=", 1)
                keys.setdefault(k, []).append(v)
    return keys


def check_unit(r):
    src = os.path.join(TOOLS, "dmm-balancer.service")
    keys = unit_lines(src)
    need = {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
            "ProtectHome": "yes", "PrivateTmp": "yes",
            "RestrictAddressFamilies": "AF_UNIX", "CapabilityBoundingSet": "",
            "DynamicUser": "yes", "RuntimeDirectory": "dmm-balancer",
            "StateDirectory": "dmm-balancer"}
    missing = ["%s=%s" % kv for kv in need.items()
               if keys.get(kv[0], [None])[-1] != kv[1]]
    r.ok(not missing, "the unit's hardening: %s"
         % ", ".join("%s=%s" % kv for kv in need.items()),
         "missing: %s" % missing)
    top = tempfile.mkdtemp(prefix="dmmbal-unit-")
    try:
        man8 = os.path.join(top, "man", "man8")
        os.makedirs(man8)
        shutil.copy(MANPAGE, man8)
        env = dict(os.environ, MANPATH=os.path.join(top, "man"))
        with open(src) as f:
            text = f.read()
        good = os.path.join(top, "dmm-balancer.service")
        with open(good, "w") as f:
            f.write(text.replace("/usr/sbin/dmm-balancer", BALANCER))
        if not shutil.which("systemd-analyze"):
            r.skip("systemd-analyze verify", "no systemd-analyze")
        else:
            p = run(["systemd-analyze", "verify", good], env=env)
            r.ok(p.returncode == 0 and not p.stdout.strip() and
                 not p.stderr.strip(),
                 "systemd-analyze verify dmm-balancer.service: clean "
                 "(its Documentation= man page found)",
                 p.stdout + p.stderr)
            bad = os.path.join(top, "bad", "dmm-balancer.service")
            os.mkdir(os.path.dirname(bad))
            with open(bad, "w") as f:
                f.write(text.replace("/usr/sbin/dmm-balancer",
                                     top + "/no-such-binary"))
            p = run(["systemd-analyze", "verify", bad], env=env)
            r.ok(p.returncode != 0,
                 "and it can fail: the unit with a missing binary is "
                 "refused (%s)" % p.stderr.strip().splitlines()[-1:])
            p = run(["systemd-analyze", "security", "--offline=yes", good],
                    env=env)
            m = re.search(r"Overall exposure level for \S+: ([\d.]+)",
                          p.stdout + p.stderr)
            r.ok(m and float(m.group(1)) <= 2.0,
                 "systemd-analyze security: exposure %s (at most 2.0)"
                 % (m.group(1) if m else "?"), (p.stdout + p.stderr)[-1500:])
        # the unit's command line, with its paths moved into @top, run as
        # systemd would: start, status, stop (SIGTERM), start, stop
        exe = shlex.split(keys["ExecStart"][0])
        conf = os.path.join(top, "dmm-balancer.conf")
        qdir = os.path.join(top, "dmm-qmp")
        os.mkdir(qdir)
        with open(os.path.join(TOOLS, "dmm-balancer.conf")) as f:
            with open(conf, "w") as out:
                out.write(f.read().replace("/run/dmm-qmp", qdir))
        moved = {"/etc/dmm-balancer.conf": conf,
                 "/run/dmm-balancer": os.path.join(top, "run"),
                 "/var/lib/dmm-balancer": os.path.join(top, "lib")}
        args = []
        for a in exe[1:]:
            for k, v in moved.items():
                a = a.replace(k, v)
            args.append(a)
        os.mkdir(os.path.join(top, "run"))
        os.mkdir(os.path.join(top, "lib"))
        sock = os.path.join(top, "run", "control.sock")
        for i in (1, 2):
            with open(os.path.join(top, "run%d.log" % i), "w") as log:
                proc = subprocess.Popen([BALANCER, *args], stdout=log,
                                        stderr=subprocess.STDOUT)
                up = wait_for(lambda: os.path.exists(sock), 5)
                st = dmmvm.balancer_command(sock, "status", 10) if up \
                    else "no socket"
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(10)
            with open(os.path.join(top, "run%d.log" % i)) as f:
                txt = f.read()
            r.ok(up and st.startswith("budget %d " % (4 * GiB)) and
                 rc == 0 and not os.path.exists(sock) and
                 os.path.exists(os.path.join(top, "lib", "state")) and
                 (i == 1 or "state: no " not in txt),
                 "the unit's ExecStart with the example config, %s: "
                 "serves, SIGTERM stops it (exit %d), state written"
                 % ("start" if i == 1 else "restart", rc), txt[-1000:])
    finally:
        shutil.rmtree(top, ignore_errors=True)


def check_man(r):
    if not shutil.which("man"):
        r.skip("man -l dmm-balancer.8", "no man")
        return
    p = run(["man", "-l", MANPAGE],
            env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
    text = re.sub(r".\x08", "", p.stdout)
    with open(os.path.join(dmmvm.LOGS if os.path.isdir(dmmvm.LOGS)
                           else tempfile.gettempdir(),
                           "dmm-balancer.8.txt"), "w") as f:
        f.write(text)
    sections = ("NAME", "SYNOPSIS", "OPTIONS", "CONFIGURATION FILE",
                "CONTROL SOCKET", "STATE", "SERVICE", "LOGS", "TRUST MODEL",
                "EXIT STATUS")
    missing = [s for s in sections
               if not re.search(r"^%s$" % s, text, re.M)]
    r.ok(p.returncode == 0 and len(text) > 5000 and not missing and
         "dmm-balancer - share host memory" in text and
         "status json" in text,
         "man -l build/balancer/dmm-balancer.8 renders (%d lines) with %s"
         % (text.count("\n"), ", ".join(sections)),
         "missing: %s\n%s" % (missing, p.stderr[-500:]))


@suite(alone="installs into /etc and /usr/sbin")
def suite_balancer_service(r):
    """Issue 13: dmm-balancer as a service: config file, status json, UTC
    log times, state across SIGTERM/SIGKILL restarts, make install, the
    systemd unit, the man page."""
    build()
    p = run(["make", "-s", "-C", TOOLS, "BUILD=" + BUILDDIR, MANPAGE])
    r.ok(p.returncode == 0 and os.path.getsize(MANPAGE) > 0,
         "dmm-balancer.8 built from Documentation/balancer.rst into "
         "build/balancer", p.stdout + p.stderr)
    sc = Scene(6 * GiB)
    try:
        check_config(r, sc)
    finally:
        sc.close()
    check_restart(r)
    check_grant(r)
    check_install(r)
    check_unit(r)
    check_man(r)
