"""
conftest.py - fixtures of the packaging and systemd tests (tests/system/run).

  build_dir   a build of the source tree configured for /usr (CHATD_PKG_BUILD)
  deb         the Debian package built by packaging/build-deb (CHATD_DEB)
  box         a booted Debian 12 container (nspawn.py) with the package
              installed as README.md shows (apt install ./build-pkg-deb/...),
              shared by the container tests in one session

Some container tests need parts of chatd that may not be built yet (sd_notify,
socket activation, chatctl, the test-only fault switch).  What the installed
package can do is read from its binaries, and a test that needs a missing part
is skipped, naming it: it runs by itself once the part is there.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))

import nspawn  # noqa: E402

# The environment variable and value that make chatd's listener thread hang
# (test builds and tests only), for the watchdog test.
FAULT_ENV = "CHATD_TEST_FAULT"
FAULT_LISTENER_HANG = "listener-hang"

WAITS_FOR = {
    "notify": "chatd speaking sd_notify (READY=1, STATUS=, STOPPING=1, WATCHDOG=1)",
    "activation": "socket activation in chatd (sd_listen_fds_with_names)",
    "ctl": "chatctl and the admin socket",
    "fault": f"the test-only fault switch {FAULT_ENV}={FAULT_LISTENER_HANG}",
    "daemon": "chatd --daemon",
}


@pytest.fixture(scope="session")
def build_dir():
    d = os.environ.get("CHATD_PKG_BUILD", os.path.join(SRC, "build-pkg"))
    if not os.path.isfile(os.path.join(d, "chatd")):
        pytest.fail(f"no chatd in {d}: run tests/system/run, or set CHATD_PKG_BUILD")
    return d


@pytest.fixture(scope="session")
def deb():
    path = os.environ.get("CHATD_DEB")
    if not path:
        # As README.md shows it: the package's unit tests run.
        env = {k: v for k, v in os.environ.items() if k != "DEB_BUILD_OPTIONS"}
        out = subprocess.run([os.path.join(SRC, "packaging", "build-deb")],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        path = out.stdout.strip().splitlines()[-1]
    assert os.path.isfile(path), path
    return path


def deb_features(deb_path):
    """Which parts of chatd the package's binaries have."""
    tree = tempfile.mkdtemp(prefix="chatd-deb-")
    try:
        subprocess.run(["dpkg-deb", "-x", deb_path, tree], check=True)
        chatd = os.path.join(tree, "usr/sbin/chatd")
        symbols = subprocess.run(["nm", "-D", "--undefined-only", chatd],
                                 capture_output=True, text=True, check=True).stdout
        names = {line.split()[-1].split("@")[0] for line in symbols.splitlines() if line.strip()}
        with open(chatd, "rb") as f:
            blob = f.read()
        return {
            "notify": any(n.startswith(("sd_notify", "sd_pid_notify")) for n in names),
            "activation": "sd_listen_fds_with_names" in names,
            "ctl": any(os.path.isfile(os.path.join(tree, d, "chatctl"))
                       for d in ("usr/bin", "usr/sbin")),
            "fault": FAULT_ENV.encode() in blob,
            "daemon": b"--daemon" in blob,
        }
    finally:
        shutil.rmtree(tree)


class Box(nspawn.Container):
    """The container with chatd installed, and what this chatd can do."""

    features = {}

    def require(self, *parts):
        missing = [WAITS_FOR[p] for p in parts if not self.features.get(p)]
        if missing:
            pytest.skip("waits for " + "; ".join(missing))

    def unit(self, prop, unit="chatd.service"):
        return self.run("systemctl", "show", "--value", "-p", prop, unit).stdout.strip()

    def journal(self, *args):
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", "chatd.service",
                        *args).stdout


@pytest.fixture(scope="session")
def box(deb):
    if os.geteuid() != 0:
        pytest.skip("systemd-nspawn needs root")
    for tool in ("systemd-nspawn", "debootstrap", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/deps")
    os.makedirs(nspawn.CACHE_DIR, exist_ok=True)
    rootfs = nspawn.ensure_rootfs(os.path.join(nspawn.CACHE_DIR, "debootstrap.log"))
    workdir = tempfile.mkdtemp(prefix="run-", dir=nspawn.CACHE_DIR)
    share = os.path.join(workdir, "share")
    os.makedirs(share)
    # Laid out as the source tree after packaging/build-deb, for README.md's
    # "apt install ./build-pkg-deb/chatd_*.deb" (install()).
    os.makedirs(os.path.join(share, "build-pkg-deb"))
    shutil.copy(deb, os.path.join(share, "build-pkg-deb", os.path.basename(deb)))
    b = Box(rootfs, workdir, share, name=f"chatd-test-{os.getpid()}")
    b.features = deb_features(deb)
    try:
        b.boot()
        install(b)
        yield b
    finally:
        b.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


def readme_install_command():
    """README.md's command that installs the built package."""
    text = open(os.path.join(SRC, "README.md"), encoding="utf-8").read()
    m = re.search(r"^(apt install \./build-pkg-deb/chatd_\*\.deb)\s+#", text, re.M)
    assert m, "README.md no longer shows how to install the package"
    return m.group(1)


def install(b):
    if not b.features["notify"]:
        # Without READY=1 a Type=notify start would time out: until chatd
        # speaks sd_notify, the package is installed without starting it and
        # run as Type=simple, so the tests that need no notification run.
        b.sh("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && "
             "chmod +x /usr/sbin/policy-rc.d")
    # As README.md has it typed, from the tree's top; "Y" answers apt if it asks.
    b.sh(f"cd /mnt/chatd && {readme_install_command()}", input="Y\n", timeout=120)
    if not b.features["notify"]:
        b.sh("rm /usr/sbin/policy-rc.d && mkdir -p /run/systemd/system/chatd.service.d && "
             "printf '[Service]\\nType=simple\\nWatchdogSec=0\\n' "
             "> /run/systemd/system/chatd.service.d/no-notify-yet.conf && "
             "systemctl daemon-reload && systemctl start chatd")
        deadline = time.monotonic() + 15
        while b.run("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7777", check=False).returncode:
            if time.monotonic() > deadline:
                pytest.fail("chatd does not serve after installation:\n" +
                            b.run("journalctl", "--no-pager", "-u", "chatd").stdout)
            time.sleep(0.05)


def exposure(unit_path):
    """The overall exposure systemd-analyze security gives a unit file."""
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        unit_path], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


@pytest.fixture(scope="session")
def service_unit(build_dir):
    """chatd.service as configured for the build (ExecStart= filled in)."""
    return os.path.join(build_dir, "packaging", "chatd.service")


@pytest.fixture(scope="session")
def offline_exposure(service_unit):
    return exposure(service_unit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed container test shows what systemd and chatd said."""
    outcome = yield
    report = outcome.get_result()
    b = item.funcargs.get("box") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(b, Box) and b.leader:
        r = b.run("journalctl", "--no-pager", "-n", "40", "-u", "chatd.service",
                  "-u", "chatd.socket", check=False)
        report.sections.append(("journal (last 40 lines)", r.stdout + r.stderr))
