"""
test_package.py - the .deb as README.md tells to build it ("packaging/build-deb",
no DEB_BUILD_OPTIONS): its build ran the unit tests, all passing, and only
those; it depends on ssl-cert and puts chatd in that package's group before
chatd.service starts; its maintainer scripts stop chatd.socket as well as
chatd.service on removal and remove the logs and the state on purge
(test_container.py does all this for real under systemd).  And README.md's
build commands as typed, from a copy of the source tree: `packaging/build-deb`
prints the path of build-pkg-deb/chatd_VERSION_ARCH.deb, and with
`DEB_BUILD_OPTIONS=nocheck` it builds the same package without a test.
"""

import os
import re
import shutil
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


def test_package_depends_on_ssl_cert(deb):
    """The packaged chatd.conf names ssl-cert's snakeoil pair: a hard dependency,
    configured (group ssl-cert, the pair made) before chatd's postinst runs."""
    depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True,
                             text=True, check=True).stdout
    names = [alt.split()[0] for dep in depends.split(",") for alt in dep.split("|")]
    assert "ssl-cert" in names, depends


def test_package_puts_chatd_in_the_group_ssl_cert(deb, tmp_path):
    subprocess.run(["dpkg-deb", "-x", deb, str(tmp_path)], check=True)
    conf = tmp_path / "usr/lib/sysusers.d/chatd-ssl-cert.conf"
    lines = [line.split() for line in conf.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines == [["m", "chatd", "ssl-cert"]], lines


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


def test_postinst_makes_users_and_groups_before_chatd_starts(scripts):
    """systemd-sysusers (chatd in ssl-cert, which may read the key) runs
    before the snippet that starts chatd.service, or its first start could
    not read the snakeoil key."""
    postinst = scripts["postinst"]
    sysusers = re.search(r"^\s*systemd-sysusers .*$", postinst, re.M)
    assert sysusers, postinst
    assert {"chatd.conf", "chatd-ssl-cert.conf"} <= set(sysusers.group(0).split()), sysusers
    start = re.search(r"deb-systemd-invoke \$_dh_action .*'chatd\.service'", postinst)
    assert start, postinst
    assert sysusers.start() < start.start()


def test_socket_is_never_enabled_by_the_package(scripts):
    postinst = scripts["postinst"]
    assert re.search(r"deb-systemd-helper enable 'chatd\.service'", postinst)
    # Only re-enabled on upgrade if it was (the "dont-enable" snippet).
    assert re.search(r"was-enabled 'chatd\.socket'", postinst), postinst


def test_purge_removes_logs_and_state(scripts):
    postrm = scripts["postrm"]
    assert re.search(r'rm -rf "\$\{DPKG_ROOT:-\}/var/lib/chatd" "\$\{DPKG_ROOT:-\}/var/log/chatd"',
                     postrm), postrm


README = os.path.join(SRC, "README.md")


def readme_package_section():
    text = open(README, encoding="utf-8").read()
    return text.split("\n## Installing as a Debian package\n", 1)[1].split("\n## ", 1)[0]


def source_copy(top):
    """What packaging/build-deb would take of the tree: tracked files and
    untracked ones not ignored."""
    files = subprocess.run(["git", "-C", SRC, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = os.path.join(SRC, rel)
        if os.path.lexists(src):
            os.makedirs(os.path.dirname(os.path.join(top, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(top, rel), follow_symlinks=False)


def test_build_deb_with_nocheck_as_readme_shows(deb, tmp_path):
    section = readme_package_section()
    block = re.search(r"^```sh\n(.*?)^```", section, re.M | re.S).group(1)
    build = block.splitlines()[0]
    m = re.fullmatch(r"(packaging/build-deb)\s+# prints the path of (build-pkg-deb)/"
                     r"chatd_VERSION_ARCH\.deb", build)
    assert m, build
    assert "`DEB_BUILD_OPTIONS=nocheck`\nskips them" in section
    top = tmp_path / "src"
    source_copy(top)
    env = {k: v for k, v in os.environ.items() if k != "DEB_BUILD_OPTIONS"}
    r = subprocess.run(["bash", "-c", f"DEB_BUILD_OPTIONS=nocheck {m.group(1)}"], cwd=top,
                       env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    fields = {f: subprocess.run(["dpkg-deb", "-f", deb, f], capture_output=True, text=True,
                                check=True).stdout.strip() for f in ("Version", "Architecture")}
    name = f"chatd_{fields['Version']}_{fields['Architecture']}.deb"
    assert r.stdout.splitlines() == [str(top / m.group(2) / name)], r.stdout
    log = (top / m.group(2) / "build.log").read_text()
    assert not re.search(r"tests passed|Test +#\d+:", log), "nocheck ran tests"

    def contents(path):
        out = subprocess.run(["dpkg-deb", "-c", path], capture_output=True, text=True,
                             check=True).stdout
        return sorted(line.split()[-1] for line in out.splitlines())
    assert contents(r.stdout.strip()) == contents(deb)
