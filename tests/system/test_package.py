"""
test_package.py - the .deb as README.md tells to build it ("packaging/build-deb",
no DEB_BUILD_OPTIONS): its build ran the unit tests, all passing, and only
those; its maintainer scripts stop chatd.socket as well as chatd.service on
removal and remove the logs and the state on purge (test_container.py does
both for real under systemd).
"""

import os
import re
import subprocess

import pytest

from conftest import SRC


def unit_tests():
    text = open(os.path.join(SRC, "tests", "CMakeLists.txt")).read()
    return re.findall(r"^chatd_unit_test\((\w+)", text, re.M)


def test_package_build_ran_the_unit_tests(deb):
    log = open(os.path.join(os.path.dirname(deb), "build.log")).read()
    m = re.search(r"^(\d+)% tests passed, (\d+) tests failed out of (\d+)$", log, re.M)
    assert m, "the package build ran no tests (nocheck?)"
    assert m.group(1, 2) == ("100", "0"), m.group(0)
    ran = set(re.findall(r"Test +#\d+: (\w+) \.", log))
    assert ran == set(unit_tests()), ran ^ set(unit_tests())
    assert "e2e" not in ran


@pytest.fixture(scope="module")
def scripts(deb, tmp_path_factory):
    d = tmp_path_factory.mktemp("control")
    subprocess.run(["dpkg-deb", "-e", deb, str(d)], check=True)
    return {name: (d / name).read_text() for name in ("postinst", "prerm", "postrm")}


def test_prerm_stops_the_socket_before_the_service(scripts):
    prerm = scripts["prerm"]
    socket = re.search(r"deb-systemd-invoke stop 'chatd\.socket'", prerm)
    service = re.search(r"deb-systemd-invoke stop 'chatd\.service'", prerm)
    assert socket and service, prerm
    assert socket.start() < service.start()


def test_socket_is_never_enabled_by_the_package(scripts):
    postinst = scripts["postinst"]
    assert re.search(r"deb-systemd-helper enable 'chatd\.service'", postinst)
    # Only re-enabled on upgrade if it was (the "dont-enable" snippet).
    assert re.search(r"was-enabled 'chatd\.socket'", postinst), postinst


def test_purge_removes_logs_and_state(scripts):
    postrm = scripts["postrm"]
    assert re.search(r'rm -rf "\$\{DPKG_ROOT:-\}/var/lib/chatd" "\$\{DPKG_ROOT:-\}/var/log/chatd"',
                     postrm), postrm
