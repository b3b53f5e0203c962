# SPDX-License-Identifier: GPL-2.0
"""Host checks of the set-up and delivery (issue 15): the set-up refuses
a system it does not support with one line, resolves the pinned versions
with a fallback to the newest of the same series, chooses the
accelerator as the README says; the Linux patch applies and is clean.  No guest, no download: a fake os-release, a fake apt-cache, and
the real archive's index through apt-cache and --print-uris.
"""

import os
import re
import signal
import subprocess
import tempfile

from dmmlib import dmmvm
from harness import suite

TOP = dmmvm.TOP
SCRIPTS = os.path.join(TOP, "scripts")

OS_RELEASES = {
    "ubuntu-24.04": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\n'
                    'VERSION_ID="24.04"\nID_LIKE=debian\n',
    "debian-11": 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\n'
                 'ID=debian\nVERSION_ID="11"\n',
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
                 'ID=debian\nVERSION_ID="12"\n',
}


def run(cmd, env=None, timeout=120):
    """Run @cmd in its own process group (killed as a whole at the
    timeout): (status, stdout, stderr)."""
    p = subprocess.Popen(cmd, env=dict(os.environ, **(env or {})),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return -1, out, err + "\n(killed after %d s)" % timeout
    return p.returncode, out, err


def read_versions(build):
    """build/versions.env as the scripts see it (through lib.sh)."""
    names = "KPKG_VER KVER QEMU_DSC_VER QEMU_ORIG QEMU_ORIG_SHA256 " \
        "QEMU_VER KDIR GUEST_KERNEL"
    rc, out, err = run(["bash", "-c", '. "%s/lib.sh"; for v in %s; do '
                        'printf "%%s=%%s\\n" $v "${!v}"; done'
                        % (SCRIPTS, names)], env={"DMM_BUILD": build})
    return dict(line.split("=", 1) for line in out.splitlines())


@suite
def suite_setup_refuses(r):
    """The set-up refuses a host that is not Debian 12 x86-64 in one line."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in OS_RELEASES.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        cases = [("ubuntu-24.04", "x86_64", "scripts/setup-host.sh"),
                 ("debian-11", "x86_64", "scripts/setup-host.sh"),
                 ("debian-12", "aarch64", "scripts/setup-host.sh"),
                 ("ubuntu-24.04", "x86_64", "scripts/test.sh"),
                 ("debian-11", "x86_64", "scripts/demo.sh")]
        for osr, arch, cmd in cases:
            env = {"DMM_OS_RELEASE": os.path.join(tmp, osr),
                   "DMM_ARCH": arch, "DMM_BUILD": os.path.join(tmp, "b")}
            rc, out, err = run([os.path.join(TOP, cmd)], env, timeout=60)
            lines = (out + err).splitlines()
            r.ok(rc == 2 and len(lines) == 1 and
                 "not supported" in lines[0] and
                 "QEMU_SRC=, KDIR= and GUEST_KERNEL=" in lines[0] and
                 not os.path.exists(os.path.join(tmp, "b")),
                 "setup: %s on %s: %s refuses in one line, exit 2"
                 % (osr, arch, cmd), "exit %d\n%s" % (rc, out + err))
        env = {"DMM_OS_RELEASE": os.path.join(tmp, "debian-12"),
               "DMM_ARCH": "x86_64"}
        rc, out, err = run([os.path.join(SCRIPTS, "setup-host.sh"),
                            "--check-host"], env)
        r.ok(rc == 0 and not (out + err).strip(),
             "setup: Debian 12 on x86_64 passes the host check",
             "exit %d\n%s" % (rc, out + err))
        # the no-apt variables let any host through (the check, no apt)
        env = dict(env, DMM_OS_RELEASE=os.path.join(tmp, "ubuntu-24.04"),
                   QEMU_SRC="/q", KDIR="/k", GUEST_KERNEL="/g")
        rc, out, err = run([os.path.join(SCRIPTS, "setup-host.sh"),
                            "--check-host"], env)
        r.ok(rc == 0, "setup: Ubuntu passes with QEMU_SRC, KDIR and "
             "GUEST_KERNEL set", "exit %d\n%s" % (rc, out + err))


# A fake archive: 6.12.117 (the pin) is gone; 6.12.115 and 6.12.113 have
# image, headers and source; 6.12.120 has an image only.  QEMU: 10.0.14
# and a new Debian revision of 10.0.13; 10.1.0 is another series.
FAKE_KERNELS = {
    "6.12.120-1~deb12u1": ("image",),
    "6.12.115-2~deb12u1": ("image", "headers", "source"),
    "6.12.113-1~deb12u1": ("image", "headers", "source"),
}
PIN_SHA = "6a0888e806c2ffc0c5f0733e974f9aea55491950d3c47c98669c8b236dde59ae"
FAKE_SHA = "ab" * 32


def fake_qemu_sources(newest, deb13u2_sha):
    """apt-cache showsrc qemu stanzas (the fields resolve-versions
    reads)."""
    stanzas = [("1:10.0.13+ds-0+deb13u2", "qemu_10.0.13+ds.orig.tar.xz",
                deb13u2_sha),
               ("1:10.1.0+ds-1", "qemu_10.1.0+ds.orig.tar.xz", "cd" * 32)]
    if newest:
        stanzas.append(("1:10.0.14+ds-1", "qemu_10.0.14+ds.orig.tar.xz",
                        FAKE_SHA))
    return "".join("Package: qemu\nVersion: %s\nChecksums-Sha256:\n"
                   " %s 1 %s\n %s 1 qemu_x.debian.tar.xz\nHomepage: x\n\n"
                   % (v, s, f, "ee" * 32) for v, f, s in stanzas)


def write_fake_apt(bindir, kernels, sources):
    """A fake apt-cache answering pkgnames, madison and showsrc."""
    rows = []
    for ver, parts in kernels.items():
        abi = ver.split("-")[0] + "+deb12-amd64"
        names = {"image": "linux-image-%s-unsigned" % abi,
                 "headers": "linux-headers-%s" % abi,
                 "source": "linux-source-6.12"}
        rows += ["%s | %s | http://x bookworm-security/main amd64 Packages"
                 % (names[p], ver) for p in parts]
    with open(os.path.join(bindir, "madison"), "w") as f:
        f.write("\n".join(rows) + "\n")
    with open(os.path.join(bindir, "showsrc"), "w") as f:
        f.write(sources)
    script = """#!/bin/bash
d=$(dirname "$0")
case "$1" in
pkgnames) cut -d' ' -f1 "$d/madison" | grep "^$2" | sort -u ;;
madison) shift; for p; do grep "^$p |" "$d/madison"; done ;;
showsrc) cat "$d/showsrc" ;;
*) exit 100 ;;
esac
"""
    path = os.path.join(bindir, "apt-cache")
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o755)


def resolve(build, env=None, fake=None):
    """scripts/resolve-versions.sh into @build, with the fake apt-cache of
    directory @fake first in PATH if given."""
    env = dict(env or {}, DMM_BUILD=build)
    if fake:
        env["PATH"] = fake + ":" + os.environ["PATH"]
    return run([os.path.join(SCRIPTS, "resolve-versions.sh")], env)


@suite
def suite_setup_versions(r):
    """Pins, and the fallback to the newest of the series when one is gone."""
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "bin")
        os.mkdir(fake)
        write_fake_apt(fake, FAKE_KERNELS, fake_qemu_sources(True, PIN_SHA))

        # the pins are gone: the newest complete 6.12.x, the newest 10.0.x
        b = os.path.join(tmp, "fallback")
        rc, out, err = resolve(b, fake=fake)
        v = read_versions(b)
        r.ok(rc == 0 and v.get("KPKG_VER") == "6.12.115-2~deb12u1" and
             v.get("KVER") == "6.12.115+deb12-amd64",
             "setup: a vanished kernel pin falls back to the newest 6.12.x "
             "with image, headers and source", "%s\n%s" % (err, v))
        r.ok(rc == 0 and v.get("QEMU_DSC_VER") == "1:10.0.14+ds-1" and
             v.get("QEMU_ORIG_SHA256") == FAKE_SHA and
             v.get("QEMU_VER") == "10.0.14",
             "setup: a vanished QEMU pin falls back to the newest 10.0.x, "
             "its sha256 recorded", "%s\n%s" % (err, v))
        r.ok(v.get("KDIR") == "/lib/modules/6.12.115+deb12-amd64/build" and
             v.get("GUEST_KERNEL", "").endswith(
                 "/kernel/boot/vmlinuz-6.12.115+deb12-amd64"),
             "setup: lib.sh gives the later scripts the fallback's headers "
             "and image", str(v))
        rc, out, err = run(["python3", "-c", "from dmmlib import dmmvm; "
                            "print(dmmvm.KERNEL)"],
                           {"DMM_BUILD": b, "PYTHONPATH": SCRIPTS})
        r.ok(out.strip() == v.get("GUEST_KERNEL"),
             "setup: the guests boot the fallback kernel (dmmvm.KERNEL)",
             out + err)

        # a pin the archive has is kept, even with newer ones there
        b = os.path.join(tmp, "pinned")
        rc, out, err = resolve(b, {"DMM_KPKG_VER": "6.12.113-1~deb12u1",
                                   "DMM_QEMU_DSC_VER":
                                   "1:10.0.13+ds-0+deb13u2"}, fake)
        v = read_versions(b)
        r.ok(rc == 0 and v.get("KPKG_VER") == "6.12.113-1~deb12u1" and
             v.get("QEMU_DSC_VER") == "1:10.0.13+ds-0+deb13u2" and
             v.get("QEMU_ORIG_SHA256") == PIN_SHA,
             "setup: pins the archive has are used, not the newest",
             "%s\n%s" % (err, v))

        # the pinned tarball's name with another sha256: an error
        write_fake_apt(fake, FAKE_KERNELS, fake_qemu_sources(False,
                                                             FAKE_SHA))
        b = os.path.join(tmp, "badsum")
        rc, out, err = resolve(b, fake=fake)
        r.ok(rc != 0 and "sha256" in err and
             not os.path.exists(os.path.join(b, "versions.env")),
             "setup: the pinned QEMU tarball with another sha256 is an "
             "error", "exit %d\n%s" % (rc, err))

        # ... and so is a downloaded file that does not match
        b = os.path.join(tmp, "badfile")
        os.makedirs(os.path.join(b, "downloads"))
        with open(os.path.join(b, "downloads",
                               "qemu_10.0.13+ds.orig.tar.xz"), "w") as f:
            f.write("not the tarball\n")
        with open(os.path.join(b, "versions.env"), "w") as f:
            f.write("QEMU_ORIG=qemu_10.0.13+ds.orig.tar.xz\n"
                    "QEMU_ORIG_SHA256=%s\n" % PIN_SHA)
        rc, out, err = run([os.path.join(SCRIPTS, "build-qemu.sh")],
                           {"DMM_BUILD": b})
        r.ok(rc != 0 and "sha256" in err and
             not os.path.exists(os.path.join(b, "qemu-pristine")),
             "setup: build-qemu.sh refuses a tarball whose sha256 is not "
             "the recorded one", "exit %d\n%s" % (rc, err))

        # the real archive: vanished pins resolve, and what they resolve
        # to can be fetched (URIs only, nothing downloaded)
        b = os.path.join(tmp, "archive")
        rc, out, err = resolve(b, {"DMM_KPKG_VER": "6.12.999-1~deb12u1",
                                   "DMM_QEMU_DSC_VER": "1:10.0.999+ds-1"})
        v = read_versions(b)
        r.ok(rc == 0 and v.get("KPKG_VER", "").startswith("6.12.") and
             "not in the archive" in err,
             "setup: the archive's newest 6.12.x and 10.0.x replace "
             "vanished pins (%s, %s)" % (v.get("KPKG_VER"),
                                         v.get("QEMU_DSC_VER")),
             "%s\n%s" % (err, v))
        if rc == 0:
            kv, pv = v["KVER"], v["KPKG_VER"]
            rc, out, err = run(["apt-get", "download", "--print-uris",
                                "linux-image-%s-unsigned=%s" % (kv, pv),
                                "linux-headers-%s=%s" % (kv, pv),
                                "linux-source-6.12=%s" % pv])
            r.ok(rc == 0 and out.count("http") == 3,
                 "setup: the fallback kernel's image, headers and source "
                 "are in the archive", out + err)
            rc, out, err = run(["apt-get", "source", "--print-uris",
                                "qemu=" + v["QEMU_DSC_VER"]],
                               timeout=60)
            r.ok(rc == 0 and " %s " % v["QEMU_ORIG"] in out and
                 "SHA256:" + v["QEMU_ORIG_SHA256"] in out,
                 "setup: the fallback QEMU tarball is in the archive with "
                 "the recorded sha256", out[-2000:] + err)


@suite
def suite_setup_accel(r):
    """KVM where vmx/svm and /dev/kvm work, else TCG; DMM_ACCEL forces."""
    code = ("import os\nfrom dmmlib import dmmvm\n"
            "try:\n    print(dmmvm.use_kvm())\n"
            "except ValueError as e:\n    print('error', e)\n")

    def choice(acc):
        env = {"PYTHONPATH": SCRIPTS}
        env["DMM_ACCEL"] = acc
        rc, out, err = run(["python3", "-c", code], env)
        return out.strip() + err.strip()

    with open("/proc/cpuinfo") as f:
        hw = any(w in ("vmx", "svm") for w in f.read().split())
    auto = hw and os.access("/dev/kvm", os.R_OK | os.W_OK)
    r.ok(choice("") == str(auto), "setup: accelerator by default: %s "
         "(vmx/svm %s, /dev/kvm rw %s)" % ("KVM" if auto else "TCG",
                                           hw, os.access("/dev/kvm",
                                                         os.W_OK)),
         choice(""))
    r.ok(choice("tcg") == "False", "setup: DMM_ACCEL=tcg forces TCG")
    r.ok(choice("kvm") == "True", "setup: DMM_ACCEL=kvm forces KVM")
    got = choice("hvf")
    r.ok(got.startswith("error"), "setup: DMM_ACCEL=hvf is an error, "
         "not a silent TCG", got)


@suite
def suite_linux_patch(r):
    """The Linux patch: git am onto 6.12, checkpatch --strict, it builds."""
    rc, out, err = run([os.path.join(SCRIPTS, "export-linux-patch.sh"),
                        "--check"], timeout=900)
    for line in err.splitlines():
        if line.startswith("total:") or "linux-patch:" in line:
            r.diag("  " + line)
    r.ok(rc == 0, "linux-patch: applies with git am, checkpatch --strict "
         "reports nothing, builds from the tree", (out + err)[-4000:])


# Files with no SPDX line of their own: the licence texts and their index
# (COPYING), and the QEMU series' changes to QEMU's files and commit
# messages and the local QEMU patches, which carry the licence of the QEMU
# files they change.
SPDX_EXEMPT = re.compile(r"^(COPYING|LICENSES/.*|"
                         r"qemu-device/series/[^/]*\.(diff|msg)|"
                         r"qemu-device/local/[^/]*\.patch)$")


@suite
def suite_licences(r):
    """Every file has an SPDX line; LICENSES/ has the text of each."""
    files = subprocess.run(["git", "-C", TOP, "ls-files"], text=True,
                           stdout=subprocess.PIPE, check=True).stdout.split()
    known = {}
    for name in os.listdir(os.path.join(TOP, "LICENSES")):
        with open(os.path.join(TOP, "LICENSES", name)) as f:
            for m in re.finditer(r"^Valid-License-Identifier: (\S+)$",
                                 f.read(), re.M):
                known[m.group(1)] = name
    missing, unknown = [], []
    for path in files:
        if SPDX_EXEMPT.match(path):
            continue
        with open(os.path.join(TOP, path), errors="replace") as f:
            lines = f.read().splitlines()
        # where the kernel puts it, or at the end of a plain-text README
        m = re.search(r"SPDX-License-Identifier: ([\w.+-]+)",
                      "\n".join(lines[:5] + lines[-3:]))
        if not m:
            missing.append(path)
        elif m.group(1) not in known:
            unknown.append("%s: %s" % (path, m.group(1)))
    r.ok(not missing, "licences: every file has an SPDX line (%d files)"
         % len(files), "\n".join(missing))
    r.ok(not unknown, "licences: every SPDX licence has its text in "
         "LICENSES/ (%s)" % ", ".join(sorted(set(known.values()))),
         "\n".join(unknown))


@suite
def suite_setup_no_apt(r):
    """QEMU_SRC, KDIR and GUEST_KERNEL: no apt, on any host."""
    with tempfile.TemporaryDirectory() as tmp:
        # apt, apt-get and apt-cache that leave a trace if run at all
        fake = os.path.join(tmp, "bin")
        os.mkdir(fake)
        for tool in ("apt", "apt-get", "apt-cache"):
            path = os.path.join(fake, tool)
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho \"$0 $*\" >>%s/apt-ran\nexit 1\n"
                        % tmp)
            os.chmod(path, 0o755)
        osr = os.path.join(tmp, "os-release")
        with open(osr, "w") as f:
            f.write(OS_RELEASES["ubuntu-24.04"])
        kdir = os.path.join(tmp, "linux")
        os.makedirs(os.path.join(kdir, "include", "config"))
        with open(os.path.join(kdir, "include", "config",
                               "kernel.release"), "w") as f:
            f.write("6.12.0-mine\n")
        qsrc = os.path.join(tmp, "qemu")
        os.mkdir(qsrc)
        with open(os.path.join(qsrc, "VERSION"), "w") as f:
            f.write("10.0.7\n")
        bz = os.path.join(tmp, "bzImage")
        open(bz, "w").close()
        build = os.path.join(tmp, "build")
        env = {"PATH": fake + ":" + os.environ["PATH"], "DMM_BUILD": build,
               "DMM_OS_RELEASE": osr, "QEMU_SRC": qsrc, "KDIR": kdir,
               "GUEST_KERNEL": bz}
        out = ""
        for script in ("setup-host.sh", "fetch-kernel.sh"):
            rc, o, e = run([os.path.join(SCRIPTS, script)], env)
            out += o + e
            if rc:
                break
        ran = os.path.exists(os.path.join(tmp, "apt-ran"))
        r.ok(rc == 0 and not ran, "setup: with the three variables set the "
             "set-up and the kernel fetch run no apt, on Ubuntu",
             out + (open(os.path.join(tmp, "apt-ran")).read() if ran
                    else ""))
        # later scripts, without the variables, use what was recorded
        v = read_versions(build)
        r.ok(v.get("KVER") == "6.12.0-mine" and v.get("KDIR") == kdir and
             v.get("GUEST_KERNEL") == bz and v.get("QEMU_VER") == "10.0.7",
             "setup: build/versions.env gives the later scripts the "
             "user's kernel tree, bzImage and QEMU tree", str(v))
        rc, o, e = run(["python3", "-c", "from dmmlib import dmmvm; "
                        "print(dmmvm.KERNEL)"],
                       {"DMM_BUILD": build, "PYTHONPATH": SCRIPTS})
        r.ok(o.strip() == bz, "setup: the guests boot GUEST_KERNEL",
             o + e)
        # only a 10.0.x QEMU tree is taken
        with open(os.path.join(qsrc, "VERSION"), "w") as f:
            f.write("9.2.0\n")
        rc, o, e = run([os.path.join(SCRIPTS, "build-qemu.sh")], env)
        r.ok(rc != 0 and "not 10.0.x" in e and
             not os.path.exists(os.path.join(build, "qemu-pristine")),
             "setup: QEMU_SRC of another series is refused", o + e)
        # one of KDIR and GUEST_KERNEL alone is refused
        env2 = dict(env, DMM_BUILD=os.path.join(tmp, "b2"),
                    DMM_OS_RELEASE="/etc/os-release", GUEST_KERNEL="")
        rc, o, e = run([os.path.join(SCRIPTS, "resolve-versions.sh")], env2)
        r.ok(rc != 0 and "set both or neither" in e,
             "setup: KDIR without GUEST_KERNEL is refused", o + e)
