"""
test_install.py - "cmake --install" into a DESTDIR: every file where Debian
expects it, with its mode, and an administrator's configuration kept.
"""

import os
import stat
import subprocess

import pytest

from conftest import SRC

EXPECTED = {
    "usr/sbin/chatd": 0o755,
    "etc/chatd/chatd.conf": 0o644,
    "etc/logrotate.d/chatd": 0o644,
    "usr/lib/sysusers.d/chatd.conf": 0o644,
    "usr/lib/tmpfiles.d/chatd.conf": 0o644,
    "usr/share/man/man8/chatd.8": 0o644,
    "usr/share/man/man5/chatd.conf.5": 0o644,
    "usr/share/doc/chatd/README.md": 0o644,
    "usr/share/doc/chatd/PROTOCOL.md": 0o644,
    "usr/share/doc/chatd/examples/chatd.conf": 0o644,
}


def pkg_config(variable):
    return subprocess.run(["pkg-config", "systemd", f"--variable={variable}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def install(build_dir, destdir):
    r = subprocess.run(["cmake", "--install", build_dir, "--prefix", "/usr"],
                       capture_output=True, text=True, env=dict(os.environ, DESTDIR=str(destdir)))
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def tree(build_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("destdir")
    install(build_dir, d)
    return d


@pytest.mark.parametrize("path, mode", sorted(EXPECTED.items()))
def test_installed_with_mode(tree, path, mode):
    st = os.stat(tree / path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode


def test_units_in_systemds_directory(tree):
    unitdir = pkg_config("systemdsystemunitdir").lstrip("/")
    for unit in ("chatd.service", "chatd.socket"):
        assert (tree / unitdir / unit).is_file()
    service = (tree / unitdir / "chatd.service").read_text()
    assert "ExecStart=/usr/sbin/chatd -c /etc/chatd/chatd.conf" in service
    assert "@CHATD_" not in service, "an unsubstituted @VARIABLE@"


def test_nothing_outside_destdir(tree):
    """Every file went under DESTDIR, under the FHS directories only."""
    tops = {p.name for p in tree.iterdir()}
    assert tops <= {"etc", "usr", "lib"}, tops


@pytest.mark.parametrize("page", ["chatctl.8", "chat.1"])
def test_other_man_pages_installed_when_written(tree, page):
    if not os.path.exists(os.path.join(SRC, "docs", page)):
        pytest.skip(f"docs/{page} is not written yet")
    assert (tree / "usr/share/man" / f"man{page[-1]}" / page).is_file()


def test_installed_config_is_the_packaged_one(tree):
    text = (tree / "etc/chatd/chatd.conf").read_text()
    assert open(os.path.join(SRC, "packaging", "chatd.conf")).read() == text


def test_source_install_leaves_the_group_ssl_cert_alone(tree):
    """Only the Debian package puts chatd in ssl-cert (a group its dependency
    ssl-cert owns): a sysusers.d "m" line would make the group where no
    package did."""
    sysusers = tree / pkg_config("sysusersdir").lstrip("/")
    names = sorted(p.name for p in sysusers.iterdir())
    assert names == ["chatd.conf"], names
    assert "ssl-cert" not in (sysusers / "chatd.conf").read_text()


def test_reinstall_keeps_an_edited_config(build_dir, tmp_path):
    install(build_dir, tmp_path)
    conf = tmp_path / "etc/chatd/chatd.conf"
    conf.write_text("port = 7000;\n")
    out = install(build_dir, tmp_path)
    assert conf.read_text() == "port = 7000;\n"
    assert "Kept:" in out
