# SPDX-License-Identifier: GPL-2.0
"""Real guest topologies (issue 12): huge pages on the host, a device
per NUMA node."""

import os
import re
import subprocess
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import GiB, MiB, Guest
from harness import suite
from helpers import grow, gtap, wait_guest_file

NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
HUGE_BACKEND = ("memory-backend-memfd,hugetlb=on,hugetlbsize=2M,"
                "reserve=off")
# the pool the suite adds to the host's: 1 GiB of 2 MiB pages
POOL = 512


def _hugepages(key):
    """HugePages_@key of /proc/meminfo (2 MiB pages, the default size)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_%s:" % key):
                return int(line.split()[1])
    return 0


def _set_pool(n):
    with open(NR_HUGEPAGES, "w") as f:
        f.write("%d\n" % n)
    with open(NR_HUGEPAGES) as f:
        return int(f.read())


def _wait_settled(g, timeout=180):
    """Wait until the driver's plugged size stops changing for 10 s."""
    last, since = None, time.time()
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = int(g.sysfs("plugged_size"))
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= 10:
            break
        time.sleep(1)
    return last


def _refused(r, g, want, name):
    """QEMU started with @g's command line stops, saying @want."""
    p = subprocess.run(g.command_line(), capture_output=True, text=True,
                       timeout=120)
    r.ok(p.returncode != 0 and want in p.stderr, name, p.stderr.strip())


