# SPDX-License-Identifier: GPL-2.0
"""Issue 13: virtio-dmm under libvirt.

A real libvirtd (Debian's libvirt-daemon, session mode as the
unprivileged user nobody, so that the host's own libvirt configuration is
neither needed nor touched) runs a TCG domain whose emulator is the
patched QEMU and whose XML is Documentation/examples/libvirt-domain.xml.
virsh qemu-monitor-command resizes it, and dmm-balancer manages it by its
domain name through libvirt's API (--libvirt), with no monitor socket of
its own.
"""

import json
import os
import shutil
import subprocess
import time

from dmmlib import dmmvm
from dmmlib.dmmvm import BALANCER, MiB, Agent, balancer_command
from harness import suite

NOBODY = 65534
URI = "qemu:///session"
DOMAIN = "dmm-libvirt-test"
XML = os.path.join(dmmvm.TOP, "Documentation", "examples",
                   "libvirt-domain.xml")


class Session:
    """A libvirt session of user nobody, its home under build/."""

    def __init__(self):
        self.home = os.path.join(dmmvm.BUILD, "libvirt")
        self.env = dict(os.environ, HOME=self.home,
                        XDG_RUNTIME_DIR=os.path.join(self.home, "run"),
                        XDG_CONFIG_HOME=os.path.join(self.home, "config"),
                        XDG_CACHE_HOME=os.path.join(self.home, "cache"))
        for d in (self.home, self.env["XDG_RUNTIME_DIR"]):
            os.makedirs(d, mode=0o700, exist_ok=True)
            os.chown(d, NOBODY, NOBODY)
            os.chmod(d, 0o700)
        self.console = os.path.join(self.home, "console.log")
        self.agent = os.path.join(self.home, "agent.sock")

    def cmd(self, *args):
        """@args run as nobody in the session's environment."""
        return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                "--clear-groups", *args]

    def virsh(self, *args, timeout=120):
        return subprocess.run(self.cmd("virsh", "-c", URI, *args),
                              env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def qmp(self, execute, **arguments):
        msg = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        p = self.virsh("qemu-monitor-command", DOMAIN, json.dumps(msg))
        if p.returncode:
            raise RuntimeError("virsh qemu-monitor-command %s: %s"
                               % (execute, p.stderr.strip()))
        return json.loads(p.stdout)["return"]

    def dmm(self):
        devs = self.qmp("query-memory-devices")
        return [d["data"] for d in devs if d["type"] == "virtio-dmm"][0]

    def domain_xml(self, edit=None):
        with open(XML) as f:
            text = f.read()
        if edit:
            text = edit(text)
        for key, value in (("NAME", DOMAIN), ("QEMU", dmmvm.QEMU),
                           ("KERNEL", dmmvm.KERNEL),
                           ("INITRD", dmmvm.INITRD),
                           ("CONSOLE", self.console),
                           ("AGENT", self.agent)):
            text = text.replace("@%s@" % key, value)
        path = os.path.join(self.home, DOMAIN + ".xml")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path


def wait_size(s, size, limit):
    """Wait until the device's guest size is @size; the seconds, or None."""
    t0 = time.time()
    while time.time() - t0 < limit:
        if s.dmm()["guest-size"] == size:
            return time.time() - t0
        time.sleep(0.25)
    return None


def memtotal(agent):
    rc, out = agent.run("grep MemTotal /proc/meminfo")
    return int(out.split()[1]) * 1024 if rc == 0 else 0


def check_balancer(r, s, agent):
    """dmm-balancer --libvirt: by domain name, no second monitor."""
    ctl = os.path.join(s.home, "balancer.sock")
    log = os.path.join(dmmvm.LOGS, "libvirt-balancer.log")
    if os.path.exists(ctl):
        os.unlink(ctl)
    with open(log, "w") as out:
        bal = subprocess.Popen(
            s.cmd(BALANCER, "--libvirt", URI, "--budget", "1G",
                  "--period", "0.5", "--control", ctl,
                  "lv=libvirt:%s,min=512M" % DOMAIN),
            env=s.env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # it holds the guest to the budget: down from 1.5 GiB to what the
        # idle guest needs (at least its min), at most 1 GiB
        t0, d = time.time(), s.dmm()
        while time.time() - t0 < 120 and not (
                d["guest-size"] <= 1024 * MiB and
                d["guest-size"] == d["requested-guest-size"]):
            time.sleep(0.25)
            d = s.dmm()
        t = time.time() - t0
        # the balancer counts the new size from its next look at the guest
        # (every 0.5 s here): a shrink done in ranges can beat it, and a
        # grant of a request for memory can move it again meanwhile
        st, t1 = None, time.time()
        while os.path.exists(ctl) and time.time() - t1 < 30:
            st = json.loads(balancer_command(ctl, "status json"))
            if st["committed"] <= st["budget"]:
                break
            time.sleep(0.25)
        g, d2 = st and st["guests"][0], s.dmm()
        r.ok(d["guest-size"] <= 1024 * MiB and g and
             g["state"] == "alive" and
             g["requested"] == d2["requested-guest-size"] and
             st["committed"] <= st["budget"],
             "the balancer manages the domain by name: shrunk from 1536 "
             "to %d MiB under its 1 GiB budget in %.1f s"
             % (d["guest-size"] // MiB, t), st)
        # a request for memory from the guest: an event libvirt passes on
        d = agent.run("echo /sys/bus/virtio/drivers/virtio_dmm/virtio*/dmm"
                      )[1].strip()
        agent.run("echo %d > %s/ask_size" % (1536 * MiB, d))
        want = "lv: asks for 1536 MiB (forwarded)"
        t0 = time.time()
        while time.time() - t0 < 30 and want not in open(log).read():
            time.sleep(0.25)
        r.ok(want in open(log).read(),
             "the guest's VIRTIO_DMM_ASK reaches the balancer through "
             "libvirt's monitor events", open(log).read()[-2000:])
        # the domain stops: its QEMU is gone, it holds nothing
        p = s.virsh("destroy", DOMAIN)
        gone = False
        t0 = time.time()
        while time.time() - t0 < 30 and not gone:
            time.sleep(0.5)
            st = json.loads(balancer_command(ctl, "status json"))
            gone = st["guests"][0]["state"] == "gone" and \
                st["committed"] == 0
        r.ok(p.returncode == 0 and gone,
             "virsh destroy: the balancer counts the domain as gone, "
             "holding nothing", st)
    finally:
        bal.terminate()
        try:
            bal.wait(10)
        except subprocess.TimeoutExpired:
            bal.kill()
            bal.wait()


@suite(alone="runs a libvirtd")
def suite_libvirt(r):
    """Issue 13: a libvirt domain carries the device; virsh resizes it;
    the balancer manages it by domain name through libvirt's API."""
    for tool in ("virsh", "setpriv"):
        if not shutil.which(tool):
            r.ok(False, "%s is installed (scripts/setup-host.sh)" % tool)
            return
    for bad, why in (("a=libvirt:", "bad libvirt domain name"),
                     ("a=libvirt:x/y", "bad libvirt domain name"),
                     ("a=libvirt:x,y z", "bad option")):
        p = subprocess.run([BALANCER, "--budget", "1G", bad],
                           capture_output=True, text=True)
        r.ok(p.returncode == 1 and why in p.stderr,
             "dmm-balancer %s: refused (%s)" % (bad, p.stderr.strip()))
    s = Session()
    s.virsh("destroy", DOMAIN)          # a leftover of an earlier run
    for f in (s.console, s.agent):
        if os.path.exists(f):
            os.unlink(f)
    p = s.virsh("create", s.domain_xml())
    r.ok(p.returncode == 0,
         "virsh create: the domain XML of the admin guide, with a "
         "virtio-dmm device, starts on the patched QEMU",
         p.stdout + p.stderr)
    if p.returncode:
        return
    try:
        agent = Agent(s.agent, 120)
        d = s.dmm()
        r.ok(d["id"] == "dmm0" and d["boot-size"] == 512 * MiB and
             d["max-size"] == 3 * 1024 * MiB,
             "query-memory-devices through virsh shows the device", d)
        before = memtotal(agent)
        s.qmp("qom-set", path="dmm0", property="requested-guest-size",
              value=1536 * MiB)
        t = wait_size(s, 1536 * MiB, 60)
        grown = memtotal(agent)
        r.ok(t is not None and grown - before >= 1024 * MiB,
             "virsh qemu-monitor-command qom-set requested-guest-size "
             "1.5G: the "
             "guest grows by 1 GiB (MemTotal %d -> %d MiB)"
             % (before // MiB, grown // MiB))
        p = s.virsh("qemu-monitor-command", DOMAIN, "--hmp",
                    "info memory-devices")
        r.ok(p.returncode == 0 and "virtio-dmm" in p.stdout and
             "requested-guest-size: %d" % (1536 * MiB) in p.stdout,
             "virsh qemu-monitor-command --hmp info memory-devices",
             p.stdout + p.stderr)
        # below the boot size: pages of libvirt's per-node boot RAM backend
        s.qmp("qom-set", path="dmm0", property="requested-guest-size",
              value=384 * MiB)
        t = wait_size(s, 384 * MiB, 120)
        d = s.dmm()
        r.ok(t is not None and d["unplugged-size"] >= 128 * MiB,
             "qom-set requested-guest-size 384M: the guest gives back "
             "pages of its boot RAM (in libvirt's NUMA cell backend)", d)
        s.qmp("qom-set", path="dmm0", property="requested-guest-size",
              value=1536 * MiB)
        r.ok(wait_size(s, 1536 * MiB, 120) is not None,
             "and grows back to 1.5 GiB")
        check_balancer(r, s, agent)
    finally:
        s.virsh("destroy", DOMAIN)
        with open(s.console, errors="replace") as f:
            problems = dmmvm.kernel_problems(f.read())
        r.ok(not problems, "libvirt: guest %s: kernel log has no warnings "
             "or oopses" % DOMAIN, "\n".join(problems[:40]))
