"""
test_units.py - the systemd units as systemd-analyze sees them on the host:
valid, and chatd.service locked down to an exposure of at most 1.5.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import SRC, exposure

MAX_EXPOSURE = 1.5


def verify(*units, cwd):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                          capture_output=True, text=True, cwd=cwd)


def test_units_verify(build_dir, tmp_path):
    # verify wants ExecStart= to exist: point it at the chatd just built.
    service = open(os.path.join(build_dir, "packaging", "chatd.service")).read()
    m = re.search(r"^ExecStart=(\S+)", service, re.M)
    assert m and m.group(1).endswith("/chatd"), "ExecStart= does not run chatd"
    service = service.replace(m.group(1), os.path.join(build_dir, "chatd"), 1)
    (tmp_path / "chatd.service").write_text(service)
    shutil.copy(os.path.join(SRC, "packaging", "chatd.socket"), tmp_path)
    r = verify("chatd.service", "chatd.socket", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_verify_can_fail(tmp_path):
    """The check above would catch a broken unit."""
    (tmp_path / "broken.service").write_text("[Service]\nType=notfy\nExecStart=/nonexistent\n")
    r = verify("broken.service", cwd=tmp_path)
    assert r.returncode != 0


def test_security_exposure(offline_exposure):
    assert offline_exposure <= MAX_EXPOSURE


def test_exposure_grows_without_the_lock_down(service_unit, tmp_path):
    """The score is measured, not assumed: the plain unit scores far worse."""
    plain = [line for line in open(service_unit)
             if not re.match(r"(Protect|Private|Restrict|SystemCall|Capability|NoNew|Memory"
                             r"|Lock|Remove|Device|Keyring|UMask|ProcSubset)", line)]
    (tmp_path / "plain.service").write_text("".join(plain))
    assert exposure(str(tmp_path / "plain.service")) > 5.0


@pytest.mark.parametrize("name, wanted", [
    ("Type", "notify"), ("Restart", "on-failure"), ("User", "chatd"),
    ("SupplementaryGroups", "chatd-admin"), ("StateDirectory", "chatd"),
    ("LogsDirectory", "chatd"), ("RuntimeDirectory", "chatd"),
    ("ConfigurationDirectory", "chatd"),
])
def test_service_settings(service_unit, name, wanted):
    values = re.findall(rf"^{name}=(.*)$", open(service_unit).read(), re.M)
    assert values == [wanted]


def test_service_has_watchdog_reload_and_sized_limits(service_unit):
    text = open(service_unit).read()
    assert re.search(r"^WatchdogSec=\d+s$", text, re.M)
    assert re.search(r"^ExecReload=.*kill -HUP", text, re.M)
    tasks = int(re.search(r"^TasksMax=(\d+)$", text, re.M).group(1))
    files = int(re.search(r"^LimitNOFILE=(\d+)$", text, re.M).group(1))
    # Sized for the default max_clients = 1000: a thread and two descriptors
    # per client (daemon/server.c FDS_PER_CLIENT) plus chatd's own.
    assert tasks >= 1000 + 4
    assert files >= 1000 * 2 + 64