@suite(alone="changes the host's huge page pool")
def suite_hugepages(r):
    """Issue 12: the region on 2 MiB host huge pages with prealloc=on:
    grow, fill, shrink, the pool back; a plug beyond the pool is refused
    cleanly (NACK) and QEMU lives; page requests refused at start."""
    try:
        orig = int(open(NR_HUGEPAGES).read())
        got = _set_pool(orig + POOL)
    except OSError as e:
        r.skip("hugepages", "cannot reserve huge pages here: %s" % e)
        return
    g = None
    try:
        free0 = _hugepages("Free")
        if got < orig + POOL or free0 < POOL:
            r.skip("hugepages", "the host reserved %d of %d huge pages"
                   % (got - orig, POOL))
            return
        r.diag("pool: %d huge pages of 2 MiB, %d free" % (got, free0))
        _refused(r, Guest("hp-pages", region="2G", backend=HUGE_BACKEND,
                          dev_opts="prealloc=on,free-page-reporting=off"),
                 "set pages=off",
                 "page requests on huge pages: QEMU refuses to start")
        _refused(r, Guest("hp-fpr", region="2G", pages=False,
                          backend=HUGE_BACKEND, dev_opts="prealloc=on"),
                 "set free-page-reporting=off",
                 "prealloc=on with free page reporting: QEMU refuses to "
                 "start (a reported page would lose its backing)")
        g = Guest("hp", mem="512M", maxmem="4G", region="2G", pages=False,
                  backend=HUGE_BACKEND,
                  dev_opts="prealloc=on,free-page-reporting=off").start()
        r.ok(_hugepages("Free") == free0,
             "started: nothing of the pool taken (reserve=off)",
             "%d free" % _hugepages("Free"))

        grow(r, g, GiB, "grow to 1 GiB (512 MiB plugged)")
        used = free0 - _hugepages("Free")
        r.ok(used == 256, "512 MiB plugged took 256 huge pages", used)
        gtap(r, g, "dmm_memfill -s %d -r %d" % (400 * MiB, 256 * MiB))
        grow(r, g, 512 * MiB, "shrink to 512 MiB")
        r.ok(_hugepages("Free") == free0,
             "shrunk: the pool is whole again (%d free)" % free0,
             "%d free" % _hugepages("Free"))

        # 1.5 GiB plugged asked for, 1 GiB in the pool
        g.set_requested(2 * GiB)
        plugged = _wait_settled(g)
        r.figure("plugged with a pool of 1 GiB, 1.5 GiB asked for",
                 "%d MiB, %d huge pages free" % (plugged // MiB,
                                                  _hugepages("Free")))
        r.ok(plugged <= GiB and plugged >= GiB - 128 * MiB and
             g.proc.poll() is None,
             "beyond the pool: plugs refused, the guest stops at the pool "
             "(%d MiB plugged), QEMU alive" % (plugged // MiB))
        log = open(g.qemu_log).read()
        r.ok(log.count("cannot back plugged memory") == 1,
             "QEMU reported the refusal once")
        r.ok(g.sysfs("status") != "error", "the driver did not give up",
             g.sysfs("status"))
        gtap(r, g, "dmm_memfill -s %d" % (800 * MiB))
        grow(r, g, 512 * MiB, "shrink to 512 MiB again")
        r.ok(_hugepages("Free") == free0,
             "shrunk: the pool is whole again (%d free)" % free0,
             "%d free" % _hugepages("Free"))
    finally:
        if g:
            g.stop()
        _set_pool(orig)
        r.diag("pool put back to %d huge pages" % orig)


def _numa_guest(name, second_dev="", extra=()):
    """A guest of two NUMA nodes of 512 MiB boot RAM each: dmm0 on node 0
    counts the boot RAM, dmm1 on node 1 its region only."""
    dev1 = ("virtio-dmm-pci,id=dmm1,memdev=dmm-mem1,node=1,boot-ram=off,"
            "pages=off,free-page-reporting=off,hints=off" + second_dev)
    return Guest(name, mem="1G", maxmem="4G", region="1G", dev_opts="node=0",
                 extra_args=[
                     "-object", "memory-backend-ram,id=n0,size=512M",
                     "-object", "memory-backend-ram,id=n1,size=512M",
                     "-numa", "node,nodeid=0,cpus=0,memdev=n0",
                     "-numa", "node,nodeid=1,cpus=1,memdev=n1",
                     "-object", "memory-backend-ram,id=dmm-mem1,size=1G,"
                     "reserve=off", "-device", dev1, *extra])


def _node_kib(g, node, field):
    """Field (MemTotal, MemFree) of the guest's node @node, bytes."""
    out = g.out("cat /sys/devices/system/node/node%d/meminfo" % node)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == field + ":":
            return int(parts[3]) * 1024
    raise RuntimeError("no %s for node %d: %s" % (field, node, out))


def _dev_info(g, dev_id):
    for d in g.qmp.cmd("query-memory-devices"):
        if d["type"] == "virtio-dmm" and d["data"]["id"] == dev_id:
            return d["data"]
    raise RuntimeError("no %s in query-memory-devices" % dev_id)


def _wait_dev(g, dev_id, key, size, timeout=180):
    """Wait until @dev_id's @key (QMP) is @size; the seconds, or None."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if _dev_info(g, dev_id)[key] == size:
            return time.time() - t0
        time.sleep(0.5)
    return None


@suite
def suite_numa(r):
    """Issue 12: a device per NUMA node: boot RAM counted once, node 1
    grows alone, node 0 shrinks below its boot RAM from its own node, the
    balancer drives both devices of the guest."""
    _refused(r, _numa_guest("numa-2boot", ",boot-ram=on"),
             "another virtio-dmm device counts the boot RAM",
             "a second device counting the boot RAM: QEMU refuses to start")
    _refused(r, _numa_guest("numa-pages", ",pages=on"),
             "needs 'boot-ram'",
             "pages=on without boot-ram: QEMU refuses to start")
    mon3 = os.path.join(dmmvm.RUN, "numa-mon3.sock")
    g = _numa_guest("numa", extra=(
        "-chardev", "socket,id=mon3,path=%s,server=on,wait=off" % mon3,
        "-mon", "chardev=mon3,mode=control")).start()
    bal = None
    try:
        d0, d1 = _dev_info(g, "dmm0"), _dev_info(g, "dmm1")
        r.ok(d0["node"] == 0 and d0["boot-size"] == GiB and
             d1["node"] == 1 and d1["boot-size"] == 0 and
             d1["requested-guest-size"] == 0,
             "dmm0 on node 0 counts the 1 GiB boot RAM, dmm1 on node 1 "
             "counts nothing", (d0, d1))
        total = [_node_kib(g, n, "MemTotal") for n in (0, 1)]

        g.qmp.cmd("qom-set", path="dmm1", property="requested-size",
                  value=512 * MiB)
        t = _wait_dev(g, "dmm1", "size", 512 * MiB)
        grown = [_node_kib(g, n, "MemTotal") for n in (0, 1)]
        r.figure("node MemTotal before and after dmm1 grew by 512 MiB",
                 "node0 %d -> %d MiB, node1 %d -> %d MiB"
                 % (total[0] // MiB, grown[0] // MiB, total[1] // MiB,
                    grown[1] // MiB))
        r.ok(t is not None and grown[1] - total[1] == 512 * MiB and
             grown[0] == total[0],
             "dmm1 grew by 512 MiB: all of it on node 1 (%s)"
             % "/sys/devices/system/node/node1/meminfo")
        r.ok(_dev_info(g, "dmm0")["guest-size"] == GiB,
             "dmm0 still counts 1 GiB")

        free = [_node_kib(g, n, "MemFree") for n in (0, 1)]
        g.qmp.cmd("qom-set", path="dmm0", property="requested-guest-size",
                  value=GiB - 128 * MiB)
        t = _wait_dev(g, "dmm0", "guest-size", GiB - 128 * MiB)
        after = [_node_kib(g, n, "MemFree") for n in (0, 1)]
        drop = [(free[i] - after[i]) // MiB for i in (0, 1)]
        r.figure("node MemFree fall when dmm0 gave back 128 MiB of boot "
                 "RAM", "node0 %d MiB, node1 %d MiB" % tuple(drop))
        r.ok(t is not None and
             _dev_info(g, "dmm0")["unplugged-size"] == 128 * MiB,
             "dmm0 shrank 128 MiB below its boot size in pages")
        r.ok(drop[0] >= 100 and drop[1] <= 32,
             "the pages came from node 0, dmm0's node (MemFree fell "
             "%d MiB there, %d MiB on node 1)" % tuple(drop))

        bal = dmmvm.Balancer("numa-balancer", 1152 * MiB, [
            "n0=%s,dev=dmm0,min=768M,max=1G" % g.qmp2_path,
            "n1=%s,dev=dmm1,min=128M,max=1G" % mon3])
        t0, sizes = time.time(), None
        while time.time() - t0 < 240:
            sizes = [_dev_info(g, d)["guest-size"] for d in ("dmm0", "dmm1")]
            if sum(sizes) <= 1152 * MiB:
                break
            time.sleep(1)
        txt = bal.text()
        r.ok(sum(sizes) <= 1152 * MiB and sizes[0] >= 768 * MiB and
             sizes[1] >= 128 * MiB,
             "the balancer (two entries, one per device, budget 1152 MiB) "
             "brought the guest's two devices from 896 + 512 MiB to %d + "
             "%d MiB in %.0f s" % (sizes[0] // MiB, sizes[1] // MiB,
                                   time.time() - t0), txt[-1500:])
        r.ok(bal.alive() and "n0" in txt and "n1" in txt,
             "the balancer logged both entries", txt[-1500:])
        gtap(r, g, "dmm_memfill -s %d" % (384 * MiB))
    finally:
        if bal:
            bal.stop()
        g.stop()


def _append_of(g):
    """The kernel command line @g boots with."""
    args = g.command_line()
    return args[args.index("-append") + 1]


@suite
def suite_kdump(r):
    """Issue 12: a crash with memory plugged: the kdump kernel's driver
    changes nothing, /proc/vmcore holds the plugged memory and reads no
    unplugged sub-block."""
    g = Guest("kdump", mem="1G", maxmem="4G", region="2G",
              backend="memory-backend-memfd", append="crashkernel=256M",
              modules=["virtio_dmm", "virtio_blk"])
    # the guest loads its own kernel and initramfs as the crash kernel
    files = (g.kernel, g.initrd)
    for f in files:
        g.extra_args += ["-drive", "file=%s,format=raw,if=virtio,"
                         "readonly=on" % f]
    try:
        g.start()
        if g.run("test -e /sys/kernel/kexec_crash_loaded")[0]:
            r.skip("kdump", "the guest kernel has no kexec")
            return
        if "Crash kernel" not in g.out("cat /proc/iomem"):
            r.skip("kdump", "the guest kernel reserved no crash kernel")
            return
        grow(r, g, GiB + 576 * MiB,
             "grow to 1.5 GiB + 64 MiB (a block partly plugged)")
        g.run("dmm_kdump fill %d >/tmp/fill.log 2>&1 &" % (900 * MiB))
        out = wait_guest_file(g, "/tmp/fill.log", "filled", 300)
        m = re.search(r"filled (\d+) pages, (\d+) of them in the region", out)
        filled, in_region = (int(m.group(1)), int(m.group(2))) if m else \
            (0, 0)
        r.ok(in_region * 4096 >= 256 * MiB,
             "900 MiB marked page by page, %d MiB of it in the region"
             % (in_region * 4096 // MiB), out)
        g.out("head -c %d /dev/vda >/tmp/k && head -c %d /dev/vdb >/tmp/i"
              % tuple(os.path.getsize(f) for f in files))
        cmdline = re.sub(r"crashkernel=\S+", "", _append_of(g)) + \
            " maxcpus=1 reset_devices irqpoll"
        rc, out = g.run("dmm_kdump load /tmp/k /tmp/i '%s'" % cmdline)
        r.ok(rc == 0, "the crash kernel is loaded (kexec_file_load)", out)
        if rc:
            return
        before = g.dmm_info()
        g.qmp.events.clear()
        start = g.console_size()
        g.agent.sock.sendall(b"echo c >/proc/sysrq-trigger\n")
        g.wait_reboot()
        g.crashes.append((start, g.console_size()))
        r.ok("sysrq triggered crash" in g.console()[start:],
             "the guest crashed and the crash kernel came up")
        r.ok(g.run("test -e /proc/vmcore")[0] == 0,
             "the crash kernel has /proc/vmcore")
        dmesg = g.out("dmesg | grep -i virtio.dmm || true")
        r.ok("kdump kernel" in dmesg, "the driver runs in kdump mode",
             dmesg)
        after = g.dmm_info()
        changes = [e for e in g.qmp.events if e["event"] in
                   ("MEMORY_DEVICE_SIZE_CHANGE", "VIRTIO_DMM_SIZE_CHANGE")]
        r.ok(after["size"] == before["size"] == 576 * MiB and not changes,
             "the crash kernel's driver changed nothing (576 MiB plugged, "
             "no size change event)", changes[:4])
        rss = g.rss()
        t0 = time.time()
        rc, out = g.run("dmm_kdump scan", 900)
        secs = time.time() - t0
        grown = g.rss() - rss
        m = re.search(r"vmcore: (\d+) MiB read, (\d+) marked pages", out)
        size, marked = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        r.figure("kdump: /proc/vmcore read", "%d MiB in %.0f s, %d of %d "
                 "marked pages found, QEMU RSS +%d MiB"
                 % (size, secs, marked, filled, grown // MiB))
        r.ok(rc == 0 and marked >= filled * 0.99,
             "the dump holds the marked memory, the region's included "
             "(%d of %d pages)" % (marked, filled), out)
        r.ok(grown < 32 * MiB,
             "reading the dump did not back the 64 MiB of unplugged "
             "sub-blocks (QEMU RSS +%d MiB)" % (grown // MiB))
    finally:
        g.stop()


@suite
def suite_hibernation(r):
    """Issue 12: hibernation is refused with a message while the driver
    is bound (design.rst says why), and the guest goes on resizing."""
    swap = os.path.join(dmmvm.RUN, "hibernation-swap.img")
    with open(swap, "wb") as f:
        f.truncate(1024 * MiB)
    g = Guest("hibernation", mem="1G", maxmem="4G", region="2G",
              modules=["virtio_dmm", "virtio_blk"],
              extra_args=["-drive", "file=%s,format=raw,if=virtio" % swap])
    try:
        g.start()
        # Hibernation allocates the image's copy before it freezes devices,
        # from kernel zones: plugged memory is movable, so the boot RAM
        # must have room (1 GiB, nothing plugged yet).
        rc, out = g.run("mkswap /dev/vda && swapon /dev/vda && "
                        "echo 0 >/sys/power/image_size")
        r.ok(rc == 0, "a swap device to hibernate to", out)
        rc, out = g.run("echo disk >/sys/power/state")
        dmesg = g.out("dmesg | tail -40")
        r.ok(rc != 0 and "hibernation is not supported with virtio-dmm" in
             dmesg, "echo disk >/sys/power/state fails, the driver says "
             "why", out + dmesg)
        grow(r, g, 2 * GiB, "after the refusal: grow to 2 GiB")
        gtap(r, g, "dmm_state_check %d" % GiB)
    finally:
        g.stop()
        os.unlink(swap)
