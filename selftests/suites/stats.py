# SPDX-License-Identifier: GPL-2.0
"""Issue 5: pressure reports and a guest's requests for memory."""

import re
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Guest, QMPError
from harness import suite
from helpers import ask_events, last_ask, wait_guest_file


def dmm_stats(g):
    """The latest report as QMP shows it (query-memory-devices), or None."""
    return g.dmm_info().get("stats")


@suite
def suite_stats(r):
    """Issue 5: pressure reports arrive at the set interval and follow a
    guest program's memory."""
    with Guest("stats", mem="1G", maxmem="3G", region="1G",
               modules=["virtio_dmm", "virtio_blk"],
               extra_args=["-drive", "file=%s,format=raw,if=virtio,"
                           "snapshot=on" % dmmvm.hint_file()]) as g:
        info = g.dmm_info()
        r.ok(info["stats-interval"] == 1000 and g.counter("stats_interval_ms")
             == "1000", "default interval 1 s, in QMP and the guest's sysfs")
        for bad in (1, 99, 3600001, -1, "x"):
            try:
                g.qmp.cmd("qom-set", path="dmm0", property="stats-interval",
                          value=bad)
                r.ok(False, "stats-interval %r refused" % (bad,))
            except QMPError as e:
                r.ok(g.dmm_info()["stats-interval"] == 1000,
                     "stats-interval %r refused, unchanged (%s)"
                     % (bad, e.desc))
        g.qmp.cmd("qom-set", path="dmm0", property="stats-interval",
                  value=250)
        time.sleep(1)
        s0, t0 = dmm_stats(g), time.time()
        time.sleep(5)
        s1, t1 = dmm_stats(g), time.time()
        n = s1["seq"] - s0["seq"]
        r.figure("stats: reports in 5 s at 250 ms", "%d" % n)
        r.ok(g.counter("stats_interval_ms") == "250" and 16 <= n <= 22,
             "at 250 ms the guest sent %d reports in %.1f s (about 20)"
             % (n, t1 - t0))
        r.ok(s1["age-ms"] <= 600 and s1["total"] > 900 * MiB and
             0 < s1["available"] <= s1["total"] and s1["free"] > 0,
             "a report is fresh and sane: %s" % s1)
        # pollable like virtio-balloon's guest-stats, on the PCI proxy
        gs = g.qmp.cmd("qom-get", path="dmm0", property="guest-stats")
        now = time.time()
        r.ok(now - 3 <= gs["last-update"] <= now + 1 and
             gs["stats"]["seq"] >= s1["seq"] and
             gs["stats"]["total"] == s1["total"],
             "qom-get dmm0 guest-stats: the latest report, updated %.1f s "
             "ago (seq %d)" % (now - gs["last-update"], gs["stats"]["seq"]),
             gs)
        ev = [e for e in g.qmp.poll_events(0.5)
              if e["event"] == "VIRTIO_DMM_STATS"]
        r.ok(ev and ev[-1]["data"]["stats"]["seq"] > s0["seq"] and
             ev[-1]["data"]["id"] == "dmm0",
             "VIRTIO_DMM_STATS events arrive for dmm0")
        # the events are rate-limited to one per second
        g.qmp.events.clear()
        time.sleep(4)
        ev = [e for e in g.qmp.poll_events(0.5)
              if e["event"] == "VIRTIO_DMM_STATS"]
        r.ok(3 <= len(ev) <= 6, "%d events in 4 s at 4 reports a second: "
             "rate-limited to 1/s" % len(ev))
        # available memory follows a program
        avail0 = dmm_stats(g)["available"]
        g.spawn("dmm_memfill -s %d -w /tmp/go" % (512 * MiB), "/tmp/fill.log")
        samples = []
        for _ in range(60):
            samples.append(dmm_stats(g)["available"])
            if "waiting for" in g.out("cat /tmp/fill.log"):
                break
            time.sleep(0.5)
        time.sleep(1)
        avail1 = dmm_stats(g)["available"]
        r.figure("stats: MemAvailable in QMP while a program takes 512 MiB",
                 " ".join(str(a // MiB) for a in samples + [avail1]))
        r.ok(avail0 - avail1 >= 450 * MiB,
             "QMP's available fell by %d MiB (>= 450) as the program grew"
             % ((avail0 - avail1) // MiB))
        g.run("touch /tmp/go")
        wait_guest_file(g, "/tmp/fill.log", "# Totals", 300)
        # memory pressure: page cache to reclaim, then memory for all of it;
        # PSI as the guest's /proc shows it
        g.run("sleep 100000 </dev/vda >/dev/null 2>&1 &")
        g.out("cat /dev/vda >/dev/null", 300)
        g.run("dmm_memfill -l %d -w /tmp/go2 >/tmp/fill2.log 2>&1 &"
              % (8 * MiB))
        wait_guest_file(g, "/tmp/fill2.log", "waiting for", 300)
        psi = g.out("cat /proc/pressure/memory")
        m = re.search(r"some .* total=(\d+)", psi)
        time.sleep(1.5)
        st = dmm_stats(g)
        r.figure("stats: PSI after filling all but 8 MiB",
                 "guest %s us, QMP %d us; available %d MiB" % (
                     m.group(1) if m else "?", st["psi-some-total"],
                     st["available"] // MiB))
        r.ok(m and 0 < int(m.group(1)) <= st["psi-some-total"] and
             st["available"] < 128 * MiB and st["oom-kills"] == 0,
             "under pressure QMP's PSI some total (%d us) follows the "
             "guest's /proc/pressure/memory (%s us)" % (
                 st["psi-some-total"], m.group(1) if m else "?"), psi)
        g.run("touch /tmp/go2")
        wait_guest_file(g, "/tmp/fill2.log", "# Totals", 300)
        # off, and on again
        g.qmp.cmd("qom-set", path="dmm0", property="stats-interval", value=0)
        time.sleep(1)
        seq = dmm_stats(g)["seq"]
        time.sleep(2)
        r.ok(dmm_stats(g)["seq"] == seq and g.counter("stats_interval_ms") ==
             "0", "interval 0: the guest stops reporting")
        g.qmp.cmd("qom-set", path="dmm0", property="stats-interval",
                  value=1000)
        time.sleep(2.5)
        r.ok(dmm_stats(g)["seq"] > seq, "and starts again at 1 s")


@suite
def suite_ask(r):
    """Issue 5: a guest under pressure asks for memory: granted up to
    auto-grant-limit with auto-grant, passed on as an event without."""
    with Guest("ask", mem="512M", maxmem="3G", region="2G",
               dev_opts="auto-grant=on,auto-grant-limit=1536M") as g:
        d = g.sysfs_dir()
        for attr, bad in (("ask_size", "abc"), ("ask_size", "0"),
                          ("ask_psi_above", "101"),
                          ("ask_psi_above", "1.234"),
                          ("ask_step", "0"), ("ask_available_below", "-1")):
            rc, out = g.run("echo %s > %s/%s" % (bad, d, attr))
            r.ok(rc != 0 and "Invalid argument" in out,
                 "sysfs %s refuses %r" % (attr, bad), out)
        r.ok(g.dmm_info()["requested-guest-size"] == 512 * MiB,
             "bad writes asked for nothing")
        g.qmp.cmd("qom-set", path="dmm0", property="stats-interval",
                  value=200)
        g.out("echo %d > %s/ask_available_below" % (160 * MiB, d))
        g.out("echo %d > %s/ask_step" % (256 * MiB, d))
        g.out("echo 10 > %s/ask_psi_above" % d)
        r.ok(g.sysfs("ask_psi_above") == "10.00",
             "ask_psi_above reads back 10.00")
        t0 = time.time()
        g.spawn("dmm_grow -s %d -r 24 -w /tmp/go" % (900 * MiB),
                "/tmp/grow.log")
        # sample QMP: when the guest fell below its threshold, when the
        # host granted (requested-guest-size rose), when the guest had it
        low = grant = None
        armed = True            # available was above the threshold
        lat, reached, psi_max = [], [], 0.0
        last_req, out = 512 * MiB, ""
        while time.time() - t0 < 300 and "ok 1" not in out:
            info = g.dmm_info()
            st = info.get("stats") or {}
            now = time.time()
            psi_max = max(psi_max, st.get("psi-some-avg10", 0))
            avail = st.get("available", GiB)
            armed = armed or avail >= 192 * MiB
            if armed and low is None and avail < 160 * MiB:
                low = now
            if info["requested-guest-size"] > last_req:
                last_req, grant = info["requested-guest-size"], now
                if low is not None:
                    lat.append(now - low)
                low, armed = None, False
            if grant and info["guest-size"] == last_req:
                reached.append(now - grant)
                grant = None
            if int(now * 10) % 10 == 0:
                out = g.out("cat /tmp/grow.log")
            time.sleep(0.1)
        secs = time.time() - t0
        r.figure("ask: from MemAvailable below the threshold to the grant",
                 " ".join("%.2f s" % x for x in lat))
        r.figure("ask: from the grant to the memory plugged in the guest",
                 " ".join("%.2f s" % x for x in reached))
        r.figure("ask: highest PSI some avg10 seen", "%.2f %%" % psi_max)
        evs = ask_events(g)
        info = g.dmm_info()
        r.tap("dmm_grow (900 MiB in a 512 MiB guest)", 0, out + "\n# Totals")
        r.ok("not ok" not in out and not g.kernel_problems(),
             "the program grew to 900 MiB with no OOM kill")
        r.ok(info["requested-guest-size"] > 512 * MiB and
             info["requested-guest-size"] <= 1536 * MiB and
             int(g.counter("asks_granted")) >= 2,
             "the guest asked %s times, %s granted: requested-guest-size "
             "now %d MiB (auto-grant-limit 1536 MiB)" % (
                 g.counter("asks_sent"), g.counter("asks_granted"),
                 info["requested-guest-size"] // MiB))
        r.ok(evs and all(e["result"] == "granted" and e["pressure"]
                         for e in evs),
             "VIRTIO_DMM_ASK events say granted, for pressure", evs)
        r.figure("ask: 900 MiB program in a 512 MiB guest with auto-grant",
                 "done in %.1f s; %s asks granted; requested-guest-size "
                 "%d MiB" % (secs, g.counter("asks_granted"),
                    info["requested-guest-size"] // MiB))
        # beyond auto-grant-limit: refused, shown in sysfs
        rc, out = g.run("echo %d > %s/ask_size" % (2560 * MiB, d))
        r.ok(rc != 0 and "No space left" in out and
             last_ask(g).endswith("refused") and
             g.dmm_info()["requested-guest-size"] ==
             info["requested-guest-size"],
             "asking beyond auto-grant-limit: refused, the guest's sysfs says "
             "so, requested-guest-size unchanged", out)
        g.run("touch /tmp/go")
    with Guest("ask-off", mem="512M", maxmem="3G", region="2G") as g:
        d = g.sysfs_dir()
        r.ok(g.dmm_info()["auto-grant"] is False,
             "auto-grant is off by default")
        g.qmp.events.clear()
        rc, out = g.run("echo %d > %s/ask_size" % (1024 * MiB, d))
        evs = ask_events(g, 2)
        r.ok(rc != 0 and "Resource temporarily unavailable" in out and
             last_ask(g) == "%d forwarded" % (1024 * MiB) and
             g.dmm_info()["requested-guest-size"] == 512 * MiB,
             "without auto-grant the request is passed on; nothing changes",
             out)
        r.ok(len(evs) == 1 and evs[0]["result"] == "forwarded" and
             evs[0]["asked-guest-size"] == 1024 * MiB and
             not evs[0]["pressure"] and evs[0]["guest-size"] == 512 * MiB,
             "QMP event VIRTIO_DMM_ASK: 1 GiB asked by the admin, forwarded",
             evs)
        # the management layer grants it
        g.set_requested(1024 * MiB)
        g.wait_current(1024 * MiB)
        r.ok(True, "the management layer granted it with requested-guest-size")
